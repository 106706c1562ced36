"""Attention maps of chosen heads at chosen steps, recomputed from checkpoints with model_np.py.

Token input, in order of preference:
  1. the run's first training batch, from `attnlab grads CONFIG --checkpoint CKPT` (real task data; needs the
     attnlab binary: --attnlab, $ATTNLAB_BIN, `attnlab` on PATH, or <repo>/build/attnlab);
  2. the batch of the run's first flight record;
  3. uniform random tokens from a fixed seed (BOS at position 0 when data.bos is on), said in the caption.
"""
import os
import shutil
import subprocess
import tempfile

import numpy as np

import model_np
from rundata import _load_yaml_text

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class SpecError(ValueError):
    pass


def parse_heads(spec):
    """'0:1,1:*' -> [(0, 1), (1, None)] (None = every head of the layer)."""
    out = []
    for item in spec.split(","):
        item = item.strip()
        parts = item.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            l = int(parts[0])
            h = None if parts[1] in ("*", "all") else int(parts[1])
            if l < 0 or (h is not None and h < 0):
                raise ValueError
        except ValueError:
            raise SpecError(f"--heads expects LAYER:HEAD pairs separated by commas (HEAD may be *), got '{item}'")
        out.append((l, h))
    return out


def parse_steps(spec):
    out = []
    for item in spec.split(","):
        item = item.strip()
        if item in ("last", "first"):
            out.append(item)
            continue
        try:
            s = int(item)
            if s < 0:
                raise ValueError
        except ValueError:
            raise SpecError(f"--steps expects non-negative step numbers (or first/last) separated by commas, "
                            f"got '{item}'")
        out.append(s)
    return out


def find_attnlab(explicit=None):
    for c in (explicit, os.environ.get("ATTNLAB_BIN"), shutil.which("attnlab"), os.path.join(ROOT, "build", "attnlab")):
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def _tokens(run, cfg, ckpt, attnlab, seq):
    """-> (tokens [seq_len] int, description)."""
    if attnlab:
        with tempfile.TemporaryDirectory(prefix="attnlab-report-") as td:
            out = os.path.join(td, "batch.safetensors")
            try:
                r = subprocess.run([attnlab, "grads", os.path.join(run.path, "config.yaml"), "--checkpoint", ckpt,
                                    "--out", out, "--set", "train.threads=1"],
                                   capture_output=True, text=True, timeout=300)
                if r.returncode == 0 and os.path.isfile(out):
                    t, _ = model_np.read_safetensors(out, names=lambda n: n == "inputs")
                    inp = t["inputs"]
                    s = min(seq, inp.shape[0] - 1)
                    return inp[s].astype(np.int64), f"sequence {s} of the first training batch"
                why = (r.stderr.strip().splitlines() or ["no output"])[-1]
            except (OSError, subprocess.TimeoutExpired) as e:
                why = str(e)
        fallback_note = f"`attnlab grads` failed ({why})"
    else:
        fallback_note = "no attnlab binary found (--attnlab or $ATTNLAB_BIN)"
    flights = run.flight_records()
    if flights:
        t, _ = model_np.read_safetensors(flights[0], names=lambda n: n == "inputs")
        inp = t["inputs"]
        if cfg["sink_token"]:
            inp = inp[:, 1:]
        s = min(seq, inp.shape[0] - 1)
        return inp[s].astype(np.int64), f"sequence {s} of the batch of {os.path.basename(flights[0])} ({fallback_note})"
    rng = np.random.default_rng(1234)
    toks = rng.integers(0, cfg["vocab"], size=cfg["seq_len"])
    note = "uniform random tokens (seed 1234)"
    if run.get("data.bos"):
        bos = run.get("data.bos_id", -1)
        toks[0] = cfg["vocab"] - 1 if bos in (-1, None) else bos
        note += " with BOS at position 0"
    return toks, f"{note}; {fallback_note}"


def compute(run, heads_req, steps_req, attnlab, seq=0, max_panels=16):
    """-> dict(maps=[(step, probs, p0)], heads=[(l, h)], tokens_note, notes=[...], extra_key, sink_token) or
    dict(skip=reason)."""
    ckpts = run.checkpoints()
    if not ckpts:
        return {"skip": "no checkpoints in ckpt/"}
    notes = []
    by_step = dict(ckpts)
    avail = sorted(by_step)
    if steps_req:
        chosen = []
        for s in steps_req:
            if s == "last":
                c = avail[-1]
            elif s == "first":
                c = avail[0]
            else:
                c = min(avail, key=lambda a: (abs(a - s), a))
                if c != s:
                    notes.append(f"no checkpoint at step {s}; used step {c} "
                                 f"(checkpoints: {', '.join(map(str, avail))})")
            if c not in chosen:
                chosen.append(c)
        chosen.sort()
    else:
        chosen = [avail[-1]]
    # Model config: the checkpoint's own resolved config, else the run's.
    try:
        params0, meta = model_np.read_safetensors(by_step[chosen[-1]], names=lambda n: False)
        section = _load_yaml_text(meta["config"]).get("model") if "config" in meta else run.config.get("model")
        cfg = model_np.model_config(section)
    except (ValueError, OSError, KeyError) as e:
        return {"skip": f"cannot read the model config ({e})"}
    L, H = cfg["n_layer"], cfg["n_head"]
    if heads_req:
        heads = []
        for l, h in heads_req:
            if l >= L or (h is not None and h >= H):
                notes.append(f"--heads {l}:{'*' if h is None else h} is outside this model "
                             f"({L} layers × {H} heads); skipped")
                continue
            for hh in (range(H) if h is None else [h]):
                if (l, hh) not in heads:
                    heads.append((l, hh))
        if not heads:
            return {"skip": "none of the --heads exist in this model", "notes": notes}
    else:
        heads = [(l, h) for l in range(L) for h in range(H)][:8]
    if len(heads) * len(chosen) > max_panels:
        keep = max(1, max_panels // len(chosen))
        notes.append(f"showing {keep} of {len(heads)} heads per step (at most {max_panels} panels per run)")
        heads = heads[:keep]
    tokens, tok_note = _tokens(run, cfg, by_step[chosen[-1]], attnlab, seq)
    maps = []
    for s in chosen:
        try:
            params, _ = model_np.read_safetensors(by_step[s], names=lambda n: not n.startswith("optim."))
            probs, p0 = model_np.attention_probs(cfg, params, tokens[None], step=s,
                                                 max_layer=max(l for l, _ in heads))
        except (ValueError, KeyError, OSError) as e:
            notes.append(f"step {s}: {e}")
            continue
        maps.append((s, probs, p0))
    if not maps:
        return {"skip": "no checkpoint could be evaluated", "notes": notes}
    if model_np.temperature_active(cfg, chosen[-1]) or cfg["attn_temperature"] != 1.0:
        notes.append(f"attention temperature τ = {cfg['attn_temperature']} applied where the checkpoint step is in "
                     f"[{cfg['attn_temperature_start']}, {cfg['attn_temperature_end'] or '∞'})")
    extra = bool(cfg["softmax_plus_one"] or cfg["sink_logit"] or cfg["attn_bias_kv"])
    return {"maps": maps, "heads": heads, "tokens": tokens, "tokens_note": tok_note, "notes": notes,
            "extra_key": extra, "sink_token": bool(cfg["sink_token"]), "sigmoid": bool(cfg["sigmoid_attn"])}
