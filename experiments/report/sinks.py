"""The page's "Sinks" section: attention sinks, gradient sinks, token-0 norms and V-scale, by arm.

It appears when some run records `alpha0` and the runs vary `model.v_scale` or `data.bos` (or use V-scale):
the gradient-sinks and attention-sinks reproductions. Runs are grouped into arms (arms.py: every varying key
except `train.seed`); seeds are the spread within an arm. The heatmaps and attention maps draw one run per
arm, all at the same seed (arms.select), the same runs as the page's other per-run figures.

Figures (report.py saves them; captions here):
  sinks_alpha0   α₀ per (layer, head) × probe step, one panel per arm, shared 0..1 scale, ε = 0.3 on the bar
  sinks_rgs      R_GS(0) per layer over steps, one line per arm (median over seeds, min–max band, seeds thin)
  sinks_t0norms  token-0 vs early norms at the last probe by layer: bars per arm (median, min–max over seeds)
  sinks_theta    V-scale θ per (layer, head) × probe step (runs with V-scale only)
  sinks_attn     attention maps of one layer-0 head per arm at ≥ 2 checkpoints (step 0 = the initial
                 parameters), the first tokens as characters
"""
import math
import warnings

import numpy as np

import attnmaps
import figures as F
import page
from matplotlib.lines import Line2D

plt = F.plt
mcolors = F.mcolors
esc = page.esc

EPS = 0.3  # Gu et al.'s ε; the paper's Sink_0^ε (instrument/docs/attention.md)


def applies(runs, axes):
    if not any(r.has("alpha0") for r in runs):
        return False
    if "model.v_scale" in axes or "data.bos" in axes:
        return True
    return any(str(r.get("model.v_scale", "off")).lower() not in ("off", "false") for r in runs)


def _finite(v):
    v = np.asarray(v, dtype=np.float64)
    return v[np.isfinite(v)]


def _uniform_alpha0(runs):
    """α₀ under uniform causal attention, H_{T_ε}/T_ε (T_ε = min(64, T)), when every run has the same T."""
    Ts = {r.get("model.seq_len") for r in runs} - {None}
    if len(Ts) != 1:
        return None
    n = min(64, int(Ts.pop()))
    return sum(1.0 / k for k in range(1, n + 1)) / n


# ---------------------------------------------------------------------------------------------------
# Figures


def wrap(parts, width=26):
    """Join label parts with ', ' into lines of at most ~width characters."""
    lines, cur = [], ""
    for p in parts:
        if cur and len(cur) + 2 + len(p) > width:
            lines.append(cur)
            cur = p
        else:
            cur = f"{cur}, {p}" if cur else p
    if cur:
        lines.append(cur)
    return "\n".join(lines)


def arm_title(a, r, seeded, width=26):
    parts = a.parts() or [a.label]
    return wrap(parts + ([f"seed {attnmaps_seed(r)}"] if seeded else []), width) or r.label


def _legend_row(fig, nrows, ncols, height, width, legend_h=0.28, **kw):
    """A figure with a thin top row (spanning all columns) for a legend, and nrows × ncols axes below."""
    gs = fig.add_gridspec(nrows + 1, ncols, height_ratios=[legend_h] + [(height - legend_h) / nrows] * nrows)
    lax = fig.add_subplot(gs[0, :])
    lax.axis("off")
    axs = [[fig.add_subplot(gs[i + 1, j], **kw) for j in range(ncols)] for i in range(nrows)]
    return lax, axs


def _xticks_steps(ax, steps, nmax=6):
    S = len(steps)
    idx = sorted({int(round(x)) for x in np.linspace(0, S - 1, min(S, nmax))})
    ax.set_xticks(idx)
    ax.set_xticklabels([str(int(steps[i])) for i in idx], fontsize=6)


