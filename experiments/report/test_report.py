#!/usr/bin/python3
"""ctest `report.render`: `attnlab report` on tiny real runs, checked on disk and in headless Chromium.

1. Trains three tiny runs with the attnlab binary (configs/tiny.yaml, one thread, a few seconds in total): two
   learning rates in a sweep-like directory (with a verdict.md and summary.csv as a reproduction leaves them)
   and one with instrumentation off.
2. Reports on the sweep (with --heads/--steps) and on the uninstrumented run; checks every expected figure is
   written as PNG and SVG, embedded in the page byte for byte, and listed; the verdict table comes first; the
   event table lists every event of events.jsonl; final losses match metrics.jsonl; the uninstrumented run
   gets its loss curve and a note saying what is missing; bad arguments exit with code 2.
3. The sinks section on a tiny reproduction made with `attnlab repro` (configs/tiny.yaml, BOS on, V-scale
   off / learned × seeds 0, 1, 30 steps, probes every 10 from step 0, checkpoints at 15 and 30; claims per
   seed, the first naming the learned arm), with "nan" / "inf" probe values injected: the five sinks figures
   exist and are named on the page; every heatmap, the gradient profiles and the attention maps draw the same
   runs (one per arm at seed 0; `data-runs`), the line and bar figures every seed; the attention maps by arm
   start at step 0 (the initial parameters) with tokens as tick labels; with room for one run, the run drawn
   is the one the claims compare first. The learning-rate sweep of 2. gets no sinks section.
4. Run order and styles: eight uninstrumented runs, lr 1e-3 / 1e-2 × qk_norm × seeds 2 / 10: tables, legends
   and figures in numeric order; qk_norm as the line style; one collapsed "instrumentation off" note.
5. Loads the sweep's page in headless Chromium (Debian's `chromium`; missing = FAIL): no script errors, console
   errors or failed resources; every figure decoded with non-zero natural and rendered size; the page's own
   script works (sorting a table); a screenshot that is not blank, kept at /tmp/attnlab-report-screenshot.png.
   Then the interactive page (--interactive) under a no-network Content-Security-Policy: no errors, no
   requests, every plot drawn; screenshot /tmp/attnlab-report-screenshot-interactive.png.

usage: test_report.py --attnlab BUILD/attnlab [--keep]
"""
import argparse
import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REPORT = os.path.join(HERE, "report.py")
SCREENSHOT = "/tmp/attnlab-report-screenshot.png"

results = []


def check(ok, msg, detail=""):
    results.append(bool(ok))
    print(("ok    " if ok else "FAIL  ") + msg + ("" if ok or not detail else f"\n      {detail}"))
    return ok


def train(attnlab, out, sets):
    cmd = [attnlab, "train", os.path.join(ROOT, "configs", "tiny.yaml"), "--out", out, "--quiet"]
    for s in ["train.threads=1", "train.steps=60", "train.eval_every=10", "instrument.dense_every=5"] + sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise SystemExit(f"training failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")


def report(args, timeout=300, env=None):
    return subprocess.run(["/usr/bin/python3", REPORT] + args, capture_output=True, text=True, timeout=timeout,
                          env=env)


def last_train_loss(run):
    loss = None
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "train":
                loss = r["loss"]
    return loss


def fmt4(v):  # the page's number format (page.fmt) for values in [1e-3, 1e5)
    return f"{v:.4g}"


def check_figures(html_text, figdir, expected, tag):
    embedded = dict(re.findall(r'data-figure="([^"]+)"[^>]*><img src="data:image/png;base64,([^"]+)"', html_text))
    check(set(embedded) == set(expected), f"{tag}: the page embeds exactly the expected figures",
          f"expected {sorted(expected)}, page has {sorted(embedded)}")
    meta = re.search(r'<meta name="attnlab-figures" content="([^"]*)"', html_text)
    check(meta and set(meta.group(1).split(",")) == set(expected), f"{tag}: the page's figure list matches")
    bad = []
    for name in expected:
        png, svg = os.path.join(figdir, name + ".png"), os.path.join(figdir, name + ".svg")
        if not (os.path.isfile(png) and os.path.isfile(svg)):
            bad.append(f"{name}: missing file")
            continue
        data = open(png, "rb").read()
        if not data.startswith(b"\x89PNG\r\n\x1a\n") or len(data) < 2000:
            bad.append(f"{name}.png: not a real PNG ({len(data)} bytes)")
        with open(svg) as f:
            s = f.read()
        if "<svg" not in s or len(s) < 2000:
            bad.append(f"{name}.svg: not an SVG")
        if name in embedded and base64.b64decode(embedded[name]) != data:
            bad.append(f"{name}: embedded PNG differs from figures/{name}.png")
        if f'href="figures/{name}.svg"' not in html_text:
            bad.append(f"{name}: no link to the SVG")
    check(not bad, f"{tag}: {len(expected)} figures as PNG + SVG files, embedded byte for byte", "; ".join(bad))


