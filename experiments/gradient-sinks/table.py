#!/usr/bin/env python3
"""Per-run tables of a gradient-sinks (or attention-sinks) sweep, in the columns of the gradient-sink
paper's rebuttal table (shared/docs/gradient-sinks.md §4.4), at the last probe and at step 0:

  val loss | Sink_0^{0.3} mean (max) over layers | ‖h_out‖ at t0 mean (max) over layers | t0/early (h_out,
  max over layers) | ‖r_mlp‖ at t0 mean (max) | t0/early (r_mlp, max) | R_GS median over layers (sum_b) |
  R_GS per layer | max α0 per layer

and, with --timeline RUN, the per-probe history of one run (sink rate, α0, R_GS per layer, norms, θ).
Standard library only.

usage: table.py SWEEP_DIR [--timeline RUN_NAME]
"""
import csv
import json
import math
import os
import sys

NAN = float("nan")


def load(run_dir):
    """-> (probes {step: {(metric, layer, head, index): value}}, last val_loss, n_layer)"""
    probes, val = {}, NAN
    path = os.path.join(run_dir, "metrics.jsonl")
    with open(path) as f:
        for line in f:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a truncated last line of a killed run
            kind = r.get("kind")
            if kind == "eval":
                val = float(r["val_loss"])
            elif kind == "probe":
                v = r["value"]
                probes.setdefault(r["step"], {})[(r["metric"], r["layer"], r["head"], r["index"])] = (
                    float(v) if not isinstance(v, str) else float(v.replace("inf", "Infinity")) if v != "nan" else NAN)
    layers = {k[1] for p in probes.values() for k in p if k[0] == "sink_gs" and k[1] >= 0}
    return probes, val, len(layers)


def per_layer(p, metric, L, head=-1, index=-1):
    return [p.get((metric, l, head, index), NAN) for l in range(L)]


def heads_max(p, metric, L, H):
    return [max((p.get((metric, l, h, -1), NAN) for h in range(H)), default=NAN) for l in range(L)]


def mean(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else NAN


def fmt(x, d=2):
    if isinstance(x, float) and math.isnan(x):
        return "—"
    return f"{x:.{d}f}" if abs(x) < 1000 else f"{x:.3g}"


def summarize(probes, val, L, step):
    p = probes[step]
    H = 1 + max((k[2] for k in p if k[0] == "alpha0"), default=0)
    sink = per_layer(p, "sink_gs", L)
    hout0 = per_layer(p, "norm_out", L, index=0)
    mlp0 = per_layer(p, "norm_mlp", L, index=0)
    rgs = per_layer(p, "rgs_sum", L)
    return {
        "step": step, "val": val, "sink_mean": mean(sink), "sink_max": max(sink), "sink": sink,
        "hout_mean": mean(hout0), "hout_max": max(hout0), "hout_ratio": max(per_layer(p, "t0_ratio_out", L)),
        "mlp_mean": mean(mlp0), "mlp_max": max(mlp0), "mlp_ratio": max(per_layer(p, "t0_ratio_mlp", L)),
        "rgs_median": p.get(("rgs_median", -1, -1, -1), NAN), "rgs": rgs,
        "alpha_max": heads_max(p, "alpha0", L, H), "H": H,
        "theta": [[p.get(("vscale_theta", l, h, -1), NAN) for h in range(H)] for l in range(L)],
    }


def row(name, s):
    return (f"| {name} | {s['step']} | {fmt(s['val'], 3)} | {fmt(s['sink_mean'])} ({fmt(s['sink_max'])}) | "
            f"{fmt(s['hout_mean'])} ({fmt(s['hout_max'])}) | {fmt(s['hout_ratio'])} | {fmt(s['mlp_mean'])} ({fmt(s['mlp_max'])}) | "
            f"{fmt(s['mlp_ratio'])} | {fmt(s['rgs_median'])} | {' '.join(fmt(x, 1) for x in s['rgs'])} | "
            f"{' '.join(fmt(x) for x in s['alpha_max'])} |")


HEADER = ("| run | step | val loss | Sink₀ mean (max) | ‖h_out‖ t0 mean (max) | h_out t0/early max | "
          "‖r_mlp‖ t0 mean (max) | r_mlp t0/early max | R_GS median | R_GS per layer | max α₀ per layer |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")


def main():
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        raise SystemExit(__doc__)
    sweep, timeline = args[0], None
    if "--timeline" in args:
        timeline = args[args.index("--timeline") + 1]
    names = []
    summary = os.path.join(sweep, "summary.csv")
    if os.path.exists(summary):
        with open(summary) as f:
            names = [r["name"] for r in csv.DictReader(f)]
    else:
        names = sorted(d for d in os.listdir(sweep) if os.path.exists(os.path.join(sweep, d, "metrics.jsonl")))
    if timeline:
        probes, val, L = load(os.path.join(sweep, timeline))
        print(f"### {timeline}\n\n{HEADER}")
        for step in sorted(probes):
            print(row("", summarize(probes, NAN, L, step)))
        last = summarize(probes, val, L, max(probes))
        if not all(math.isnan(t) for l in last["theta"] for t in l):
            print("\nθ per layer (heads): " + "; ".join(" ".join(f"{t:+.2f}" for t in l) for l in last["theta"]))
        return
    print(f"At the last probe (val loss: the last evaluation):\n\n{HEADER}")
    init_rows = []
    for n in names:
        d = os.path.join(sweep, n)
        if not os.path.exists(os.path.join(d, "metrics.jsonl")):
            print(f"| {n} | not run | | | | | | | | | |")
            continue
        probes, val, L = load(d)
        if not probes:
            continue
        print(row(n, summarize(probes, val, L, max(probes))))
        if 0 in probes:
            init_rows.append(row(n, summarize(probes, NAN, L, 0)))
    if init_rows:
        print(f"\nAt step 0 (the initial model):\n\n{HEADER}")
        print("\n".join(init_rows))


if __name__ == "__main__":
    main()
