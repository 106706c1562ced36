"""Reading run and sweep directories (README.md "Run directory"; instrument/docs/).

A run directory holds config.yaml, run.json, metrics.jsonl (train / eval / probe / step records),
events.jsonl, summary.md and ckpt/. A sweep directory holds run directories (found up to two levels down) and
optionally summary.csv / summary.md / sweep.json, and for reproductions verdict.md / verdict.json.

Two layers: the readers below (read_config, read_run_info, read_metrics, read_events) return plain Python
and NumPy values and are what experiments/report/rundata.py builds on; load_run / load_sweep turn them into
tidy pandas DataFrames (one row per record).
"""
import csv
import glob
import json
import math
import os
import re

import numpy as np

try:
    import yaml
except ImportError:  # python3-yaml is in .ci/deps.sh; keep working without it
    yaml = None

from .safetensors import read_safetensors

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

# Step metrics with one value per parameter tensor (instrument/docs/step.md): `head` is the tensor's slot.
PER_TENSOR_METRICS = ("grad_norm_p", "grad_rms_p", "grad_tiny_frac", "upd_ratio", "upd_rms")
# The documented slots (instrument/step_stats.h), for run directories written before run.json had "params".
BLOCK_SLOTS = ("attn_norm.g", "attn.w_q", "attn.w_k", "attn.w_v", "attn.w_o", "mlp_norm.g", "mlp.w_gate",
               "mlp.w_up", "mlp.w_down")
MODEL_SLOTS = ("tok_emb", "final_norm.g", "lm_head")


def num(v):
    """A metrics value as float: the strings "nan", "inf", "-inf" (and null) as the non-finite floats."""
    if isinstance(v, str):
        return _NONFINITE.get(v, math.nan)
    if v is None:
        return math.nan
    return float(v)


def load_yaml_text(text):
    if yaml is not None:
        return yaml.safe_load(text) or {}
    # Fallback for the resolved config's simple two-level layout.
    out, sect = {}, None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" ") and line.rstrip().endswith(":"):
            sect = out.setdefault(line.strip()[:-1], {})
        elif sect is not None and ":" in line:
            k, v = line.strip().split(":", 1)
            v = v.strip().strip('"')
            for conv in (int, float):
                try:
                    v = conv(v)
                    break
                except ValueError:
                    pass
            else:
                v = {"true": True, "false": False}.get(v, v)
            sect[k] = v
    return out