def figure_runs(html_text, ordered=False):
    """figure name -> the runs it draws (its data-runs attribute, one label per line, in drawing order)."""
    return {n: (list if ordered else set)(html.unescape(r).split("\n")) for n, r in
            re.findall(r'data-figure="([^"]+)" data-runs="([^"]*)"', html_text)}


def notes_box(html_text, title="What is missing or not shown"):
    m = re.search(r'<div class="notes"><b>' + re.escape(title) + r'</b><ul>(.*?)</ul></div>', html_text, re.S)
    return re.findall(r"<li>(.*?)</li>", m.group(1), re.S) if m else []


SINKS_SWEEP = """# a tiny gradient-sinks-like sweep: BOS on, V-scale off / learned, two seeds
base: {tiny}
set: [data.bos=true, train.steps=30, train.eval_every=10, train.checkpoint_every=15, instrument.probe_every=10,
      instrument.dense_until=0, instrument.probe_at_init=true, instrument.weights=true]
seeds: [0, 1]
grid:
  model.v_scale: ["off", learned]
"""

SINKS_REPRO = """name: sinks-tiny
title: "Test fixture: the report's sinks views on a tiny V-scale sweep"
sources: ["attnlab test suite (no paper)"]
sweep: sweep.yaml
claims:
  - id: vscale-sink
    text: "learned V-scale: some head's alpha_0 is above 0 at the end"
    over: train.seed
    require: all
    lhs: {run: {model.v_scale: learned}, metric: alpha0, layer: all, head: all, reduce: max, step: last}
    op: ">"
    rhs: 0
  - id: vscale-rgs
    text: "learned V-scale: median R_GS below the baseline's"
    over: train.seed
    require: all
    lhs: {run: {model.v_scale: learned}, metric: rgs_median, step: last}
    op: "<"
    rhs: {run: {model.v_scale: "off"}, metric: rgs_median, step: last}
"""

# Non-finite probe values as metrics.jsonl writes them (strings), at a step after the last probe.
NONFINITE = [("alpha0", 0, 0, -1, "nan"), ("alpha0", 1, 2, -1, "inf"), ("rgs_sum", 0, -1, -1, "inf"),
             ("rgs_median", -1, -1, -1, "nan"), ("t0_ratio_out", 0, -1, -1, "nan"), ("norm_out", 1, -1, 0, "-inf"),
             ("vscale_theta", 0, 1, -1, "nan")]


