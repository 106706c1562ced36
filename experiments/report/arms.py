"""Arms, seeds and the runs the page draws.

An *arm* is a set of runs that share every varying config key except `train.seed`; the seeds are the spread
within an arm. The per-run figures (heatmaps, gradient profiles, attention maps, the sinks section's
heatmaps) all draw the same runs, chosen once here:

1. With a `train.seed` axis, one run per arm at one seed: the smallest seed that the most arms have, so
   that every panel shows the same seed (an arm without it falls back to its smallest seed; noted).
2. The arms whose runs the claims of verdict.json compare are always drawn, even beyond --max-runs (in the
   order the claims name them); a claim naming a run by name makes that run its arm's panel. The other arms
   fill the budget evenly over the page's order, extremes included.
3. Figures are drawn in the page's run order (order_runs: the sweep axes' values, numbers numerically).
"""
import math
import os
import re

import numpy as np

_TRUE, _FALSE = {"true", "yes", "on"}, {"false", "no"}


def _norm(v):
    """A config value as a comparable string ('off' == False for enum toggles read by YAML 1.1)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return repr(v)
    return str(v).strip().lower()


def _same(a, b):
    na, nb = _norm(a), _norm(b)
    if na == nb:
        return True
    try:
        return math.isclose(float(na), float(nb), rel_tol=1e-9)
    except ValueError:
        return False


def short_key(k):
    return k.split(".")[-1]


def fmt_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class Arm:
    def __init__(self, key, runs):
        self.key = key  # ((config key, value), ...) over the varying keys except train.seed
        self.shown = key  # the part of the key the labels show (compact(): what differs from the reference)
        self.compact = False
        self.runs = sorted(runs, key=lambda r: (_seed(r), r.label))
        self.full = ", ".join(f"{short_key(k)}={fmt_value(v)}" for k, v in key) or "all runs"
        self.label = self.full
        self.rep = None  # the run drawn in per-run figures (set by select)
        self.color = None

    def seeds(self):
        return [_seed(r) for r in self.runs]

    def parts(self):
        """Label parts 'key=value' ([] for the reference arm of a compact labelling)."""
        return [f"{short_key(k)}={fmt_value(v)}" for k, v in self.shown]

    def multiline(self):
        return "\n".join(self.parts()) or self.label

    def values(self, sep="\n"):
        if self.compact:
            return sep.join(self.parts()) or self.label
        return sep.join(fmt_value(v) for _, v in self.key) or self.label


def compact(arms, width=40):
    """Zip designs ("each arm changes one thing against a reference", as in attention-sinks) have long labels
    when every varying key is named. When some label is longer than `width` and the arms are not a full grid,
    label each arm by what differs from the reference: the most common value of each key (the earliest arm's
    on ties); the arm with no difference is "reference". Arm.full keeps the whole key."""
    if len(arms) < 3 or not arms[0].key or max(len(a.full) for a in arms) <= width:
        return
    keys = [k for k, _ in arms[0].key]
    grid = 1
    for k in keys:
        grid *= len({repr(dict(a.key)[k]) for a in arms})
    if len(arms) >= grid:
        return
    ref = {}
    for k in keys:
        vals = [repr(dict(a.key)[k]) for a in arms]
        ref[k] = max(vals, key=lambda v: (vals.count(v), -vals.index(v)))
    for a in arms:
        a.compact = True
        a.shown = tuple((k, v) for k, v in a.key if repr(v) != ref[k])
        a.label = ", ".join(a.parts()) or "reference"


def _seed(r):
    s = r.get("train.seed")
    return s if isinstance(s, (int, float)) and not isinstance(s, bool) else -1


_NUM = re.compile(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def natural_key(label):
    """A label as a sort key with its numbers as numbers: seed=2 before seed=10, lr=1e-3 before lr=1e-2."""
    out, pos = [], 0
    for m in _NUM.finditer(label):
        out += [(1, label[pos:m.start()].lower(), 0.0), (0, "", float(m.group()))]
        pos = m.end()
    out.append((1, label[pos:].lower(), 0.0))
    return tuple(out)


def as_number(v):
    """A config value as a float when it is a number (or a string YAML 1.1 left unparsed, such as 1e-3), else
    None. Booleans are not numbers."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(str(v).strip())
    except ValueError:
        return None


def value_key(v, categories=()):
    """Sort key of one config value: numbers by value, then false < true, then strings in `categories` order
    (the order the sweep lists them), then other strings alphabetically, missing last."""
    x = as_number(v)
    if x is not None:
        return (0, x, "")
    if isinstance(v, bool):
        return (1, float(v), "")
    if v is None:
        return (4, 0.0, "")
    s = str(v)
    if s in categories:
        return (2, float(list(categories).index(s)), "")
    return (3, 0.0, s.lower())


