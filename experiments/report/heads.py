"""Per-head views over steps: α₀, normalised entropy and max |attention logit| of every (layer, head) at every
probe, one panel per run, the same runs as the layer × step heatmaps (report.py passes them).

The layer heatmaps reduce over heads (min entropy, max logit); these keep every head, so one collapsing or
exploding head is told apart from a whole layer doing it. Rows are (layer, head), columns probe steps
(sinks.fig_head_heatmaps). A run that does not record a metric keeps its panel, grey.
"""
import numpy as np

import figures as F
import page
import sinks

esc = page.esc

# metric -> (title, what it is, colour scale, colormap, colour-bar label)
HEAD_VIEWS = [
    ("alpha0", "First-token attention α₀ per head",
     "batch mean of (1/T_ε) Σ_{i&lt;T_ε} P[i, 0], T_ε = min(64, T): the attention every query puts on token 0 "
     "(Gu et al. 2024 §3.2); above ε = 0.3 (dashed on the colour bar) the head is a sink head.",
     "linear01", "viridis", "α₀ (attention on token 0)"),
    ("ent_norm", "Normalised attention entropy per head",
     "mean over sequences and query rows i ≥ 1 of H_i / ln(i+1): 1 = uniform over the prefix, 0 = one-hot "
     "(entropy collapse, Zhai et al. 2023).", "linear01", "viridis", "normalised entropy"),
    ("zabsmax", "Maximum attention logit per head",
     "max |q·k/√d_h| over the batch, queries and keys (attention-logit growth, Wortsman et al. 2023); log colour "
     "scale.", "log", "magma", "max |attention logit|"),
]


def _norm(scale, panels):
    if scale != "log":
        return F.mcolors.Normalize(0.0, 1.0)
    allv = np.concatenate([p[3][np.isfinite(p[3])].ravel() for p in panels])
    pos = allv[allv > 0]
    lo, hi = (float(pos.min()), float(pos.max())) if len(pos) else (1e-3, 1.0)
    return F.mcolors.LogNorm(lo, hi if hi > lo else lo * 10)


def views(rep, runs, sel, skip_alpha0=False):
    """-> html parts of the "Per-head metrics over steps" subsection (figures heads_<metric>)."""
    body = ['<h3 id="heads">Per-head metrics over steps</h3>']
    missing = []
    titles = {r.label: sel.label(r) for r in runs}
    for metric, title, what, scale, cmap, cbar in HEAD_VIEWS:
        if metric == "alpha0" and skip_alpha0:
            continue  # the sinks section draws it (sinks_alpha0), for the same runs
        data = {r.label: r.head_matrix(metric) for r in runs}
        have = [d for d in data.values() if d is not None]
        if not have:
            missing.append(metric)
            continue
        pairs = sorted({p for d in have for p in d[1]})
        panels = []
        for r in runs:
            d = data[r.label]
            if d is None:  # not recorded: a grey panel with the same rows
                panels.append((F.short(titles[r.label], 40) + " (not recorded)", np.array([0]), pairs,
                               np.full((len(pairs), 1), np.nan)))
                continue
            steps, prs, vals = d
            row = {p: i for i, p in enumerate(prs)}
            full = np.full((len(pairs), len(steps)), np.nan)
            for i, p in enumerate(pairs):
                if p in row:
                    full[i] = vals[row[p]]
            panels.append((F.short(titles[r.label], 40), steps, pairs, full))
        norm = _norm(scale, panels)
        lines = [(sinks.EPS, "--")] if metric == "alpha0" else []
        fig = sinks.fig_head_heatmaps(panels, norm, cmap, cbar, clines=lines)
        cap = (f"<b>{esc(title)}</b> (<code>{metric}</code>) on the probe batch: {what} Rows: (layer, head), white "
               f"lines between layers; columns: probe steps, equally spaced (not to scale). One panel per run, the "
               f"same runs as the layer × step heatmaps: {esc(', '.join(r.label for r in runs))}. Grey: not "
               f"recorded or non-finite. Colour scale shared by the panels.")
        body.append(rep.save(fig, f"heads_{metric}", cap, f"{metric} per layer and head over probe steps",
                             runs=[r.label for r in runs]))
    if skip_alpha0:
        body.append("<p>α₀ per head is in the Sinks section (<code>sinks_alpha0</code>).</p>")
    if missing:
        body.append(page.notes_box([f"<code>{m}</code> per head is not recorded by any shown run" for m in missing],
                                   "Missing per-head views"))
    return body if len(body) > 1 else []
