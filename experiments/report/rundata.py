"""Reading run and sweep directories (README.md "Run directory"; instrument/docs/README.md).

A run directory holds metrics.jsonl (train / eval / probe / step records), events.jsonl, config.yaml,
run.json, summary.md and ckpt/. A sweep directory holds run directories (found up to two levels down) and
optionally summary.csv / summary.md, and for reproductions verdict.md / verdict.json.
"""
import glob
import math
import os
import re
import sys

import numpy as np

# The one reader of run directories and safetensors files (experiments/attnlab_py/attnlab/).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "attnlab_py"))
from attnlab import runs as _runs  # noqa: E402

# Kept under their old names: report code uses them.
_num = _runs.num
_load_yaml_text = _runs.load_yaml_text
flatten = _runs.flatten
is_run_dir = _runs.is_run_dir
find_run_dirs = _runs.find_run_dirs
_read = _runs.read_text


class Run:
    """Everything the report reads from one run directory. Missing files are recorded in `problems`."""

    def __init__(self, path, label=None):
        self.path = os.path.abspath(path)
        self.label = label or os.path.basename(self.path.rstrip("/"))
        self.problems = []
        self.config = {}
        self.config_text = ""
        self.overrides = []
        self.info = {}
        self.summary_md = ""
        self.events = []
        self.train = {}  # field -> np.array, with "step"
        self.eval = {}
        self.metrics = {}  # name -> np.array [n, 5]: step, layer, head, index, value (probe records only)
        self.metric_kind = {}  # name -> "probe" | "step" (step records are named here but not loaded)
        self._read_config()
        self._read_info()
        self._read_metrics()
        self._read_events()
        sp = os.path.join(self.path, "summary.md")
        if os.path.isfile(sp):
            with open(sp) as f:
                self.summary_md = f.read()

    # --- files (attnlab.runs reads them) -------------------------------------------------------------
    def _read_config(self):
        self.config, self.config_text, self.overrides, problems = _runs.read_config(self.path)
        self.problems += problems

    def _read_info(self):
        self.info, problems = _runs.read_run_info(self.path)
        self.problems += problems

    def _read_metrics(self):
        # Step records (every-step tensor statistics, instrument/docs/step.md) are most of the file and used
        # by no figure: named in metric_kind, not loaded.
        m = _runs.read_metrics(os.path.join(self.path, "metrics.jsonl"), kinds=("train", "eval", "probe"))
        self.problems += m["problems"]
        train, ev = m["train"], m["eval"]
        if train:
            self.train = {"step": np.array([r["step"] for r in train], dtype=np.int64)}
            for fld in ("loss", "lr", "grad_norm", "ms_per_step", "tokens_per_s"):
                self.train[fld] = np.array([_num(r.get(fld)) for r in train])
        if ev:
            self.eval = {"step": np.array([r["step"] for r in ev], dtype=np.int64),
                         "val_loss": np.array([_num(r.get("val_loss")) for r in ev])}
        rows = {}
        for st, name, layer, head, index, value in m["probe"]:
            rows.setdefault(name, []).append((st, layer, head, index, value))
        self.metrics = {n: np.array(v, dtype=np.float64) for n, v in rows.items()}
        self.metric_kind = m["metric_kind"]

    def _read_events(self):
        self.events = _runs.read_events(self.path)

    # --- accessors -----------------------------------------------------------------------------------
    def has(self, metric):
        return metric in self.metrics and len(self.metrics[metric]) > 0

    def get(self, dotted, default=None):
        return _runs.config_get(self.config, dotted, default)

    def flat_config(self):
        return flatten(self.config)

    def probe_steps(self, metric=None):
        if metric is not None:
            return np.unique(self.metrics[metric][:, 0]).astype(np.int64) if self.has(metric) else np.array([], int)
        s = [np.unique(a[:, 0]) for n, a in self.metrics.items() if self.metric_kind.get(n) == "probe"]
        return np.unique(np.concatenate(s)).astype(np.int64) if s else np.array([], int)

    def layer_matrix(self, metric, reduce_heads=None):
        """Layer × step matrix of `metric` (layers ≥ 0, index −1). Head-resolved metrics are reduced over heads
        ≥ 0 with reduce_heads ('min' / 'max'); layer-wide records (head −1) are used when present and no
        reduction is asked for. Returns (steps [S], layers [L], values [L, S]) or None."""
        if not self.has(metric):
            return None
        a = self.metrics[metric]
        a = a[(a[:, 1] >= 0) & (a[:, 3] == -1)]
        if reduce_heads is None:
            a = a[a[:, 2] == -1]
        else:
            heads = a[a[:, 2] >= 0]
            a = heads if len(heads) else a[a[:, 2] == -1]
        if not len(a):
            return None
        steps = np.unique(a[:, 0]).astype(np.int64)
        layers = np.unique(a[:, 1]).astype(np.int64)
        si = np.searchsorted(steps, a[:, 0].astype(np.int64))
        li = np.searchsorted(layers, a[:, 1].astype(np.int64))
        vals = a[:, 4]
        if reduce_heads is None:
            out = np.full((len(layers), len(steps)), np.nan)
            out[li, si] = vals
            return steps, layers, out
        # NaN propagates (a diverged head shows as a missing cell, not as its healthy neighbour's value).
        fill = np.inf if reduce_heads == "min" else -np.inf
        out = np.full((len(layers), len(steps)), fill)
        seen = np.zeros(out.shape, dtype=bool)
        seen[li, si] = True
        (np.minimum if reduce_heads == "min" else np.maximum).at(out, (li, si), vals)
        out[~seen] = np.nan
        return steps, layers, out

    def head_matrix(self, metric):
        """(layer, head) × step matrix of a head-resolved metric (layers ≥ 0, heads ≥ 0, index −1): (steps [S],
        pairs [(l, h)] sorted, values [P, S]; NaN where not recorded) or None."""
        if not self.has(metric):
            return None
        a = self.metrics[metric]
        a = a[(a[:, 1] >= 0) & (a[:, 2] >= 0) & (a[:, 3] == -1)]
        if not len(a):
            return None
        steps = np.unique(a[:, 0]).astype(np.int64)
        pairs = sorted({(int(l), int(h)) for l, h in a[:, 1:3]})
        row = {p: i for i, p in enumerate(pairs)}
        out = np.full((len(pairs), len(steps)), np.nan)
        si = np.searchsorted(steps, a[:, 0].astype(np.int64))
        ri = np.array([row[(int(l), int(h))] for l, h in a[:, 1:3]])
        out[ri, si] = a[:, 4]
        return steps, pairs, out

    def series(self, metric, layer=-1, head=-1, index=-1):
        """(steps, values) of one (layer, head, index) of a probe metric, or None."""
        if not self.has(metric):
            return None
        a = self.metrics[metric]
        a = a[(a[:, 1] == layer) & (a[:, 2] == head) & (a[:, 3] == index)]
        if not len(a):
            return None
        a = a[np.argsort(a[:, 0], kind="stable")]
        return a[:, 0].astype(np.int64), a[:, 4]

    def layers_of(self, metric):
        """Layers ≥ 0 that record `metric`."""
        if not self.has(metric):
            return []
        return sorted({int(x) for x in self.metrics[metric][:, 1] if x >= 0})

    def profile(self, metric, step):
        """index-resolved metric at one step, averaged over layers ≥ 0: (index [n], value [n]) or None."""
        if not self.has(metric):
            return None
        a = self.metrics[metric]
        a = a[(a[:, 0] == step) & (a[:, 1] >= 0) & (a[:, 3] >= 0)]
        if not len(a):
            return None
        idx = np.unique(a[:, 3]).astype(np.int64)
        vals = np.array([np.mean(a[a[:, 3] == i, 4]) for i in idx])
        return idx, vals

    def final(self, metric, reduce="max", layer=None):
        """Value of `metric` at its last recorded step, reduced over layers ≥ 0 (or at `layer`) and heads."""
        if metric in ("loss", "val_loss"):
            src = self.train if metric == "loss" else self.eval
            if not src:
                return math.nan
            v = src[metric]
            return float(v[-1]) if len(v) else math.nan
        if not self.has(metric):
            return math.nan
        a = self.metrics[metric]
        a = a[a[:, 0] == a[:, 0].max()]
        sel = a[a[:, 1] == layer] if layer is not None else a[a[:, 1] >= 0]
        if not len(sel):
            sel = a
        vals = sel[:, 4]
        if reduce == "max":
            return float(np.max(vals))
        if reduce == "min":
            return float(np.min(vals))
        if reduce == "median":
            return float(np.median(vals))
        return float(np.mean(vals))

    # --- run state -----------------------------------------------------------------------------------
    def checkpoints(self):
        """[(step, path)] sorted by step."""
        return _runs.checkpoints(self.path)

    def flight_records(self):
        return sorted(glob.glob(os.path.join(self.path, "flight", "step_*.safetensors")))

    def steps_done(self):
        return int(self.train["step"][-1]) if self.train else 0

    def steps_total(self):
        return self.get("train.steps")

    def finished(self):
        """The documented rule: the last checkpoint (train.steps) and summary.md exist."""
        total = self.steps_total()
        ck = [s for s, _ in self.checkpoints()]
        return bool(self.summary_md) and total is not None and total in ck

    def wall_time_s(self):
        m = re.search(r"\|\s*wall time[^|]*\|\s*([0-9.eE+-]+)\s*\|", self.summary_md)
        if m:
            return float(m.group(1))
        if self.train and "ms_per_step" in self.train:
            v = self.train["ms_per_step"]
            return float(np.nansum(v)) / 1000.0
        return math.nan

    def status(self):
        kinds = {e.get("kind") for e in self.events}
        if "nonfinite" in kinds:
            return "diverged (non-finite)"
        if "interrupted" in kinds and not self.finished():
            return "interrupted"
        if self.finished():
            return "finished"
        if not self.train:
            return "no training records"
        return "incomplete"

    def instrumented(self):
        return any(k == "probe" for k in self.metric_kind.values())


