#!/usr/bin/env python3
"""Ratios of candle (clsbench) to PyTorch from one `make speed-vs-pytorch` run.

    python3 scripts/speed_ratios.py CANDLE.jsonl PYTORCH.jsonl

Inputs are the JSON lines of `cargo bench --bench models` and scripts/compare_pytorch.py.
Inference compares documents/s (candle sorts by length, so against PyTorch's "sorted" order,
with the seed's "as-given" order beside it); training compares seconds per optimiser step.
Ratios > 1 mean candle is faster.
"""
import json
import sys


def read(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.startswith("{")]


def main():
    candle, torch = read(sys.argv[1]), read(sys.argv[2])
    print("| model | measure | candle | PyTorch | candle / PyTorch speed |")
    print("|---|---|---:|---:|---:|")
    for c in candle:
        if c["what"] == "inference":
            for order in ("sorted", "as-given"):
                t = next((t for t in torch if t["model"] == c["model"] and t["what"] == "inference"
                          and t["order"] == order and (t["batch"], t["docs"]) == (c["batch"], c["docs"])), None)
                if t:
                    print(f"| {c['model']} | inference docs/s, {c['docs']} docs, batch {c['batch']} (PyTorch {order}) | {c['docs_per_second']:.1f} "
                          f"| {t['docs_per_second']:.1f} | {c['docs_per_second'] / t['docs_per_second']:.2f} |")
        else:
            t = next((t for t in torch if t["model"] == c["model"] and t["what"] == c["what"]
                      and (t["batch"], t["seq_len"]) == (c["batch"], c["seq_len"])), None)
            if t:
                cs, ts = c["median_seconds_per_step"], t["median_seconds_per_step"]
                print(f"| {c['model']} | {c['what']} s/step, batch {c['batch']} x {c['seq_len']} | {cs:.2f} | {ts:.2f} | {ts / cs:.2f} |")


if __name__ == "__main__":
    main()
