#!/usr/bin/python3
"""attnlab report RUN_OR_SWEEP... [--out DIR] [--heads L:H,...] [--steps S,...] [--interactive]

Writes DIR/index.html (one self-contained page: inline CSS, figures embedded as PNG, works offline) and every
figure as DIR/figures/<name>.png and .svg; with --interactive also DIR/index_interactive.html (plotly.js
embedded). DIR defaults to <first input>/report. See README.md next to this
file for what each figure shows. Run with Debian's /usr/bin/python3 (python3-numpy, python3-matplotlib,
python3-yaml). Exit codes: 0 written, 2 bad arguments or inputs.
"""
import argparse
import base64
import datetime
import math
import os
import re
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import arms as A  # noqa: E402
import attnmaps  # noqa: E402
import figures as F  # noqa: E402
import heads as HV  # noqa: E402
import page  # noqa: E402
import rundata  # noqa: E402
import sinks  # noqa: E402
from model_np import MODEL_DEFAULTS  # noqa: E402

plt = F.plt
esc = page.esc

# What each heatmap shows (instrument/docs/attention.md, gradients.md, residual.md).
HEATMAP_TEXT = {
    "ent_norm": "mean over sequences and query rows i ≥ 1 of H_i / ln(i+1): 1 = uniform over the prefix, 0 = "
                "one-hot (entropy collapse, Zhai et al. 2023). The colour is the least-entropic head of the layer.",
    "zabsmax": "max |q·k/√d_h| over the batch, queries and keys (attention-logit growth, Wortsman et al. 2023); "
               "log colour scale.",
    "sink_gs": "fraction of (sequence, head) pairs whose first-token attention α₀ exceeds ε = 0.3 (gradient-sink "
               "paper Eq. 1–2; Gu et al. 2024).",
    "rgs_sum": "‖G₀‖ / mean_{t=1..T_e} ‖G_t‖ with G_t the batch-summed gradient at the attention input "
               "(Chen, Lin, Yao 2026, Def. 1); ~1–2 at init, grows as a gradient sink forms. Log colour scale.",
    "mass_ratio": "top-1 / median |activation| of block l's output (Sun et al. 2024); Gaussian ≈ 6, flag > 100. Log "
                  "colour scale.",
}

# Probe metrics the figures use, for the "missing" notes.
_GRAD_POS = ("grad_q_norm", "grad_k_norm", "grad_v_norm")


class Report:
    def __init__(self, out_dir):
        self.out = out_dir
        self.figdir = os.path.join(out_dir, "figures")
        os.makedirs(self.figdir, exist_ok=True)
        self.names = []
        self.notes = []

    def save(self, fig, name, caption, alt, runs=None):
        """PNG + SVG into figures/, the PNG embedded in the returned <figure> (runs: the labels of the runs it
        draws, listed in its data-runs attribute)."""
        png = os.path.join(self.figdir, name + ".png")
        svg = os.path.join(self.figdir, name + ".svg")
        fig.savefig(png)
        fig.savefig(svg)
        plt.close(fig)
        with open(png, "rb") as f:
            data = f.read()
        w_px = struct.unpack(">I", data[16:20])[0]  # IHDR width
        self.names.append(name)
        return page.figure(name, len(self.names), base64.b64encode(data).decode("ascii"), round(w_px * 0.62),
                           caption, [("PNG", f"figures/{name}.png"), ("SVG", f"figures/{name}.svg")], alt,
                           runs=runs)

    def cleanup(self):
        """Removes figure files of an earlier report in the same directory that this one did not write."""
        keep = {n + ext for n in self.names for ext in (".png", ".svg")}
        for f in os.listdir(self.figdir):
            if f.endswith((".png", ".svg")) and f not in keep:
                os.remove(os.path.join(self.figdir, f))


def slug(label):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label.replace("=", "-")).strip("_") or "run"


# ---------------------------------------------------------------------------------------------------
# Run headers