def sinks_start(attnlab, td):
    """Runs the tiny sinks reproduction, injects non-finite values and starts its report in the background
    (it renders while the sweep's checks run: on a shared machine two processes get twice the CPU).
    -> (sweep directory, report process) or None."""
    d = os.path.join(td, "sinks-repro")
    os.makedirs(d)
    with open(os.path.join(d, "sweep.yaml"), "w") as f:
        f.write(SINKS_SWEEP.format(tiny=os.path.join(ROOT, "configs", "tiny.yaml")))
    with open(os.path.join(d, "repro.yaml"), "w") as f:
        f.write(SINKS_REPRO)
    out = os.path.join(td, "sinks")
    t0 = time.time()
    r = subprocess.run([attnlab, "repro", d, "--out", out, "--no-report", "--threads", "1"], capture_output=True,
                       text=True, timeout=300)
    if not check(r.returncode in (0, 1) and os.path.isfile(os.path.join(out, "verdict.json")),
                 "attnlab repro runs the tiny sinks sweep and writes verdict.json", r.stdout[-2000:] + r.stderr[-2000:]):
        return None
    print(f"tiny sinks reproduction: {time.time() - t0:.1f} s")
    for name in ("seed=0,v_scale=learned", "seed=1,v_scale=learned"):
        with open(os.path.join(out, name, "metrics.jsonl"), "a") as f:
            for m, l, h, i, v in NONFINITE:
                f.write(json.dumps({"step": 35, "kind": "probe", "metric": m, "layer": l, "head": h, "index": i,
                                    "value": v}) + "\n")
    # --max-runs 1: the claims compare both arms, so both must still be drawn.
    proc = subprocess.Popen(["/usr/bin/python3", REPORT, out, "--attnlab", attnlab, "--max-runs", "1"],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return out, proc, time.time()


def sinks_checks(started):
    if started is None:
        return
    out, proc, t1 = started
    try:
        _, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    print(f"report on the sinks sweep: {time.time() - t1:.1f} s (started in the background)")
    if not check(proc.returncode == 0 and "Traceback" not in err, "report on the sinks sweep exits 0 (with "
                 "\"nan\" / \"inf\" probe values)", err[-3000:]):
        return
    base, learned = "seed=0,v_scale=off", "seed=0,v_scale=learned"
    every = {base, learned, "seed=1,v_scale=off", "seed=1,v_scale=learned"}
    index = os.path.join(out, "report", "index.html")
    with open(index, encoding="utf-8") as f:
        text = f.read()
    sinks = ["sinks_alpha0", "sinks_rgs", "sinks_t0norms", "sinks_theta", "sinks_attn"]
    heat = ["heatmap_ent_norm", "heatmap_zabsmax", "heatmap_sink_gs", "heatmap_rgs_sum", "heatmap_mass_ratio"]
    attn = ["attn_seed-0_v_scale-off", "attn_seed-0_v_scale-learned"]
    hv = ["heads_ent_norm", "heads_zabsmax"]  # α₀ per head is sinks_alpha0 here
    expected = ["loss", "train_stats", "sweep"] + sinks + heat + hv + ["gradpos"] + attn
    check_figures(text, os.path.join(out, "report", "figures"), expected, "sinks")
    sec = text[text.find('<h2 id="sinks">'):text.find('<h2 id="heatmaps">')]
    check('href="#sinks"' in text and sec and all(f'data-figure="{n}"' in sec for n in sinks),
          "the page has a Sinks section (in the table of contents) holding the five sinks figures")
    caps = dict(re.findall(r'data-figure="([^"]+)"[^>]*>.*?<figcaption>(.*?)</figcaption>', text, re.S))
    named = {"sinks_alpha0": "alpha0", "sinks_rgs": "rgs_sum", "sinks_t0norms": "t0_ratio_out",
             "sinks_theta": "vscale_theta", "sinks_attn": "step 0 is the initial model"}
    check(all(named[n] in caps.get(n, "") for n in sinks), "each sinks figure's caption names its metric",
          str({n: caps.get(n, "")[:80] for n in sinks}))
    runs = figure_runs(text)
    same = {n: runs.get(n) for n in heat + hv + ["sinks_alpha0", "gradpos", "sinks_attn"]}
    check(all(v == {base, learned} for v in same.values()),
          "with --max-runs 1, every heatmap, the per-head views, the gradient profiles and the attention maps by "
          "arm still draw both runs the claims compare (one per arm at seed 0)", str(same))
    check(runs.get("sinks_theta") == {learned}, "the θ heatmap draws the learned V-scale run",
          str(runs.get("sinks_theta")))
    check(runs.get("sinks_rgs") == every and runs.get("sinks_t0norms") == every,
          "the R_GS lines and token-0 bars use every seed of each arm",
          f"{runs.get('sinks_rgs')} / {runs.get('sinks_t0norms')}")
    cap = caps.get("sinks_attn", "")
    check("steps 0, 15, 30" in cap and "⟨bos⟩" in cap and "one row per arm at seed 0" in cap,
          "the attention maps by arm show steps 0 (init), 15 and 30 of one head per arm, tokens with ⟨bos⟩",
          cap[:400])
    check("vscale-sink" in sec and "vscale-rgs" in sec, "the arms table names the claims comparing each arm")

    # The claims' arms rank first (the learned arm, named first) and are always drawn (arms.select; the page
    # renders what it returns, as checked above); panels in the sweep's order (off, then learned).
    sys.path.insert(0, HERE)
    import arms
    import rundata
    rs, sws = rundata.load_inputs([out])
    sel = arms.select(rs, rundata.sweep_axes(rs), sws)
    one = [r.label for r in sel.runs(1)]
    check(sel.ranked[0].rep.label == learned and one == [base, learned] and not sel.left_out(1),
          "the claims' arms rank first (learned V-scale) and are drawn even with room for one run, in sweep order",
          f"ranked {[a.rep.label for a in sel.ranked]}, drawn {one}")

# The page's run order: qk_norm (false, true), then lr numerically (1e-3 before 1e-2, unlike the directory
# names as strings), then the seed numerically (2 before 10).
SORT_ORDER = [f"lr={lr},qk_norm={qk},seed={seed}" for qk in ("false", "true") for lr in ("1e-3", "1e-2")
              for seed in (2, 10)]


def order_checks(attnlab, td):
    """Eight uninstrumented runs, lr 1e-3 / 1e-2 × qk_norm false / true × seeds 2 / 10: the runs table, the
    legends and the figures follow the numeric order; the boolean axis is the line style; the "what is
    missing" box says "instrumentation off" once for all eight runs."""
    d = os.path.join(td, "order")
    for name in SORT_ORDER:
        kv = dict(x.split("=") for x in name.split(","))
        train(attnlab, os.path.join(d, name), ["train.steps=20", "instrument.enabled=false",
                                               "train.checkpoint_every=0", f"optim.lr={kv['lr']}",
                                               f"model.qk_norm={kv['qk_norm']}", f"train.seed={kv['seed']}"])
    t1 = time.time()
    r = report([d, "--no-attention"])
    print(f"report on the 8-run order fixture: {time.time() - t1:.1f} s")
    if not check(r.returncode == 0, "report on the order fixture exits 0", r.stderr[-3000:]):
        return
    with open(os.path.join(d, "report", "index.html"), encoding="utf-8") as f:
        text = f.read()
    table = text[text.find('id="runs"'):]
    table = table[:table.find("</table>")]
    rows = [html.unescape(x) for x in re.findall(r'<tr><td data-v="\d+">([^<]*)</td>', table)]
    check(rows == SORT_ORDER, "the runs table lists the runs numerically (lr 1e-3 before 1e-2, seed 2 before 10)",
          f"{rows}")
    runs = figure_runs(text, ordered=True)
    check(runs.get("loss") == SORT_ORDER and runs.get("train_stats") == SORT_ORDER,
          "the loss and grad-norm / LR / tokens/s figures draw (and list in their legends) the runs in that order",
          f"{runs.get('loss')} / {runs.get('train_stats')}")
    check("<code>optim.lr</code> ∈ {0.001, 0.01}" in text and "<code>train.seed</code> ∈ {2, 10}" in text,
          "the sweep axes list their values numerically")
    notes = notes_box(text)
    off = [n for n in notes if "instrumentation off" in n]
    check(len(off) == 1 and "8 runs:" in off[0] and all(html.escape(n) in off[0] for n in SORT_ORDER),
          "the \"what is missing\" box says \"instrumentation off\" once, naming the eight runs",
          "\n      ".join(notes))

    # Line style separates the boolean axis; colour the other axes (the figures in-process, on the same runs).
    sys.path.insert(0, HERE)
    import arms
    import figures
    import rundata
    rs, sws = rundata.load_inputs([d])
    axes = {k: arms.sorted_values(v) for k, v in rundata.sweep_axes(rs).items()}
    rs = arms.order_runs(rs, axes, sws)
    st = figures.Styles(rs, axes)
    fig = figures.fig_loss(rs, st.color, st)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()][:len(rs)]
    lines = {ln.get_label(): ln for ln in ax.get_lines() if ln.get_label() in SORT_ORDER}
    pairs = [(a, a.replace("qk_norm=false", "qk_norm=true")) for a in SORT_ORDER if "qk_norm=false" in a]
    same_colour = all(lines[a].get_color() == lines[b].get_color() for a, b in pairs)
    dashed = all(lines[a].get_linestyle() == "-" and lines[b].get_linestyle() != "-" for a, b in pairs)
    distinct = len({str(lines[a].get_color()) for a, _ in pairs}) == len(pairs)
    check(st.bool_key == "model.qk_norm" and legend == SORT_ORDER and same_colour and dashed and distinct,
          "loss figure: legend in numeric order; qk_norm is the line style (false solid, true dashed), runs differing "
          "only in qk_norm share a colour",
          f"bool axis {st.bool_key}, legend {legend}, styles "
          f"{[(k, v.get_color(), v.get_linestyle()) for k, v in lines.items()]}")
    fig2, info = figures.fig_sweep(rs, axes, st.color)
    sl = {ln.get_label(): ln.get_linestyle() for ln in fig2.axes[0].get_lines() if ln.get_label().startswith("qk")}
    check(info["x"] == "optim.lr" and sl.get("qk_norm=false") == "-" and sl.get("qk_norm=true") not in (None, "-"),
          "sweep figure: one line per qk_norm value against lr, told apart by line style", str(sl))
    figures.plt.close("all")


