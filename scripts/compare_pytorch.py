#!/usr/bin/env python3
"""PyTorch + transformers (+ PEFT) on CPU: the reference side of `cargo bench --bench models`.

Same models (offline mirror), same texts (first N narratives of cfpb-issues-mini), same
measurements, printed as JSON lines:
  - inference docs/s end to end (tokenize + forward + argmax), batch 32, max length 128, one
    untimed warm-up batch; "order": "as-given" is the seed's week-5 loop (batches in data order,
    padding=True), "sorted" sorts by length first as the candle classifier does;
  - training: median seconds per optimiser step (forward + backward + AdamW), batch 32 of the
    first 32 texts, LoRA r16 (PEFT) on the attention projections, and full fine-tune for MiniLM.

    python scripts/compare_pytorch.py [--docs 256] [--steps 3] [--models minilm,smollm2] [--batch 32] [--max-length 128]
        [--modes lora,full] [--skip-inference] [--gradient-checkpointing]

(the options of `cargo bench --bench models`; `--gradient-checkpointing` is transformers'
`gradient_checkpointing_enable()`, the non-reentrant checkpoint per layer).

`make speed-vs-pytorch` runs both sides back to back and prints the ratios (scripts/speed_ratios.py).

Needs: pip install torch transformers peft (CPU is enough).
"""
import argparse
import csv
import json
import os
import sys
import time

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

N_CLASSES = 43
BATCH, MAX_LENGTH = 32, 128  # overridden by --batch / --max-length
MODELS = {
    "minilm": ("all-MiniLM-L6-v2", ["query", "key", "value", "dense"]),
    "smollm2": ("SmolLM2-135M-Instruct", ["q_proj", "k_proj", "v_proj", "o_proj"]),
    "qwen": ("Qwen2.5-Coder-0.5B-Instruct", ["q_proj", "k_proj", "v_proj", "o_proj"]),
}


def texts(n):
    # Default: ../shared/data/... from the repository root (this script lives in scripts/).
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    default = os.path.join(repo, "..", "shared", "data", "cfpb-issues-mini", "complaints.csv")
    path = os.environ.get("CLSBENCH_CFPB_CSV", default)
    with open(path, newline="", encoding="utf-8") as fh:
        return [row["narrative"] for _, row in zip(range(n), csv.DictReader(fh))]


def load(path, decoder):
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left" if decoder else "right"
    if decoder:
        tok.pad_token = tok.eos_token
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=N_CLASSES, torch_dtype=torch.float32)
    model.config.pad_token_id = tok.pad_token_id
    return tok, model


def infer(tok, model, docs, sort):
    order = sorted(range(len(docs)), key=lambda i: -len(tok(docs[i], truncation=True, max_length=MAX_LENGTH)["input_ids"])) if sort else list(range(len(docs)))
    preds = [None] * len(docs)
    with torch.inference_mode():
        for s in range(0, len(order), BATCH):
            idx = order[s:s + BATCH]
            enc = tok([docs[i] for i in idx], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
            out = model(**enc).logits.argmax(-1).tolist()
            for i, p in zip(idx, out):
                preds[i] = p
    return preds


def main():
    global BATCH, MAX_LENGTH
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--models", default="minilm,smollm2")
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--max-length", type=int, default=MAX_LENGTH)
    ap.add_argument("--modes", default="lora,full")
    ap.add_argument("--skip-inference", action="store_true")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    a = ap.parse_args()
    BATCH, MAX_LENGTH = a.batch, a.max_length
    # The variable the Rust side reads (see models/loader.rs), then the default mirror.
    mirror = os.environ.get("CLSBENCH_MODEL_DIR", os.path.expanduser("~/.cache/model-mirror"))
    docs = texts(a.docs)
    for key in a.models.split(","):
        name, targets = MODELS[key]
        path = os.path.join(mirror, name)
        decoder = key != "minilm"
        if not os.path.isfile(os.path.join(path, "config.json")):
            print(f"SKIPPED {key}: {path} not found (run fetch-models.sh)", file=sys.stderr)
            continue
        tok, model = load(path, decoder)
        model.eval()
        for sort in (() if a.skip_inference else (False, True)):
            infer(tok, model, docs[:BATCH], sort)
            t = time.perf_counter()
            infer(tok, model, docs, sort)
            secs = time.perf_counter() - t
            print(json.dumps({"model": key, "what": "inference", "order": "sorted" if sort else "as-given", "docs": len(docs),
                              "batch": BATCH, "seconds": secs, "docs_per_second": len(docs) / secs,
                              "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
        if a.steps == 0:
            continue
        modes = ["lora"] + (["full"] if key == "minilm" else [])
        for mode in [m for m in modes if m in a.modes.split(",")]:
            tok, model = load(path, decoder)
            if a.gradient_checkpointing:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if mode == "lora":
                from peft import LoraConfig, TaskType, get_peft_model
                model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=16, lora_alpha=32,
                                                         lora_dropout=0.05, target_modules=targets))
            model.train()
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.01)
            enc = tok(docs[:BATCH], padding=True, truncation=True, max_length=MAX_LENGTH, pad_to_multiple_of=8, return_tensors="pt")
            labels = torch.tensor([i % N_CLASSES for i in range(enc["input_ids"].shape[0])])
            times = []
            for i in range(a.steps + 1):
                t = time.perf_counter()
                loss = model(**enc, labels=labels).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                opt.zero_grad()
                if i > 0:
                    times.append(time.perf_counter() - t)
            times.sort()
            print(json.dumps({"model": key, "what": f"train-step-{mode}", "batch": BATCH, "seq_len": enc["input_ids"].shape[1],
                              "steps": len(times), "median_seconds_per_step": times[len(times) // 2],
                              "gradient_checkpointing": a.gradient_checkpointing}), flush=True)


if __name__ == "__main__":
    main()