def _fmt_s(s):
    if s is None or (isinstance(s, float) and not math.isfinite(s)):
        return "–"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def config_summary(r):
    """[(what, value)] for the run header: model shape, data, optimizer, schedule, batch, provenance."""
    g = r.get
    rows = []
    d, H = g("model.d_model"), g("model.n_head")
    if d is not None:
        hid = g("model.mlp_hidden") or 4 * d
        rows.append(("model", f"{g('model.n_layer')} layers, d_model {d}, {H} heads × d_head {d // H if H else '?'}, "
                              f"seq_len {g('model.seq_len')}, vocab {g('model.vocab')}, {g('model.mlp')} MLP "
                              f"(hidden {hid}), pos {g('model.pos')}, {'tied' if g('model.tied_head') else 'untied'} "
                              f"head, init_std {g('model.init_std')}"))
        shape_keys = {"vocab", "d_model", "n_layer", "n_head", "seq_len", "mlp", "mlp_hidden", "pos", "rope_base",
                      "tied_head", "norm_eps", "init_std"}
        toggles = [f"{k}={page.fmt(v)}" for k, v in (r.config.get("model") or {}).items()
                   if k not in shape_keys and k in MODEL_DEFAULTS and v != MODEL_DEFAULTS[k]
                   and not (k == "v_scale" and v in (False, "off"))]
        unknown = [f"{k}={page.fmt(v)}" for k, v in (r.config.get("model") or {}).items()
                   if k not in MODEL_DEFAULTS and v not in (False, 0, "off")]
        rows.append(("model toggles", ", ".join(toggles + unknown) or "none (core model)"))
    if r.info.get("n_params"):
        rows.append(("parameters", f"{r.info['n_params']:,}"))
    if g("data.source") is not None:
        desc = r.info.get("data") or g("data.source")
        extra = f", path {g('data.path')}" if g("data.path") else ""
        rows.append(("data", f"{desc}{extra}"))
    if g("optim.lr") is not None:
        rows.append(("optimizer", f"AdamW lr {g('optim.lr')}, β=({g('optim.beta1')}, {g('optim.beta2')}), eps "
                                  f"{g('optim.eps')}, weight decay {g('optim.weight_decay')} "
                                  f"({g('optim.decay_mode')}), clip {g('optim.grad_clip')}"))
        rows.append(("schedule", f"{g('schedule.kind')}, warmup {g('schedule.warmup')}, min_lr_frac "
                                 f"{g('schedule.min_lr_frac')}"))
        B, acc, T = g("train.batch"), g("train.accum"), g("model.seq_len")
        tok = B * acc * T if all(isinstance(x, int) for x in (B, acc, T)) else "?"
        rows.append(("training", f"{g('train.steps')} steps, batch {B} × accum {acc} ({tok} tokens/step), "
                                 f"seed {g('train.seed')}, eval every {g('train.eval_every')}"))
    if g("instrument.enabled") is not None:
        if g("instrument.enabled"):
            fam = [f for f in ("attention", "residual", "gradients", "weights") if g(f"instrument.{f}")]
            rows.append(("instrumentation", f"probes every {g('instrument.probe_every')} steps (every "
                                             f"{g('instrument.dense_every')} up to {g('instrument.dense_until')}); "
                                             f"families: {', '.join(fam) or 'none'}"))
        else:
            rows.append(("instrumentation", "off (instrument.enabled: false)"))
    if r.overrides:
        rows.append(("overrides", " ".join(f"--set {o}" for o in r.overrides)))
    rows.append(("commit", r.info.get("commit", "–")))
    rows.append(("wall time", f"{_fmt_s(r.wall_time_s())} (summary.md, last session)"))
    if r.info:
        rows.append(("host", f"{r.info.get('host', '?')}, {r.info.get('cpu', '?')}, {r.info.get('threads', '?')} "
                             f"threads, started {r.info.get('started', '?')}"))
    rows.append(("directory", r.path))
    return rows