PROBE_JS = """<script>
window.__t = [];
window.addEventListener('error', function (e) {
  window.__t.push('error: ' + (e.message || (e.target && (e.target.src || e.target.href)) || 'resource'));
}, true);
['error', 'warn'].forEach(function (k) {
  var o = console[k];
  console[k] = function () {
    window.__t.push(k + ': ' + Array.prototype.join.call(arguments, ' '));
    o.apply(console, arguments);
  };
});
window.addEventListener('load', function () {
  var figs = Array.prototype.map.call(document.querySelectorAll('figure[data-figure]'), function (f) {
    var img = f.querySelector('img'), svg = f.querySelector('svg'), el = img || svg;
    var r = el ? el.getBoundingClientRect() : {width: 0, height: 0};
    return {name: f.getAttribute('data-figure'), complete: img ? img.complete : !!svg,
            nw: img ? img.naturalWidth : (svg ? 1 : 0), nh: img ? img.naturalHeight : (svg ? 1 : 0),
            w: r.width, h: r.height};
  });
  var th = document.querySelector('table.sortable thead th'), sorted = null;
  if (th) { th.click(); sorted = th.getAttribute('data-sort'); }
  var out = document.createElement('pre');
  out.id = 'attnlab-test-result';
  out.textContent = JSON.stringify({figures: figs, errors: window.__t, sorted: sorted,
                                    images: document.images.length});
  document.body.appendChild(out);
});
</script>"""


