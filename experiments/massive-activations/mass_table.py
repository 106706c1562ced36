#!/usr/bin/env python3
"""Massive-activation tables of a sweep (or of single run directories), per layer, from metrics.jsonl:

  mass_ratio (top-1 |x| / median) | mass_top (top-1 |x|) | mass_median | mass_pos / mass_chan (where the top-1
  of sequence 0 sits) | mass_persist (share of sequences whose top-1 is at the modal (t, c)) | mass_sun

at the last probe and at step 0 (the control), one line per run; with --timeline, every probe of every run.
Layer l = the output of block l (instrument/docs/residual.md). Standard library only.

usage: mass_table.py SWEEP_DIR_OR_RUN_DIR... [--timeline]
"""
import json
import math
import os
import sys

NAN = float("nan")
METRICS = ("mass_ratio", "mass_top", "mass_median", "mass_pos", "mass_chan", "mass_persist", "mass_sun")


def load(run_dir):
    """-> ({step: {(metric, layer, index): value}}, last val_loss)"""
    probes, val = {}, NAN
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a truncated last line of a killed run
            if r.get("kind") == "eval":
                val = float(r["val_loss"])
            elif r.get("kind") == "probe" and r.get("metric") in METRICS:
                v = r["value"]
                v = float(v) if not isinstance(v, str) else float(v.replace("inf", "Infinity")) if v != "nan" else NAN
                probes.setdefault(r["step"], {})[(r["metric"], r["layer"], r["index"])] = v
    return probes, val


def cells(p, metric, index=-1):
    layers = sorted({k[1] for k in p if k[0] == "mass_ratio" and k[1] >= 0})
    return [p.get((metric, l, index), NAN) for l in layers]


def fmt(xs, d=1):
    out = []
    for x in xs:
        if math.isnan(x):
            out.append("—")
        elif d == 0:
            out.append(str(int(x)))
        else:
            out.append(f"{x:.{d}f}" if abs(x) < 1000 else f"{x:.3g}")
    return " ".join(out)


def line(name, step, p, val=NAN):
    return (f"| {name} | {step} | {fmt([val], 3)} | {fmt(cells(p, 'mass_ratio'))} | {fmt(cells(p, 'mass_top', 0), 2)} "
            f"| {fmt(cells(p, 'mass_median'), 3)} | {fmt(cells(p, 'mass_pos'), 0)} | {fmt(cells(p, 'mass_chan'), 0)} "
            f"| {fmt(cells(p, 'mass_persist'), 2)} | {fmt(cells(p, 'mass_sun'), 2)} |")


def runs(paths):
    for path in paths:
        if os.path.exists(os.path.join(path, "metrics.jsonl")):
            yield os.path.basename(path.rstrip("/")), path
        else:
            for name in sorted(os.listdir(path)):
                if os.path.exists(os.path.join(path, name, "metrics.jsonl")):
                    yield name, os.path.join(path, name)


def main(argv):
    timeline = "--timeline" in argv
    paths = [a for a in argv if a != "--timeline"]
    if not paths:
        sys.exit(__doc__)
    print("| run | step | val loss | mass_ratio per layer | top-1 per layer | median per layer | pos per layer "
          "| chan per layer | persist per layer | mass_sun per layer |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, path in runs(paths):
        probes, val = load(path)
        if not probes:
            continue
        steps = sorted(probes)
        for s in (steps if timeline else [steps[0], steps[-1]]):
            print(line(name, s, probes[s], val if s == steps[-1] else NAN))


if __name__ == "__main__":
    main(sys.argv[1:])