def missing_notes(r):
    out = []
    if not r.train:
        out.append("no training records: no loss curve")
    if not r.eval:
        out.append("no eval records (train.eval_every: 0?): no eval-loss curve")
    if not r.instrumented():
        why = "instrumentation off" if r.get("instrument.enabled") is False else "no probe records"
        out.append(f"{why}: no layer×step heatmaps, no per-position gradient curves; loss curves only")
    else:
        miss = [m for m, *_ in F.HEATMAPS if not r.has(m)] + [m for m in _GRAD_POS if not r.has(m)]
        if miss:
            out.append("not recorded: " + ", ".join(f"<code>{m}</code>" for m in miss))
    if not r.checkpoints():
        out.append("no checkpoints: no attention maps")
    return out


def run_headers(runs):
    """The runs table and one card per run, in the page's order (the run column sorts by it, not as text)."""
    rows, cards = [], []
    for i, r in enumerate(runs):
        rows.append([page.Cell(r.label, i), r.status(), f"{r.steps_done()} / {r.steps_total()}", r.final("loss"),
                     r.final("val_loss"), _fmt_s(r.wall_time_s()), r.info.get("commit", "–"),
                     r.info.get("n_params", "–")])
        miss = missing_notes(r)
        body = page.table(["setting", "value"], config_summary(r), sortable=False)
        if miss:
            body += '<p><b>Missing:</b></p><ul>' + "".join(f"<li>{m}</li>" for m in miss) + "</ul>"
        if r.problems:
            body += "<p><b>Problems reading the run:</b> " + esc("; ".join(r.problems)) + "</p>"
        if r.summary_md:
            body += "<details><summary>summary.md</summary>" + page.md_to_html(r.summary_md) + "</details>"
        open_ = " open" if len(runs) <= 2 else ""
        cards.append(f'<details class="runcard"{open_}><summary><b>{esc(r.label)}</b> — {esc(r.status())}, '
                     f"step {r.steps_done()}/{r.steps_total()}, loss {page.fmt(r.final('loss'))}, "
                     f"eval {page.fmt(r.final('val_loss'))}, commit {esc(r.info.get('commit', '–'))}, "
                     f"wall {esc(_fmt_s(r.wall_time_s()))}</summary>{body}</details>")
    head = ["run", "status", "steps", "final loss", "final eval loss", "wall time", "commit", "parameters"]
    return page.table(head, rows) + "".join(cards)


# ---------------------------------------------------------------------------------------------------
# Verdicts and sweep tables


def verdict_html(sw):
    """The reproduction's verdict (verdict.json as `attnlab repro` writes it: header fields and `claims`, each
    with id, text, expected, measured, verdict, detail; any other list-of-objects layout works too), else
    verdict.md."""
    vj = sw.verdict_json
    rows, extra = None, {}
    if isinstance(vj, list):
        rows = vj
    elif isinstance(vj, dict):
        for k in ("claims", "rows", "results", "table"):
            if isinstance(vj.get(k), list):
                rows = vj[k]
                extra = {kk: vv for kk, vv in vj.items() if kk != k}
                break
    title = extra.pop("title", None) or extra.get("name") or sw.name
    parts = [f'<div class="verdict"><h3>Verdict — {esc(title)}</h3>']
    sources = extra.pop("sources", None)
    if extra:
        parts.append("<p>" + " · ".join(f"<b>{esc(k)}</b>: {esc(page.fmt(v))}" for k, v in extra.items()
                                        if not isinstance(v, (list, dict))) + "</p>")
    if isinstance(sources, list) and sources:
        parts.append("<p><b>sources</b>: " + esc("; ".join(str(x) for x in sources)) + "</p>")
    if rows and all(isinstance(x, dict) for x in rows):
        pref = ["id", "claim", "text", "expected", "measured", "verdict", "status", "result", "detail", "note",
                "error"]
        allk = list(dict.fromkeys(k for x in rows for k in x if not isinstance(x[k], (dict, list))))
        keys = [k for k in pref if k in allk] + [k for k in allk if k not in pref and k != "op"]
        sk = next((k for k in ("verdict", "status", "result") if k in keys), None)
        cls = [str(x.get(sk, "")).upper() if sk else "" for x in rows]
        counts = {c: cls.count(c) for c in ("PASS", "FAIL", "ERROR") if c in cls}
        parts.append("<p>" + " ".join(f'<span class="badge {c}">{n} {c}</span>' for c, n in counts.items()) + "</p>")
        parts.append(page.table(keys, [[x.get(k, "") for k in keys] for x in rows], row_classes=cls))
    elif sw.verdict_md:
        parts.append(page.md_to_html(sw.verdict_md))
    else:
        parts.append("<p>verdict.json has an unexpected layout:</p><pre>" + esc(str(vj)[:4000]) + "</pre>")
    parts.append("</div>")
    return "".join(parts)


