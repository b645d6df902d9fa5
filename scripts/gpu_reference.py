#!/usr/bin/env python3
"""PyTorch's side of scripts/gpu-check.sh: the shapes `clsbench gpu-perf` times, measured the
same way in PyTorch + transformers + PEFT on the same machine, and the comparison table.

    python3 scripts/gpu_reference.py --device cuda --out pytorch-perf.json
    python3 scripts/gpu_reference.py --compare candle-perf.json pytorch-perf.json [--candle-f16 F]

Models are `AutoModelForSequenceClassification.from_config` (random weights, no download) of
the configs clsbench embeds (fixtures/configs/*.json), 113 classes:
- modernbert-base: full fine-tune; weights in f32, compute under `torch.autocast` (as
  clsbench's f32 master copies cast where used);
- qwen2.5-0.5b: PEFT LoRA r16, alpha 32, dropout 0.05 on q/k/v/o (task SEQ_CLS, so the `score`
  head trains too); the frozen base in the compute dtype, adapters and head in f32, autocast.
Inference: the model in the compute dtype, `torch.inference_mode`, random ids of full length,
no padding. Each timing is one call between two `torch.cuda.synchronize()`; docs/s = batch /
median; single example = batch 1, p50 / p95; a training step = forward, f32 cross-entropy,
backward (GradScaler in f16), clip to 1.0, AdamW, after one untimed step. Peak device memory:
the driver's used memory (`torch.cuda.mem_get_info`, total - free) sampled every 20 ms, as
clsbench samples cuMemGetInfo, plus torch's own max_memory_allocated / reserved.
Attention is transformers' default implementation (sdpa), no torch.compile: "PyTorch eager".
"""
import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {
    "modernbert-base": (ROOT / "fixtures/configs/modernbert-base.json", "full", 0),
    "qwen2.5-0.5b": (ROOT / "fixtures/configs/qwen2.5-0.5b.json", "lora", 16),
    "tiny-modernbert": (ROOT / "fixtures/reference/modernbert-tiny/config.json", "full", 0),
    "tiny-qwen2": (ROOT / "fixtures/configs/tiny-qwen2.json", "lora", 4),
}
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def percentile(sorted_ms, q):
    """numpy's default (linear) percentile of sorted data, as clsbench's LatencyStats."""
    pos = (len(sorted_ms) - 1) * q / 100.0
    lo = int(pos)
    frac = pos - lo
    if lo + 1 < len(sorted_ms) and frac > 0:
        return sorted_ms[lo] + (sorted_ms[lo + 1] - sorted_ms[lo]) * frac
    return sorted_ms[lo]


def latency_stats(samples_ms):
    s = sorted(samples_ms)
    return {
        "n": len(s),
        "median_ms": percentile(s, 50),
        "p95_ms": percentile(s, 95),
        "mean_ms": statistics.fmean(s),
        "min_ms": s[0],
        "max_ms": s[-1],
    }


class MemorySampler:
    """The driver's used device memory (total - free), sampled in a thread; None on the CPU."""

    def __init__(self, torch, device):
        self.torch, self.device = torch, device
        self.peak = None
        self._stop = threading.Event()
        self._thread = None

    def _read(self):
        free, total = self.torch.cuda.mem_get_info(self.device)
        return total - free

    def __enter__(self):
        if self.device.type == "cuda":
            self.torch.cuda.reset_peak_memory_stats(self.device)
            self.peak = self._read()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._read())
            time.sleep(0.02)

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self._read())
        return False

    def torch_peaks(self):
        if self.device.type != "cuda":
            return None, None
        return (
            self.torch.cuda.max_memory_allocated(self.device),
            self.torch.cuda.max_memory_reserved(self.device),
        )


