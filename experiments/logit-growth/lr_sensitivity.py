#!/usr/bin/env python3
"""LR sensitivity of Wortsman et al. 2023 (metrics.md §1.13) for a logit-growth sweep directory.

    LRsens = E_{lr in grid}[ min(loss(lr), loss0) - loss* ],  loss* = min over the grid,  loss0 = loss at init

per arm (model.qk_norm false / true), from the sweep's summary.csv (the arms) and each run's metrics.jsonl:
the final validation cross-entropy (`val_loss_ce`; the base config has z-loss on, so `val_loss` would add the
z term) and loss0 = the training cross-entropy of step 1 (`loss_ce`), computed before the first update.
The claim evaluator compares single runs, so this sweep-level number is computed here and reported in
README.md next to the verdict table. Standard library only.

usage: lr_sensitivity.py SWEEP_DIR      (e.g. runs/repro/logit-growth/quick)
"""
import csv
import json
import math
import os
import sys


def cross_entropy(r, name):
    """The cross-entropy of a train/eval record: NAME_ce when z-loss is on, else NAME (the same quantity)."""
    return float(r.get(name + "_ce", r[name]))


def losses(run_dir):
    """-> (training cross-entropy of the first train record, final validation cross-entropy or inf)"""
    first, last = None, math.inf
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "train" and first is None:
                first = cross_entropy(r, "loss")
            elif r.get("kind") == "eval":
                last = cross_entropy(r, "val_loss")
    if first is None:
        raise SystemExit(f"{run_dir}: no train record")
    return first, last if math.isfinite(last) else math.inf


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    sweep = sys.argv[1]
    arms = {}
    with open(os.path.join(sweep, "summary.csv")) as f:
        for row in csv.DictReader(f):
            if row["status"] != "finished":
                print(f"warning: {row['name']} is {row['status']}", file=sys.stderr)
            loss0, loss = losses(os.path.join(sweep, row["name"]))
            arms.setdefault(row["model.qk_norm"], []).append((float(row["optim.lr"]), loss, loss0))
    print("| qk_norm | " + " | ".join(f"lr {lr:g}" for lr, _, _ in sorted(next(iter(arms.values())))) +
          " | loss0 | loss* | LRsens |")
    print("|---" * (len(next(iter(arms.values()))) + 4) + "|")
    for arm, pts in sorted(arms.items()):
        pts.sort()
        loss0 = sum(p[2] for p in pts) / len(pts)  # the same init for every LR; averaged over the runs' batches
        best = min(p[1] for p in pts)
        sens = sum(min(p[1], loss0) - best for p in pts) / len(pts)
        print(f"| {arm} | " + " | ".join(f"{p[1]:.3f}" for p in pts) + f" | {loss0:.3f} | {best:.3f} | {sens:.3f} |")


if __name__ == "__main__":
    main()