def sweep_tables(sw):
    if sw.summary_md:
        return page.md_to_html(sw.summary_md, sortable=True)
    if sw.summary_csv and len(sw.summary_csv) > 1:
        return page.table(sw.summary_csv[0], sw.summary_csv[1:])
    return "<p>(no summary.csv / summary.md in this directory)</p>"


# ---------------------------------------------------------------------------------------------------


def events_table(runs, limit=300):
    rows = []
    for r in runs:
        for e in r.events:
            rows.append([r.label, e.get("step", ""), e.get("kind", ""), e.get("layer", ""), e.get("head", ""),
                         e.get("metric", ""), rundata._num(e["value"]) if "value" in e else "",
                         rundata._num(e["threshold"]) if "threshold" in e else "", e.get("message", "")])
    if not rows:
        return "<p>No events: no early warning fired and nothing was interrupted or resumed.</p>"
    note = ""
    if len(rows) > limit:
        note = f"<p>Showing the first {limit} of {len(rows)} events (all are in each run's events.jsonl).</p>"
        rows = rows[:limit]
    return note + page.table(["run", "step", "kind", "layer", "head", "metric", "value", "threshold", "message"], rows)


def build(args):
    try:
        heads = attnmaps.parse_heads(args.heads) if args.heads else None
        steps = attnmaps.parse_steps(args.steps) if args.steps else None
    except attnmaps.SpecError as e:
        print(f"attnlab report: {e}", file=sys.stderr)
        return 2
    try:
        runs, sweeps = rundata.load_inputs(args.inputs)
    except SystemExit as e:
        print(str(e), file=sys.stderr)
        return 2
    out = os.path.abspath(args.out or os.path.join(args.inputs[0], "report"))
    rep = Report(out)
    # Scratch files (the data batch `attnlab grads` writes for the attention maps) stay inside the report's
    # folder, never in $TMPDIR or /tmp; the folder goes when the page is written.
    os.makedirs(out, exist_ok=True)
    tempfile.tempdir = tempfile.mkdtemp(prefix=".scratch-", dir=out)
    try:
        return _build_page(args, runs, sweeps, out, rep, heads, steps)
    finally:
        shutil.rmtree(tempfile.tempdir, ignore_errors=True)
        tempfile.tempdir = None