def chromium_cmd(binary, profile):
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--disable-dev-shm-usage", "--user-data-dir=" + profile,
            "--enable-logging=stderr", "--v=0"]


def browser_checks(chrome, index, expected, td):
    d = os.path.dirname(index)
    with open(index, encoding="utf-8") as f:
        text = f.read()
    probe = os.path.join(d, "browser-check.html")  # same directory, so the figures/ links resolve alike
    with open(probe, "w", encoding="utf-8") as f:
        f.write(text.replace("<head>", "<head>" + PROBE_JS, 1))
    prof = tempfile.mkdtemp(prefix="chrome-", dir=td)
    r = subprocess.run(chromium_cmd(chrome, prof) + ["--virtual-time-budget=5000", "--dump-dom", "file://" + probe],
                       capture_output=True, text=True, timeout=120)
    os.remove(probe)
    m = re.search(r'<pre id="attnlab-test-result">(.*?)</pre>', r.stdout, re.S)
    if not check(r.returncode == 0 and m, "chromium loads the page and runs the load handler",
                 f"exit {r.returncode}; stderr: {r.stderr[-1500:]}"):
        return
    res = json.loads(html.unescape(m.group(1)))
    check(res["errors"] == [], "no script errors, console errors/warnings or failed resources", str(res["errors"]))
    console = [l for l in r.stderr.splitlines() if ":CONSOLE" in l or "Uncaught" in l]
    check(not console, "no console messages in chromium's log", "\n      ".join(console[:10]))
    names = [f["name"] for f in res["figures"]]
    check(sorted(names) == sorted(expected), f"chromium sees the {len(expected)} expected figures",
          f"saw {names}")
    bad = [f for f in res["figures"] if not (f["complete"] and f["nw"] > 0 and f["nh"] > 0 and f["w"] > 50
                                             and f["h"] > 50)]
    check(not bad, "every figure is decoded (natural size > 0) and rendered (box > 50 px)", str(bad))
    check(res["sorted"] == "asc", "the page's table-sorting script runs", f"data-sort = {res['sorted']}")

    prof = tempfile.mkdtemp(prefix="chrome-", dir=td)
    if os.path.exists(SCREENSHOT):
        os.remove(SCREENSHOT)
    r = subprocess.run(chromium_cmd(chrome, prof) + ["--hide-scrollbars", "--window-size=1280,3600",
                                                      "--screenshot=" + SCREENSHOT, "file://" + index],
                       capture_output=True, text=True, timeout=120)
    if not check(r.returncode == 0 and os.path.isfile(SCREENSHOT), "chromium writes a screenshot",
                 r.stderr[-1500:]):
        return
    import matplotlib.image as mpimg
    import numpy as np
    img = mpimg.imread(SCREENSHOT)[..., :3]
    flat = (img.reshape(-1, 3) * 255).astype(np.uint8)
    colours = len(np.unique(flat.view([("r", "u1"), ("g", "u1"), ("b", "u1")])))
    nonwhite = float(np.mean(np.any(flat < 245, axis=1)))
    check(colours > 200 and nonwhite > 0.05,
          f"the screenshot is not blank ({colours} colours, {100 * nonwhite:.1f} % non-white pixels)")
    print(f"      screenshot: {SCREENSHOT}")