def _listed_names(sweeps):
    names = []
    for sw in sweeps:
        listed = []
        if isinstance(sw.sweep_json, dict):
            listed = [str(x.get("dir") or x.get("name")) for x in sw.sweep_json.get("runs") or []
                      if isinstance(x, dict)]
        elif sw.summary_csv and len(sw.summary_csv) > 1 and "name" in sw.summary_csv[0]:
            i = sw.summary_csv[0].index("name")
            listed = [row[i] for row in sw.summary_csv[1:] if len(row) > i]
        names += [os.path.abspath(os.path.join(sw.path, n)) for n in listed]
    return names


def axis_keys(axes, sweeps=()):
    """The varying keys in sort priority: sweep.json's axes first, then alphabetically; train.seed last."""
    listed = []
    for sw in sweeps:
        if isinstance(sw.sweep_json, dict):
            listed += [k for k in sw.sweep_json.get("axes") or [] if k not in listed]
    return sorted(axes, key=lambda k: (k == "train.seed", listed.index(k) if k in listed else len(listed), k))


def order_runs(runs, axes, sweeps=()):
    """The page's run order (every table, legend and figure): by the sweep axes' values (numbers numerically,
    strings in the order the sweep lists them, train.seed last), then by label with its numbers as numbers."""
    listed = _listed_names(sweeps)
    pos = {p: i for i, p in enumerate(listed)}
    by_list = sorted(runs, key=lambda r: (pos.get(r.path, len(pos)), natural_key(r.label)))
    keys = axis_keys(axes, sweeps)
    cats = {}
    for k in keys:
        seen = []
        for r in by_list:
            v = r.flat_config().get(k)
            if as_number(v) is None and not isinstance(v, bool) and v is not None and str(v) not in seen:
                seen.append(str(v))
        cats[k] = seen
    flats = {r.label: r.flat_config() for r in runs}
    return sorted(runs, key=lambda r: tuple(value_key(flats[r.label].get(k), cats[k]) for k in keys)
                  + (natural_key(r.label),))


def sorted_values(vals):
    """An axis' distinct values in the page's order (numbers numerically)."""
    cats = [str(v) for v in vals if as_number(v) is None and not isinstance(v, bool) and v is not None]
    return sorted(vals, key=lambda v: value_key(v, cats))


def sweep_order(runs, sweeps, axes=None):
    """run -> position in the page's order (order_runs)."""
    if axes is None:
        axes = {}
    return {r.label: (i, i) for i, r in enumerate(order_runs(runs, axes, sweeps))}


def group(runs, axes, sweeps=(), by_seed=False):
    """-> [Arm] in sweep order, grouping by every varying key except train.seed (unless by_seed)."""
    keys = [k for k in axis_keys(axes, sweeps) if by_seed or k != "train.seed"]
    order = sweep_order(runs, sweeps, axes)
    arms = {}
    for r in sorted(runs, key=lambda r: order[r.label]):
        f = r.flat_config()
        key = tuple((k, f.get(k)) for k in keys)
        arms.setdefault(repr(key), Arm(key, [])).runs.append(r)
    out = []
    for a in arms.values():
        a.runs.sort(key=lambda r: (_seed(r), order[r.label]))
        if not a.key and len(a.runs) == 1:
            a.label = a.full = a.runs[0].label
        out.append(a)
    compact(out)
    import matplotlib.pyplot as plt
    cyc = plt.get_cmap("tab10").colors
    for i, a in enumerate(out):
        a.color = cyc[i % 10] if len(out) <= 10 else plt.get_cmap("viridis")(i / max(len(out) - 1, 1))
    return out


# ---------------------------------------------------------------------------------------------------
# Claims


def _walk_runs(o, out):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "run" and isinstance(v, (str, dict)):
                out.append(v)
            else:
                _walk_runs(v, out)
    elif isinstance(o, list):
        for v in o:
            _walk_runs(v, out)


def claim_refs(sweeps):
    """[(claim id, run reference)] in claim order: a run name (str) or a config selector (dict), from both
    sides of each claim, its per-value `points`, and nested div/sub/absdiff sides."""
    out = []
    for sw in sweeps:
        vj = sw.verdict_json
        claims = vj.get("claims") if isinstance(vj, dict) else vj if isinstance(vj, list) else None
        for c in claims or []:
            if not isinstance(c, dict):
                continue
            refs = []
            _walk_runs({k: v for k, v in c.items() if k in ("lhs", "rhs", "points", "sides", "runs")}, refs)
            out += [(str(c.get("id", "?")), ref, sw.path) for ref in refs]
    return out


