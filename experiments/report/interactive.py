"""The interactive page (`attnlab report ... --interactive`): DIR/index_interactive.html next to index.html.

One self-contained HTML file: plotly.js from Debian's python3-plotly (plotly.offline.get_plotlyjs()) is
embedded once, so the page works offline and loads nothing from the network (no CDN, no MathJax, no fonts).
It holds zoomable, hoverable line plots over steps, runs in the page's order with the static figures' colours
and line styles; clicking a legend entry hides a run (legend groups: one per run):

  loss, eval loss, grad norm, LR, tokens/s    the train / eval records of every run
  layer_<metric>                              the layer heatmaps' metrics (figures.HEATMAPS), a line per
                                              (run, layer), for the runs the heatmaps draw
  head_<metric>                               α₀, normalised entropy and max |logit| (heads.HEAD_VIEWS), a
                                              line per (run, layer, head), for the same runs
"""
import json
import os

import numpy as np

import figures as F
import heads as HV
import page

esc = page.esc
NAME = "index_interactive.html"


def _plotly():
    try:
        import plotly.graph_objects as go
        import plotly.io as pio
        import plotly.offline as po
    except ImportError as e:
        raise RuntimeError("the interactive page needs Debian's python3-plotly (apt-get install python3-plotly; "
                           f".ci/deps.sh installs it with ATTNLAB_WITH_REPORT=1): {e}")
    return go, pio, po


def _css_color(c):
    r, g, b = (int(round(255 * x)) for x in c[:3])
    return f"rgb({r},{g},{b})"


def _dash(ls):
    """figures.Styles line style -> plotly dash: solid, or dashed for a boolean axis' true runs."""
    return "solid" if ls == "-" else "dash"


# Marker per layer in the per-layer plots (colour and dash already show the run).
_SYMBOLS = ["circle", "square", "diamond", "triangle-up", "cross", "x", "triangle-down", "star", "pentagon", "hexagon"]


def _xy(steps, vals):
    """Lists for JSON: non-finite values become gaps (None)."""
    return [int(s) for s in steps], [float(v) if np.isfinite(v) else None for v in vals]


def _figure(go, title, ylabel, logy=False, height=360):
    fig = go.Figure()
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=14)), height=height,
                      margin=dict(l=60, r=20, t=40, b=40), template="plotly_white",
                      legend=dict(font=dict(size=10)), hovermode="closest",
                      xaxis_title="step", yaxis_title=ylabel)
    if logy:
        fig.update_yaxes(type="log")
    return fig


def _line(go, fig, r, styles, x, y, name, group, first, width=1.5, mode="lines", **kw):
    fig.add_trace(go.Scatter(x=x, y=y, name=name, legendgroup=group, showlegend=first, mode=mode,
                             line=dict(color=_css_color(styles.color[r.label]), dash=_dash(styles.ls[r.label]),
                                       width=width), connectgaps=False, **kw))