def fig_head_heatmaps(panels, norm, cmap, cbar_label, cticks=None, cticklabels=None, clines=()):
    """panels: [(title, steps [S], pairs [(l, h)], values [P, S])]. Rows = (layer, head) pairs (L0 H0 at the
    top, white lines between layers), columns = probe steps, equally spaced. One colour scale."""
    n = len(panels)
    ncols = min(n, 4)
    nrows = math.ceil(n / ncols)
    P = max(len(p[2]) for p in panels)
    ph = 0.95 + 0.085 * min(P, 40)
    width = _width(ncols)
    fig, axs = plt.subplots(nrows, ncols, figsize=(width, ph * nrows + 0.3), squeeze=False, constrained_layout=True)
    cm = plt.get_cmap(cmap).copy()
    cm.set_bad("#d9d9d9")
    mesh = None
    for k, (title, steps, pairs, vals) in enumerate(panels):
        ax = axs[k // ncols][k % ncols]
        S, R = len(steps), len(pairs)
        mesh = ax.pcolormesh(np.arange(S + 1) - 0.5, np.arange(R + 1) - 0.5, np.ma.masked_invalid(vals), cmap=cm,
                             norm=norm, shading="flat", rasterized=True)
        ax.set_ylim(R - 0.5, -0.5)
        layers = [l for l, _ in pairs]
        for i in range(1, R):
            if layers[i] != layers[i - 1]:
                ax.axhline(i - 0.5, color="white", lw=0.9)
        if k % ncols == 0:
            if R <= 32:
                ax.set_yticks(range(R))
                ax.set_yticklabels([f"L{l} H{h}" for l, h in pairs], fontsize=5.5 if R > 16 else 6)
            else:
                first = [i for i in range(R) if i == 0 or layers[i] != layers[i - 1]]
                ax.set_yticks(first)
                ax.set_yticklabels([f"L{layers[i]}" for i in first], fontsize=6)
            ax.set_ylabel("layer, head")
        else:
            ax.set_yticks([])
        _xticks_steps(ax, steps)
        ax.set_xlabel("probe step", fontsize=7)
        ax.set_title(title, loc="left", fontsize=7)
        ax.grid(False)
        ax.tick_params(length=1.5, pad=1.5)
        for s in ("top", "right"):
            ax.spines[s].set_visible(True)
    for k in range(n, nrows * ncols):
        axs[k // ncols][k % ncols].set_visible(False)
    cb = fig.colorbar(mesh, ax=axs, shrink=0.95, aspect=25 if nrows > 1 else 15, pad=0.015)
    cb.set_label(cbar_label)
    if cticks is not None:
        cb.set_ticks(cticks)
        cb.set_ticklabels(cticklabels)
        cb.ax.tick_params(labelsize=6)
    for v, ls in clines:
        cb.ax.axhline(v, color="white", lw=1.4)
        cb.ax.axhline(v, color="black", lw=0.7, ls=ls)
    return fig


def _width(ncols):
    return F.FULL if ncols > 1 else F.COL + 0.7


def fig_alpha0(reps, titles, uniform=None):
    panels = []
    for r in reps:
        d = r.head_matrix("alpha0")
        if d is not None:
            panels.append((titles[r.label],) + d)
    if not panels:
        return None, []
    ticks, labels, lines = [0.0, EPS, 0.5, 0.75, 1.0], ["0", f"ε = {EPS}", "0.5", "0.75", "1"], [(EPS, "--")]
    if uniform is not None and uniform < 1:
        lines.append((uniform, ":"))
        if uniform < EPS - 0.12:  # else the labels would collide; the caption gives the value
            ticks.insert(1, uniform)
            labels.insert(1, f"uniform {uniform:.3f}")
    fig = fig_head_heatmaps(panels, mcolors.Normalize(0.0, 1.0), "viridis", "α₀ (attention on token 0)", ticks,
                            labels, lines)
    return fig, [p[0] for p in panels]


def fig_theta(reps, titles):
    panels = []
    for r in reps:
        d = r.head_matrix("vscale_theta")
        if d is not None:
            panels.append((titles[r.label],) + d)
    if not panels:
        return None, []
    allv = np.concatenate([_finite(p[3]) for p in panels])
    m = float(np.max(np.abs(allv))) if len(allv) else 1.0
    m = max(m, 1e-3)
    fig = fig_head_heatmaps(panels, mcolors.TwoSlopeNorm(0.0, -m, m), "RdBu_r", "V-scale θ (0 at init)")
    return fig, [p[0] for p in panels]


def _median_band(series):
    """[(steps, values)] over seeds -> (union steps, median, min, max), NaN where no seed has a finite value."""
    steps = np.unique(np.concatenate([s for s, _ in series]))
    M = np.full((len(series), len(steps)), np.nan)
    for i, (s, v) in enumerate(series):
        M[i, np.searchsorted(steps, s)] = np.where(np.isfinite(v), v, np.nan)
    with warnings.catch_warnings():  # "All-NaN slice": a step no seed has a finite value at stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return steps, np.nanmedian(M, axis=0), np.nanmin(M, axis=0), np.nanmax(M, axis=0)


def fig_rgs(arms):
    """R_GS(0) per layer over steps: a panel per layer (and one for the median over layers), a line per arm."""
    layers = sorted({l for a in arms for r in a.runs for l in r.layers_of("rgs_sum")})
    panels = [("rgs_sum", l, f"layer {l}") for l in layers]
    if any(r.has("rgs_median") for a in arms for r in a.runs):
        panels.append(("rgs_median", -1, "median over layers (rgs_median)"))
    if not layers:
        return None
    n = len(panels)
    ncols = min(n, 3 if n <= 6 else 4)
    slots = math.ceil(n / ncols) * ncols
    nrows = slots // ncols
    spare = slots > n  # the legend goes into the spare slot, else into a row above the panels
    if spare:
        fig, axs = plt.subplots(nrows, ncols, figsize=(F.FULL, 1.75 * nrows + 0.3), squeeze=False,
                                constrained_layout=True)
        lax = None
    else:
        fig = plt.figure(figsize=(F.FULL, 1.75 * nrows + 0.75), constrained_layout=True)
        lax, axs = _legend_row(fig, nrows, ncols, 1.75 * nrows + 0.75, F.FULL, legend_h=0.55)
    seeds_multi = any(len(a.runs) > 1 for a in arms)
    allpos = []
    for k, (metric, layer, title) in enumerate(panels):
        ax = axs[k // ncols][k % ncols]
        bad = []
        for a in arms:
            series = [x for x in (r.series(metric, layer=layer) for r in a.runs) if x is not None]
            if not series:
                continue
            for s, v in series:
                bad += list(s[~np.isfinite(v)])
                if seeds_multi and len(series) > 1:
                    ax.plot(s, np.where(np.isfinite(v), v, np.nan), color=a.color, lw=0.5, alpha=0.45)
            steps, med, lo, hi = _median_band(series)
            if len(series) > 1:
                ok = np.isfinite(lo) & np.isfinite(hi)
                ax.fill_between(steps[ok], lo[ok], hi[ok], color=a.color, alpha=0.14, lw=0)
            ax.plot(steps, med, color=a.color, lw=1.3, marker="o", ms=2.2, label=a.label)
            if len(steps) and steps[0] == 0 and np.isfinite(med[0]):
                ax.plot([0], [med[0]], ls="", marker="s", ms=4.5, mfc="white", mec=a.color, mew=1.0, zorder=4)
            allpos += list(_finite(np.concatenate([lo, hi])))
        F._mark_nonfinite(ax, sorted(set(bad)), "red")
        ax.axhline(1.0, color="0.45", lw=0.6, ls=":")
        ax.set_title(title, loc="left", fontsize=7)
        if k % ncols == 0:
            ax.set_ylabel("R_GS(0)")
        ax.set_xlabel("step")
    pos = [v for v in allpos if v > 0]
    for k in range(n):
        ax = axs[k // ncols][k % ncols]
        if pos and min(pos) > 0:
            ax.set_yscale("log")
            F.log_labels(ax.yaxis, min(pos), max(pos))
    h, l = axs[0][0].get_legend_handles_labels()
    extra = [Line2D([], [], ls="", marker="s", ms=4.5, mfc="white", mec="0.3", label="step 0 (initial model)"),
             Line2D([], [], color="0.45", lw=0.6, ls=":", label="R_GS = 1 (no gradient sink)")]
    if seeds_multi:
        extra.insert(0, Line2D([], [], color="0.3", lw=0.5, alpha=0.6, label="single seeds"))
        extra.insert(0, plt.Rectangle((0, 0), 1, 1, color="0.3", alpha=0.14, lw=0, label="min–max over seeds"))
    for k in range(n, slots):
        axs[k // ncols][k % ncols].set_visible(False)
    title = "arm (median over seeds)" if seeds_multi else "arm"
    if spare:
        lax = axs[n // ncols][n % ncols]
        lax.set_visible(True)
        lax.axis("off")
        lax.legend(h + extra, l + [e.get_label() for e in extra], loc="center left", fontsize=6.5,
                   title=title, title_fontsize=7)
    else:
        lax.legend(h + extra, l + [e.get_label() for e in extra], loc="center", fontsize=6.5,
                   ncol=min(4, len(h + extra)), title=title, title_fontsize=7)
    return fig


T0_PANELS = [
    ("t0_ratio_out", -1, "‖h_out‖ ratio: token 0 / mean of tokens 1–15", True),
    ("t0_ratio_mlp", -1, "‖r_mlp‖ ratio: token 0 / mean of tokens 1–15", True),
    ("norm_out", 0, "‖h_out‖ of token 0 (block output)", False),
    ("norm_mlp", 0, "‖r_mlp‖ of token 0 (MLP output)", False),
]


def _last_value(r, metric, layer, index):
    """(value, step) at the run's last probe of `metric` at (layer, head −1, index)."""
    s = r.series(metric, layer=layer, index=index)
    if s is None:
        return math.nan, None
    steps, vals = s
    return float(vals[-1]), int(steps[-1])


def fig_t0norms(arms):
    panels = [p for p in T0_PANELS if any(r.has(p[0]) for a in arms for r in a.runs)]
    if not panels:
        return None, set()
    layers = sorted({l for a in arms for r in a.runs for p in panels for l in r.layers_of(p[0])})
    if not layers:
        return None, set()
    ncols = 2 if len(panels) > 1 else 1
    nrows = math.ceil(len(panels) / ncols)
    W, Hh = (F.FULL if ncols > 1 else F.COL + 0.6), 1.9 * nrows + 0.75
    fig = plt.figure(figsize=(W, Hh), constrained_layout=True)
    lax, axs = _legend_row(fig, nrows, ncols, Hh, W, legend_h=0.4)
    steps_used = set()
    na = len(arms)
    width = 0.8 / max(na, 1)
    for k, (metric, index, title, ratio) in enumerate(panels):
        ax = axs[k // ncols][k % ncols]
        vals_all, bad = [], []
        for ai, a in enumerate(arms):
            xs = np.arange(len(layers)) - 0.4 + width * (ai + 0.5)
            med, lo, hi = [], [], []
            for li, l in enumerate(layers):
                vs = []
                for r in a.runs:
                    v, st = _last_value(r, metric, l, index)
                    if st is None:
                        continue  # not recorded
                    steps_used.add(st)
                    vs.append(v)
                fv = _finite(vs)
                if len(fv) < len(vs):
                    bad.append(xs[li])  # a non-finite value ("nan"/"inf" in metrics.jsonl)
                med.append(float(np.median(fv)) if len(fv) else np.nan)
                lo.append(float(np.min(fv)) if len(fv) else np.nan)
                hi.append(float(np.max(fv)) if len(fv) else np.nan)
                if len(fv) > 1:
                    ax.scatter(np.full(len(fv), xs[li]), fv, s=3, color="black", zorder=4, lw=0)
                vals_all += list(fv)
            med, lo, hi = map(np.array, (med, lo, hi))
            ok = np.isfinite(med)
            ax.bar(xs[ok], med[ok], width=width * 0.92, color=a.color, label=a.label, zorder=2)
            if len(a.runs) > 1:
                ax.errorbar(xs[ok], med[ok], yerr=[med[ok] - lo[ok], hi[ok] - med[ok]], fmt="none", ecolor="black",
                            elinewidth=0.7, capsize=1.5, zorder=3)
        F._mark_nonfinite(ax, sorted(set(bad)), "red")
        if ratio:
            ax.axhline(1.0, color="0.35", lw=0.7, ls=":")
        pos = [v for v in vals_all if v > 0]
        if pos and max(pos) / min(pos) >= 30:
            ax.set_yscale("log")
            F.log_labels(ax.yaxis, min(pos), max(pos))
        ax.set_xticks(range(len(layers)))
        ax.set_xticklabels([f"L{l}" for l in layers])
        ax.set_xlim(-0.5, len(layers) - 0.5)
        ax.set_xlabel("layer", fontsize=7)
        ax.set_ylabel("ratio" if ratio else "norm (batch mean)")
        ax.set_title(f"{title} · {metric}", loc="left", fontsize=7)
        ax.grid(axis="x", alpha=0)
    for k in range(len(panels), nrows * ncols):
        axs[k // ncols][k % ncols].set_visible(False)
    h, l = axs[0][0].get_legend_handles_labels()
    lax.legend(h, l, fontsize=6.5, loc="center", ncol=min(4, len(h)),
               title=("bar: median over seeds, error bar: min–max over seeds, dots: the seeds")
               if any(len(a.runs) > 1 for a in arms) else None, title_fontsize=6.5)
    return fig, steps_used


def fig_sink_attention(rows, window):
    """rows: [(row label, [(step, P [T, T], p0 [T] or None, labels, step title)], extra_key)]: one row per arm,
    one column per checkpoint, one head each; the first `window` positions with token characters."""
    ncols = max(len(r[1]) for r in rows)
    nr = len(rows)
    cell = min(2.05, (F.FULL - 0.9) / max(ncols, 1))
    fig, axs = plt.subplots(nr, ncols, figsize=(cell * ncols + 0.9, cell * nr + 0.35), squeeze=False,
                            constrained_layout=True)
    im = None
    for ri, (label, maps, extra) in enumerate(rows):
        for ci in range(ncols):
            ax = axs[ri][ci]
            if ci >= len(maps):
                ax.set_visible(False)
                continue
            step, p, p0, labels, stitle = maps[ci]
            im = F.attn_panel(ax, p, p0, extra, labels=labels, window=window)
            ax.set_title(stitle, loc="left", fontsize=6.5)
            if ci == 0:
                ax.set_ylabel(label + "\nquery i", fontsize=6.5)
            if ri == nr - 1:
                ax.set_xlabel("key j" + (" (−1: extra key)" if extra else ""), fontsize=6.5)
    cb = fig.colorbar(im, ax=axs, shrink=0.9 if nr == 1 else 0.6, aspect=20 if nr == 1 else 30, pad=0.01)
    cb.set_label("probability (√ scale)")
    return fig


# ---------------------------------------------------------------------------------------------------
# The section


def _runs_list(runs):
    return ", ".join(f"<code>{esc(r.label)}</code>" for r in runs)


def _choose_attn_steps(avail, requested):
    """At most 3 checkpoints: the ones nearest `requested` (--steps), else first, middle, last."""
    if requested:
        out = []
        for s in requested:
            c = avail[-1] if s == "last" else avail[0] if s == "first" else min(avail, key=lambda a: (abs(a - s), a))
            if c not in out:
                out.append(c)
        return sorted(out)[:3]
    if len(avail) <= 3:
        return list(avail)
    return sorted({avail[0], avail[len(avail) // 2], avail[-1]})


def _sink_head(sel, arms, layer):
    """The head of `layer` with the largest α₀ at the last probe (its last finite value) in the first arm the
    claims compare (else the first arm); the lowest head on ties; head 0 when α₀ is not recorded."""
    for a in [a for a in sel.claim_arms if a in arms] + arms:
        d = a.rep.head_matrix("alpha0") if a.rep is not None else None
        if d is None:
            continue
        steps, pairs, vals = d
        cand = []
        for i, (l, h) in enumerate(pairs):
            fin = _finite(vals[i])
            if l == layer and len(fin):
                cand.append((fin[-1], h))
        if cand:
            best = max(v for v, _ in cand)
            return min(h for v, h in cand if v == best), a
    return 0, None


def section(rep, runs, sel, args, binary, heads_req, steps_req):
    """-> html parts of the Sinks section; notes for "What is missing" go into rep.notes."""
    pool = sel.take(args.max_runs)
    reps = [a.rep for a in pool]
    seed_txt = f" at seed {sel.seed}" if sel.seeded and sel.seed is not None else ""
    titles = {a.rep.label: arm_title(a, a.rep, sel.seeded) for a in pool}
    body = ['<h2 id="sinks">Attention sinks, gradient sinks and token-0 norms by arm</h2>']
    # Which runs are drawn and why.
    rows = []
    compact_labels = any(a.compact for a in sel.arms)
    for a in sel.arms:
        shown = a in pool
        cl = sorted({c for r in a.runs for c in sel.claim_ids.get(r.label, [])})
        rows.append([a.label] + ([a.full] if compact_labels else []) +
                    [", ".join(str(s) for s in a.seeds()) if sel.seeded else "–",
                     a.rep.label if shown else "(not shown)", ", ".join(cl) or "–"])
    body.append("<p>Arms: runs sharing every varying config key except <code>train.seed</code>; the seeds are the "
                "spread within an arm. Heatmaps and attention maps show one run per arm" + esc(seed_txt) +
                " (the same runs as the layer × step heatmaps below); the arms the claims of "
                "<code>verdict.json</code> compare come first when not all fit (<code>--max-runs</code> "
                f"{args.max_runs}).</p>")
    if compact_labels:
        body.append("<p>Arms are labelled by what they change against the reference (the most common value of "
                    "each varying key); the second column gives every key.</p>")
    body.append(page.table(["arm"] + (["config"] if compact_labels else []) + ["seeds", "run drawn",
                                                                               "claims comparing it"], rows))
    left = sel.left_out(args.max_runs)
    if left:
        rep.notes.append(f"sinks section: {len(left)} arm(s) not shown (at most --max-runs {args.max_runs}): "
                         + esc(", ".join(a.label for a in left)))
    sources = ("Gu et al. 2024 §3 (α₀, Sink^ε); Chen, Lin &amp; Yao 2026 (arXiv 2603.17771) §2 Eq. 1–3 (sink rate, "
               "R_GS), §5.1 (V-scale); instrument/docs/attention.md, gradients.md, residual.md, weights.md")

    # 1. α₀ heatmap.
    fig, shown = fig_alpha0(reps, titles, _uniform_alpha0(reps))
    if fig is not None:
        cap = (f"<b>First-token attention α₀ per head</b> (<code>alpha0</code>): α₀ = batch-mean over the probe "
               f"batch of (1/T_ε) Σ_{{i&lt;T_ε}} P[i, 0], T_ε = min(64, T) (Gu et al. 2024 §3.2), for every "
               f"(layer, head) (rows; white lines between layers) at every probe (columns, equally spaced, not to "
               f"scale). One panel per arm{esc(seed_txt)}: {_runs_list(reps)}. Shared colour scale 0–1; dashed on "
               f"the colour bar: ε = {EPS}, Gu's threshold (a head above it is a sink head; <code>sink_gs</code> is "
               f"their fraction per layer)")
        u = _uniform_alpha0(reps)
        if u is not None:
            cap += f"; dotted: uniform causal attention, H_Tε/T_ε = {u:.3f}"
        cap += ". Grey: not recorded or non-finite. Sources: " + sources + "."
        body.append(rep.save(fig, "sinks_alpha0", cap, "alpha0 per layer and head over probe steps, one panel per arm",
                             runs=[r.label for r in reps if r.head_matrix("alpha0") is not None]))
    else:
        rep.notes.append("sinks section: no shown run records <code>alpha0</code> per head: no α₀ heatmap")

    # 2. R_GS(0) over steps.
    fig = fig_rgs(pool)
    if fig is not None:
        cap = ("<b>Gradient-sink ratio R_GS(0) per layer over training</b> (<code>rgs_sum</code>): R_GS^ℓ(0) = "
               "‖G₀‖ / mean_{t=1..T_e} ‖G_t‖, G_t the batch-summed gradient at position t of the normalised "
               "attention input of layer ℓ, T_e = min(31, T−1) (Chen, Lin &amp; Yao 2026 Def. 1, Eq. 3); the last "
               "panel is its median over layers (<code>rgs_median</code>, the paper's per-model summary). One line "
               "per arm")
        if any(len(a.runs) > 1 for a in pool):
            cap += (": the median over seeds (thick), each seed (thin) and the min–max band over seeds "
                    "(" + "; ".join(f"{esc(a.label)}: seeds {', '.join(str(s) for s in a.seeds())}" for a in pool)
                    + ")")
        cap += (". Open squares: step 0, the initial model (<code>instrument.probe_at_init</code>), the reference "
                "of the claim that the sink grows with training; dotted: R_GS = 1. Log y. Red × at the top: a "
                "non-finite value.")
        body.append(rep.save(fig, "sinks_rgs", cap, "gradient-sink ratio per layer over steps, one line per arm",
                             runs=[r.label for a in pool for r in a.runs if r.has("rgs_sum")]))
    else:
        rep.notes.append("sinks section: no shown run records <code>rgs_sum</code>: no R_GS figure")

    # 3. Token-0 norms.
    fig, steps_used = fig_t0norms(pool)
    if fig is not None:
        st = ", ".join(str(s) for s in sorted(steps_used))
        cap = ("<b>Token 0 against the early tokens, by layer</b>, at each run's last probe (step "
               f"{esc(st)}): <code>t0_ratio_out</code> = ‖h_out(t=0)‖ / mean_{{t=1..15}} ‖h_out(t)‖ with h_out the "
               "output of block l (the residual stream), <code>t0_ratio_mlp</code> the same for the MLP output "
               "r_mlp, and the absolute token-0 norms <code>norm_out</code> and <code>norm_mlp</code> at index 0 "
               "(batch means of ℓ2 norms on the probe batch; instrument/docs/residual.md; gradient-sinks.md §2.3; "
               "the paper's rebuttal table, 0.3B baseline ratio 11.1, V-scale 3.0). One bar per arm")
        if any(len(a.runs) > 1 for a in pool):
            cap += ": the median over seeds, error bar = min–max over seeds, dots = the seeds"
        cap += (". Dotted: ratio 1 (token 0 like the others). Layers ≥ 0 (the embedding, layer −1, is left out). Red × "
                "at the top: a non-finite value (no bar when no seed is finite).")
        body.append(rep.save(fig, "sinks_t0norms", cap, "token-0 norm ratios and norms by layer, bars per arm",
                             runs=[r.label for a in pool for r in a.runs if any(r.has(p[0]) for p in T0_PANELS)]))
    else:
        rep.notes.append("sinks section: no shown run records <code>t0_ratio_out</code>/<code>t0_ratio_mlp</code>/"
                         "<code>norm_out</code>/<code>norm_mlp</code> (instrument.residual off?): no token-0 norm "
                         "figure")

    # 4. V-scale θ.
    fig, shown = fig_theta(reps, titles)
    if fig is not None:
        th = [r for r in reps if r.has("vscale_theta")]
        const = [r for r in th if len(np.unique(_finite(r.metrics["vscale_theta"][:, 4]))) <= 1]
        cap = ("<b>V-scale parameter θ per head over training</b> (<code>vscale_theta</code>, "
               "instrument/docs/weights.md): the value norm is rescaled by φ(‖v‖²) with C = d·d_h·σ²·e^θ "
               "(gradient-sinks.md §1.2; Chen, Lin &amp; Yao 2026 §5.1); rows (layer, head), columns probe steps "
               f"(equally spaced). Runs with V-scale{esc(seed_txt)}: {_runs_list(th)}. Diverging colour scale "
               "centred on 0 (the initial θ, <code>model.v_scale_theta</code>); the paper finds θ positive in "
               "early layers and mostly negative later.")
        if const:
            cap += (" θ does not change in " + _runs_list(const) + " (constant at "
                    + ", ".join(page.fmt(float(_finite(r.metrics['vscale_theta'][:, 4])[0])) if len(
                        _finite(r.metrics['vscale_theta'][:, 4])) else "nan" for r in const) + ").")
        body.append(rep.save(fig, "sinks_theta", cap, "V-scale theta per layer and head over probe steps",
                             runs=[r.label for r in th]))
    else:
        rep.notes.append("sinks section: no shown run records <code>vscale_theta</code> (only runs with "
                         "<code>model.v_scale</code> learned / backward_only do): no θ figure")

    # 5. Attention maps of a layer-0 head per arm, at several checkpoints, tokens as characters.
    if args.no_attention:
        body.append("<p>Attention maps skipped (--no-attention).</p>")
        return body
    apool = sel.take(args.max_attention_runs)
    layer = heads_req[0][0] if heads_req else 0
    fixed_head = heads_req[0][1] if heads_req and heads_req[0][1] is not None else None
    head, head_arm = (fixed_head, None) if fixed_head is not None else _sink_head(sel, apool, layer)
    window = args.window or 24
    rows, anotes, used_steps, tok_notes, texts, drawn = [], [], set(), set(), [], []
    for a in apool:
        r = a.rep
        ck = [s for s, _ in r.checkpoints()]
        if not ck:
            anotes.append(f"{esc(a.label)}: no checkpoints, no attention maps")
            continue
        avail = sorted(set(ck) | ({0} if binary else set()))
        chosen = _choose_attn_steps(avail, steps_req)
        res = attnmaps.compute(r, [(layer, head)], chosen, binary, seq=args.seq, with_init=True)
        for n in res.get("notes", []):
            if not n.startswith("no checkpoint at step"):
                anotes.append(f"{esc(r.label)}: {esc(n)}")
        if "skip" in res:
            anotes.append(f"{esc(r.label)}: attention maps skipped — {esc(res['skip'])}")
            continue
        if len(res["maps"]) < 2:
            anotes.append(f"{esc(r.label)}: only one checkpoint (step {res['maps'][0][0]}) could be drawn; set "
                          "<code>train.checkpoint_every</code> or give --attnlab for step 0")
        maps = []
        for s, probs, p0 in res["maps"]:
            used_steps.add(s)
            l, h = res["heads"][0]
            title = f"L{l} H{h} · step {s}" + (" (init)" if s == 0 and res["init"] else "")
            maps.append((s, probs[l][0, h], p0[l][0, h] if (res["extra_key"] and p0[l] is not None) else None,
                         res["labels"], title))
        rows.append((arm_title(a, r, sel.seeded, width=18), maps, res["extra_key"]))
        drawn.append(r.label)
        tok_notes.add(res["tokens_note"])
        texts.append((a, res["text"] if len(res["tokens"]) <= window else
                      attnmaps.token_text(res["tokens"], r, res["cfg"]["vocab"], n=window)))
    if rows:
        fig = fig_sink_attention(rows, window)
        hsrc = (f"--heads {layer}:{head}" if fixed_head is not None else
                f"the layer-{layer} head with the largest α₀ at the last probe in {esc(head_arm.label)}"
                if head_arm is not None else "head 0 (α₀ not recorded)")
        cap = (f"<b>Attention maps of head L{layer} H{head}, one row per arm{esc(seed_txt)}, at several "
               f"checkpoints</b> ({hsrc}; the same head in every row). P[i, j] (query i, key j) recomputed in "
               f"NumPy (float64) from the checkpoints at steps {', '.join(str(s) for s in sorted(used_steps))}")
        if 0 in used_steps:
            cap += ("; step 0 is the initial model, rebuilt by <code>attnlab grads</code> from the run's "
                    "<code>train.seed</code> (the parameters the run started from)")
        shown_n = max(min(window, len(m[3])) for _, ms, _ in rows for m in ms)
        cap += (f". Input: the first {shown_n} positions of {esc('; '.join(sorted(tok_notes)))}, drawn as "
                "characters: ⟨bos⟩ = BOS, ↵ = newline, · = space, ⇥ = tab, two hex digits = another byte (for "
                "non-text data the token id). Causal: keys j &gt; i are white. Square-root colour scale. A sink "
                "shows as a bright column under ⟨bos⟩ (key 0). Text per arm: "
                + "; ".join(f"{esc(a.label)}: <code>{esc(t)}</code>" for a, t in texts) + ".")
        body.append(rep.save(fig, "sinks_attn", cap, "attention maps of a layer-0 head per arm at several checkpoints",
                             runs=drawn))
    else:
        rep.notes.append("sinks section: no shown run has checkpoints that could be evaluated: no attention maps "
                         "by arm")
    if anotes:
        body.append(page.notes_box(anotes, "Attention maps by arm: notes"))
    return body


def attnmaps_seed(r):
    s = r.get("train.seed")
    return s if s is not None else "?"