def load_config(path, n_classes):
    from transformers import AutoConfig

    d = json.loads(Path(path).read_text())
    model_type = d.pop("model_type")
    for k in ("architectures", "transformers_version", "torch_dtype"):
        d.pop(k, None)
    cfg = AutoConfig.for_model(model_type, **d)
    cfg.num_labels = n_classes
    if getattr(cfg, "pad_token_id", None) is None:
        # Decoders classify the last non-pad token; no padding here, any id will do.
        eos = getattr(cfg, "eos_token_id", None)
        cfg.pad_token_id = eos if isinstance(eos, int) else 0
    return cfg


def build(torch, name, dtype, device, train, n_classes):
    from transformers import AutoModelForSequenceClassification

    path, method, r = SHAPES[name]
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(load_config(path, n_classes))
    if not train:
        return model.to(device=device, dtype=dtype).eval()
    if method == "full":
        return model.to(device=device).train()
    from peft import LoraConfig, get_peft_model

    model = model.to(device=device, dtype=dtype)
    lora = LoraConfig(task_type="SEQ_CLS", r=r, lora_alpha=2 * r, lora_dropout=0.05, target_modules=LORA_TARGETS)
    model = get_peft_model(model, lora)
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    return model.train()


def run_shape(torch, name, dtype, device, args):
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)

    def timed(f):
        sync()
        t0 = time.perf_counter()
        f()
        sync()
        return (time.perf_counter() - t0) * 1e3

    path, method, _ = SHAPES[name]
    report = {
        "shape": name,
        "method": method,
        "device": str(device),
        "dtype": {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}[dtype],
        "max_length": args.max_length,
        "single": None,
        "inference": [],
        "inference_failures": [],
        "training": None,
        "recomputation": "not measured: clsbench has no gradient checkpointing to compare with (issue 11)",
    }
    vocab = load_config(path, args.n_classes).vocab_size
    gen = torch.Generator().manual_seed(7)

    def ids(batch):
        x = torch.randint(3, vocab, (batch, args.max_length), generator=gen).to(device)
        return x, torch.ones_like(x)

    if not args.skip_inference:
        t0 = time.perf_counter()
        model = build(torch, name, dtype, device, False, args.n_classes)
        report["total_params"] = sum(p.numel() for p in model.parameters())
        report["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
        report["build_seconds"] = time.perf_counter() - t0
        with MemorySampler(torch, device) as mem, torch.inference_mode():
            x, m = ids(1)
            forward = lambda x=None, m=None: model(input_ids=x, attention_mask=m).logits  # noqa: E731
            for _ in range(args.warmup):
                timed(lambda: forward(x, m))
            report["single"] = latency_stats([timed(lambda: forward(x, m)) for _ in range(args.single_examples)])
            for k, b in enumerate(args.batch_sizes):
                try:
                    xb, mb = ids(b)
                    for _ in range(args.warmup):
                        timed(lambda: forward(xb, mb))
                    s = latency_stats([timed(lambda: forward(xb, mb)) for _ in range(max(args.repeats, 1))])
                    report["inference"].append(
                        {
                            "batch_size": b,
                            "repeats": s["n"],
                            "median_batch_ms": s["median_ms"],
                            "p95_batch_ms": s["p95_ms"],
                            "docs_per_s": b / (s["median_ms"] / 1e3),
                        }
                    )
                except RuntimeError as e:  # out of memory, typically
                    report["inference_failures"].append({"batch_size": b, "error": str(e).splitlines()[0]})
                    report["inference_failures"] += [
                        {"batch_size": later, "error": f"skipped: batch {b} failed"} for later in args.batch_sizes[k + 1 :]
                    ]
                    break
        report["inference_peak_device_bytes"] = mem.peak
        report["inference_torch_max_allocated_bytes"], report["inference_torch_max_reserved_bytes"] = mem.torch_peaks()
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()

    if not args.skip_training:
        model = build(torch, name, dtype, device, True, args.n_classes)
        params = [p for p in model.parameters() if p.requires_grad]
        report["trainable_params"] = sum(p.numel() for p in params)
        report["total_params"] = sum(p.numel() for p in model.parameters())
        opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.01)
        scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
        x, m = ids(args.train_batch)
        labels = torch.randint(0, args.n_classes, (args.train_batch,), generator=gen).to(device)
        autocast = dtype != torch.float32

        def step():
            with torch.autocast(device.type, dtype=dtype, enabled=autocast):
                logits = model(input_ids=x, attention_mask=m).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            if scaler is None:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                scaler.step(opt)
                scaler.update()
            opt.zero_grad(set_to_none=True)

        try:
            with MemorySampler(torch, device) as mem:
                timed(step)
                s = latency_stats([timed(step) for _ in range(max(args.train_steps, 1))])
            report["training"] = {
                "batch_size": args.train_batch,
                "max_length": args.max_length,
                "steps": s["n"],
                "median_step_ms": s["median_ms"],
                "p95_step_ms": s["p95_ms"],
                "examples_per_s": args.train_batch / (s["median_ms"] / 1e3),
            }
            if scaler is not None:
                report["training"]["final_loss_scale"] = float(scaler.get_scale())
            report["training_peak_device_bytes"] = mem.peak
            report["training_torch_max_allocated_bytes"], report["training_torch_max_reserved_bytes"] = mem.torch_peaks()
        except RuntimeError as e:
            report["training_error"] = str(e).splitlines()[0]
        del model, opt
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return report


