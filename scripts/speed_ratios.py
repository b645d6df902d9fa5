#!/usr/bin/env python3
"""Ratios of candle (clsbench) to PyTorch from one `make speed-vs-pytorch` run.

    python3 scripts/speed_ratios.py CANDLE.jsonl PYTORCH.jsonl

Inputs are the JSON lines of `cargo bench --bench models` and scripts/compare_pytorch.py.
Inference compares documents/s (candle sorts by length, so against PyTorch's "sorted" order,
with the seed's "as-given" order beside it); training compares seconds per optimiser step.
Ratios > 1 mean candle is faster; memory ratios < 1 mean candle needs less (peak RSS of the
row's own process, added by scripts/speed_vs_pytorch.sh); "+ckpt" rows recompute each layer in
backward on both sides, and their memory is also compared with PyTorch's row without it.
"""
import json
import sys


def read(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.startswith("{")]


def mib(r):
    v = r.get("peak_rss_mib")
    return f"{v / 1024:.2f} GiB" if v is not None else "-"


def mem_ratio(c, t):
    if c.get("peak_rss_mib") and t.get("peak_rss_mib"):
        return f"{c['peak_rss_mib'] / t['peak_rss_mib']:.2f}"
    return "-"


def same_step(rows, c, ckpt):
    """The row of `rows` timing candle row `c`'s training step, with recomputation or not."""
    return next((t for t in rows if t["model"] == c["model"] and t["what"] == c["what"]
                 and (t["batch"], t["seq_len"]) == (c["batch"], c["seq_len"])
                 and t.get("gradient_checkpointing", False) == ckpt), None)


def main():
    candle, torch = read(sys.argv[1]), read(sys.argv[2])
    print("| model | measure | candle | PyTorch | speed (candle / PyTorch) | candle peak RSS | PyTorch peak RSS | memory (candle / PyTorch) | planner estimate |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for c in candle:
        if c["what"] == "inference":
            for order in ("sorted", "as-given"):
                t = next((t for t in torch if t["model"] == c["model"] and t["what"] == "inference"
                          and t["order"] == order and (t["batch"], t["docs"]) == (c["batch"], c["docs"])), None)
                if t:
                    print(f"| {c['model']} | inference docs/s, {c['docs']} docs, batch {c['batch']} (PyTorch {order}) | {c['docs_per_second']:.1f} "
                          f"| {t['docs_per_second']:.1f} | {c['docs_per_second'] / t['docs_per_second']:.2f} "
                          f"| {mib(c)} | {mib(t)} | {mem_ratio(c, t)} | |")
        else:
            ckpt = c.get("gradient_checkpointing", False)
            t = same_step(torch, c, ckpt)
            # Memory targets compare against PyTorch without recomputation.
            plain = same_step(torch, c, False)
            if t:
                cs, ts = c["median_seconds_per_step"], t["median_seconds_per_step"]
                est = c.get("estimate_gib")
                est_s = "-"
                if est is not None and c.get("peak_rss_mib"):
                    est_s = f"{est:.2f} GiB ({100 * (est * 1024 / c['peak_rss_mib'] - 1):+.0f}%)"
                mem = mem_ratio(c, t)
                if ckpt and plain:
                    mem += f" (vs PyTorch without: {mem_ratio(c, plain)})"
                print(f"| {c['model']} | {c['what']} s/step, batch {c['batch']} x {c['seq_len']}{' +ckpt' if ckpt else ''} "
                      f"| {cs:.2f} | {ts:.2f} | {ts / cs:.2f} | {mib(c)} | {mib(t)} | {mem} | {est_s} |")


if __name__ == "__main__":
    main()
