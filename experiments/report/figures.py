"""The report's figures (matplotlib, Agg). Every function returns a Figure (or None when there is nothing to
draw) and never shows it; report.py saves each as PNG and SVG and embeds the PNG in the page.

Sizes are for a two-column paper: COL = one column (3.4 in), FULL = both columns (7.0 in); fonts 7–8 pt.
"""
import math
import os

# Matplotlib writes a font cache and config on first use, by default under $HOME/.cache and $HOME/.config;
# keep them in attnlab's declared cache ($XDG_CACHE_HOME or ~/.cache, then attnlab/), next to the corpora.
os.environ.setdefault("MPLCONFIGDIR", os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                   os.path.join(os.path.expanduser("~"), ".cache"),
                                                   "attnlab", "matplotlib"))
import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import colors as mcolors  # noqa: E402
from matplotlib import transforms as mtransforms  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

COL, FULL = 3.4, 7.0

plt.rcParams.update({
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.25, "grid.linewidth": 0.5, "lines.linewidth": 1.1, "savefig.dpi": 200,
    "savefig.bbox": "tight", "savefig.pad_inches": 0.03, "legend.frameon": False, "svg.fonttype": "path",
    "image.interpolation": "nearest", "figure.dpi": 100,
})

# Early-warning kinds (instrument/docs/README.md "Early warnings") -> marker.
EVENT_MARKERS = {
    "entropy_collapse": "v", "logit_growth": "^", "sink_emergence": "s", "rank_collapse": "D",
    "massive_activation": "P", "loss_spike": "*", "grad_spike": "X", "grad_explosion": "h",
    "grad_vanishing": "d", "nonfinite": "x", "flight_recorder": "|", "interrupted": ">", "resume": "<",
}
_UNFILLED = {"x", "|", "+", "_", "1", "2", "3", "4"}
# Not drawn on the loss curve (they mark bookkeeping, not the model's state); still in the strip and table.
_NOT_ON_CURVE = {"flight_recorder", "resume"}

# Layer × step heatmaps: metric -> (reduce over heads, colour scale, colormap, colourbar label, threshold key)
HEATMAPS = [
    ("ent_norm", "min", "linear01", "viridis", "normalised entropy\n(min over heads)", "warn_entropy"),
    ("zabsmax", "max", "log", "magma", "max |attention logit|\n(max over heads)", "warn_logit"),
    ("sink_gs", None, "linear01", "cividis", "sink rate\n(fraction α₀ > 0.3)", None),
    ("rgs_sum", None, "log", "plasma", "gradient-sink\nratio R_GS", None),
    ("mass_ratio", None, "log", "inferno", "top-1 / median |x|", "warn_mass_ratio"),
]
HEATMAP_TITLES = {
    "ent_norm": "Attention entropy (normalised), minimum over heads",
    "zabsmax": "Maximum attention logit, maximum over heads",
    "sink_gs": "Attention-sink rate per layer",
    "rgs_sum": "Gradient-sink ratio R_GS per layer",
    "mass_ratio": "Massive-activation ratio per layer (block output)",
}


def run_colors(runs):
    """label -> colour, consistent across figures: tab10 for up to 10 runs, else viridis in the page's order."""
    n = len(runs)
    if n <= 10:
        cyc = plt.get_cmap("tab10").colors
        return {r.label: cyc[i] for i, r in enumerate(runs)}
    cm = plt.get_cmap("viridis")
    return {r.label: cm(i / max(n - 1, 1)) for i, r in enumerate(runs)}


_BOOL_WORDS = {"true": False, "false": False, "on": False, "off": False, "yes": False, "no": False}
# Line style of a boolean axis' values: false/off solid, true/on dashed (the eval loss has its own markers).
BOOL_LS = {False: "-", True: (0, (4.5, 1.8))}


def as_bool(v):
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in _BOOL_WORDS:
        return s in ("true", "on", "yes")
    return None


def boolean_axis(axes):
    """The first varying key with exactly the values false and true (or off/on), e.g. model.qk_norm; else None."""
    for k, vals in axes.items():
        if k == "train.seed" or len(vals) != 2:
            continue
        b = [as_bool(v) for v in vals]
        if None not in b and set(b) == {False, True}:
            return k
    return None