# Injected first into a copy of the interactive page: a Content-Security-Policy that forbids every load except
# the inline scripts and styles and data:/blob: images, so any network request becomes a reported violation;
# then a probe that collects errors, violations and resource loads, and inspects every plot once drawn.
INTERACTIVE_PROBE = """<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline';
 style-src 'unsafe-inline'; img-src data: blob:; font-src data:">
<script>
window.__t = [];
window.addEventListener('error', function (e) { window.__t.push('error: ' + (e.message || 'resource')); }, true);
document.addEventListener('securitypolicyviolation', function (e) {
  window.__t.push('blocked: ' + e.blockedURI + ' (' + e.violatedDirective + ')');
});
['error', 'warn'].forEach(function (k) {
  var o = console[k];
  console[k] = function () { window.__t.push(k + ': ' + Array.prototype.join.call(arguments, ' ')); o.apply(console, arguments); };
});
window.addEventListener('load', function () { setTimeout(function () {
  var plots = Array.prototype.map.call(document.querySelectorAll('section[data-plot]'), function (s) {
    var gd = s.querySelector('.js-plotly-plot'), r = gd ? gd.getBoundingClientRect() : {width: 0, height: 0};
    var paths = gd ? Array.prototype.filter.call(gd.querySelectorAll('path.js-line'), function (p) {
      return (p.getAttribute('d') || '').length > 10; }).length : 0;
    return {name: s.getAttribute('data-plot'), traces: gd && gd.data ? gd.data.length : 0, lines: paths,
            svg: gd ? gd.querySelectorAll('svg.main-svg').length : 0, w: r.width, h: r.height};
  });
  var res = performance.getEntriesByType('resource').map(function (e) { return e.name; });
  var out = document.createElement('pre');
  out.id = 'attnlab-test-result';
  out.textContent = JSON.stringify({plots: plots, errors: window.__t, resources: res,
                                    plotly: typeof Plotly !== 'undefined'});
  document.body.appendChild(out);
}, 500); });
</script>"""

INTERACTIVE_PLOTS = ["loss", "grad_norm", "lr", "tokens_per_s", "layer_ent_norm", "layer_zabsmax", "layer_sink_gs",
                     "layer_rgs_sum", "layer_mass_ratio", "head_alpha0", "head_ent_norm", "head_zabsmax"]


