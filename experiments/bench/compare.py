#!/usr/bin/python3
"""Side-by-side training throughput: attnlab vs the PyTorch reference (torch_reference.py).

For every preset and thread count, runs `ATTNLAB bench ... --json` and `torch_reference.py bench ... --json`
alternately in separate processes for several rounds (order swapped each round so neither always runs
first), takes medians over rounds and prints a Markdown table. Needs no torch itself.

  /usr/bin/python3 experiments/bench/compare.py --attnlab BUILD/attnlab --presets A,B,C,D --threads 1,2

See experiments/bench/README.md for what the numbers mean.
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_REF = os.path.join(HERE, "torch_reference.py")

# Must match PRESETS in torch_reference.py (and attnlab's bench presets). SwiGLU, hidden 4d, RoPE, untied.
PRESETS = {
    "A": dict(vocab=256, d_model=64, n_layer=2, n_head=4, seq_len=64, batch=16),
    "B": dict(vocab=256, d_model=128, n_layer=4, n_head=4, seq_len=128, batch=16),
    "C": dict(vocab=4096, d_model=256, n_layer=6, n_head=8, seq_len=256, batch=8),
    "D": dict(vocab=8192, d_model=512, n_layer=8, n_head=8, seq_len=256, batch=8),
}
# Per-preset defaults sized so the full table (A-D, threads 1,2, 3 rounds, both impls) takes ~10 min
# on an idle 2-core machine; the large presets get fewer steps.
DEFAULT_WARMUP = {"A": 3, "B": 2, "C": 1, "D": 1}
DEFAULT_STEPS = {"A": 20, "B": 5, "C": 2, "D": 1}
DEFAULT_REPEATS = {"A": 5, "B": 3, "C": 3, "D": 3}


def flops_per_token(p):
    """6·N + 12·L·T·d with N = L·(4d² + 3·d·F) + V·d (F = 4d, SwiGLU, LM head counted)."""
    d, L, T, V = p["d_model"], p["n_layer"], p["seq_len"], p["vocab"]
    n = L * (4 * d * d + 3 * d * 4 * d) + V * d
    return 6 * n + 12 * L * T * d


def per_preset(spec, default, presets, what):
    """'20' -> every preset 20; 'A=20,D=2' -> overrides for those presets, defaults for the rest."""
    out = dict(default)
    if spec:
        for part in spec.split(","):
            if "=" in part:
                k, v = part.split("=", 1)
                if k not in PRESETS:
                    raise SystemExit(f"--{what}: unknown preset {k!r}")
                out[k] = int(v)
            else:
                out = {k: int(part) for k in PRESETS}
    for k in presets:
        if out[k] < (0 if what == "warmup" else 1):
            raise SystemExit(f"--{what}: {k}={out[k]} is out of range")
    return out


def torch_python(explicit):
    """An interpreter that has torch: the given one, this one, or Debian's (pyenv's python3 lacks it)."""
    if explicit:
        return explicit
    if importlib.util.find_spec("torch") is not None:
        return sys.executable
    return "/usr/bin/python3"


def run_one(cmd, env, timeout, expect_impl):
    """Runs one bench process; returns (result dict or None, error string or None)."""
    t0 = time.monotonic()
    try:
        cp = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    except OSError as e:
        return None, f"could not start: {e}"
    wall = time.monotonic() - t0
    if cp.returncode != 0:
        tail = (cp.stderr or cp.stdout).strip().splitlines()[-3:]
        return None, f"exit {cp.returncode}: " + " | ".join(tail)
    lines = [l for l in cp.stdout.splitlines() if l.strip().startswith("{")]
    if not lines:
        return None, "no JSON line on stdout"
    try:
        res = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        return None, f"bad JSON ({e}): {lines[-1][:200]}"
    missing = [k for k in ("impl", "tokens_per_s", "ms_per_step", "peak_rss_mb") if k not in res]
    if missing:
        return None, f"JSON lacks {missing}"
    if res["impl"] != expect_impl:
        return None, f"impl is {res['impl']!r}, expected {expect_impl!r}"
    res["_wall_s"] = round(wall, 2)
    return res, None


def start_load(seconds, python):
    """Busy loop pinned to core 0 (emulates another tenant); bounded in time even if we are killed."""
    code = ("import os, time\n"
            "os.sched_setaffinity(0, {0})\n"
            f"end = time.monotonic() + {float(seconds)}\n"
            "while time.monotonic() < end:\n"
            "    pass\n")
    return subprocess.Popen([python, "-c", code], stdin=subprocess.DEVNULL)


def fmt_int(x):
    return "—" if x is None else f"{x:,.0f}"


def fmt(x, nd=1):
    return "—" if x is None else f"{x:.{nd}f}"


def med(rs, key):
    vals = [r[key] for r in rs if r is not None and r.get(key) is not None]
    return statistics.median(vals) if vals else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attnlab", required=True, help="path to the attnlab executable")
    ap.add_argument("--presets", default="A,B,C,D")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3, help="alternating attnlab/pytorch process pairs per cell")
    ap.add_argument("--warmup", default="", help="N, or per preset: A=3,D=1 (defaults: %s)" % DEFAULT_WARMUP)
    ap.add_argument("--steps", default="", help="N, or per preset: A=20,D=1 (defaults: %s)" % DEFAULT_STEPS)
    ap.add_argument("--repeats", default="", help="N, or per preset (defaults: %s)" % DEFAULT_REPEATS)
    ap.add_argument("--load", action="store_true", help="run a busy loop pinned to core 0 throughout")
    ap.add_argument("--load-max-seconds", type=float, default=3600.0, help="upper bound on the busy loop's life")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VAL",
                    help="add to the environment of BOTH implementations (repeatable)")
    ap.add_argument("--inherit-openblas-coretype", action="store_true",
                    help="keep an inherited OPENBLAS_CORETYPE (by default it is removed: see README)")
    ap.add_argument("--python", default="", help="interpreter for torch_reference.py (default: one with torch)")
    ap.add_argument("--timeout", type=float, default=900.0, help="per-process timeout, seconds")
    ap.add_argument("--only", choices=("both", "attnlab", "pytorch"), default="both",
                    help="run one side only (for checking the harness)")
    ap.add_argument("--json-out", default="", help="also write every raw result here")
    args = ap.parse_args()

    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    bad = [p for p in presets if p not in PRESETS]
    if bad:
        raise SystemExit(f"unknown presets {bad}; known: {sorted(PRESETS)}")
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    warmup = per_preset(args.warmup, DEFAULT_WARMUP, presets, "warmup")
    steps = per_preset(args.steps, DEFAULT_STEPS, presets, "steps")
    repeats = per_preset(args.repeats, DEFAULT_REPEATS, presets, "repeats")

    attnlab = os.path.abspath(args.attnlab)
    impls = ["attnlab", "pytorch"] if args.only == "both" else [args.only]
    if "attnlab" in impls and not (os.path.isfile(attnlab) and os.access(attnlab, os.X_OK)):
        raise SystemExit(f"error: attnlab executable not found (or not executable): {attnlab}\n"
                         f"Build it first, e.g. cmake --build <build-dir> --target attnlab, and pass "
                         f"--attnlab <build-dir>/attnlab (or use --only pytorch to check the harness).")
    python = torch_python(args.python)
    if "pytorch" in impls:
        chk = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        if chk.returncode != 0:
            raise SystemExit(f"error: {python} cannot import torch (use --python /usr/bin/python3)")
        torch_version = chk.stdout.strip()

    env = dict(os.environ)
    env_notes = []
    if "OPENBLAS_CORETYPE" in env and not args.inherit_openblas_coretype:
        env_notes.append(f"removed inherited OPENBLAS_CORETYPE={env.pop('OPENBLAS_CORETYPE')}")
    for kv in args.env:
        if "=" not in kv:
            raise SystemExit(f"--env expects KEY=VAL, got {kv!r}")
        k, v = kv.split("=", 1)
        env[k] = v
        env_notes.append(f"{k}={v}")

    load_proc = None

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    results = {}  # (preset, threads) -> {"attnlab": [...], "pytorch": [...], "errors": [...]}
    try:
        if args.load:
            load_proc = start_load(args.load_max_seconds, sys.executable)
            time.sleep(0.5)
        for p in presets:
            for n in threads:
                cell = results.setdefault((p, n), {"attnlab": [], "pytorch": [], "errors": []})
                common = ["--preset", p, "--threads", str(n), "--warmup", str(warmup[p]),
                          "--steps", str(steps[p]), "--repeats", str(repeats[p]), "--json"]
                cmds = {"attnlab": [attnlab, "bench"] + common,
                        "pytorch": [python, TORCH_REF, "bench"] + common}
                for r in range(args.rounds):
                    order = impls if r % 2 == 0 else impls[::-1]
                    for impl in order:
                        print(f"[{datetime.datetime.now():%H:%M:%S}] preset {p} threads {n} round {r + 1}/"
                              f"{args.rounds} {impl} ...", end="", file=sys.stderr, flush=True)
                        res, err = run_one(cmds[impl], env, args.timeout, impl)
                        if err:
                            print(f" FAILED: {err}", file=sys.stderr, flush=True)
                            cell["errors"].append(f"{impl} round {r + 1}: {err}")
                            cell[impl].append(None)
                        else:
                            print(f" {res['tokens_per_s']:,.0f} tok/s ({res['_wall_s']} s)", file=sys.stderr,
                                  flush=True)
                            cell[impl].append(res)
    finally:
        if load_proc is not None:
            load_proc.kill()
            load_proc.wait()

    # ---- report ---------------------------------------------------------------------------------
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    label = "loaded (busy loop pinned to core 0)" if args.load else "unloaded (no synthetic load)"
    print(f"### attnlab vs PyTorch — {label}\n")
    print(f"- machine: {os.cpu_count()} CPUs, {cpu}; {datetime.datetime.now():%Y-%m-%d %H:%M}")
    if "pytorch" in impls:
        blas = next((r.get("blas_core") for c in results.values() for r in c["pytorch"] if r), None)
        print(f"- PyTorch {torch_version} (manual attention, fused qkv/gate-up matmuls), OpenBLAS core: {blas}")
    print(f"- environment: {', '.join(env_notes) if env_notes else 'inherited unchanged'}")
    print(f"- per cell: {args.rounds} rounds × each impl in its own process, alternating; "
          f"steps/warmup/repeats per preset: " +
          ", ".join(f"{p} {steps[p]}/{warmup[p]}/{repeats[p]}" for p in presets))
    print("- tok/s, ms/step: median over rounds of each run's median over repeats; ratio = attnlab tok/s ÷ "
          "PyTorch tok/s (median of per-round paired ratios, [min–max]); GFLOP/s = tok/s × "
          "(6N + 12·L·T·d); RSS = peak resident set (ru_maxrss)\n")
    print("| preset | threads | attnlab tok/s | PyTorch tok/s | ratio | attnlab ms/step | PyTorch ms/step "
          "| attnlab GFLOP/s | PyTorch GFLOP/s | attnlab RSS MB | PyTorch RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    any_error = False
    for (p, n), c in results.items():
        fpt = flops_per_token(PRESETS[p])
        a, t = c["attnlab"], c["pytorch"]
        a_tps, t_tps = med(a, "tokens_per_s"), med(t, "tokens_per_s")
        pairs = [x["tokens_per_s"] / y["tokens_per_s"] for x, y in zip(a, t) if x and y and y["tokens_per_s"]]
        ratio = (f"{statistics.median(pairs):.2f} [{min(pairs):.2f}–{max(pairs):.2f}]" if pairs else "—")
        for impl, rs in (("attnlab", a), ("pytorch", t)):
            for r in rs:
                if r and r.get("gflops") and abs(r["gflops"] * 1e9 / r["tokens_per_s"] - fpt) > 0.01 * fpt:
                    c["errors"].append(f"{impl} reports gflops implying {r['gflops'] * 1e9 / r['tokens_per_s']:.4g}"
                                       f" FLOP/token, formula gives {fpt:.4g} (table uses the formula)")
                    break
        gf = lambda x: None if x is None else x * fpt / 1e9
        print(f"| {p} | {n} | {fmt_int(a_tps)} | {fmt_int(t_tps)} | {ratio} | {fmt(med(a, 'ms_per_step'), 2)} "
              f"| {fmt(med(t, 'ms_per_step'), 2)} | {fmt(gf(a_tps))} | {fmt(gf(t_tps))} "
              f"| {fmt(med(a, 'peak_rss_mb'), 0)} | {fmt(med(t, 'peak_rss_mb'), 0)} |")
        any_error |= any(r is None for r in a + t)
    notes = [(k, e) for k, c in results.items() for e in c["errors"]]
    if notes:
        print("\nProblems:")
        for (p, n), e in notes:
            print(f"- {p}/{n} threads: {e}")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"label": label, "env_notes": env_notes,
                       "cells": [{"preset": p, "threads": n, **c} for (p, n), c in results.items()]}, f, indent=1)
    return 1 if any_error else 0


if __name__ == "__main__":
    sys.exit(main())
