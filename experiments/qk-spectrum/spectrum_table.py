#!/usr/bin/env python3
"""Per-run table (and a scatter figure) of a qk-spectrum sweep: W_QK eigen-moments against attention entropy,
token cosine and validation loss, at initialisation (step 0) and at the end of training.

Bao et al. 2024 relate the mean m and variance s² of the W_QK eigenspectrum to attention localization; the
claim evaluator checks chosen pairs of runs, this shows every run. The scatter plots s² (symmetric log) against
the normalised entropy, one point per run. Writes spectrum.png / .svg into the sweep directory (needs Debian's
python3-matplotlib; the table is printed without it).

usage: spectrum_table.py SWEEP_DIR      (e.g. runs/repro/qk-spectrum/quick)
"""
import csv
import json
import os
import sys

KEYS = ("qk_mean_nz", "qk_var_nz", "qk_cv", "qk_spec", "ent_norm", "tok_cos")


def values(run_dir):
    """-> ({metric: value at step 0}, {metric: value at the last probe}, last val_loss)"""
    by_step, val = {}, float("nan")
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "eval":
                val = float(r["val_loss"])
            elif r.get("kind") == "probe" and r["metric"] in KEYS and r["layer"] == 0 and r["index"] == -1:
                if r["metric"] == "tok_cos" or r["head"] == 0:
                    by_step.setdefault(r["step"], {})[r["metric"]] = float(r["value"])
    return by_step.get(0, {}), by_step[max(by_step)], val


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    sweep = sys.argv[1]
    with open(os.path.join(sweep, "summary.csv")) as f:
        runs = list(csv.DictReader(f))
    rows = []
    for r in runs:
        init, last, val = values(os.path.join(sweep, r["name"]))
        rows.append((r["model.norm_position"], float(r["model.init_std"]), float(r["optim.lr"]), init, last, val))
    print("| norm | init_std | lr | m (init) | s² (init) | m | s² | s/\\|m\\| | ‖W_QK‖₂ | ent_norm | tok_cos | val loss |")
    print("|---" * 12 + "|")
    for norm, std, lr, i, l, val in rows:
        print(f"| {norm} | {std:g} | {lr:g} | {i.get('qk_mean_nz', float('nan')):.3g} | {i.get('qk_var_nz', float('nan')):.3g} | "
              f"{l['qk_mean_nz']:.3g} | {l['qk_var_nz']:.3g} | {l['qk_cv']:.3g} | {l['qk_spec']:.3g} | "
              f"{l['ent_norm']:.3g} | {l['tok_cos']:.3g} | {val:.3f} |")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no figure)", file=sys.stderr)
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    lrs = sorted({r[2] for r in rows})
    cmap = plt.get_cmap("viridis")
    for ax, norm in zip(axes, ("post", "pre")):
        for n, std, lr, i, l, val in rows:
            if n != norm:
                continue
            ax.scatter(l["qk_var_nz"], l["ent_norm"], color=cmap(lrs.index(lr) / max(1, len(lrs) - 1)),
                       marker="o" if std > 0.05 else "s", s=40)
        ax.set_xscale("symlog", linthresh=1e-3)
        ax.axhline(0.05, color="grey", lw=0.8, ls="--")
        ax.set_title(f"{norm}-LN: final W_QK eigenvalue variance vs entropy", fontsize=10)
        ax.set_xlabel("qk_var_nz (symlog)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("normalised attention entropy")
    for k, lr in enumerate(lrs):
        axes[1].scatter([], [], color=cmap(k / max(1, len(lrs) - 1)), label=f"lr {lr:g}")
    axes[1].scatter([], [], color="k", marker="o", label="init 0.125")
    axes[1].scatter([], [], color="k", marker="s", label="init 0.02")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(sweep, f"spectrum.{ext}"), dpi=110)
    print(f"wrote {os.path.join(sweep, 'spectrum.png')} and .svg", file=sys.stderr)


if __name__ == "__main__":
    main()