class Styles:
    """Colour and line style per run label. With a boolean sweep axis (boolean_axis), the line style shows it
    (false solid, true dashed) and the colour the other axes, so a pair of runs that differs only in the toggle
    shares its colour; else every run has its own colour and solid lines."""

    def __init__(self, runs, axes):
        self.bool_key = boolean_axis(axes)
        self.ls = {r.label: "-" for r in runs}
        if self.bool_key is None:
            self.color = run_colors(runs)
            return
        keys = [k for k in axes if k != self.bool_key]
        groups = []
        gof = {}
        for r in runs:
            f = r.flat_config()
            g = repr(tuple(str(f.get(k)) for k in keys))
            if g not in groups:
                groups.append(g)
            gof[r.label] = groups.index(g)
            self.ls[r.label] = BOOL_LS[bool(as_bool(f.get(self.bool_key)))]
        cyc = plt.get_cmap("tab10").colors
        cm = plt.get_cmap("viridis")
        n = len(groups)
        self.color = {lab: (cyc[i] if n <= 10 else cm(i / max(n - 1, 1))) for lab, i in gof.items()}

    def legend_handles(self):
        """Line-style key for the boolean axis (empty without one)."""
        if self.bool_key is None:
            return []
        name = self.bool_key.split(".")[-1]
        return [Line2D([], [], color="0.3", lw=1.2, ls=BOOL_LS[False], label=f"{name} = false"),
                Line2D([], [], color="0.3", lw=1.2, ls=BOOL_LS[True], label=f"{name} = true")]


def short(label, n=42):
    return label if len(label) <= n else label[: n - 1] + "…"


