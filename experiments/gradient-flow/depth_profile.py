#!/usr/bin/env python3
"""Gradient depth profiles of a gradient-flow sweep: |dL/dh^l| (grad_dx_norm) of every block's input at
initialisation (step 0) and at the last probe, and rho_grad (grad_depth_ratio_params) over the probes,
for every arm and seed; plus the depth events (grad_vanishing / grad_explosion with metric
grad_depth_ratio_params) of every run. Prints Markdown tables; reads only metrics.jsonl and events.jsonl.

usage: depth_profile.py SWEEP_DIR      (e.g. runs/repro/gradient-flow/quick)
"""
import json
import os
import sys

ARMS = [  # (name, predicate on the run's config)
    ("pre", lambda c: c["norm_position"] == "pre" and c["skip"] and c["init_std"] == 0.125),
    ("post", lambda c: c["norm_position"] == "post" and c["n_layer"] == 12 and c["residual_scale"] == 1.0),
    ("post-4", lambda c: c["norm_position"] == "post" and c["n_layer"] == 4),
    ("post-dn", lambda c: c["norm_position"] == "post" and c["residual_scale"] != 1.0),
    ("noskip", lambda c: not c["skip"]),
    ("biginit", lambda c: c["init_std"] == 0.5),
]


def config_of(name):
    """The arm's model keys from the run name (key=value,...)."""
    c = {}
    for part in name.split(","):
        k, v = part.split("=", 1)
        c[k] = v
    return {"norm_position": c["norm_position"], "n_layer": int(c["n_layer"]), "skip": c["skip"] == "true",
            "residual_scale": float(c["residual_scale"]), "init_std": float(c["init_std"]),
            "seed": int(c["seed"])}


def read_run(d):
    dx, rho, val = {}, {}, None
    with open(os.path.join(d, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "eval":
                val = r.get("val_loss")
            m = r.get("metric")
            if m == "grad_dx_norm":
                dx.setdefault(r["step"], {})[r["layer"]] = float(r["value"])
            elif m == "grad_depth_ratio_params":
                rho[r["step"]] = float(r["value"])
    events = []
    ep = os.path.join(d, "events.jsonl")
    if os.path.exists(ep):
        with open(ep) as f:
            for line in f:
                e = json.loads(line)
                if e.get("metric") == "grad_depth_ratio_params":
                    events.append((e["kind"], e["step"]))
    return dx, rho, val, events


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    runs = []
    for name in sorted(os.listdir(root)):
        if not os.path.exists(os.path.join(root, name, "metrics.jsonl")) or "seed=" not in name:
            continue
        c = config_of(name)
        arm = next((a for a, p in ARMS if p(c)), None)
        if arm:
            runs.append((arm, c["seed"], read_run(os.path.join(root, name))))
    order = [a for a, _ in ARMS]
    runs.sort(key=lambda r: (order.index(r[0]), r[1]))
    print("## rho_grad (grad_depth_ratio_params) by probe step\n")
    steps = sorted({s for _, _, (dx, rho, _, _) in runs for s in rho})
    shown = [s for s in steps if s in (0, 1, 10, 20, 50, 100, 150, 200) or s == steps[-1]]
    print("| arm | seed | " + " | ".join(f"step {s}" for s in shown) + " | depth events | val_loss |")
    print("|---|---|" + "---|" * len(shown) + "---|---|")
    for arm, seed, (dx, rho, val, ev) in runs:
        cells = [f"{rho[s]:.3g}" if s in rho else "" for s in shown]
        evs = ", ".join(f"{k}@{s}" for k, s in ev) or "none"
        print(f"| {arm} | {seed} | " + " | ".join(cells) + f" | {evs} | {val if val is None else f'{val:.4f}'} |")
    print("\n## |dL/dh^l| (grad_dx_norm) by block input l, seed 0: init (step 0) and last probe\n")
    for arm, seed, (dx, rho, val, ev) in runs:
        if seed != 0:
            continue
        for s in (0, max(dx)):
            prof = dx[s]
            print(f"- {arm}, step {s}: " + " ".join(f"{prof[l]:.2g}" for l in sorted(prof)))


if __name__ == "__main__":
    main()