def build_plots(runs, styles, shown):
    """-> [(plot id, caption, plotly Figure)]. runs: every run (page order); shown: the runs the heatmaps draw."""
    go, _, _ = _plotly()
    plots = []
    with_train = [r for r in runs if r.train]
    fig = _figure(go, "Training loss (lines) and evaluation loss (dotted, circles)", "loss (nats / token)")
    for r in with_train:
        x, y = _xy(r.train["step"], r.train["loss"])
        _line(go, fig, r, styles, x, y, r.label, r.label, True)
        if r.eval:
            x, y = _xy(r.eval["step"], r.eval["val_loss"])
            fig.add_trace(go.Scatter(x=x, y=y, name=r.label + " (eval)", legendgroup=r.label, showlegend=False,
                                     mode="lines+markers", marker=dict(symbol="circle-open", size=6),
                                     line=dict(color=_css_color(styles.color[r.label]), dash="dot", width=1)))
    if with_train:
        plots.append(("loss", "Training loss per step and evaluation loss (<code>loss</code>, <code>val_loss</code>)",
                      fig))
    for fld, title, ylab, logy, _ in F.TRAIN_STATS:
        have = [r for r in with_train if fld in r.train and np.isfinite(r.train[fld]).any()]
        if not have:
            continue
        fig = _figure(go, title, ylab, logy=logy)
        for r in have:
            x, y = _xy(r.train["step"], r.train[fld])
            _line(go, fig, r, styles, x, y, r.label, r.label, True)
        plots.append((fld, f"<code>{fld}</code> per training step (train records)", fig))
    for metric, reduce, scale, _, label, _ in F.HEATMAPS:
        fig = _figure(go, F.HEATMAP_TITLES[metric], label.replace("\n", " "), logy=scale == "log")
        n = 0
        for r in shown:
            d = r.layer_matrix(metric, reduce_heads=reduce)
            if d is None:
                continue
            steps, layers, vals = d
            for i, l in enumerate(layers):
                x, y = _xy(steps, vals[i])
                _line(go, fig, r, styles, x, y, f"{r.label} · L{l}", r.label, True, mode="lines+markers",
                      width=1.2, marker=dict(size=5, symbol=_SYMBOLS[int(l) % len(_SYMBOLS)]), hovertemplate=f"{esc(r.label)} L{l}<br>step %{{x}}: %{{y}}"
                                                                    "<extra></extra>")
                n += 1
        if n:
            plots.append((f"layer_{metric}", f"<code>{metric}</code> per layer over probe steps (a line per run and "
                                             "layer, marker shape = layer; the legend toggles a line)", fig))
    for metric, title, _, scale, _, _ in HV.HEAD_VIEWS:
        fig = _figure(go, title, metric, logy=scale == "log")
        n = 0
        for r in shown:
            d = r.head_matrix(metric)
            if d is None:
                continue
            steps, pairs, vals = d
            for i, (l, h) in enumerate(pairs):
                x, y = _xy(steps, vals[i])
                _line(go, fig, r, styles, x, y, f"{r.label} · L{l} H{h}", r.label, i == 0, mode="lines+markers",
                      width=1.0, marker=dict(size=3),
                      hovertemplate=f"{esc(r.label)} L{l} H{h}<br>step %{{x}}: %{{y}}<extra></extra>")
                n += 1
        if n:
            plots.append((f"head_{metric}", f"<code>{metric}</code> per (layer, head) over probe steps (a line per "
                                            "run, layer and head)", fig))
    return plots


def write(path, title, subtitle_html, runs, styles, shown, static_name="index.html"):
    """Writes the interactive page to `path`. -> [plot ids]."""
    go, pio, po = _plotly()
    plots = build_plots(runs, styles, shown)
    cfg = {"displaylogo": False, "responsive": True, "showLink": False,
           "modeBarButtonsToRemove": ["sendDataToCloud"]}
    parts = []
    for pid, cap, fig in plots:
        div = pio.to_html(fig, full_html=False, include_plotlyjs=False, include_mathjax=False, config=cfg)
        parts.append(f'<section class="plot" data-plot="{esc(pid)}">{div}<p class="cap">{cap}</p></section>')
    doc = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
           f"<meta name=\"attnlab-plots\" content=\"{esc(','.join(p[0] for p in plots))}\">"
           f"<title>{esc(title)} (interactive)</title><style>{page.CSS}"
           " .plot { margin: 10px 0 24px; } .cap { font-size: 12.5px; color: #333; margin: 2px 0; }</style>"
           # plotly.js, embedded (Debian's python3-plotly); nothing is fetched.
           f"<script type=\"text/javascript\">{po.get_plotlyjs()}</script></head><body>"
           f"<h1>{esc(title)} — interactive</h1><div class=\"sub\">{subtitle_html} · "
           f"<a href=\"{esc(static_name)}\">static page</a> · runs: "
           f"{esc(json.dumps([r.label for r in runs], ensure_ascii=False)[1:-1])}</div>\n"
           + "\n".join(parts) + "\n</body></html>\n")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(doc)
    os.replace(tmp, path)
    return [p[0] for p in plots]
