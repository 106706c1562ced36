#!/usr/bin/env python3
"""Depth profiles of a rank-collapse sweep: r_frob and tok_cos of every block's output, at initialisation
(step 0) and after training (last probe), for the four arms at the deepest depth in the sweep.

The report (attnlab report) draws layer × step heatmaps per run; this is the view of Dong et al. 2021
(relative residual along depth) and Noci et al. 2022 Fig. 1 (token cosine along depth) with the arms
overlaid. Writes depth_profile.png / .svg into the sweep directory and prints a Markdown table.

usage: depth_profile.py SWEEP_DIR      (e.g. runs/repro/rank-collapse/quick)
Needs python3-matplotlib (Debian) for the figure; the table is printed without it.
"""
import csv
import json
import os
import sys

ARMS = [("true", "gelu", "attention + skip + MLP"), ("false", "gelu", "no skip (attention + MLP)"),
        ("true", "none", "attention + skip"), ("false", "none", "pure attention")]
METRICS = [("r_frob", "relative residual r_frob"), ("tok_cos", "mean token cosine")]


def profiles(run_dir):
    """-> {(metric, 'init'|'trained'): [value per layer]}"""
    rows, last = {}, -1
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") != "probe" or r["metric"] not in ("r_frob", "tok_cos") or r["layer"] < 0:
                continue
            rows[(r["metric"], r["step"], r["layer"])] = float(r["value"])
            last = max(last, r["step"])
    out = {}
    for m, _ in METRICS:
        for tag, step in (("init", 0), ("trained", last)):
            layers = sorted(l for (mm, s, l) in rows if mm == m and s == step)
            out[(m, tag)] = [rows[(m, step, l)] for l in layers]
    return out, last


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    sweep = sys.argv[1]
    with open(os.path.join(sweep, "summary.csv")) as f:
        runs = list(csv.DictReader(f))
    depth = max(int(r["model.n_layer"]) for r in runs)
    data, last = {}, 0
    for skip, mlp, label in ARMS:
        run = [r for r in runs if r["model.n_layer"] == str(depth) and r["model.skip"] == skip and r["model.mlp"] == mlp]
        if len(run) != 1:
            raise SystemExit(f"{sweep}: expected one run with n_layer={depth}, skip={skip}, mlp={mlp}")
        data[label], last = profiles(os.path.join(sweep, run[0]["name"]))
    for m, title in METRICS:
        for tag in ("init", "trained"):
            print(f"\n{title}, {'step 0 (init)' if tag == 'init' else f'step {last} (trained)'}, {depth} blocks:\n")
            print("| arm | " + " | ".join(f"block {l + 1}" for l in range(depth)) + " |")
            print("|---" * (depth + 1) + "|")
            for label in data:
                print(f"| {label} | " + " | ".join(f"{v:.3g}" for v in data[label][(m, tag)]) + " |")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib not installed: no figure)", file=sys.stderr)
        return
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for i, (m, title) in enumerate(METRICS):
        for j, tag in enumerate(("init", "trained")):
            ax = axes[i][j]
            for label in data:
                ys = data[label][(m, tag)]
                ax.plot(range(1, len(ys) + 1), ys, marker="o", ms=3, label=label)
            if m == "r_frob":
                ax.set_yscale("log")
            ax.set_title(f"{title}, {'init (step 0)' if tag == 'init' else f'after {last} steps'}", fontsize=10)
            ax.grid(alpha=0.3)
            if i == 1:
                ax.set_xlabel("block (output of)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(sweep, f"depth_profile.{ext}"), dpi=110)
    print(f"\nwrote {os.path.join(sweep, 'depth_profile.png')} and .svg", file=sys.stderr)


if __name__ == "__main__":
    main()