def _smooth(y):
    """Centred moving average over ~1 % of the points (odd window, shrinking at the ends; non-finite values
    left out), so the smoothed curve does not lag behind fast changes as a trailing average would."""
    w = max(1, len(y) // 100) | 1
    if w == 1:
        return y
    fin = np.isfinite(y)
    k = np.ones(w)
    num = np.convolve(np.where(fin, y, 0.0), k, mode="same")
    den = np.convolve(fin.astype(np.float64), k, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[~fin] = np.nan
    return out


def _mark_nonfinite(ax, xs, color, label=None):
    """Non-finite values as red crosses along the top of the axes."""
    if len(xs) == 0:
        return
    tr = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    ax.scatter(xs, np.full(len(xs), 0.97), transform=tr, marker="x", s=18, color="#c00000", zorder=5,
               clip_on=False, label=label)
    # The blended transform keeps them out of the data limits: extend x so they stay inside these axes.
    ax.dataLim.update_from_data_x(np.asarray(xs, dtype=np.float64), ignore=False)
    ax.autoscale_view(scaley=False)


# ---------------------------------------------------------------------------------------------------
# Loss


def fig_loss(runs, colors, styles=None):
    """Train loss (lines) and eval loss (open circles) per run, in the given order; styles: Styles (colour and
    line style per run), else `colors` and solid lines."""
    ls = styles.ls if styles is not None else {}
    with_train = [r for r in runs if r.train]
    if not with_train:
        return None
    events = [(i, r, e) for i, r in enumerate(with_train) for e in r.events if "step" in e]
    many = len(with_train) > 6
    width = FULL if (many or events) else COL + 0.6
    if events:
        fig, (ax, axe) = plt.subplots(2, 1, figsize=(width, 3.6 + 0.12 * len(with_train)), sharex=True,
                                      gridspec_kw=dict(height_ratios=[3, 1 + 0.1 * len(with_train)], hspace=0.32))
    else:
        fig, ax = plt.subplots(figsize=(width, 2.6))
        axe = None
    finite_all = []
    for r in with_train:
        c = colors[r.label]
        s, y = r.train["step"], r.train["loss"]
        fin = np.isfinite(y)
        finite_all.append(y[fin])
        st = ls.get(r.label, "-")
        if len(s) > 100:
            ax.plot(s, y, color=c, lw=0.5, alpha=0.3, ls=st)
            ax.plot(s, _smooth(y), color=c, lw=1.2, label=short(r.label), ls=st)
        else:
            ax.plot(s, y, color=c, lw=1.2, label=short(r.label), ls=st)
        _mark_nonfinite(ax, s[~fin], c)
        if r.eval:
            es, ev = r.eval["step"], r.eval["val_loss"]
            # Eval: open circles on a thin line; dotted unless the line style shows a boolean axis.
            ax.plot(es, ev, color=c, lw=0.8, ls=st if styles is not None and styles.bool_key else ":", marker="o",
                    ms=2.8, mfc="white", mew=0.8)
            finite_all.append(ev[np.isfinite(ev)])
            _mark_nonfinite(ax, es[~np.isfinite(ev)], c)
    fin = np.concatenate(finite_all) if finite_all else np.array([])
    fin = fin[fin > 0]
    if len(fin) and fin.max() / fin.min() > 20:
        ax.set_yscale("log")
    ax.set_ylabel("loss (nats / token)")
    ax.set_title("Training loss (line) and evaluation loss (○)", loc="left")
    style = [Line2D([], [], color="0.3", lw=1.2, label="train" + (" (smoothed; raw faint)" if any(
        len(r.train["step"]) > 100 for r in with_train) else "")),
        Line2D([], [], color="0.3", lw=0.8, ls=":", marker="o", ms=2.8, mfc="white", label="eval")]
    if styles is not None:
        style += styles.legend_handles()
    handles, labels = ax.get_legend_handles_labels()
    leg_kw = dict(loc="upper left", bbox_to_anchor=(1.01, 1.0)) if (many or events) else dict(loc="upper right")
    ax.legend(handles + style, labels + [h.get_label() for h in style], **leg_kw,
              ncol=1 if len(with_train) < 14 else 2)
    if axe is not None:
        kinds_seen = []
        for i, r, e in events:
            k = e.get("kind", "?")
            mk = EVENT_MARKERS.get(k, "o")
            if k not in kinds_seen:
                kinds_seen.append(k)
            st = e["step"]
            edge = dict(edgecolor="black", linewidths=0.4) if mk not in _UNFILLED else dict(linewidths=1.0)
            axe.scatter([st], [i], marker=mk, s=28, color=colors[r.label], zorder=4, **edge)
            if k not in _NOT_ON_CURVE and len(with_train) <= 8:
                ly = np.interp(st, r.train["step"], np.where(np.isfinite(r.train["loss"]), r.train["loss"],
                                                             np.nanmax(fin) if len(fin) else 0))
                ax.scatter([st], [ly], marker=mk, s=30, color=colors[r.label], zorder=6, **edge)
        axe.set_yticks(range(len(with_train)))
        axe.set_yticklabels([short(r.label, 40) for r in with_train], fontsize=6 if len(with_train) > 8 else 7)
        axe.set_ylim(-0.6, len(with_train) - 0.4)
        axe.invert_yaxis()
        axe.grid(axis="y", alpha=0)
        axe.set_xlabel("step")
        axe.set_title("Early-warning events (events.jsonl)", loc="left")
        kh = [Line2D([], [], ls="", marker=EVENT_MARKERS.get(k, "o"), color="0.6", mec="black", mew=0.4, ms=5,
                     label=k) for k in kinds_seen]
        axe.legend(handles=kh, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="event kind",
                   title_fontsize=7)
    else:
        ax.set_xlabel("step")
    return fig


# Training-step statistics of the train records: field -> (panel title, y label, log y, smoothed)
TRAIN_STATS = [
    ("grad_norm", "Gradient norm (before clipping)", "‖∇θ‖₂", True, True),
    ("lr", "Learning rate (schedule)", "learning rate", False, False),
    ("tokens_per_s", "Throughput", "tokens / s", False, True),
]


def fig_train_stats(runs, styles):
    """Grad norm, learning rate and tokens/s per step, one panel each, runs overlaid (colours and line styles as
    in the loss figure). -> (Figure, [labels drawn]) or (None, [])."""
    have = [r for r in runs if r.train and any(np.isfinite(r.train.get(f, np.array([np.nan]))).any()
                                               for f, *_ in TRAIN_STATS)]
    if not have:
        return None, []
    fig, axs = plt.subplots(1, 3, figsize=(FULL, 2.3), constrained_layout=True)
    for ax, (fld, title, ylab, logy, smooth) in zip(axs, TRAIN_STATS):
        for r in have:
            s, y = r.train["step"], r.train.get(fld)
            if y is None:
                continue
            c, st = styles.color[r.label], styles.ls[r.label]
            fin = np.isfinite(y)
            if smooth and len(s) > 100:
                ax.plot(s, y, color=c, lw=0.4, alpha=0.3, ls=st)
                ax.plot(s, _smooth(y), color=c, lw=1.1, ls=st, label=short(r.label, 30))
            else:
                ax.plot(s, y, color=c, lw=1.1, ls=st, label=short(r.label, 30))
            _mark_nonfinite(ax, s[~fin], c)
        if logy:
            pos = np.concatenate([r.train[fld][np.isfinite(r.train[fld]) & (r.train[fld] > 0)] for r in have
                                  if fld in r.train])
            if len(pos) and pos.max() / pos.min() >= 10:
                ax.set_yscale("log")
        ax.set_title(title, loc="left")
        ax.set_ylabel(ylab)
        ax.set_xlabel("step")
        if fld == "tokens_per_s":
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
                lambda v, _: f"{v / 1e6:g}M" if abs(v) >= 1e6 else f"{v / 1e3:g}k" if abs(v) >= 1e3 else f"{v:g}"))
        elif ax.get_yscale() == "linear":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
    handles, labels = axs[0].get_legend_handles_labels()
    extra = styles.legend_handles()
    fig.legend(handles + extra, labels + [h.get_label() for h in extra], loc="lower center",
               bbox_to_anchor=(0.5, 1.0), ncol=min(4, len(handles) + len(extra)), fontsize=6.5)
    return fig, [r.label for r in have]