def measure(args):
    import torch
    import transformers

    try:
        import peft

        peft_version = peft.__version__
    except ImportError:
        peft_version = None
    device = torch.device(args.device)
    if args.dtype == "auto":
        if device.type == "cuda":
            major, _ = torch.cuda.get_device_capability(device)
            dtype = torch.bfloat16 if major >= 8 else torch.float16
        else:
            dtype = torch.float32
    else:
        dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    shapes = []
    for name in args.shapes:
        print(f"gpu_reference: {name} in {dtype} on {device}", file=sys.stderr)
        shapes.append(run_shape(torch, name, dtype, device, args))
    if args.f16_decoder_shape:
        # The seed's decoder recipe in f16 (T4-class): its training step's memory.
        f16 = argparse.Namespace(**{**vars(args), "skip_inference": True})
        shapes.append(run_shape(torch, args.f16_decoder_shape, torch.float16, device, f16))
    out = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "transformers_version": transformers.__version__,
        "peft_version": peft_version,
        "shapes": shapes,
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


def gib(b):
    return "-" if b is None else f"{b / 2**30:.2f} GiB"


def compare(candle_path, torch_path, candle_f16_path=None):
    """Markdown: clsbench against PyTorch shape by shape; ratios > 1 mean clsbench is faster."""
    candle = json.loads(Path(candle_path).read_text())
    torch_r = json.loads(Path(torch_path).read_text())
    print(
        f"## clsbench vs PyTorch {torch_r['torch_version']} (transformers {torch_r['transformers_version']}, "
        f"PEFT {torch_r['peft_version']}) on {torch_r.get('gpu') or torch_r['device']}\n"
    )
    print("Ratios are speed ratios: > 1 means clsbench is faster (docs/s over docs/s, PyTorch ms over clsbench ms).\n")
    print("| shape | dtype | measure | clsbench | PyTorch | ratio |")
    print("|---|---|---|---:|---:|---:|")
    verdicts = []
    for c in candle["shapes"]:
        t = next((s for s in torch_r["shapes"] if s["shape"] == c["shape"] and s["dtype"] == c["dtype"]), None)
        if t is None:
            continue
        tb = {x["batch_size"]: x for x in t["inference"]}
        for x in c["inference"]:
            y = tb.get(x["batch_size"])
            if y:
                r = x["docs_per_s"] / y["docs_per_s"]
                verdicts.append((c["shape"], f"inference batch {x['batch_size']}", r))
                print(
                    f"| {c['shape']} | {c['dtype']} | inference docs/s, batch {x['batch_size']} | "
                    f"{x['docs_per_s']:.1f} | {y['docs_per_s']:.1f} | {r:.2f} |"
                )
        if c.get("single") and t.get("single"):
            for q in ("median_ms", "p95_ms"):
                label = "p50" if q == "median_ms" else "p95"
                print(
                    f"| {c['shape']} | {c['dtype']} | single example {label} ms | {c['single'][q]:.2f} | "
                    f"{t['single'][q]:.2f} | {t['single'][q] / c['single'][q]:.2f} |"
                )
        if c.get("training") and t.get("training"):
            ct, tt = c["training"], t["training"]
            r = tt["median_step_ms"] / ct["median_step_ms"]
            verdicts.append((c["shape"], "training step", r))
            print(
                f"| {c['shape']} | {c['dtype']} | training step ms, {ct['batch_size']} x {ct['max_length']} | "
                f"{ct['median_step_ms']:.1f} | {tt['median_step_ms']:.1f} | {r:.2f} |"
            )
        for phase in ("inference", "training"):
            print(
                f"| {c['shape']} | {c['dtype']} | peak device memory, {phase} | {gib(c.get(phase + '_peak_device_bytes'))} | "
                f"{gib(t.get(phase + '_peak_device_bytes'))} | |"
            )
    print("\nRecomputation (gradient checkpointing): not available in clsbench yet (issue 11).\n")
    if verdicts:
        below = [v for v in verdicts if v[2] < 1.0]
        print(
            "Target (>= 1.0x PyTorch eager in training step and inference throughput, both shapes): "
            + ("met" if not below else "NOT met: " + ", ".join(f"{s} {m} {r:.2f}x" for s, m, r in below))
        )
    if candle_f16_path and Path(candle_f16_path).is_file():
        f16 = json.loads(Path(candle_f16_path).read_text())
        c = next(iter(f16["shapes"]), None)
        t = c and next((s for s in torch_r["shapes"] if s["shape"] == c["shape"] and s["dtype"] == "f16" and s.get("training")), None)
        if c is not None:
            peak = c.get("training_peak_device_bytes")
            fits = peak is not None and peak <= 16 * 2**30
            step = c.get("training") or {}
            print(
                f"\nThe seed's decoder recipe ({c['shape']} LoRA, {step.get('batch_size', '?')} x {step.get('max_length', '?')}, f16): "
                f"clsbench peak device memory {gib(peak)} ({'fits' if fits else 'does NOT fit'} 16 GB), "
                f"step {step.get('median_step_ms', float('nan')):.1f} ms, skipped steps {step.get('skipped_steps')}"
                + (f"; PyTorch {gib(t.get('training_peak_device_bytes'))}, step {t['training']['median_step_ms']:.1f} ms" if t and t.get("training") else "")
            )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compare", nargs=2, metavar=("CANDLE_JSON", "PYTORCH_JSON"))
    ap.add_argument("--candle-f16", help="clsbench's f16 decoder-recipe run (gpu-perf --dtype f16)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="auto", choices=["auto", "f32", "f16", "bf16"])
    ap.add_argument("--shapes", default="modernbert-base,qwen2.5-0.5b", type=lambda s: [x for x in s.split(",") if x])
    ap.add_argument("--batch-sizes", default="1,32,64", type=lambda s: [int(x) for x in s.split(",") if x])
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--train-batch", type=int, default=32)
    ap.add_argument("--single-examples", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--n-classes", type=int, default=113)
    ap.add_argument("--skip-inference", action="store_true")
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--f16-decoder-shape", default="qwen2.5-0.5b",
                    help="also time this shape's training step in f16 (the seed's decoder recipe); '' for none")
    ap.add_argument("--out", default="pytorch-perf.json")
    args = ap.parse_args()
    if args.compare:
        compare(*args.compare, args.candle_f16)
        return
    unknown = [s for s in args.shapes + [args.f16_decoder_shape] if s and s not in SHAPES]
    if unknown:
        ap.error(f"--shapes: unknown {unknown}; expected some of {sorted(SHAPES)}")
    measure(args)


if __name__ == "__main__":
    main()
