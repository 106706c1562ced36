#!/usr/bin/env python3
"""Per-layer lazy-layer profiles of a lazy-layers sweep (or of single run directories): for every run, at
step 0 (the initial model) and at the last probe, per block l: block influence bi, the sublayer ratios
rho_attn and rho_mlp, their ratio rho_mlp/rho_attn, the attention-map rank attn_kstar (per head),
the normalised entropy ent_norm (mean over heads) and the single-column mass attn_colmass_max (max over
heads). The summary also lists the "MLP-carried" blocks: bi < 0.02 and rho_mlp > rho_attn. A block is flagged lazy (metrics.md §1.12) when bi < 0.02 and every head has attn_kstar <= 2.

The report (attnlab report) draws layer × step heatmaps per run; this prints the depth profiles side by side
as Markdown tables, which is the view the README quotes.

usage: layer_profile.py SWEEP_DIR [--summary] (e.g. runs/repro/lazy-layers/quick: a one-row-per-run summary,
                                              then every run's profile in summary.csv order; --summary: only the summary)
       layer_profile.py RUN_DIR [RUN_DIR ...]
Standard library only.
"""
import csv
import json
import os
import sys

LAYER_METRICS = ("bi", "rho_attn", "rho_mlp")
HEAD_METRICS = ("attn_kstar", "ent_norm", "attn_colmass_max")


def read(run_dir):
    """-> ({(metric, step, layer, head): value}, last probe step, val_loss at the end or None)"""
    vals, last, val_loss = {}, -1, None
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a truncated last line
            if r.get("kind") == "eval" and "val_loss" in r:
                val_loss = float(r["val_loss"])
            if r.get("kind") != "probe" or r["metric"] not in LAYER_METRICS + HEAD_METRICS or r["layer"] < 0:
                continue
            vals[(r["metric"], r["step"], r["layer"], r["head"])] = float(r["value"])
            last = max(last, r["step"])
    return vals, last, val_loss


def table(run_dir, label):
    vals, last, val_loss = read(run_dir)
    layers = sorted({k[2] for k in vals})
    heads = sorted({k[3] for k in vals if k[0] == "attn_kstar"})
    vl = f", final val_loss {val_loss:.3f}" if val_loss is not None else ""
    for step in (0, last):
        print(f"\n{label}, step {step}{' (init)' if step == 0 else ''}{vl if step == last else ''}:\n")
        print("| block | bi | rho_attn | rho_mlp | mlp/attn | k* per head | ent_norm | colmass | lazy |")
        print("|---|---|---|---|---|---|---|---|---|")
        for l in layers:
            g = lambda m, h=-1: vals.get((m, step, l, h), float("nan"))
            ks = [g("attn_kstar", h) for h in heads]
            ent = sum(g("ent_norm", h) for h in heads) / max(1, len(heads))
            cm = max(g("attn_colmass_max", h) for h in heads) if heads else float("nan")
            lazy = g("bi") < 0.02 and all(k <= 2 for k in ks)
            ratio = g("rho_mlp") / g("rho_attn") if g("rho_attn") else float("inf")
            print(f"| {l + 1} | {g('bi'):.4f} | {g('rho_attn'):.3f} | {g('rho_mlp'):.3f} | {ratio:.2f} | "
                  f"{', '.join(f'{k:.0f}' for k in ks)} | {ent:.3f} | {cm:.3f} | {'yes' if lazy else ''} |")


def summary(runs, sweep):
    """One row per run and probe step: the depth profile reduced to a few numbers. (The probe at step 1, which
    the trainer takes after the first update, is left out: it equals step 0 to two digits.)"""
    print("| L | LR | seed | step | val_loss | min bi (block) | blocks with bi < 0.02 | k* over all heads | "
          "ent_norm deep / block 1 | rho_mlp / rho_attn, deep block | lazy blocks (flag) | "
          "MLP-carried blocks: bi < 0.02 and rho_mlp > rho_attn (their k*, ent_norm) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    key = lambda r: (-int(r["model.n_layer"]), -float(r["optim.lr"]), int(r["train.seed"]))
    for r in sorted(runs, key=key):
        vals, last, val_loss = read(os.path.join(sweep, r["name"]))
        L = int(r["model.n_layer"])
        heads = sorted({k[3] for k in vals if k[0] == "attn_kstar"})
        for step in sorted({k[1] for k in vals if k[0] == "bi" and k[1] != 1}):  # every probe (step 1: see below)
            bi = [vals[("bi", step, l, -1)] for l in range(L)]
            ks = [vals[("attn_kstar", step, l, h)] for l in range(L) for h in heads]
            ent = lambda l: sum(vals[("ent_norm", step, l, h)] for h in heads) / len(heads)
            m = min(range(L), key=lambda l: bi[l])
            d = max(0, L - 2)  # the deep block: the second-to-last (repro.yaml)
            ratio = vals[("rho_mlp", step, d, -1)] / vals[("rho_attn", step, d, -1)]
            lazy = sum(bi[l] < 0.02 and all(vals[("attn_kstar", step, l, h)] <= 2 for h in heads) for l in range(L))
            vl = f"{val_loss:.3f}" if step == last and val_loss is not None else ""
            carried = [l for l in range(L) if bi[l] < 0.02 and vals[("rho_mlp", step, l, -1)] > vals[("rho_attn", step, l, -1)]]
            cks = [vals[("attn_kstar", step, l, h)] for l in carried for h in heads]
            cent = [ent(l) for l in carried]
            ctext = (f"{', '.join(str(l + 1) for l in carried)} (k* {min(cks):.0f}-{max(cks):.0f}, "
                     f"ent {min(cent):.2f}-{max(cent):.2f})") if carried else "none"
            print(f"| {L} | {r['optim.lr']} | {r['train.seed']} | {step} | {vl} | {bi[m]:.4f} ({m + 1}) | "
                  f"{sum(b < 0.02 for b in bi)} of {L} | {min(ks):.0f}-{max(ks):.0f} | {ent(d):.2f} / {ent(0):.2f} | "
                  f"{ratio:.2f} | {lazy} | {ctext} |")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    args = [a for a in sys.argv[1:] if a != "--summary"]
    if len(args) == 1 and os.path.exists(os.path.join(args[0], "summary.csv")):
        with open(os.path.join(args[0], "summary.csv")) as f:
            runs = list(csv.DictReader(f))
        keys = [k for k in ("model.n_layer", "optim.lr", "train.seed") if k in runs[0]]
        summary(runs, args[0])
        if "--summary" in sys.argv:
            return
        for r in runs:
            table(os.path.join(args[0], r["name"]), ", ".join(f"{k}={r[k]}" for k in keys))
    else:
        for d in args:
            table(d, os.path.basename(os.path.normpath(d)))


if __name__ == "__main__":
    main()