def _matches(run, ref, base):
    if isinstance(ref, str):
        return ref in (os.path.basename(run.path), run.label) or os.path.abspath(os.path.join(base, ref)) == run.path
    return all(_same(run.get(k), v) for k, v in ref.items())


def claim_runs(runs, sweeps):
    """-> ([runs the claims reference, in the order of first reference], {run label: [claim ids]})."""
    ordered, by = [], {}
    for cid, ref, base in claim_refs(sweeps):
        for r in runs:
            if _matches(r, ref, base):
                if r not in ordered:
                    ordered.append(r)
                ids = by.setdefault(r.label, [])
                if cid not in ids:
                    ids.append(cid)
    return ordered, by


def named_claim_runs(runs, sweeps):
    """The runs the claims name by run name (not by a config selector), in the order they are named."""
    out = []
    for _, ref, base in claim_refs(sweeps):
        if isinstance(ref, str):
            for r in runs:
                if _matches(r, ref, base) and r not in out:
                    out.append(r)
    return out


# ---------------------------------------------------------------------------------------------------
# Selection


class Selection:
    """What the per-run figures draw: `arms` (all, sweep order), `seed`, `ranked` (arm representatives,
    claims' arms first), `notes`; `take(n)` = the first n of `ranked`, in sweep order."""

    def __init__(self, arms, seed, ranked, claim_arms, claim_ids, notes, seeded):
        self.arms, self.seed, self.ranked = arms, seed, ranked
        self.claim_arms, self.claim_ids, self.notes, self.seeded = claim_arms, claim_ids, notes, seeded
        self.arm_of = {r.label: a for a in arms for r in a.runs}

    def room(self, n):
        """n, raised to the number of arms the claims compare: those are always drawn."""
        return max(n, len(self.claim_arms))

    def take(self, n):
        chosen = self.ranked[:self.room(n)]
        idx = {id(a): i for i, a in enumerate(self.arms)}
        return sorted(chosen, key=lambda a: idx[id(a)])

    def left_out(self, n):
        return [a for a in self.ranked[self.room(n):]]

    def runs(self, n):
        """The representative runs of the first n ranked arms, in sweep order."""
        return [a.rep for a in self.take(n)]

    def label(self, r, multiline=False):
        """An arm label (plus the seed) for a per-run panel."""
        a = self.arm_of.get(r.label)
        if a is None or len(self.arms) < 2:
            return r.label
        if multiline:
            return a.multiline() + (f"\nseed {fmt_value(r.get('train.seed'))}" if self.seeded else "")
        return a.label + (f" · seed {fmt_value(r.get('train.seed'))}" if self.seeded else "")


def select(runs, axes, sweeps=()):
    seeded = "train.seed" in axes
    arms = group(runs, axes, sweeps)
    if seeded and len(arms) == 1:  # seeds are the only axis: each seed is its own panel
        arms = group(runs, axes, sweeps, by_seed=True)
        seeded = False
    notes = []
    seed = None
    if seeded:
        counts = {}
        for a in arms:
            for s in set(a.seeds()):
                counts[s] = counts.get(s, 0) + 1
        seed = min(counts, key=lambda s: (-counts[s], s)) if counts else None
        for a in arms:
            at = [r for r in a.runs if _seed(r) == seed]
            a.rep = at[0] if at else a.runs[0]
            if not at:
                notes.append(f"arm {a.label} has no run with seed {seed}: its per-run figures show seed "
                             f"{_seed(a.rep)}")
    else:
        for a in arms:
            a.rep = a.runs[0]
    cruns, cids = claim_runs(runs, sweeps)
    # A claim that names runs (not a config selector) compares those runs: when none of them is at the
    # chosen seed, the arm shows the first one named, so the figures draw what the claim compares.
    named = named_claim_runs(runs, sweeps)
    for a in arms:
        mine = [r for r in named if r in a.runs]
        if mine and a.rep not in mine:
            a.rep = mine[0]
            notes.append(f"arm {a.label}: the claims name {', '.join(r.label for r in mine)}; its per-run figures "
                         f"show {a.rep.label}")
    claim_arms = []
    for r in cruns:
        a = next((a for a in arms if r in a.runs), None)
        if a is not None and a not in claim_arms:
            claim_arms.append(a)
    rest = [a for a in arms if a not in claim_arms]
    # The other arms evenly over the sweep order: any prefix of this order is spread over the whole range
    # (first, last, middle, quarters, ...), so trimming to --max-runs keeps the extremes.
    spread = []
    for n in range(1, len(rest) + 1):
        for j in np.linspace(0, len(rest) - 1, n):
            a = rest[int(round(j))]
            if a not in spread:
                spread.append(a)
    rest = spread
    ranked = claim_arms + rest
    return Selection(arms, seed, ranked, claim_arms, cids, notes, seeded)