# ---------------------------------------------------------------------------------------------------
# Inputs


class Sweep:
    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.name = os.path.basename(self.path.rstrip("/"))
        self.summary_md = _read(os.path.join(self.path, "summary.md"))
        self.summary_csv = _runs.read_summary_csv(self.path)
        self.sweep_json = _runs.read_json(os.path.join(self.path, "sweep.json"))
        self.verdict_md = _read(os.path.join(self.path, "verdict.md"))
        self.verdict_json = _runs.read_json(os.path.join(self.path, "verdict.json"))
        self.run_dirs = find_run_dirs(self.path)


def load_inputs(paths):
    """-> (runs, sweeps). Each path is a run directory or a directory holding run directories."""
    runs, sweeps, seen = [], [], set()
    for p in paths:
        if not os.path.isdir(p):
            raise SystemExit(f"attnlab report: {p}: not a directory")
        if is_run_dir(p):
            dirs = [p]
        else:
            sw = Sweep(p)
            if not sw.run_dirs and not (sw.verdict_md or sw.verdict_json):
                raise SystemExit(f"attnlab report: {p}: neither a run directory (no metrics.jsonl) nor a "
                                 f"directory of runs")
            sweeps.append(sw)
            dirs = sw.run_dirs
        for d in dirs:
            a = os.path.abspath(d)
            if a not in seen:
                seen.add(a)
                runs.append(Run(a))
    # Unique labels: the directory name, or parent/name when names repeat.
    names = [r.label for r in runs]
    for r in runs:
        if names.count(r.label) > 1:
            r.label = os.path.join(os.path.basename(os.path.dirname(r.path)), r.label)
    return runs, sweeps


# Keys that differ between runs without being an experimental axis.
_NOT_AXES = {"train.threads", "data.path"}


def sweep_axes(runs):
    """Config keys whose values differ between runs: {key: sorted distinct values}."""
    if len(runs) < 2:
        return {}
    flats = [r.flat_config() for r in runs]
    keys = set().union(*flats)
    axes = {}
    for k in sorted(keys):
        if k in _NOT_AXES or k.startswith("instrument."):
            continue
        vals = [f.get(k) for f in flats]
        if len({repr(v) for v in vals}) > 1:
            uniq = []
            for v in vals:
                if v not in uniq:
                    uniq.append(v)
            try:
                uniq.sort()
            except TypeError:
                pass
            axes[k] = uniq
    return axes


def is_numeric_axis(vals):
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals) and len(vals) >= 2