def _build_page(args, runs, sweeps, out, rep, heads, steps):
    body, toc = [], []
    # One run order for every table, legend and figure: by the sweep axes' values, numbers numerically.
    axes = {k: A.sorted_values(v) for k, v in rundata.sweep_axes(runs).items()}
    runs = A.order_runs(runs, axes, sweeps)
    styles = F.Styles(runs, axes)
    colors = styles.color
    sel = A.select(runs, axes, sweeps)

    # Verdicts first.
    for sw in sweeps:
        if sw.verdict_json is not None or sw.verdict_md:
            body.append(verdict_html(sw))
    if any(sw.verdict_json is not None or sw.verdict_md for sw in sweeps):
        toc.append(("verdict", "Verdict"))
        body.insert(0, '<a id="verdict"></a>')
    notes_at = len(body)

    # Runs.
    toc.append(("runs", "Runs"))
    body.append(f'<h2 id="runs">Runs ({len(runs)})</h2>')
    if axes:
        body.append("<p>Varying config keys (sweep axes): " + ", ".join(
            f"<code>{esc(k)}</code> ∈ {{{esc(', '.join(page.fmt(v) for v in vals))}}}" for k, vals in axes.items())
                    + "</p>")
    body.append(run_headers(runs))
    for sw in sweeps:
        body.append(f"<details><summary>Sweep summary — {esc(sw.path)}</summary>{sweep_tables(sw)}</details>")
    if not runs:
        rep.notes.append("no run directories found in the inputs")

    # Loss and events.
    toc.append(("loss", "Loss & events"))
    body.append('<h2 id="loss">Loss and early-warning events</h2>')
    fig = F.fig_loss(runs, colors, styles)
    if fig is not None:
        n_ev = sum(len(r.events) for r in runs)
        cap = ("Training loss per step (the objective: mean cross-entropy, plus the z-loss term when model.z_loss > 0, "
               "over the step's micro-batches; for runs over 100 steps "
               "a centred moving average over ~1 % of the run, raw values faint) and evaluation loss "
               "(mean over <code>train.eval_batches</code> fixed validation batches), in nats per token. "
               "Red × at the top: non-finite values.")
        if styles.bool_key:
            cap += (f" Line style: <code>{esc(styles.bool_key)}</code> (false solid, true dashed); colour: the "
                    f"other varying keys, so runs that differ only in <code>{esc(styles.bool_key)}</code> share it.")
        if n_ev:
            cap += (" Markers " + ("on the curves and " if len(runs) <= 8 else "")
                    + "in the strip below: early-warning events from <code>events.jsonl</code> (shape = kind; "
                    "thresholds in <code>instrument.warn_*</code>); the table below lists them.")
        body.append(rep.save(fig, "loss", cap, "loss curves", runs=[r.label for r in runs if r.train]))
    else:
        rep.notes.append("no run has training records: no loss figure")
    fig, drawn = F.fig_train_stats(runs, styles)
    if fig is not None:
        cap = ("Per training step, from the <code>train</code> records of <code>metrics.jsonl</code>: the global "
               "gradient norm ‖∇θ‖₂ before clipping (<code>grad_norm</code>; log y when it spans a decade), the "
               "learning rate the schedule set (<code>lr</code>) and the throughput (<code>tokens_per_s</code>, "
               "tokens per second of wall time). Runs over 100 steps: grad norm and tokens/s smoothed as the loss, "
               "raw values faint. Colours and line styles as in the loss figure. Red × at the top: non-finite "
               "values.")
        body.append(rep.save(fig, "train_stats", cap, "gradient norm, learning rate and tokens per second",
                             runs=drawn))
    else:
        rep.notes.append("no run has training records: no gradient-norm / learning-rate / throughput figure")
    body.append('<h3>Events</h3><div id="events">' + events_table(runs) + "</div>")

    # Sweep comparison.
    if len(runs) >= 2 and axes:
        fig, info = F.fig_sweep(runs, axes, colors, arms=sel.arms)
        if fig is not None:
            toc.append(("sweep", "Comparison"))
            body.append('<h2 id="sweep">Comparison across runs</h2>')
            xk = info["x"]
            others = [k for k in axes if k not in (xk, "train.seed")]
            if xk:
                cap = (f"Final values against <code>{esc(xk)}</code> (the learning-rate sensitivity plots of "
                       f"Wortsman et al. 2023: final loss vs learning rate). ")
                if others:
                    cap += "One line per value of " + ", ".join(f"<code>{esc(k)}</code>" for k in others) + ". "
                if "train.seed" in axes:
                    cap += "Seeds averaged; band = min–max over seeds. "
            elif info.get("arms"):
                cap = ("Final values per arm (no numeric sweep axis; an arm = the runs sharing every varying key "
                       "except <code>train.seed</code>): one dot per run" + (", the bar is the median over seeds"
                                                                        if "train.seed" in axes else "") + ". ")
            else:
                cap = "Final values per run (no numeric sweep axis; one point per run, colours as in the loss figure). "
            cap += ("Loss: last " + ("evaluation" if info["loss"] == "val_loss" else "training") + " loss. Probe "
                    "metrics at the last probe: max |attention logit| <code>zabsmax</code>, min normalised entropy "
                    "<code>ent_norm</code>, mean sink rate <code>sink_gs</code>, median gradient-sink ratio "
                    "<code>rgs_median</code>, max massive-activation ratio <code>mass_ratio</code>. Red × at the top: "
                    "a run with a non-finite value (diverged).")
            body.append(rep.save(fig, "sweep", cap, "final metrics across runs"))

    # The per-run figures (heatmaps, gradient profiles, attention maps, the sinks section) draw the same runs,
    # chosen once (arms.py): one run per arm at one seed, the arms the claims compare first.
    pool = sel.runs(args.max_runs)
    if sel.seeded:
        rep.notes.append(f"{len(runs)} runs in {len(sel.arms)} arms (every varying key except "
                         f"<code>train.seed</code>): the heatmaps, gradient profiles and attention maps show one run "
                         f"per arm at seed {sel.seed} (the other seeds are replicates; they are the spread in the "
                         f"comparison and the sinks section's line and bar figures)")
    for n in sel.notes:
        rep.notes.append(esc(n))
    left = [a.rep.label for a in sel.left_out(args.max_runs)]
    if left:
        rep.notes.append(f"{len(left)} run(s) not in the heatmaps (at most --max-runs {args.max_runs}; the runs the "
                         f"claims compare first, then spread over the sweep order): {esc(', '.join(left))}")

    # Sinks (gradient-sinks / attention-sinks reproductions).
    with_sinks = sinks.applies(runs, axes)
    if with_sinks:
        toc.append(("sinks", "Sinks"))
        body += sinks.section(rep, runs, sel, args, attnmaps.find_attnlab(args.attnlab), heads, steps)

    # Heatmaps.
    toc.append(("heatmaps", "Heatmaps"))
    body.append('<h2 id="heatmaps">Layer × step heatmaps</h2>')
    hm_missing = []
    # Every heatmap draws the same runs: the chosen ones with probe records (a metric a run does not record
    # keeps its panel, marked "not recorded").
    hpool = [r for r in pool if r.instrumented()]
    for metric, reduce, scale, cmap, label, thr_key in F.HEATMAPS:
        thr = None
        if thr_key:
            vals = {r.get(f"instrument.{thr_key}") for r in runs} - {None}
            thr = vals.pop() if len(vals) == 1 else None
        fig = F.fig_heatmap(hpool, metric, reduce, scale, cmap, label, threshold=thr)
        if fig is None:
            hm_missing.append(metric)
            continue
        cap = (f"<b>{esc(F.HEATMAP_TITLES[metric])}</b> (<code>{metric}</code>) on the probe batch, per layer "
               f"and probe step; {HEATMAP_TEXT[metric]}")
        if thr is not None:
            cap += (f" Dashed line on the colour bar: the early-warning threshold <code>instrument.{thr_key}</code> "
                    f"= {thr}.")
        cap += " Grey: not recorded or non-finite. Colour scale shared by the panels."
        if left:
            cap += (f" Showing {len(pool)} of {len(pool) + len(left)} runs (the same in every heatmap; the runs the "
                    f"claims compare first); not shown: {esc(', '.join(left))}.")
        body.append(rep.save(fig, f"heatmap_{metric}", cap, f"{metric} heatmap", runs=[r.label for r in hpool]))
    if hm_missing:
        body.append(page.notes_box([f"<code>{m}</code> is not recorded by any run: no heatmap" for m in hm_missing],
                                   "Missing heatmaps"))
    hv = HV.views(rep, hpool, sel, skip_alpha0=with_sinks)
    if hv:
        toc.append(("heads", "Per head"))
    body += hv

    # Per-position gradients.
    toc.append(("gradpos", "∇q/∇k/∇v"))
    body.append('<h2 id="gradpos">Per-position query, key and value gradients</h2>')
    req = [s for s in steps if isinstance(s, int)] if steps else None
    gpool = sel.runs(min(4, args.max_runs))
    fig, dropped, used = F.fig_gradpos(gpool, req, labels={r.label: sel.label(r, multiline=True) for r in gpool})
    if fig is not None:
        cap = ("‖Σ_b ∇q_t‖, ‖Σ_b ∇k_t‖, ‖Σ_b ∇v_t‖ on the probe batch by position t "
               "(<code>grad_q_norm</code>, <code>grad_k_norm</code>, <code>grad_v_norm</code>: batch-summed, mean "
               "over heads, here also averaged over layers), at the probe steps listed in the legend ("
               + ("nearest to <code>--steps</code>" if req else "the last probe and earlier ones spread geometrically")
               + "). A gradient sink shows as a spike at t = 0 in ∇v and ∇k (Chen, Lin, Yao 2026, Fig. 2); ∇q at "
               "t = 0 is exactly 0 (a₀₀ = 1) and is not drawn on the log axis. Rows share the y axis. One row per "
               + ("arm at seed " + esc(sel.seed) if sel.seeded else "run") + ": " + esc(", ".join(
                   r.label for r in gpool if any(r.has(m) for m in _GRAD_POS))) + ".")
        out4 = [a.rep.label for a in sel.left_out(min(4, args.max_runs))]
        if out4:
            cap += f" Not shown (at most 4 rows; the runs the claims compare first): {esc(', '.join(out4))}."
        body.append(rep.save(fig, "gradpos", cap, "per-position gradient norms",
                             runs=[r.label for r in gpool if any(r.has(m) for m in _GRAD_POS)][:4]))
    else:
        body.append(page.notes_box(["no run recorded <code>grad_q_norm</code>/<code>grad_k_norm</code>/"
                                    "<code>grad_v_norm</code> (instrument.gradients off or no probes)"], "Missing"))

    # Attention maps.
    toc.append(("attention", "Attention maps"))
    body.append('<h2 id="attention">Attention maps</h2>')
    if args.no_attention:
        body.append("<p>Skipped (--no-attention).</p>")
    else:
        binary = attnmaps.find_attnlab(args.attnlab)
        shown = [r for r in sel.runs(args.max_attention_runs) if r.checkpoints()]
        dropped = [a.rep for a in sel.left_out(args.max_attention_runs) if a.rep.checkpoints()]
        anotes = []
        for r in runs:
            if not r.checkpoints():
                anotes.append((r.label, "no checkpoints, no attention maps"))
        if dropped:
            anotes.append(f"{len(dropped)} run(s) not shown (at most --max-attention-runs {args.max_attention_runs}; "
                          f"the runs the claims compare first): {esc(', '.join(r.label for r in dropped))}")
        used_names = set()
        for r in shown:
            res = attnmaps.compute(r, heads, steps, binary, seq=args.seq)
            for n in res.get("notes", []):
                anotes.append(f"{esc(r.label)}: {esc(n)}")
            if "skip" in res:
                anotes.append(f"{esc(r.label)}: attention maps skipped — {esc(res['skip'])}")
                continue
            fig = F.fig_attention(r.label, res["maps"], res["heads"], res["extra_key"],
                                  labels=res["labels"] if args.window else None, window=args.window or None)
            name = "attn_" + slug(r.label)
            while name in used_names:
                name += "_"
            used_names.add(name)
            toks = res["tokens"]
            n_tok = args.window or 64
            tok_txt = (attnmaps.token_text(toks, r, res["cfg"]["vocab"], n=n_tok)
                       if r.get("data.source") in attnmaps.TEXT_SOURCES else
                       " ".join(str(int(t)) for t in toks[:n_tok]) + (" …" if len(toks) > n_tok else ""))
            cap = (f"Attention probabilities P[i, j] (query i, key j; causal, so zero above the diagonal) of "
                   f"<b>{esc(r.label)}</b>, recomputed in NumPy (float64) from the checkpoint(s) at step "
                   f"{', '.join(str(s) for s, _, _ in res['maps'])} on {esc(res['tokens_note'])}: tokens "
                   f"<code>{esc(tok_txt)}</code>"
                   + (" (as characters: ⟨bos⟩ = BOS, ↵ newline, · space, \\xNN another byte)"
                      if r.get("data.source") in attnmaps.TEXT_SOURCES else "")
                   + (f"; the first {args.window} positions are drawn, labelled with the tokens" if args.window else "")
                   + ". Square-root colour scale. ")
            if res["sink_token"]:
                cap += "Position 0 is the learned sink token (model.sink_token). "
            if res["extra_key"]:
                cap += "Column −1: probability of the extra key (softmax+1 / sink logit / k-v bias). "
            if res["sigmoid"]:
                cap += "Sigmoid attention: rows need not sum to 1. "
            cap += "Heads: " + ", ".join(f"L{l} H{h}" for l, h in res["heads"]) + " (choose with --heads L:H,…)."
            body.append(rep.save(fig, name, cap, f"attention maps of {r.label}", runs=[r.label]))
        if anotes:
            body.append(page.notes_box(anotes, "Attention-map notes"))

    # Global notes (missing data per run) near the top; the box collapses notes that several runs share.
    for r in runs:
        for m in missing_notes(r):
            rep.notes.append((r.label, m))
    if rep.notes:
        body.insert(notes_at, page.notes_box(rep.notes, "What is missing or not shown"))

    title = "attnlab report — " + ", ".join(os.path.basename(os.path.abspath(p).rstrip("/")) for p in args.inputs)
    sub = (f"Generated {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} from "
           + ", ".join(f"<code>{esc(os.path.abspath(p))}</code>" for p in args.inputs)
           + f" · {len(runs)} run(s) · {len(rep.names)} figure(s) (PNG and SVG in <code>figures/</code>)")
    if args.interactive:
        import interactive
        ipath = os.path.join(out, interactive.NAME)
        try:
            plots = interactive.write(ipath, title, sub, runs, styles, hpool)
        except RuntimeError as e:
            print(f"attnlab report: {e}", file=sys.stderr)
            return 1
        sub += f' · <a href="{interactive.NAME}">interactive page</a> ({len(plots)} plots)'
        print(f"attnlab report: wrote {ipath} ({len(plots)} interactive plots)")
    else:
        stale = os.path.join(out, "index_interactive.html")
        if os.path.exists(stale):  # an earlier report's interactive page would show other data
            os.remove(stale)
    doc = page.document(title, sub, toc, body, rep.names)
    path = os.path.join(out, "index.html")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(doc)
    os.replace(tmp, path)
    rep.cleanup()
    print(f"attnlab report: wrote {path} ({len(rep.names)} figures in {rep.figdir})")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="attnlab report", description=__doc__.split("\n\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", metavar="RUN_OR_SWEEP", help="run directories or directories of runs")
    ap.add_argument("--out", help="output directory (default: <first input>/report)")
    ap.add_argument("--heads", help="attention maps: LAYER:HEAD pairs, e.g. 0:1,1:* (default: the first 8 heads)")
    ap.add_argument("--steps", help="attention maps (nearest checkpoint) and gradient profiles (nearest probe): "
                                    "steps, e.g. 100,last (default: last checkpoint; last probe + earlier ones)")
    ap.add_argument("--seq", type=int, default=0, help="which sequence of the batch the attention maps show")
    ap.add_argument("--attnlab", help="attnlab binary used to get a data batch (default: $ATTNLAB_BIN, PATH, "
                                      "build/attnlab)")
    ap.add_argument("--max-runs", type=int, default=6, help="runs per heatmap figure")
    ap.add_argument("--max-attention-runs", type=int, default=4, help="runs with attention maps")
    ap.add_argument("--no-attention", action="store_true", help="skip the attention maps")
    ap.add_argument("--interactive", action="store_true",
                    help="also write DIR/index_interactive.html: zoomable plots over steps, plotly.js embedded "
                         "(Debian's python3-plotly; works offline)")
    ap.add_argument("--window", type=int, default=0,
                    help="attention maps: draw the first N positions with the tokens as tick labels (default: the "
                         "whole sequence; the sinks section's maps: 24)")
    args = ap.parse_args(argv)
    if args.max_runs < 1 or args.max_attention_runs < 1 or args.seq < 0 or args.window < 0:
        print("attnlab report: --max-runs and --max-attention-runs must be >= 1, --seq and --window >= 0",
              file=sys.stderr)
        return 2
    return build(args)


if __name__ == "__main__":
    sys.exit(main())
