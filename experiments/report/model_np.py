"""NumPy forward of attnlab's model, for attention maps recomputed from a checkpoint.

The runs store attention probabilities only in flight records (on incidents), so the report recomputes them:
parameters from a checkpoint (README.md "Checkpoints"), the model of README.md "The model" with every toggle
of model/TOGGLES.md, in float64. test_attention_forward.py checks the probabilities against the ones the C++
model stored in flight records, for the core model and every toggle.

Needs only NumPy (no torch).
"""
import math
import os
import sys

import numpy as np

# Safetensors (read only) through the one reader, which verifies the crc32.<name> checksums
# (experiments/attnlab_py/attnlab/safetensors.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "attnlab_py"))
from attnlab.safetensors import CHECKSUM_PREFIX, read_safetensors  # noqa: E402,F401


# ---------------------------------------------------------------------------------------------------
# Model config

# Every model key the forward below implements, with attnlab's default (configs/README.md "model").
MODEL_DEFAULTS = dict(
    vocab=256, d_model=64, n_layer=2, n_head=4, seq_len=64, mlp="swiglu", mlp_hidden=0, pos="rope",
    rope_base=10000.0, tied_head=False, norm_eps=1e-5, init_std=0.02, v_scale="off", v_scale_theta=0.0,
    qk_norm=False, z_loss=0.0, softmax_plus_one=False, sink_logit=False, attn_bias_kv=False, sigmoid_attn=False,
    sigmoid_attn_bias=False, attn_temperature=1.0, attn_temperature_start=0, attn_temperature_end=0,
    residual_scale=1.0, skip=True, embed_scale=False, norm_position="pre", sink_token=False, sigma_reparam=False)

_ENUM_KEYS = ("mlp", "pos", "v_scale", "norm_position")


def model_config(model_section):
    """The `model:` map of a resolved config -> a complete dict. Raises ValueError for a key this forward does
    not know whose value is not off-like (a toggle added after this file was written)."""
    cfg = dict(MODEL_DEFAULTS)
    unknown = []
    for k, v in (model_section or {}).items():
        if k in _ENUM_KEYS and isinstance(v, bool):  # YAML 1.1 readers turn `off` into False
            v = "off" if v is False else "on"
        if k not in cfg:
            if v in (False, 0, 0.0, "off", "none", "") or (k.endswith("_scale") and v == 1.0):
                continue
            unknown.append(f"{k}={v}")
            continue
        cfg[k] = v
    if unknown:
        raise ValueError("model setting(s) not implemented by the NumPy forward: " + ", ".join(unknown))
    if cfg["d_model"] % cfg["n_head"]:
        raise ValueError("d_model is not divisible by n_head")
    return cfg


def internal_len(cfg):
    """Positions the model runs: seq_len, plus one with the sink token."""
    return cfg["seq_len"] + (1 if cfg["sink_token"] else 0)


def temperature_active(cfg, step):
    """The temperature window of model/TOGGLES.md for a model at `step`."""
    if cfg["attn_temperature"] == 1.0:
        return False
    end = cfg["attn_temperature_end"]
    return step >= cfg["attn_temperature_start"] and (end == 0 or step < end)


# ---------------------------------------------------------------------------------------------------
# Forward