# ---------------------------------------------------------------------------------------------------
# Layer × step heatmaps


def _edges(v, floor=None):
    """Cell edges around the centres v (half-way between neighbours); the first edge not below `floor`."""
    v = np.asarray(v, dtype=np.float64)
    if len(v) == 1:
        e = np.array([v[0] - 0.5, v[0] + 0.5])
    else:
        mid = (v[1:] + v[:-1]) / 2
        e = np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])
    if floor is not None:
        e[0] = max(e[0], floor)
    return e


def heatmap_data(run, metric, reduce):
    return run.layer_matrix(metric, reduce_heads=reduce)


def fig_heatmap(runs, metric, reduce, scale, cmap, cbar_label, threshold=None):
    """One panel per run, in the given order (report.py passes the page's chosen runs, the same for every
    heatmap); a run that does not record `metric` keeps its panel, marked "not recorded". None when no run
    records it."""
    data = [(r, heatmap_data(r, metric, reduce)) for r in runs]
    if all(d is None for _, d in data):
        return None
    have = data
    allv = np.concatenate([d[2][np.isfinite(d[2])].ravel() for _, d in have if d is not None])
    if scale == "log":
        pos = allv[allv > 0]
        lo, hi = (pos.min(), pos.max()) if len(pos) else (1e-3, 1.0)
        if hi <= lo:
            hi = lo * 10
        norm = mcolors.LogNorm(vmin=lo, vmax=hi)
    else:
        norm = mcolors.Normalize(vmin=0.0, vmax=1.0)
    n = len(have)
    ncols = 1 if n == 1 else (2 if n in (2, 4) else 3)
    nrows = math.ceil(n / ncols)
    width = COL + 0.5 if ncols == 1 else FULL
    layers_max = max(len(d[1]) for _, d in have if d is not None)
    ph = 1.25 + 0.15 * min(layers_max, 12)
    fig, axs = plt.subplots(nrows, ncols, figsize=(width, ph * nrows + 0.4), squeeze=False,
                            constrained_layout=True)
    cm = plt.get_cmap(cmap).copy()
    cm.set_bad("#d9d9d9")
    mesh = None
    for k, (r, d) in enumerate(have):
        ax = axs[k // ncols][k % ncols]
        if d is None:
            ax.set_title(short(r.label, 48), loc="left")
            ax.text(0.5, 0.5, f"{metric}\nnot recorded", ha="center", va="center", transform=ax.transAxes,
                    fontsize=7, color="0.35")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            continue
        steps, layers, vals = d
        v = np.ma.masked_invalid(vals)
        if scale == "log":
            v = np.ma.masked_less_equal(v, 0)
        mesh = ax.pcolormesh(_edges(steps, floor=0.0), _edges(layers), v, cmap=cm, norm=norm, shading="flat",
                             rasterized=True)
        ax.set_yticks(layers if len(layers) <= 12 else layers[:: max(1, len(layers) // 8)])
        ax.set_ylabel("layer")
        ax.set_xlabel("step")
        ax.set_title(short(r.label, 48), loc="left")
        ax.grid(False)
        for s in ("top", "right"):
            ax.spines[s].set_visible(True)
    for k in range(n, nrows * ncols):
        axs[k // ncols][k % ncols].set_visible(False)
    cb = fig.colorbar(mesh, ax=axs, shrink=0.95 if nrows > 1 else 1.0, aspect=25 if nrows > 1 else 12, pad=0.015)
    cb.set_label(cbar_label)
    if scale == "log":
        log_labels(cb.ax.yaxis, norm.vmin, norm.vmax)
    if threshold is not None and norm.vmin < threshold < norm.vmax:
        cb.ax.axhline(threshold, color="white", lw=1.2)
        cb.ax.axhline(threshold, color="black", lw=0.6, ls="--")
    return fig


def log_labels(axis, lo, hi):
    """On a log axis spanning less than two decades, label the 2×, 5× minor ticks too (plain numbers), so a
    narrow range does not end up with a single labelled tick."""
    from matplotlib import ticker
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0 or hi / lo >= 100:
        return
    axis.set_minor_locator(ticker.LogLocator(subs=(2, 3, 5)))
    axis.set_minor_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))


# ---------------------------------------------------------------------------------------------------
# Per-position ∇q / ∇k / ∇v


def pick_steps(available, requested=None, n=4):
    """Probe steps to show: the ones nearest each requested step, or the last one and up to n−1 earlier ones
    spread geometrically (so early dynamics are not all squeezed out), and step 0 when it was probed."""
    available = np.asarray(sorted(set(int(s) for s in available)))
    if not len(available):
        return []
    if requested:
        out = sorted({int(available[np.argmin(np.abs(available - s))]) for s in requested})
        return out
    last = available[-1]
    first = available[0]
    if len(available) <= n:
        return list(available)
    out = set()
    if first == 0:  # the initial model (instrument.probe_at_init): the reference the claims compare with
        out.add(0)
        n -= 1
    for t in np.geomspace(max(first, 1), last, n):  # the nearest probe not already taken
        free = np.array([a for a in available if int(a) not in out])
        if len(free):
            out.add(int(free[np.argmin(np.abs(free - t))]))
    return sorted(out)


def fig_gradpos(runs, requested_steps=None, max_runs=4, labels=None):
    """One row per run (in the given order; report.py passes the page's chosen runs), ∇q / ∇k / ∇v by position
    at a few probe steps. labels: run label -> row label."""
    names = ("grad_q_norm", "grad_k_norm", "grad_v_norm")
    have = [r for r in runs if any(r.has(m) for m in names)]
    if not have:
        return None, [], {}
    shown, dropped = have[:max_runs], have[max_runs:]
    labels = labels or {}
    fig, axs = plt.subplots(len(shown), 3, figsize=(FULL, 1.85 * len(shown) + 0.45), squeeze=False,
                            sharex=True, sharey="row", constrained_layout=True)
    steps_used = {}
    cm = plt.get_cmap("viridis")
    for i, r in enumerate(shown):
        steps = pick_steps(r.probe_steps("grad_v_norm" if r.has("grad_v_norm") else names[0]), requested_steps)
        steps_used[r.label] = steps
        for j, m in enumerate(names):
            ax = axs[i][j]
            for si, s in enumerate(steps):
                prof = r.profile(m, s)
                if prof is None:
                    continue
                t, v = prof
                col = cm(0.1 + 0.8 * (si / max(len(steps) - 1, 1)))  # by rank: early probes stay distinct
                pos = v > 0  # ∇q at t = 0 is exactly 0 (a_00 = 1): not drawable on a log axis
                ax.plot(t[pos], v[pos], color=col, marker="o", ms=2.2, lw=1.0, label=f"step {s}")
            ax.set_yscale("log")
            sym = {"grad_q_norm": "q", "grad_k_norm": "k", "grad_v_norm": "v"}[m]
            if i == 0:
                what = {"q": "query", "k": "key", "v": "value"}[sym]
                ax.set_title(f"{what} gradient ‖Σ_b ∇{sym}_t‖", loc="left")
            if i == len(shown) - 1:
                ax.set_xlabel("position t")
            if j == 0:
                ax.set_ylabel(labels.get(r.label, short(r.label, 26)) + "\nnorm (mean over layers)", fontsize=7)
            if j == 2:
                ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig, [r.label for r in dropped], steps_used


# ---------------------------------------------------------------------------------------------------
# Sweep comparison

SWEEP_PANELS = [
    # (metric, reduce, layer, y label, log y)
    ("__loss__", None, None, "final loss (nats)", False),
    ("zabsmax", "max", None, "final max |attn logit|\n(over layers, heads)", True),
    ("ent_norm", "min", None, "final min entropy\n(normalised)", False),
    ("sink_gs", "mean", None, "final sink rate\n(mean over layers)", False),
    ("rgs_median", None, -1, "final R_GS\n(median over layers)", True),
    ("mass_ratio", "max", None, "final top-1/median |x|\n(max over layers)", True),
]

AXIS_NAMES = {"optim.lr": "peak learning rate (optim.lr)", "optim.weight_decay": "weight decay",
              "train.seed": "seed", "model.d_model": "d_model", "model.n_layer": "layers"}


def _sweep_value(r, metric, reduce, layer, loss_kind):
    if metric == "__loss__":
        return r.final(loss_kind)
    if not r.has(metric):
        return math.nan
    return r.final(metric, reduce=reduce or "max", layer=layer)


def _fmt_val(v):
    return ("true" if v else "false") if isinstance(v, bool) else v


def _maybe_logy(ax, logy, values):
    """Log y only when the values are positive and span at least a decade (else plain tick labels read better)."""
    ys = np.asarray(values, dtype=np.float64)
    ys = ys[np.isfinite(ys)]
    if logy and len(ys) and np.all(ys > 0) and ys.max() / ys.min() >= 10:
        ax.set_yscale("log")


def choose_x_axis(axes):
    from rundata import is_numeric_axis
    numeric = [k for k, v in axes.items() if is_numeric_axis(v) and k != "train.seed"]
    if "optim.lr" in numeric:
        return "optim.lr"
    if numeric:
        return max(numeric, key=lambda k: len(axes[k]))
    return None


def fig_sweep(runs, axes, colors, arms=None):
    """Final metrics against the sweep's numeric axis (Wortsman et al. 2023's LR-sensitivity plot), one line per
    combination of the other axes, seeds averaged (bars: min–max). Without a numeric axis: one column per arm
    (arms.Arm: runs sharing every varying key but the seed), a dot per seed and the median; else one point per
    run."""
    if len(runs) < 2 or not axes:
        return None, {}
    xkey = choose_x_axis(axes)
    loss_kind = "val_loss" if any(r.eval for r in runs) else "loss"
    panels = [p for p in SWEEP_PANELS if p[0] == "__loss__" or any(r.has(p[0]) for r in runs)]
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axs = plt.subplots(nrows, ncols, figsize=(FULL, 2.2 * nrows + 0.5), squeeze=False, constrained_layout=True)
    info = {"x": xkey, "loss": loss_kind}
    group_keys = [k for k in axes if k not in (xkey, "train.seed")]
    if xkey is not None:
        groups = {}
        for r in runs:
            f = r.flat_config()
            g = tuple((k, f.get(k)) for k in group_keys)
            groups.setdefault(g, []).append(r)
        # A boolean key among the others is the line style (false solid, true dashed); colour = the rest.
        bkey = boolean_axis({k: axes[k] for k in group_keys})
        cm = plt.get_cmap("tab10")
        rest = []
        for g in groups:
            c = tuple(kv for kv in g if kv[0] != bkey)
            if c not in rest:
                rest.append(c)
        gcol = {g: cm(rest.index(tuple(kv for kv in g if kv[0] != bkey)) % 10) for g in groups}
        gls = {g: BOOL_LS[bool(as_bool(dict(g)[bkey]))] if bkey else "-" for g in groups}
        info["bool_key"] = bkey
        xs_all = sorted({float(r.flat_config().get(xkey)) for r in runs})
        logx = all(x > 0 for x in xs_all) and max(xs_all) / min(xs_all) >= 10
        for pi, (metric, reduce, layer, ylabel, logy) in enumerate(panels):
            ax = axs[pi // ncols][pi % ncols]
            bad_x, plotted = [], []
            for g, rs in groups.items():
                by_x = {}
                for r in rs:
                    by_x.setdefault(r.flat_config().get(xkey), []).append(
                        _sweep_value(r, metric, reduce, layer, loss_kind))
                xs = sorted(by_x)
                mean, lo, hi = [], [], []
                for x in xs:
                    v = np.array(by_x[x], dtype=np.float64)
                    fv = v[np.isfinite(v)]
                    if len(fv) < len(v):
                        bad_x.append(x)
                    mean.append(fv.mean() if len(fv) else np.nan)
                    lo.append(fv.min() if len(fv) else np.nan)
                    hi.append(fv.max() if len(fv) else np.nan)
                mean, lo, hi = map(np.array, (mean, lo, hi))
                plotted += list(lo) + list(hi)
                lab = ", ".join(f"{k.split('.')[-1]}={_fmt_val(v)}" for k, v in g) or None
                ax.plot(xs, mean, color=gcol[g], ls=gls[g], marker="o", ms=3, lw=1.1, label=lab)
                if np.any(hi > lo):
                    ax.fill_between(xs, lo, hi, color=gcol[g], alpha=0.15, lw=0)
            _mark_nonfinite(ax, bad_x, "red")
            if logx:
                ax.set_xscale("log")
            _maybe_logy(ax, logy, plotted)
            ax.set_ylabel(ylabel if metric != "__loss__" else
                          ("final eval loss (nats)" if loss_kind == "val_loss" else "final train loss (nats)"))
            ax.set_xlabel(AXIS_NAMES.get(xkey, xkey))
            if pi == 0 and len(groups) > 1:
                ax.legend(loc="best")
    elif arms and len(arms) >= 2:
        # No numeric axis: one column per arm (every varying key but the seed), a dot per seed, the median as
        # a bar; runs with a non-finite value as red × at the top.
        info["arms"] = True
        xs = np.arange(len(arms))
        nmax = max(len(a.runs) for a in arms)
        for pi, (metric, reduce, layer, ylabel, logy) in enumerate(panels):
            ax = axs[pi // ncols][pi % ncols]
            plotted, bad = [], []
            for ai, a in enumerate(arms):
                v = np.array([_sweep_value(r, metric, reduce, layer, loss_kind) for r in a.runs], dtype=np.float64)
                fin = np.isfinite(v)
                if not fin.all():
                    bad.append(ai)
                jit = (np.arange(len(v)) - (len(v) - 1) / 2) * (0.5 / max(nmax, 2))
                ax.scatter(ai + jit[fin], v[fin], color=a.color, s=12, zorder=3, edgecolors="black", linewidths=0.3)
                if fin.sum() > 1:
                    med = float(np.median(v[fin]))
                    ax.plot([ai - 0.3, ai + 0.3], [med, med], color=a.color, lw=1.6, zorder=2)
                plotted += list(v[fin])
            _mark_nonfinite(ax, bad, "red")
            ax.set_xticks(xs)
            vals = [a.values() for a in arms]
            tilt = len(arms) > 6 or (len(arms) > 3 and max(len(x) for v in vals for x in v.split("\n")) > 8)
            if tilt:
                vals = [a.values(" / ") for a in arms]
            ax.set_xticklabels(vals, fontsize=6, rotation=30 if tilt else 0, ha="right" if tilt else "center",
                               rotation_mode="anchor" if tilt else "default")
            ax.set_xlabel("arm (change from the reference)" if arms[0].compact else
                          " / ".join(k.split(".")[-1] for k, _ in arms[0].key), fontsize=7)
            ax.set_xlim(-0.6, len(arms) - 0.4)
            ax.grid(axis="x", alpha=0)
            _maybe_logy(ax, logy, plotted)
            ax.set_ylabel(ylabel if metric != "__loss__" else
                          ("final eval loss (nats)" if loss_kind == "val_loss" else "final train loss (nats)"))
    else:
        flats = [r.flat_config() for r in runs]
        labels = [short(", ".join(f"{k.split('.')[-1]}={_fmt_val(f.get(k))}" for k in axes) or r.label, 28)
                  for r, f in zip(runs, flats)]
        for pi, (metric, reduce, layer, ylabel, logy) in enumerate(panels):
            ax = axs[pi // ncols][pi % ncols]
            vals = np.array([_sweep_value(r, metric, reduce, layer, loss_kind) for r in runs])
            xs = np.arange(len(runs))
            fin = np.isfinite(vals)
            ax.scatter(xs[fin], vals[fin], c=[colors[r.label] for r, ok in zip(runs, fin) if ok], s=18, zorder=3)
            _mark_nonfinite(ax, xs[~fin], "red")
            ax.set_xticks(xs)
            tilt = len(runs) > 3
            ax.set_xticklabels(labels, rotation=40 if tilt else 0, ha="right" if tilt else "center", fontsize=6)
            ax.set_xlim(-0.5, len(runs) - 0.5)
            _maybe_logy(ax, logy, vals)
            ax.set_ylabel(ylabel if metric != "__loss__" else
                          ("final eval loss (nats)" if loss_kind == "val_loss" else "final train loss (nats)"))
    for k in range(len(panels), nrows * ncols):
        axs[k // ncols][k % ncols].set_visible(False)
    info["panels"] = [p[0] for p in panels]
    return fig, info


# ---------------------------------------------------------------------------------------------------
# Attention maps


_ATTN_NORM = mcolors.PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)


def _attn_cmap():
    cmap = plt.get_cmap("magma").copy()
    cmap.set_bad("white")
    return cmap


def char_ticks(ax, labels, n, x0=-0.5, axis="both", size=None):
    """Every position 0..n−1 labelled with its token (attnmaps.token_label); one-glyph labels upright,
    longer ones (⟨bos⟩, hex bytes) turned 90° on the x axis."""
    labs = list(labels[:n])
    fs = size or (6 if n <= 16 else 5.5 if n <= 24 else 4.5)
    kw = dict(fontsize=fs, family="DejaVu Sans Mono")
    if axis in ("both", "x"):
        xt = ([-1] if x0 < -1 else []) + list(range(n))
        ax.set_xticks(xt)
        ax.set_xticklabels((["−1"] if x0 < -1 else []) + labs, **kw)
        for t, lab in zip(ax.get_xticklabels()[(1 if x0 < -1 else 0):], labs):
            if len(lab) > 1:
                t.set_rotation(90)
    if axis in ("both", "y"):
        ax.set_yticks(range(n))
        ax.set_yticklabels(labs, **kw)
    ax.tick_params(length=1.5, pad=1)


def attn_panel(ax, p, p0, extra_key, labels=None, window=None):
    """One attention map: P[i, j] (query i, key j) of one head and sequence, the first `window` positions,
    invisible keys (j > i) white, the extra key (p0) as column −1. Token labels on the ticks when given and
    the window is at most 40 positions. -> the image (for a colour bar)."""
    T = p.shape[-1]
    n = min(window, T) if window else T
    p = p[:n, :n].astype(np.float64, copy=True)
    p[np.triu_indices(n, 1)] = np.nan  # invisible keys (j > i): white, unlike probability 0
    img, x0 = p, -0.5
    if extra_key and p0 is not None:
        img = np.concatenate([p0[:n, None], p], axis=1)
        x0 = -1.5
    im = ax.imshow(np.ma.masked_invalid(img), cmap=_attn_cmap(), norm=_ATTN_NORM,
                   extent=(x0, n - 0.5, n - 0.5, -0.5), aspect="equal")
    if x0 < -1:
        ax.axvline(-0.5, color="white", lw=0.8)
    ax.grid(False)
    if labels is not None and n <= 40:
        char_ticks(ax, labels, n, x0)
    else:
        ticks = [0, n // 2, n - 1] if n > 4 else list(range(n))
        ax.set_xticks(([-1] if x0 < -1 else []) + ticks)
        ax.set_yticks(ticks)
        ax.tick_params(labelsize=6, length=2)
    return im


def fig_attention(label, maps, heads, extra_key, max_cols=4, labels=None, window=None):
    """maps: [(step, probs list over layers [B, H, T, T], p0 list)], already for one sequence (B = 1).
    labels: token labels per position (drawn on the ticks when the window is at most 40 positions)."""
    rows = len(maps)
    panels = [(l, h) for (l, h) in heads]
    ncols = min(len(panels), max_cols)
    prow = math.ceil(len(panels) / ncols)
    nr = rows * prow
    cell = min(1.55 if not (labels is not None and window and window <= 40) else 1.7, (FULL - 0.8) / max(ncols, 1))
    fig, axs = plt.subplots(nr, ncols, figsize=(min(FULL, cell * ncols + 0.9), cell * nr + 0.5), squeeze=False,
                            constrained_layout=True)
    im = None
    for si, (step, probs, p0s) in enumerate(maps):
        for pi, (l, h) in enumerate(panels):
            ax = axs[si * prow + pi // ncols][pi % ncols]
            im = attn_panel(ax, probs[l][0, h], p0s[l][0, h] if (extra_key and p0s[l] is not None) else None,
                            extra_key, labels=labels, window=window)
            ax.set_title(f"L{l} H{h}" + (f" · step {step}" if pi % ncols == 0 or len(maps) > 1 else ""),
                         fontsize=7, loc="left")
            if pi % ncols == 0:
                ax.set_ylabel("query i", fontsize=7)
            if si * prow + pi // ncols == nr - 1:
                ax.set_xlabel("key j" + (" (−1: extra key)" if extra_key else ""), fontsize=7)
    for si in range(rows):
        for k in range(len(panels), prow * ncols):
            axs[si * prow + k // ncols][k % ncols].set_visible(False)
    cb = fig.colorbar(im, ax=axs, shrink=0.9, aspect=30, pad=0.01)
    cb.set_label("probability (√ scale)")
    fig.suptitle(short(label, 70), fontsize=8, x=0.01, ha="left")
    return fig
