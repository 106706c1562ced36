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


_GRADS = {}  # run directory -> (tensors of `attnlab grads` without a checkpoint, or None, why not)

# Data sources whose tokens are bytes of text (configs/README.md "data"): their tokens are drawn as characters.
TEXT_SOURCES = ("file", "corpus")


def _grads(run, attnlab):
    """`attnlab grads RUN/config.yaml` without a checkpoint, once per run: the first training batch (`inputs`)
    and the initial parameters (the model initialised from train.seed, exactly as the run started).
    -> (tensors, None) or (None, why)."""
    if run.path in _GRADS:
        return _GRADS[run.path]
    res = (None, "no attnlab binary found (--attnlab or $ATTNLAB_BIN)")
    if attnlab:
        with tempfile.TemporaryDirectory(prefix="attnlab-report-") as td:
            out = os.path.join(td, "batch.safetensors")
            try:
                r = subprocess.run([attnlab, "grads", os.path.join(run.path, "config.yaml"), "--out", out,
                                    "--set", "train.threads=1"], capture_output=True, text=True, timeout=300)
                if r.returncode == 0 and os.path.isfile(out):
                    t, _ = model_np.read_safetensors(out, names=lambda n: not n.startswith("grad.")
                                                     and n not in ("loss", "targets"))
                    res = (t, None)
                else:
                    res = (None, "`attnlab grads` failed (" + (r.stderr.strip().splitlines() or ["no output"])[-1]
                           + ")")
            except (OSError, subprocess.TimeoutExpired, ValueError) as e:
                res = (None, f"`attnlab grads` failed ({e})")
    _GRADS[run.path] = res
    return res


def init_params(run, attnlab):
    """The run's initial parameters (step 0), recomputed by `attnlab grads` from the config's seed, or None."""
    t, _ = _grads(run, attnlab)
    if t is None:
        return None
    return {k: v for k, v in t.items() if k != "inputs"}


def bos_id(run, vocab):
    if not run.get("data.bos"):
        return None
    b = run.get("data.bos_id", -1)
    return vocab - 1 if b in (-1, None) else int(b)


def token_label(t, run, vocab):
    """A token as a short printable label: BOS '⟨bos⟩'; for byte text ↵ (newline), · (space), ⇥ (tab), the
    character (printable ASCII) or two hex digits (other bytes, e.g. UTF-8 pieces); else the token id."""
    t = int(t)
    if t == bos_id(run, vocab):
        return "⟨bos⟩"
    if run.get("data.source") in TEXT_SOURCES and 0 <= t < 256:
        if t == 10:
            return "↵"
        if t == 32:
            return "·"
        if t == 9:
            return "⇥"
        if 33 <= t < 127:
            return chr(t)
        return f"{t:02x}"
    return str(t)


def token_text(tokens, run, vocab, n=64):
    """The first n tokens as one string of labels (ids separated by spaces for non-text data)."""
    labs = [token_label(t, run, vocab) for t in tokens[:n]]
    text = run.get("data.source") in TEXT_SOURCES
    s = "".join(l if len(l) == 1 or l == "⟨bos⟩" else f"\\x{l}" for l in labs) if text else " ".join(labs)
    return s + (" …" if len(tokens) > n else "")


def _tokens(run, cfg, ckpt, attnlab, seq):
    """-> (tokens [seq_len] int, description)."""
    t, why = _grads(run, attnlab)
    if t is not None and "inputs" in t:
        inp = t["inputs"]
        s = min(seq, inp.shape[0] - 1)
        return inp[s].astype(np.int64), f"sequence {s} of the first training batch"
    fallback_note = why
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


def compute(run, heads_req, steps_req, attnlab, seq=0, max_panels=16, with_init=False):
    """-> dict(maps=[(step, probs, p0)], heads=[(l, h)], tokens, tokens_note, notes=[...], extra_key,
    sink_token, sigmoid, init (step 0 recomputed from the seed), cfg) or dict(skip=reason).
    with_init: offer step 0 (the initial parameters from `attnlab grads`) when there is no step-0 checkpoint."""
    ckpts = run.checkpoints()
    if not ckpts:
        return {"skip": "no checkpoints in ckpt/"}
    notes = []
    by_step = dict(ckpts)
    init = False
    if with_init and 0 not in by_step and init_params(run, attnlab) is not None:
        by_step[0] = None  # the initial parameters, not a file
        init = True
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
    real = [c for c in chosen if by_step[c] is not None] or [c for c in avail if by_step[c] is not None]
    try:
        params0, meta = model_np.read_safetensors(by_step[real[-1]], names=lambda n: False)
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
    tokens, tok_note = _tokens(run, cfg, by_step[real[-1]], attnlab, seq)
    maps = []
    for s in chosen:
        try:
            if by_step[s] is None:
                params = init_params(run, attnlab)
            else:
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
            "extra_key": extra, "sink_token": bool(cfg["sink_token"]), "sigmoid": bool(cfg["sigmoid_attn"]),
            "init": init and any(s == 0 for s, _, _ in maps), "cfg": cfg,
            "labels": (["⟨sink⟩"] if cfg["sink_token"] else []) + [token_label(t, run, cfg["vocab"]) for t in tokens],
            "text": token_text(tokens, run, cfg["vocab"])}