def flatten(cfg, prefix=""):
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out = {}
    for k, v in (cfg or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_get(config, dotted, default=None):
    """A value of a nested config by its key path ("optim.lr"); `default` when a part is missing."""
    cur = config
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def is_run_dir(path):
    return os.path.isfile(os.path.join(path, "metrics.jsonl")) or (
        os.path.isfile(os.path.join(path, "config.yaml")) and os.path.isfile(os.path.join(path, "run.json")))


def find_run_dirs(path, depth=2):
    """Run directories under `path`, up to `depth` levels down, sorted by name."""
    out = []
    try:
        entries = sorted(os.listdir(path))
    except OSError:
        return out
    for e in entries:
        p = os.path.join(path, e)
        if not os.path.isdir(p) or e in ("report", "ckpt", "flight"):
            continue
        if is_run_dir(p):
            out.append(p)
        elif depth > 1:
            out.extend(find_run_dirs(p, depth - 1))
    return out


def read_text(p):
    if os.path.isfile(p):
        with open(p) as f:
            return f.read()
    return ""


def read_json(p, problems=None):
    if not os.path.isfile(p):
        return None
    try:
        with open(p) as f:
            return json.load(f)
    except ValueError as e:
        if problems is not None:
            problems.append(f"{os.path.basename(p)} unreadable: {e}")
        return None


# ---------------------------------------------------------------------------------------------------
# The files of one run


def read_config(run_dir):
    """-> (config dict, its text, the --set overrides listed in it, problems)."""
    p = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(p):
        return {}, "", [], ["no config.yaml"]
    text = read_text(p)
    problems, cfg = [], {}
    try:
        cfg = load_yaml_text(text)
    except Exception as e:  # a broken config still leaves the metrics to show
        problems.append(f"config.yaml unreadable: {e}")
    overrides = [m.group(1) for m in (re.match(r"#\s+--set\s+(\S+)", ln) for ln in text.splitlines()) if m]
    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else None
    if model is not None and isinstance(model.get("v_scale"), bool):  # YAML 1.1: `off` reads as False
        model["v_scale"] = "off" if model["v_scale"] is False else "on"
    return cfg, text, overrides, problems


def read_run_info(run_dir):
    """-> (run.json as a dict, problems)."""
    problems = []
    p = os.path.join(run_dir, "run.json")
    if not os.path.isfile(p):
        return {}, ["no run.json"]
    info = read_json(p, problems)
    return info or {}, problems


def read_metrics(path, kinds=("train", "eval", "probe", "step")):
    """metrics.jsonl -> dict with
      train, eval: lists of the records (dicts) of that kind;
      probe, step: lists of (step, metric, layer, head, index, value) tuples, value a float;
      metric_kind: metric name -> "probe" | "step" for every metric in the file (also for kinds not loaded);
      problems: lines that are not JSON (a truncated last line, from a run killed mid-write, is skipped
                silently).
    Records of kinds not in `kinds` are skipped without being parsed (step records are most of the file)."""
    out = {"train": [], "eval": [], "probe": [], "step": [], "metric_kind": {}, "problems": []}
    if not os.path.isfile(path):
        out["problems"].append("no metrics.jsonl")
        return out
    skip_step = "step" not in kinds
    with open(path) as f:
        lines = f.readlines()
    kinds_of = out["metric_kind"]
    for i, line in enumerate(lines):
        line = line.strip()
        if not line:
            continue
        if skip_step and '"kind":"step"' in line:
            kinds_of[line[line.find('"metric":"') + 10:].split('"', 1)[0]] = "step"
            continue
        try:
            r = json.loads(line)
        except ValueError:
            if i != len(lines) - 1:
                out["problems"].append(f"metrics.jsonl line {i + 1} is not JSON (skipped)")
            continue
        k = r.get("kind")
        if k in ("probe", "step"):
            name = r.get("metric")
            kinds_of[name] = k
            if k in kinds:
                out[k].append((int(r["step"]), name, int(r.get("layer", -1)), int(r.get("head", -1)),
                               int(r.get("index", -1)), num(r.get("value"))))
        elif k in ("train", "eval") and k in kinds:
            out[k].append(r)
    return out


def read_events(run_dir):
    """events.jsonl -> list of dicts (lines that are not JSON are skipped)."""
    out = []
    p = os.path.join(run_dir, "events.jsonl")
    if not os.path.isfile(p):
        return out
    with open(p) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def checkpoints(run_dir):
    """[(step, path)] of RUN_DIR/ckpt/step_N.safetensors, sorted by step."""
    out = []
    for p in glob.glob(os.path.join(run_dir, "ckpt", "step_*.safetensors")):
        m = re.search(r"step_(\d+)\.safetensors$", p)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def param_table(info, config):
    """[(name, layer, slot, shape)] of the run's parameters: run.json "params" (written by attnlab since it
    records them), else rebuilt from the config with the documented slots (instrument/docs/step.md; a
    tensor outside that table, from a toggle, cannot be named this way and is left out)."""
    if isinstance(info.get("params"), list):
        return [(p["name"], int(p["layer"]), int(p["slot"]), list(p.get("shape", []))) for p in info["params"]]
    m = config.get("model", {}) if isinstance(config.get("model"), dict) else {}
    L, mlp = int(m.get("n_layer", 0) or 0), m.get("mlp", "swiglu")
    out = [("tok_emb", -1, 0, [])]
    for l in range(L):
        for s, role in enumerate(BLOCK_SLOTS):
            if role.startswith("mlp") and mlp == "none" or role == "mlp.w_gate" and mlp != "swiglu":
                continue
            out.append((f"blocks.{l}.{role}", l, s, []))
    out.append(("final_norm.g", -1, 1, []))
    if not m.get("tied_head", False):
        out.append(("lm_head", -1, 2, []))
    return out


def tensor_names(table):
    """{(layer, slot): name} plus the aggregates: (l, -1) -> "blocks.l", (-1, -1) -> "model"."""
    names = {(l, s): n for n, l, s, _ in table}
    for l in {l for _, l, _, _ in table if l >= 0}:
        names[(l, -1)] = f"blocks.{l}"
    names[(-1, -1)] = "model"
    return names


# ---------------------------------------------------------------------------------------------------
# Tidy DataFrames


class RunData:
    """One run directory as DataFrames (load_run). Attributes:
      path, name, config (nested dict), config_text, overrides, info (run.json), summary_md, problems;
      train  step, loss, lr, grad_norm, clipped, tokens_per_s, ms_per_step (+ loss_ce, loss_z with z-loss);
      eval   step, val_loss (+ val_loss_ce, val_loss_z);
      probe  step, metric, layer, head, index, value;
      step   step, metric, layer, head, index, value, param (the tensor name of per-tensor metrics:
             "blocks.0.attn.w_q", the block aggregate "blocks.0", the whole model "model"; None otherwise);
      events step, kind, layer, head, metric, value, threshold, message;
      params name, layer, slot, shape (the parameter table)."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.name = os.path.basename(self.path.rstrip("/"))

    def get(self, dotted, default=None):
        """A config value by its key path ("optim.lr")."""
        return config_get(self.config, dotted, default)

    def checkpoints(self):
        return checkpoints(self.path)

    def read_checkpoint(self, step=None, optimizer=False):
        """-> (parameters name -> array, metadata) of the checkpoint at `step` (default: the newest)."""
        ck = dict(self.checkpoints())
        if not ck:
            raise FileNotFoundError(f"{self.path}: no checkpoints in ckpt/")
        step = max(ck) if step is None else step
        if step not in ck:
            raise FileNotFoundError(f"{self.path}: no checkpoint at step {step} (have {sorted(ck)})")
        return read_safetensors(ck[step], names=None if optimizer else (lambda n: not n.startswith("optim.")))

    def __repr__(self):
        return f"RunData({self.path!r}: {len(self.train)} train, {len(self.step)} step, {len(self.probe)} probe rows)"


_RECORD_COLUMNS = ["step", "metric", "layer", "head", "index", "value"]
_EVENT_COLUMNS = ["step", "kind", "layer", "head", "metric", "value", "threshold", "message"]


def _records_frame(pd, recs, first=("step",)):
    keys = []
    for r in recs:
        for k in r:
            if k != "kind" and k not in keys:
                keys.append(k)
    cols = list(first) + [k for k in keys if k not in first]
    data = {}
    for k in cols:
        vals = [r.get(k) for r in recs]
        if k == "step":
            data[k] = np.array(vals, dtype=np.int64)
        elif k == "clipped":
            data[k] = np.array([bool(v) for v in vals], dtype=bool)
        else:
            data[k] = np.array([num(v) for v in vals], dtype=np.float64)
    return pd.DataFrame(data, columns=cols)


def _rows_frame(pd, rows):
    if not rows:
        return pd.DataFrame({"step": np.array([], np.int64), "metric": np.array([], object),
                             "layer": np.array([], np.int64), "head": np.array([], np.int64),
                             "index": np.array([], np.int64), "value": np.array([], np.float64)})
    s, m, l, h, i, v = zip(*rows)
    return pd.DataFrame({"step": np.array(s, np.int64), "metric": np.array(m, object),
                         "layer": np.array(l, np.int64), "head": np.array(h, np.int64),
                         "index": np.array(i, np.int64), "value": np.array(v, np.float64)})


def load_run(path, kinds=("train", "eval", "probe", "step")):
    """A run directory -> RunData with tidy DataFrames (see RunData). `kinds` limits which metrics records
    are loaded (the step records are most of a long run's file). Raises FileNotFoundError if `path` is not a
    run directory; damaged files are listed in `problems`, never fatal."""
    import pandas as pd

    if not os.path.isdir(path) or not is_run_dir(path):
        raise FileNotFoundError(f"{path}: not a run directory (no metrics.jsonl, or config.yaml and run.json)")
    r = RunData(path)
    r.config, r.config_text, r.overrides, r.problems = read_config(r.path)
    r.info, p = read_run_info(r.path)
    r.problems += p
    r.summary_md = read_text(os.path.join(r.path, "summary.md"))
    m = read_metrics(os.path.join(r.path, "metrics.jsonl"), kinds)
    r.problems += m["problems"]
    r.metric_kind = m["metric_kind"]
    r.train = _records_frame(pd, m["train"])
    r.eval = _records_frame(pd, m["eval"])
    r.probe = _rows_frame(pd, m["probe"])
    r.step = _rows_frame(pd, m["step"])
    table = param_table(r.info, r.config)
    r.params = pd.DataFrame(table, columns=["name", "layer", "slot", "shape"])
    names = tensor_names(table)
    per = r.step["metric"].isin(PER_TENSOR_METRICS).to_numpy()
    r.step["param"] = [names.get((l, h)) if p else None
                       for p, l, h in zip(per, r.step["layer"].to_numpy(), r.step["head"].to_numpy())]
    ev = read_events(r.path)
    r.events = pd.DataFrame({
        "step": np.array([int(e.get("step", -1)) for e in ev], np.int64),
        "kind": np.array([e.get("kind", "") for e in ev], object),
        "layer": np.array([int(e.get("layer", -1)) for e in ev], np.int64),
        "head": np.array([int(e.get("head", -1)) for e in ev], np.int64),
        "metric": np.array([e.get("metric", "") for e in ev], object),
        "value": np.array([num(e.get("value")) for e in ev], np.float64),
        "threshold": np.array([num(e.get("threshold")) for e in ev], np.float64),
        "message": np.array([e.get("message", "") for e in ev], object)}, columns=_EVENT_COLUMNS)
    return r


class SweepData:
    """A directory of runs (load_sweep). Attributes: path, name, runs (list of RunData, by directory name),
    summary (summary.csv as a DataFrame, or None), summary_md, sweep_json, verdict_md, verdict_json;
    train / eval / probe / step / events: every run's DataFrame with a leading `run` column (the run's path
    relative to the sweep directory); config: one row per run, its flattened config."""

    def __getattr__(self, name):
        if name in ("train", "eval", "probe", "step", "events"):
            import pandas as pd

            frames = [getattr(r, name).assign(run=os.path.relpath(r.path, self.path)) for r in self.runs]
            if not frames:
                return pd.DataFrame()
            df = pd.concat(frames, ignore_index=True)
            return df[["run"] + [c for c in df.columns if c != "run"]]
        raise AttributeError(name)

    @property
    def config(self):
        import pandas as pd

        return pd.DataFrame([dict(run=os.path.relpath(r.path, self.path), **flatten(r.config)) for r in self.runs])


def load_sweep(path, kinds=("train", "eval", "probe", "step")):
    """A sweep (or reproduction) directory -> SweepData. Raises FileNotFoundError when `path` holds no run
    directory and no verdict."""
    import pandas as pd

    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: not a directory")
    s = SweepData()
    s.path = os.path.abspath(path)
    s.name = os.path.basename(s.path.rstrip("/"))
    s.summary_md = read_text(os.path.join(s.path, "summary.md"))
    p = os.path.join(s.path, "summary.csv")
    s.summary = pd.read_csv(p) if os.path.isfile(p) else None
    s.sweep_json = read_json(os.path.join(s.path, "sweep.json"))
    s.verdict_md = read_text(os.path.join(s.path, "verdict.md"))
    s.verdict_json = read_json(os.path.join(s.path, "verdict.json"))
    s.run_dirs = find_run_dirs(s.path)
    if not s.run_dirs and not (s.verdict_md or s.verdict_json):
        raise FileNotFoundError(f"{path}: neither a sweep (no run directories) nor a reproduction (no verdict)")
    s.runs = [load_run(d, kinds) for d in s.run_dirs]
    return s


def read_summary_csv(path):
    """summary.csv as a list of rows (lists of strings), or None without one."""
    p = os.path.join(path, "summary.csv")
    if not os.path.isfile(p):
        return None
    with open(p, newline="") as f:
        return list(csv.reader(f))