def _rms(x, g, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g


def _rope(x, base):
    """x [B, T, H, dh]: interleaved pairs (2i, 2i+1) rotated by t·base^(-2i/dh)."""
    B, T, H, dh = x.shape
    inv = np.power(float(base), -2.0 * np.arange(dh // 2, dtype=np.float64) / dh)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    c, s = np.cos(ang)[None, :, None, :], np.sin(ang)[None, :, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def _sinusoidal(T, d):
    i = np.arange(d // 2, dtype=np.float64)
    ang = np.arange(T, dtype=np.float64)[:, None] / np.power(10000.0, 2.0 * i / d)[None, :]
    pe = np.empty((T, d))
    pe[:, 0::2] = np.sin(ang)
    pe[:, 1::2] = np.cos(ang)
    return pe


def _weight(P, cfg, name):
    """A block matrix as the model uses it: σReparam's Ŵ = (γ/σ)·W, σ = ‖W u‖₂ with the stored u."""
    w = P[name].astype(np.float64)
    if cfg["sigma_reparam"]:
        u = P[name + ".sn_u"].astype(np.float64)
        gamma = float(P[name + ".sn_gamma"].reshape(-1)[0])
        w = (gamma / np.linalg.norm(w @ u)) * w
    return w


def _silu(x):
    return x / (1.0 + np.exp(-x))


def _gelu_tanh(u):
    return 0.5 * u * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u ** 3)))


def attention_probs(cfg, params, tokens, step=0, max_layer=None):
    """Attention probabilities of every layer up to `max_layer` (default: all).

    cfg: model_config(...); params: name -> array (checkpoint names); tokens: int [B, seq_len] (the data
    tokens, without the sink position); step: the training step the temperature window is evaluated at.
    Returns (probs, p0): lists over layers of [B, H, T, T] probabilities of the real keys (T = internal_len),
    zero above the diagonal, and [B, H, T] probability of the extra key (None without one).
    """
    P = params
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim == 1:
        tokens = tokens[None]
    B, T0 = tokens.shape
    d, H, L = cfg["d_model"], cfg["n_head"], cfg["n_layer"]
    dh, eps, alpha = d // H, cfg["norm_eps"], cfg["residual_scale"]
    if tokens.min() < 0 or tokens.max() >= cfg["vocab"]:
        raise ValueError(f"token ids must be in [0, {cfg['vocab']})")
    emb_scale = math.sqrt(d) if cfg["embed_scale"] else 1.0
    x = P["tok_emb"].astype(np.float64)[tokens] * emb_scale
    if cfg["sink_token"]:
        r = P["sink_token"].astype(np.float64) * emb_scale
        x = np.concatenate([np.broadcast_to(r, (B, 1, d)), x], axis=1)
    T = x.shape[1]
    if cfg["pos"] == "sinusoidal":
        x = x + _sinusoidal(T, d)[None]
    inv_tau = 1.0 / cfg["attn_temperature"] if temperature_active(cfg, step) else 1.0
    scale = 1.0 / math.sqrt(dh)
    causal = np.tril(np.ones((T, T), dtype=bool))
    post = cfg["norm_position"] == "post"
    extra = cfg["softmax_plus_one"] or cfg["sink_logit"] or cfg["attn_bias_kv"]
    last = L - 1 if max_layer is None else min(max_layer, L - 1)
    probs_out, p0_out = [], []
    for l in range(last + 1):
        pre = f"blocks.{l}."
        g_attn = P[pre + "attn_norm.g"].astype(np.float64)
        has_mlp = cfg["mlp"] != "none"  # mlp: none = attention-only blocks (no MLP tensors)
        g_mlp = P[pre + "mlp_norm.g"].astype(np.float64) if has_mlp else None
        keep = 1.0 if cfg["skip"] else 0.0  # skip: false drops the residual term of both sums
        a = x if post else _rms(x, g_attn, eps)
        q = (a @ _weight(P, cfg, pre + "attn.w_q").T).reshape(B, T, H, dh)
        k = (a @ _weight(P, cfg, pre + "attn.w_k").T).reshape(B, T, H, dh)
        v = (a @ _weight(P, cfg, pre + "attn.w_v").T).reshape(B, T, H, dh)
        if cfg["qk_norm"]:
            q = _rms(q, P[pre + "attn.q_norm.g"].astype(np.float64), eps)
            k = _rms(k, P[pre + "attn.k_norm.g"].astype(np.float64), eps)
        if cfg["pos"] == "rope":
            q, k = _rope(q, cfg["rope_base"]), _rope(k, cfg["rope_base"])
        q, k, v = q.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [B, H, T, dh]
        z = np.matmul(q, k.transpose(0, 1, 3, 2)) * (scale * inv_tau)
        p0 = None
        if cfg["sigmoid_attn"]:
            beta = -np.log(np.arange(1, T + 1, dtype=np.float64))[:, None] if cfg["sigmoid_attn_bias"] else 0.0
            p = np.where(causal, 1.0 / (1.0 + np.exp(-(z + beta))), 0.0)
        else:
            zm = np.where(causal, z, -np.inf)
            if extra:
                if cfg["attn_bias_kv"]:
                    kb = P[pre + "attn.k_bias"].astype(np.float64)  # [H, dh]
                    z0 = np.einsum("bhtc,hc->bht", q, kb) * (scale * inv_tau)
                elif cfg["sink_logit"]:
                    z0 = np.broadcast_to(P[pre + "attn.sink_logit"].astype(np.float64)[None, :, None], (B, H, T))
                else:
                    z0 = np.zeros((B, H, T))
                m = np.maximum(zm.max(-1), z0)
                e = np.exp(zm - m[..., None])
                e0 = np.exp(z0 - m)
                den = e.sum(-1) + e0
                p = e / den[..., None]
                p0 = e0 / den
            else:
                m = zm.max(-1, keepdims=True)
                e = np.exp(zm - m)
                p = e / e.sum(-1, keepdims=True)
        probs_out.append(p)
        p0_out.append(p0)
        if l == last:
            break
        if cfg["v_scale"] in ("learned", "fixed"):
            theta = P[pre + "attn.v_scale_theta"].astype(np.float64)
            C = (d * dh * cfg["init_std"] ** 2 * np.exp(theta))[None, :, None, None]
            rr = (v * v).sum(-1, keepdims=True)
            v = rr / (rr + C) * v
        y = np.matmul(p, v)
        if cfg["attn_bias_kv"]:
            y = y + p0[..., None] * P[pre + "attn.v_bias"].astype(np.float64)[None, :, None, :]
        y = y.transpose(0, 2, 1, 3).reshape(B, T, d)
        attn_out = y @ _weight(P, cfg, pre + "attn.w_o").T
        if post:
            mid = _rms(keep * x + alpha * attn_out, g_attn, eps)
            m_in = mid
        else:
            mid = keep * x + alpha * attn_out
            if not has_mlp:
                x = mid
                continue
            m_in = _rms(mid, g_mlp, eps)
        if not has_mlp:
            x = mid
            continue
        if cfg["mlp"] == "swiglu":
            act = _silu(m_in @ _weight(P, cfg, pre + "mlp.w_gate").T) * (m_in @ _weight(P, cfg, pre + "mlp.w_up").T)
        else:
            act = _gelu_tanh(m_in @ _weight(P, cfg, pre + "mlp.w_up").T)
        mlp_out = act @ _weight(P, cfg, pre + "mlp.w_down").T
        x = _rms(keep * mid + alpha * mlp_out, g_mlp, eps) if post else keep * mid + alpha * mlp_out
    return probs_out, p0_out
