#!/usr/bin/env python3
"""Per-run table of the position-encodings reproduction: the last evaluation's accuracy at the copy targets
(in the 128-token window and on 256-token rows) and the attention to the copied token (max over layers of
the max over heads), read from each run's metrics.jsonl.

    python3 experiments/position-encodings/table.py runs/repro/position-encodings/quick
"""
import json
import os
import sys


def last(metrics, name, layer=None):
    rows = [m for m in metrics if m.get("metric") == name and m.get("index") == -1
            and (layer is None or m.get("layer") == layer)]
    if not rows:
        return float("nan"), -1
    step = max(m["step"] for m in rows)
    return max(float(m["value"]) for m in rows if m["step"] == step), step


def main(root):
    print("| run | step | acc (T 128) | acc (T 256) | attn to source (T 128) | acc at step 0 |")
    print("|---|---|---|---|---|---|")
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name, "metrics.jsonl")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            metrics = [json.loads(line) for line in f if '"recall_' in line]
        acc, step = last(metrics, "recall_acc")
        ext, _ = last(metrics, "recall_acc_ext")
        attn, _ = last(metrics, "recall_attn")  # max over the layers at the last step
        init = [float(m["value"]) for m in metrics
                if m["metric"] == "recall_acc" and m["index"] == -1 and m["step"] == 0]
        print(f"| {name} | {step} | {acc:.3f} | {ext:.3f} | {attn:.3f} | {init[0] if init else float('nan'):.3f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/repro/position-encodings/quick")