def interactive_checks(chrome, path, td):
    """The interactive page: plotly.js embedded, no network, no console errors, every plot drawn."""
    if not check(os.path.isfile(path), "--interactive writes index_interactive.html next to index.html"):
        return
    with open(path, encoding="utf-8") as f:
        text = f.read()
    srcs = re.findall(r'<(?:script|link|img|iframe)[^>]+(?:src|href)="([^"]+)"', text)
    check(not srcs and "Plotly" in text and len(text) > 1_000_000,
          "the interactive page embeds plotly.js and references no external script, style or image", str(srcs[:5]))
    meta = re.search(r'<meta name="attnlab-plots" content="([^"]*)"', text)
    check(meta and meta.group(1).split(",") == INTERACTIVE_PLOTS,
          "the interactive page has loss, grad norm, LR, tokens/s and the per-layer and per-head metrics",
          meta.group(1) if meta else "no plot list")
    probe = os.path.join(os.path.dirname(path), "interactive-check.html")
    with open(probe, "w", encoding="utf-8") as f:
        f.write(text.replace("<head>", "<head>" + INTERACTIVE_PROBE, 1))
    prof = tempfile.mkdtemp(prefix="chrome-", dir=td)
    r = subprocess.run(chromium_cmd(chrome, prof) + ["--virtual-time-budget=10000", "--window-size=1280,2000",
                                                      "--dump-dom", "file://" + probe],
                       capture_output=True, text=True, timeout=180)
    os.remove(probe)
    m = re.search(r'<pre id="attnlab-test-result">(.*?)</pre>', r.stdout, re.S)
    if not check(r.returncode == 0 and m, "chromium loads the interactive page and runs the probe",
                 f"exit {r.returncode}; stderr: {r.stderr[-1500:]}"):
        return
    res = json.loads(html.unescape(m.group(1)))
    check(res["plotly"] and res["errors"] == [], "interactive page: plotly.js runs; no script errors, console "
          "errors or requests blocked by a no-network policy", str(res["errors"][:5]))
    check(res["resources"] == [], "interactive page: no resource loaded (no network request)", str(res["resources"]))
    console = [l for l in r.stderr.splitlines() if ":CONSOLE" in l or "Uncaught" in l]
    check(not console, "interactive page: no console messages in chromium's log", "\n      ".join(console[:10]))
    bad = [p for p in res["plots"] if not (p["traces"] > 0 and p["lines"] > 0 and p["svg"] > 0 and p["w"] > 300
                                           and p["h"] > 200)]
    check([p["name"] for p in res["plots"]] == INTERACTIVE_PLOTS and not bad,
          f"interactive page: all {len(INTERACTIVE_PLOTS)} plots are drawn (traces, line paths, box > 300×200 px)",
          str(bad or [p["name"] for p in res["plots"]]))
    shot = SCREENSHOT.replace(".png", "-interactive.png")
    prof = tempfile.mkdtemp(prefix="chrome-", dir=td)
    r = subprocess.run(chromium_cmd(chrome, prof) + ["--hide-scrollbars", "--window-size=1280,2400",
                                                      "--virtual-time-budget=5000", "--screenshot=" + shot,
                                                      "file://" + path], capture_output=True, text=True, timeout=180)
    check(r.returncode == 0 and os.path.isfile(shot), f"chromium writes a screenshot of the interactive page ({shot})",
          r.stderr[-1000:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--attnlab", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    t0 = time.time()
    td = tempfile.mkdtemp(prefix="attnlab-report-test-")
    started = None
    try:
        sweep = os.path.join(td, "sweep")
        runs = {}
        for lr in ("0.003", "0.03"):
            runs[lr] = os.path.join(sweep, f"lr={lr}")
            # warn_entropy 0.5: the faster run's heads cross it, so there are early-warning events to show.
            train(args.attnlab, runs[lr], [f"optim.lr={lr}", "train.checkpoint_every=30",
                                           "instrument.warn_entropy=0.5"])
        off = os.path.join(td, "off")
        train(args.attnlab, off, ["instrument.enabled=false"])
        with open(os.path.join(sweep, "summary.csv"), "w") as f:
            f.write("run,optim.lr,final_loss\n")
            for lr, p in runs.items():
                f.write(f"lr={lr},{lr},{last_train_loss(p)}\n")
        # A verdict as `attnlab repro` leaves it (train/claims.cpp verdict_json); the page shows it first.
        claims = [{"id": "test-pass", "text": "a claim that holds", "op": ">=", "expected": ">= 1", "measured": "2",
                   "verdict": "PASS", "detail": "", "lhs": {"run": "lr=0.03"}, "rhs": {"number": 1}},
                  {"id": "test-fail", "text": "a claim that does not", "op": "<", "expected": "< 1", "measured": "2",
                   "verdict": "FAIL", "detail": "", "lhs": {"run": "lr=0.03"}, "rhs": {"number": 1}}]
        with open(os.path.join(sweep, "verdict.json"), "w") as f:
            json.dump({"name": "test-repro", "title": "A test reproduction", "budget": "quick", "passed": False,
                       "sources": ["nobody 2026"], "claims": claims}, f)
        with open(os.path.join(sweep, "verdict.md"), "w") as f:
            f.write("| claim | verdict |\n|---|---|\n| test-pass | PASS |\n| test-fail | FAIL |\n")
        print(f"trained 3 tiny runs in {time.time() - t0:.1f} s ({td})")
        started = sinks_start(args.attnlab, td)

        # --- sweep report ---------------------------------------------------------------------------
        t1 = time.time()
        r = report([sweep, "--attnlab", args.attnlab, "--heads", "0:0,1:*", "--steps", "30,60", "--interactive"])
        print(f"report on the sweep: {time.time() - t1:.1f} s")
        if not check(r.returncode == 0, "report on a sweep directory exits 0", r.stderr[-3000:]):
            raise SystemExit(1)
        index = os.path.join(sweep, "report", "index.html")
        with open(index, encoding="utf-8") as f:
            text = f.read()
        heat = ["heatmap_ent_norm", "heatmap_zabsmax", "heatmap_sink_gs", "heatmap_rgs_sum", "heatmap_mass_ratio"]
        hv = ["heads_alpha0", "heads_ent_norm", "heads_zabsmax"]
        expected = ["loss", "train_stats", "sweep"] + heat + hv + ["gradpos", "attn_lr-0.003", "attn_lr-0.03"]
        check_figures(text, os.path.join(sweep, "report", "figures"), expected, "sweep")
        fr = figure_runs(text, ordered=True)
        check(all(fr.get(n) == ["lr=0.003", "lr=0.03"] for n in heat + hv),
              "every layer heatmap and per-head view draws the same runs, in the same order",
              str({n: fr.get(n) for n in heat + hv}))
        caps = dict(re.findall(r'data-figure="([^"]+)"[^>]*>.*?<figcaption>(.*?)</figcaption>', text, re.S))
        check(all(f"<code>{m}</code>" in caps.get(f"heads_{m}", "") and "(layer, head)" in caps.get(f"heads_{m}", "")
                  for m in ("alpha0", "ent_norm", "zabsmax")),
              "the per-head views over steps name their metric and rows (layer, head)")
        check(all(f"<code>{m}</code>" in caps.get("train_stats", "") for m in ("grad_norm", "lr", "tokens_per_s")),
              "the training-statistics figure names grad_norm, lr and tokens_per_s")
        v, runs_at = text.find('class="verdict"'), text.find('id="runs"')
        vtext = text[v:runs_at]
        check(0 <= v < runs_at and 'class="PASS"' in vtext and 'class="FAIL"' in vtext
              and "A test reproduction" in vtext and "a claim that does not" in vtext,
              "the verdict table (verdict.json) comes first, rows marked PASS / FAIL")
        n_events = sum(1 for p in runs.values() for line in open(os.path.join(p, "events.jsonl")) if line.strip())
        ev = re.search(r'<div id="events">(.*?)</div>', text, re.S)
        rows = ev.group(1).count("<tr>") - 1 if ev else -1
        check(n_events > 0 and rows == n_events, f"the event table lists all {n_events} events of events.jsonl",
              f"table rows {rows}")
        runs_table = text[runs_at:text.find("<details", runs_at)]
        losses = [fmt4(last_train_loss(p)) for p in runs.values()]
        check(all(f">{x}<" in runs_table for x in losses), f"the runs table shows the final losses {losses}")
        caps = dict(re.findall(r'data-figure="(attn_[^"]+)".*?<figcaption>(.*?)</figcaption>', text, re.S))
        want = ["L0 H0", "L1 H0", "L1 H1", "L1 H2", "L1 H3"]
        check(len(caps) == 2 and all(all(w in c for w in want) and "L0 H1" not in c and "step 30, 60" in c
                                     and "first training batch" in c for c in caps.values()),
              "attention maps follow --heads 0:0,1:* and --steps 30,60 on real data (attnlab grads)")
        check("optim.lr" in text and "Sweep summary" in text, "sweep axis and summary shown")
        check('id="sinks"' not in text, "a learning-rate sweep gets no sinks section")

        # --- uninstrumented run ---------------------------------------------------------------------
        out2 = os.path.join(td, "off-report")
        home = os.path.join(td, "home")  # a fresh $HOME: matplotlib's first use, as on a new machine
        os.makedirs(home)
        env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")}
        env["HOME"] = home
        r = report([off, "--out", out2, "--attnlab", args.attnlab], env=env)
        check(r.returncode == 0, "report on a run with instrumentation off exits 0", r.stderr[-3000:])
        check(not os.path.exists(os.path.join(home, ".config", "matplotlib"))
              and not os.path.exists(os.path.join(home, ".cache", "matplotlib"))
              and os.path.isdir(os.path.join(home, ".cache", "attnlab", "matplotlib")),
              "matplotlib's cache and config go to ~/.cache/attnlab/matplotlib, not ~/.config or ~/.cache/matplotlib",
              str([os.path.join(dp, d) for dp, ds, _ in os.walk(home) for d in ds]))
        with open(os.path.join(out2, "index.html"), encoding="utf-8") as f:
            text2 = f.read()
        check_figures(text2, os.path.join(out2, "figures"), ["loss", "train_stats", "attn_off"],
                      "instrumentation off")
        check(not os.path.exists(os.path.join(out2, "index_interactive.html")),
              "without --interactive no interactive page is written")
        check("What is missing" in text2 and "instrumentation off" in text2 and "loss curves only" in text2,
              "the page says what is missing for the uninstrumented run")

        # --- bad input ------------------------------------------------------------------------------
        r = report([sweep, "--out", os.path.join(td, "x"), "--heads", "0-1"])
        check(r.returncode == 2 and "--heads" in r.stderr, "a bad --heads exits 2 naming the option", r.stderr)
        r = report([os.path.join(td, "nope")])
        check(r.returncode == 2 and "nope" in r.stderr, "a missing input exits 2 naming it", r.stderr)

        # --- browser --------------------------------------------------------------------------------
        chrome = shutil.which("chromium") or shutil.which("chromium-browser")
        if check(chrome, "chromium is installed (Debian package `chromium`; .ci/deps.sh installs it with "
                         "ATTNLAB_WITH_REPORT=1)"):
            t2 = time.time()
            browser_checks(chrome, index, expected, td)
            interactive_checks(chrome, os.path.join(sweep, "report", "index_interactive.html"), td)
            print(f"browser checks: {time.time() - t2:.1f} s")

        # --- run order, line styles, collapsed notes ------------------------------------------------------
        order_checks(args.attnlab, td)

        # --- sinks section ----------------------------------------------------------------------------
        sinks_checks(started)
    finally:
        if started is not None and started[1].poll() is None:  # an early exit: stop the background report
            started[1].kill()
            started[1].communicate()
        if args.keep:
            print(f"kept {td}")
        else:
            shutil.rmtree(td, ignore_errors=True)
    passed = sum(results)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed ({time.time() - t0:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
