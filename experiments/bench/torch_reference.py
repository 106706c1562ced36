#!/usr/bin/python3
"""PyTorch reference of attnlab's model: benchmark baseline and loss/gradient cross-check.

Subcommands (see experiments/bench/README.md):
  bench     time full training steps (forward, loss, backward, clip, AdamW) and print one JSON line
  grads     loss and every parameter gradient for given parameters and batch, written as safetensors
  compare   per-tensor errors between two gradient files; exit 1 above tolerance
  selftest  finite differences, independent NumPy forward, RoPE and init checks on tiny models

Runs with the Debian interpreter (/usr/bin/python3: python3-torch 1.13, python3-numpy); no other packages.
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------------
# Configuration and presets


# The model toggles of model/TOGGLES.md (attnlab's ModelConfig defaults: everything off).
TOGGLE_DEFAULTS = dict(v_scale="off", v_scale_theta=0.0, qk_norm=False, z_loss=0.0, softmax_plus_one=False,
                       sink_logit=False, attn_bias_kv=False, sigmoid_attn=False, sigmoid_attn_bias=False,
                       attn_temperature=1.0, attn_temperature_start=0, attn_temperature_end=0, residual_scale=1.0,
                       embed_scale=False, norm_position="pre", sink_token=False, sigma_reparam=False,
                       step=0)  # step: what attnlab's Transformer::set_step last received (0 in `attnlab grads`)


def toggles_on(cfg):
    """Toggles other than V-scale (only the unfused model implements them)."""
    return any(cfg[k] != v for k, v in TOGGLE_DEFAULTS.items() if k not in ("v_scale", "v_scale_theta", "step"))


def sigma_matrices(cfg):
    """attnlab's σReparam matrices per block: attribute name of the weight, attnlab name."""
    m = [("w_q", "attn.w_q"), ("w_k", "attn.w_k"), ("w_v", "attn.w_v"), ("w_o", "attn.w_o")]
    m += [("w_gate", "mlp.w_gate")] if cfg["mlp"] == "swiglu" else []
    return m + [("w_up", "mlp.w_up"), ("w_down", "mlp.w_down")]


def model_config(**kw):
    """Same keys and defaults as attnlab's ModelConfig (model/model_config.h)."""
    cfg = dict(vocab=256, d_model=64, n_layer=2, n_head=4, seq_len=64, mlp="swiglu", mlp_hidden=0,
               pos="rope", rope_base=10000.0, tied_head=False, norm_eps=1e-5, init_std=0.02)
    cfg.update(TOGGLE_DEFAULTS)
    unknown = set(kw) - set(cfg)
    if unknown:
        raise ValueError(f"unknown model config keys: {sorted(unknown)}")
    cfg.update(kw)
    if cfg["mlp"] not in ("swiglu", "gelu"):
        raise ValueError(f"mlp must be swiglu or gelu, got {cfg['mlp']!r}")
    if cfg["pos"] not in ("rope", "sinusoidal", "none"):
        raise ValueError(f"pos must be rope, sinusoidal or none, got {cfg['pos']!r}")
    if cfg["v_scale"] not in ("off", "learned", "fixed", "backward_only"):
        raise ValueError(f"v_scale must be off, learned, fixed or backward_only, got {cfg['v_scale']!r}")
    if cfg["norm_position"] not in ("pre", "post"):
        raise ValueError(f"norm_position must be pre or post, got {cfg['norm_position']!r}")
    for k in ("qk_norm", "softmax_plus_one", "sink_logit", "attn_bias_kv", "sigmoid_attn", "sigmoid_attn_bias",
              "embed_scale", "sink_token", "sigma_reparam"):
        cfg[k] = bool(cfg[k])
    if cfg["d_model"] % cfg["n_head"] != 0:
        raise ValueError("d_model must be divisible by n_head")
    if cfg["pos"] == "rope" and (cfg["d_model"] // cfg["n_head"]) % 2 != 0:
        raise ValueError("rope needs an even d_head")
    if cfg["pos"] == "sinusoidal" and cfg["d_model"] % 2 != 0:
        raise ValueError("sinusoidal needs an even d_model")
    cfg["tied_head"] = bool(cfg["tied_head"])
    return cfg


def hidden(cfg):
    return cfg["mlp_hidden"] if cfg["mlp_hidden"] > 0 else 4 * cfg["d_model"]


# SwiGLU, hidden 4d, RoPE, untied head. batch = sequences per step.
PRESETS = {
    "A": dict(vocab=256, d_model=64, n_layer=2, n_head=4, seq_len=64, batch=16),
    "B": dict(vocab=256, d_model=128, n_layer=4, n_head=4, seq_len=128, batch=16),
    "C": dict(vocab=4096, d_model=256, n_layer=6, n_head=8, seq_len=256, batch=8),
    "D": dict(vocab=8192, d_model=512, n_layer=8, n_head=8, seq_len=256, batch=8),
}


def preset_config(name):
    p = dict(PRESETS[name])
    batch = p.pop("batch")
    return model_config(mlp="swiglu", pos="rope", tied_head=False, **p), batch


def flops_per_token(cfg):
    """6·N + 12·L·T·d (PaLM appendix B convention: attention over the full T, causal mask not discounted).
    N = matmul weights: L·(4d² + k·d·F) + V·d, k = 3 for SwiGLU and 2 for GELU; the V·d term is the LM head
    (for a tied head the same matrix still costs a matmul, so it is counted either way)."""
    d, L, T, V, Fh = cfg["d_model"], cfg["n_layer"], cfg["seq_len"], cfg["vocab"], hidden(cfg)
    k = 3 if cfg["mlp"] == "swiglu" else 2
    n = L * (4 * d * d + k * d * Fh) + V * d
    return 6 * n + 12 * L * T * d


# ---------------------------------------------------------------------------------------------------
# Model


def rope_tables(T, d_head, base, dtype):
    """cos, sin [T, d_head/2]: angle(t, i) = t · base^(-2i/d_head), computed in float64 then cast."""
    i = np.arange(d_head // 2, dtype=np.float64)
    inv = np.power(float(base), -2.0 * i / d_head)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    return torch.tensor(np.cos(ang), dtype=dtype), torch.tensor(np.sin(ang), dtype=dtype)


def sinusoidal_table(T, d, dtype):
    """pe[t, 2i] = sin(t / 10000^(2i/d)), pe[t, 2i+1] = cos(same)."""
    i = np.arange(d // 2, dtype=np.float64)
    ang = np.arange(T, dtype=np.float64)[:, None] / np.power(10000.0, 2.0 * i / d)[None, :]
    pe = np.empty((T, d), dtype=np.float64)
    pe[:, 0::2] = np.sin(ang)
    pe[:, 1::2] = np.cos(ang)
    return torch.tensor(pe, dtype=dtype)


def apply_rope(x, cos, sin):
    """x [B, T, nh, dh]; interleaved pairs (2i, 2i+1) of each head: (x0, x1) -> (x0 c - x1 s, x0 s + x1 c).
    cos, sin [T, dh/2]."""
    B, T, nh, dh = x.shape
    xp = x.reshape(B, T, nh, dh // 2, 2)
    x0, x1 = xp[..., 0], xp[..., 1]
    c = cos[:T].view(1, T, 1, dh // 2)
    s = sin[:T].view(1, T, 1, dh // 2)
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).reshape(B, T, nh, dh)


def rmsnorm(x, g, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g


class Model(torch.nn.Module):
    """attnlab's model. With fused=True the q/k/v weights are one [3d, d] parameter (w_qkv) and the SwiGLU
    gate/up weights one [2F, d] parameter (w_gate_up): the same function with fewer, larger matmuls (the
    benchmark's default). Parameter names are always reported in attnlab's unfused naming (named_tensors)."""

    def __init__(self, cfg, fused=False, dtype=torch.float32):
        super().__init__()
        self.cfg, self.fused = cfg, fused
        d, V, L, Fh = cfg["d_model"], cfg["vocab"], cfg["n_layer"], hidden(cfg)
        self.d_head = d // cfg["n_head"]
        P = lambda *shape: torch.nn.Parameter(torch.empty(*shape, dtype=dtype))
        self.tok_emb = P(V, d)
        self.blocks = torch.nn.ModuleList()
        for _ in range(L):
            blk = torch.nn.Module()
            blk.attn_norm_g = P(d)
            if fused:
                blk.w_qkv = P(3 * d, d)
            else:
                blk.w_q, blk.w_k, blk.w_v = P(d, d), P(d, d), P(d, d)
            blk.w_o = P(d, d)
            if cfg["v_scale"] != "off":
                blk.v_scale_theta = P(cfg["n_head"])  # trained only when learned (forward detaches it)
            dh_ = d // cfg["n_head"]
            if cfg["qk_norm"]:
                blk.q_norm_g, blk.k_norm_g = P(dh_), P(dh_)
            if cfg["sink_logit"]:
                blk.sink_logit = P(cfg["n_head"])
            if cfg["attn_bias_kv"]:
                blk.k_bias, blk.v_bias = P(cfg["n_head"], dh_), P(cfg["n_head"], dh_)
            blk.mlp_norm_g = P(d)
            if cfg["mlp"] == "swiglu":
                if fused:
                    blk.w_gate_up = P(2 * Fh, d)
                else:
                    blk.w_gate, blk.w_up = P(Fh, d), P(Fh, d)
            else:
                blk.w_up = P(Fh, d)
            blk.w_down = P(d, Fh)
            if cfg["sigma_reparam"]:
                if fused:
                    raise ValueError("sigma_reparam needs the unfused model")
                for attr, _ in sigma_matrices(cfg):
                    setattr(blk, "sn_gamma_" + attr, P(1))
                    u = P(getattr(blk, attr).shape[1])
                    u.requires_grad_(False)  # state, not trained: no gradient flows through u
                    setattr(blk, "sn_u_" + attr, u)
            self.blocks.append(blk)
        self.final_norm_g = P(d)
        if not cfg["tied_head"]:
            self.lm_head = P(V, d)
        if toggles_on(cfg) and fused:
            raise ValueError("the model toggles (other than V-scale) are implemented in the unfused model only")
        if cfg["sink_token"]:
            self.sink_token = P(d)
        T = cfg["seq_len"] + (1 if cfg["sink_token"] else 0)  # the sink token is an extra position 0
        if cfg["pos"] == "rope":
            cos, sin = rope_tables(T, self.d_head, cfg["rope_base"], dtype)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        elif cfg["pos"] == "sinusoidal":
            self.register_buffer("pe", sinusoidal_table(T, d, dtype), persistent=False)
        # Additive causal mask: 0 where j <= i, -inf above the diagonal.
        self.register_buffer("causal", torch.full((T, T), float("-inf"), dtype=dtype).triu(1), persistent=False)
        self.init_weights(cfg["init_std"])

    @torch.no_grad()
    def init_weights(self, std, gen=None):
        for p in self.parameters():
            if p.dim() == 1:
                p.fill_(1.0)
            else:
                p.normal_(0.0, std, generator=gen)
        for b in self.blocks:
            if hasattr(b, "v_scale_theta"):
                b.v_scale_theta.fill_(self.cfg["v_scale_theta"])
            if hasattr(b, "sink_logit"):
                b.sink_logit.zero_()
            if self.cfg["sigma_reparam"]:
                for attr, _ in sigma_matrices(self.cfg):
                    w = getattr(b, attr).detach().double()
                    _, sv, vh = torch.linalg.svd(w, full_matrices=False)
                    getattr(b, "sn_gamma_" + attr).fill_(float(sv[0]))
                    getattr(b, "sn_u_" + attr).copy_(vh[0].to(w.dtype))

    # attnlab tensor name -> (parameter, row slice or None) ------------------------------------------
    def named_tensors(self):
        """(name, tensor view) in attnlab's naming; views of the fused parameters where fused."""
        out = [("tok_emb", self.tok_emb)]
        d, Fh = self.cfg["d_model"], hidden(self.cfg)
        for l, b in enumerate(self.blocks):
            pre = f"blocks.{l}."
            out.append((pre + "attn_norm.g", b.attn_norm_g))
            if self.fused:
                out += [(pre + "attn.w_q", b.w_qkv[:d]), (pre + "attn.w_k", b.w_qkv[d:2 * d]),
                        (pre + "attn.w_v", b.w_qkv[2 * d:])]
            else:
                out += [(pre + "attn.w_q", b.w_q), (pre + "attn.w_k", b.w_k), (pre + "attn.w_v", b.w_v)]
            out.append((pre + "attn.w_o", b.w_o))
            if self.cfg["qk_norm"]:
                out += [(pre + "attn.q_norm.g", b.q_norm_g), (pre + "attn.k_norm.g", b.k_norm_g)]
            if self.cfg["sink_logit"]:
                out.append((pre + "attn.sink_logit", b.sink_logit))
            if self.cfg["attn_bias_kv"]:
                out += [(pre + "attn.k_bias", b.k_bias), (pre + "attn.v_bias", b.v_bias)]
            if self.cfg["v_scale"] != "off":
                out.append((pre + "attn.v_scale_theta", b.v_scale_theta))
            out.append((pre + "mlp_norm.g", b.mlp_norm_g))
            if self.cfg["mlp"] == "swiglu":
                if self.fused:
                    out += [(pre + "mlp.w_gate", b.w_gate_up[:Fh]), (pre + "mlp.w_up", b.w_gate_up[Fh:])]
                else:
                    out += [(pre + "mlp.w_gate", b.w_gate), (pre + "mlp.w_up", b.w_up)]
            else:
                out.append((pre + "mlp.w_up", b.w_up))
            out.append((pre + "mlp.w_down", b.w_down))
            if self.cfg["sigma_reparam"]:
                for attr, name in sigma_matrices(self.cfg):
                    out += [(pre + name + ".sn_gamma", getattr(b, "sn_gamma_" + attr)),
                            (pre + name + ".sn_u", getattr(b, "sn_u_" + attr))]
        if self.cfg["sink_token"]:
            out.insert(1, ("sink_token", self.sink_token))
        out.append(("final_norm.g", self.final_norm_g))
        if not self.cfg["tied_head"]:
            out.append(("lm_head", self.lm_head))
        return out

    def named_grads(self):
        res = []
        for name, t in self.named_tensors():
            base = self._param_of(t)
            g = base.grad if base.grad is not None else torch.zeros_like(base)
            res.append((name, g[self._rows_of(t, base)] if t is not base else g))
        return res

    def _param_of(self, view):
        for p in self.parameters():
            if view is p or (view._base is p):
                return p
        raise RuntimeError("view of no parameter")

    @staticmethod
    def _rows_of(view, base):
        off = (view.data_ptr() - base.data_ptr()) // base.element_size() // base.shape[1]
        return slice(off, off + view.shape[0])

    @torch.no_grad()
    def load_named(self, tensors):
        """tensors: name -> numpy array. Every expected name must be present with the right shape."""
        expected = self.named_tensors()
        names = {n for n, _ in expected}
        missing = sorted(names - set(tensors))
        if missing:
            raise ValueError(f"missing parameters: {missing}")
        for name, t in expected:
            a = tensors[name]
            if tuple(a.shape) != tuple(t.shape):
                raise ValueError(f"parameter {name}: shape {tuple(a.shape)}, expected {tuple(t.shape)}")
            t.copy_(torch.from_numpy(np.ascontiguousarray(a)).to(t.dtype))
        return sorted(set(tensors) - names)  # unexpected names, reported by the caller

    def v_scale(self, v, theta):
        cfg = self.cfg
        c0 = cfg["d_model"] * self.d_head * cfg["init_std"] ** 2
        return v_scale_map(v, theta, c0, cfg["v_scale"])

    def w(self, b, attr):
        """A block weight as the linear layer uses it: γ·W/‖W u‖ under σReparam (u a constant), else W."""
        W = getattr(b, attr)
        if not self.cfg["sigma_reparam"]:
            return W
        u = getattr(b, "sn_u_" + attr).detach()
        return getattr(b, "sn_gamma_" + attr) * W / torch.linalg.vector_norm(W @ u)

    def inv_tau(self):
        cfg = self.cfg
        if cfg["attn_temperature"] == 1.0:
            return 1.0
        st = cfg["step"]
        inside = st >= cfg["attn_temperature_start"] and (cfg["attn_temperature_end"] == 0 or st < cfg["attn_temperature_end"])
        return 1.0 / cfg["attn_temperature"] if inside else 1.0

    # forward ------------------------------------------------------------------------------------------
    def forward(self, tokens):
        """tokens [B, T] int64 -> logits [B, T, V] (the sink token's position, when on, is dropped)."""
        cfg = self.cfg
        B, T = tokens.shape
        d, H, dh, eps = cfg["d_model"], cfg["n_head"], self.d_head, cfg["norm_eps"]
        x = F.embedding(tokens, self.tok_emb)
        if cfg["sink_token"]:
            x = torch.cat([self.sink_token.view(1, 1, d).expand(B, 1, d), x], dim=1)
            T += 1
        if cfg["embed_scale"]:
            x = x * math.sqrt(d)
        if cfg["pos"] == "sinusoidal":
            x = x + self.pe[:T]
        scale = 1.0 / math.sqrt(dh)
        mask = self.causal[:T, :T]
        post, alpha, inv_tau = cfg["norm_position"] == "post", cfg["residual_scale"], self.inv_tau()
        res = (lambda x, f: x + f) if alpha == 1.0 else (lambda x, f: x + alpha * f)
        for b in self.blocks:
            a = x if post else rmsnorm(x, b.attn_norm_g, eps)
            if self.fused:
                qkv = F.linear(a, b.w_qkv).view(B, T, 3 * H, dh)
                qk, v = qkv[:, :, :2 * H], qkv[:, :, 2 * H:]
                if cfg["pos"] == "rope":
                    qk = apply_rope(qk, self.rope_cos, self.rope_sin)
                q, k = qk[:, :, :H], qk[:, :, H:]
            else:
                q = F.linear(a, self.w(b, "w_q")).view(B, T, H, dh)
                k = F.linear(a, self.w(b, "w_k")).view(B, T, H, dh)
                v = F.linear(a, self.w(b, "w_v")).view(B, T, H, dh)
                if cfg["qk_norm"]:  # per head, before RoPE
                    q, k = rmsnorm(q, b.q_norm_g, eps), rmsnorm(k, b.k_norm_g, eps)
                if cfg["pos"] == "rope":
                    q = apply_rope(q, self.rope_cos, self.rope_sin)
                    k = apply_rope(k, self.rope_cos, self.rope_sin)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, dh]
            if cfg["v_scale"] != "off":
                v = self.v_scale(v, b.v_scale_theta)
            dots = torch.matmul(q, k.transpose(-2, -1)) * scale
            s = (dots * inv_tau if inv_tau != 1.0 else dots) + mask
            if cfg["sigmoid_attn"]:
                beta = (-torch.log(torch.arange(1, T + 1, dtype=s.dtype)).view(1, 1, T, 1)
                        if cfg["sigmoid_attn_bias"] else 0.0)
                y = torch.matmul(torch.sigmoid(s + beta), v)  # masked entries: sigmoid(-inf) = 0
            elif cfg["softmax_plus_one"] or cfg["sink_logit"] or cfg["attn_bias_kv"]:
                if cfg["attn_bias_kv"]:
                    z0 = torch.einsum("bhtd,hd->bht", q, b.k_bias) * (scale * inv_tau)
                elif cfg["sink_logit"]:
                    z0 = b.sink_logit.view(1, H, 1).expand(B, H, T)
                else:
                    z0 = torch.zeros(B, H, T, dtype=s.dtype)
                p = torch.softmax(torch.cat([s, z0.unsqueeze(-1)], dim=-1), dim=-1)  # the extra key is last
                y = torch.matmul(p[..., :T], v)
                if cfg["attn_bias_kv"]:
                    y = y + p[..., T:] * b.v_bias.view(1, H, 1, dh)
            else:
                y = torch.matmul(torch.softmax(s, dim=-1), v)
            y = y.transpose(1, 2).reshape(B, T, d)
            o = F.linear(y, self.w(b, "w_o") if not self.fused else b.w_o)
            x = rmsnorm(res(x, o), b.attn_norm_g, eps) if post else res(x, o)
            m = x if post else rmsnorm(x, b.mlp_norm_g, eps)
            if cfg["mlp"] == "swiglu":
                if self.fused:
                    gate, up = F.linear(m, b.w_gate_up).chunk(2, dim=-1)
                else:
                    gate, up = F.linear(m, self.w(b, "w_gate")), F.linear(m, self.w(b, "w_up"))
                act = F.silu(gate) * up
            else:
                act = F.gelu(F.linear(m, self.w(b, "w_up")), approximate="tanh")
            mo = F.linear(act, self.w(b, "w_down") if not self.fused else b.w_down)
            x = rmsnorm(res(x, mo), b.mlp_norm_g, eps) if post else res(x, mo)
        f = rmsnorm(x, self.final_norm_g, eps)
        logits = F.linear(f, self.tok_emb if cfg["tied_head"] else self.lm_head)
        return logits[:, 1:] if cfg["sink_token"] else logits


def v_scale_map(v, theta, c0, mode):
    """V-scale (gradient-sinks.md §1), v [B, H, T, dh], theta [H]: v̂ = φ(‖v‖²)·v, φ(r) = r/(r + C_h),
    C_h = c0·exp(θ_h). θ gets a gradient only when learned. backward_only (§1.4) is
    stopgrad(v) + (v̂ − stopgrad(v̂)): forward v exactly, backward through v̂'s Jacobian."""
    th = theta if mode == "learned" else theta.detach()
    C = (c0 * torch.exp(th)).view(1, -1, 1, 1)
    r = (v * v).sum(-1, keepdim=True)
    vh = r / (r + C) * v
    if mode == "backward_only":
        return v.detach() + (vh - vh.detach())
    return vh


def loss_fn(logits, targets, z_loss=0.0):
    """Mean cross-entropy over positions with target >= 0; 0 when there are none (as attnlab). With z_loss = c,
    plus c·mean(logsumexp(logits)²) over the same positions (model.z_loss)."""
    V = logits.shape[-1]
    flat_t = targets.reshape(-1)
    if not bool((flat_t >= 0).any()):
        return logits.sum() * 0.0
    ce = F.cross_entropy(logits.reshape(-1, V), flat_t, ignore_index=-1, reduction="mean")
    if z_loss == 0.0:
        return ce
    lse = torch.logsumexp(logits.reshape(-1, V)[flat_t >= 0], dim=-1)
    return ce + z_loss * (lse * lse).mean()


# ---------------------------------------------------------------------------------------------------
# Safetensors: the one reader and writer (experiments/attnlab_py/attnlab/safetensors.py; the reader verifies
# attnlab's crc32.<name> checksums, the writer adds them).

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "attnlab_py"))
from attnlab.safetensors import read_safetensors, write_safetensors  # noqa: E402,F401


# ---------------------------------------------------------------------------------------------------
# The same model in Hugging Face Llama form (`attnlab export --format hf-llama`): rotate-half RoPE


def rotate_half(x):
    """Llama's pairing (i, i + d/2) of the last dimension: (x1, x2) -> (-x2, x1)."""
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def llama_logits(tensors, config, tokens, dtype=torch.float64):
    """Logits [B, T, V] of a Hugging Face Llama checkpoint (the tensors of model.safetensors, name -> array;
    config.json as a dict) for tokens [B, T], written from the Llama definition (rotate-half RoPE,
    RMSNorm with weight, SwiGLU, no biases), independent of Model above."""
    P = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype) for k, v in tensors.items()}
    d, H, L = config["hidden_size"], config["num_attention_heads"], config["num_hidden_layers"]
    if config.get("num_key_value_heads", H) != H:
        raise ValueError("grouped-query attention is not needed for attnlab exports")
    dh, eps, theta = d // H, float(config["rms_norm_eps"]), float(config["rope_theta"])
    tokens = torch.as_tensor(tokens, dtype=torch.int64)
    B, T = tokens.shape
    inv_freq = 1.0 / (theta ** (torch.arange(0, dh, 2, dtype=torch.float64) / dh))
    freqs = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().to(dtype)[None, None], emb.sin().to(dtype)[None, None]  # [1, 1, T, dh]

    def norm(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    x = P["model.embed_tokens.weight"][tokens]
    mask = torch.full((T, T), float("-inf"), dtype=dtype).triu(1)
    for l in range(L):
        pre = f"model.layers.{l}."
        h = norm(x, P[pre + "input_layernorm.weight"])
        q, k, v = (F.linear(h, P[pre + f"self_attn.{n}_proj.weight"]).view(B, T, H, dh).transpose(1, 2)
                   for n in "qkv")
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(dh) + mask, dim=-1)
        x = x + F.linear((att @ v).transpose(1, 2).reshape(B, T, d), P[pre + "self_attn.o_proj.weight"])
        h = norm(x, P[pre + "post_attention_layernorm.weight"])
        up = F.silu(F.linear(h, P[pre + "mlp.gate_proj.weight"])) * F.linear(h, P[pre + "mlp.up_proj.weight"])
        x = x + F.linear(up, P[pre + "mlp.down_proj.weight"])
    x = norm(x, P["model.norm.weight"])
    head = P["model.embed_tokens.weight"] if config.get("tie_word_embeddings") else P["lm_head.weight"]
    return F.linear(x, head)


# ---------------------------------------------------------------------------------------------------
# grads / compare


def compute_grads(cfg, params, inputs, targets, dtype):
    """-> (loss float, dict name -> numpy grad) for the unfused model in dtype."""
    model = Model(cfg, fused=False, dtype=dtype)
    unexpected = [n for n in model.load_named(params)
                  if not (n.startswith(("grad.", "optim.")) or n in ("loss", "inputs", "targets"))]  # attnlab files
    if unexpected:
        print(f"warning: ignoring unexpected tensors in params file: {unexpected}", file=sys.stderr)
    model.zero_grad(set_to_none=True)
    loss = loss_fn(model(inputs), targets, cfg["z_loss"])
    loss.backward()
    return float(loss.item()), {n: g.detach().cpu().numpy() for n, g in model.named_grads()}


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    den = max(na, nb)
    return 0.0 if den == 0 else float(np.linalg.norm(a - b) / den)


def cmd_grads(args):
    torch.set_num_threads(args.threads)
    cfg = model_config(**json.loads(args.config_json))
    params, _ = read_safetensors(args.params)
    batch, _ = read_safetensors(args.batch)
    for key in ("inputs", "targets"):
        if key not in batch:
            raise SystemExit(f"{args.batch}: no tensor {key!r}")
    inputs = torch.from_numpy(batch["inputs"].astype(np.int64))
    targets = torch.from_numpy(batch["targets"].astype(np.int64))
    if inputs.dim() != 2 or inputs.shape != targets.shape:
        raise SystemExit(f"inputs {tuple(inputs.shape)} / targets {tuple(targets.shape)}: expected equal [B, T]")
    if inputs.shape[1] > cfg["seq_len"]:
        raise SystemExit(f"sequence length {inputs.shape[1]} > seq_len {cfg['seq_len']}")
    V = cfg["vocab"]
    if inputs.min() < 0 or inputs.max() >= V or targets.max() >= V or targets.min() < -1:
        raise SystemExit("token ids out of range (inputs in [0, V), targets in [-1, V))")

    loss64, g64 = compute_grads(cfg, params, inputs, targets, torch.float64)
    loss32, g32 = compute_grads(cfg, params, inputs, targets, torch.float32)
    chosen = g64 if args.grad_dtype == "float64" else g32
    out = {"loss": np.array(loss64 if args.grad_dtype == "float64" else loss32, dtype=np.float32)}
    for name, g in chosen.items():
        out["grad." + name] = g.astype(np.float32)
    meta = {"loss_f64": repr(loss64), "loss_f32": repr(loss32), "grad_dtype": args.grad_dtype,
            "torch": torch.__version__, "config": json.dumps(cfg)}
    write_safetensors(args.out, out, meta)
    worst = max(g64, key=lambda n: rel_err(g64[n], g32[n]))
    print(f"loss float64 {loss64:.10f}  float32 {loss32:.10f}  |diff| {abs(loss64 - loss32):.3e}")
    print(f"float32 vs float64 gradient rel err: worst {rel_err(g64[worst], g32[worst]):.3e} ({worst}); "
          f"wrote {len(out) - 1} gradients ({args.grad_dtype}) to {args.out}")


def cmd_compare(args):
    # Only the results are compared: "loss" and "grad.*". attnlab's grads files also carry the
    # parameters and the batch (so they can serve as --params/--batch), which are inputs, not results.
    def results(t):
        return {k: v for k, v in t.items() if k == "loss" or k.startswith("grad.")}
    a = results(read_safetensors(args.a)[0])
    b = results(read_safetensors(args.b)[0])
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    failed = bool(only_a or only_b)
    if only_a:
        print(f"only in {args.a}: {only_a}")
    if only_b:
        print(f"only in {args.b}: {only_b}")
    names = [n for n in a if n in b]
    width = max([len(n) for n in names] + [6])
    print(f"{'tensor':<{width}}  {'max_abs':>10}  {'rel_err':>10}")
    for n in names:
        x, y = a[n].astype(np.float64), b[n].astype(np.float64)
        if x.shape != y.shape:
            print(f"{n:<{width}}  shape mismatch {x.shape} vs {y.shape}  FAIL")
            failed = True
            continue
        mx = float(np.max(np.abs(x - y))) if x.size else 0.0
        r = rel_err(x, y)
        bad = not np.isfinite(r) or not np.all(np.isfinite(x)) or not np.all(np.isfinite(y)) or r > args.tol
        failed |= bad
        print(f"{n:<{width}}  {mx:10.3e}  {r:10.3e}{'  FAIL' if bad else ''}")
    print(f"{'FAIL' if failed else 'OK'} (tolerance {args.tol:g})")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------------
# bench


def openblas_corename():
    try:
        import ctypes
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except Exception:  # not OpenBLAS, or symbol absent
        return None


def current_rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cmd_bench(args):
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.autograd.set_detect_anomaly(False)
    if os.environ.get("OPENBLAS_CORETYPE"):
        print(f"warning: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} overrides OpenBLAS's CPU detection "
              f"(Haswell = AVX2 kernels, about half the AVX-512 sgemm throughput); compare.py removes it",
              file=sys.stderr)
    rss_import = current_rss_mb()
    cfg, B = preset_config(args.preset)
    if args.batch:
        B = args.batch
    T, V = cfg["seq_len"], cfg["vocab"]
    torch.manual_seed(args.seed)
    model = Model(cfg, fused=not args.unfused, dtype=torch.float32)
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() != 2]
    opt_kw = dict(lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    if args.foreach:
        opt_kw["foreach"] = True
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], **opt_kw)
    gen = torch.Generator().manual_seed(args.seed + 1)
    # A few pre-generated uniform-random batches, cycled, so token generation is not timed.
    batches = [(torch.randint(0, V, (B, T), generator=gen), torch.randint(0, V, (B, T), generator=gen))
               for _ in range(4)]
    params = list(model.parameters())
    step_i = [0]

    def step():
        x, y = batches[step_i[0] % len(batches)]
        step_i[0] += 1
        loss = loss_fn(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(args.warmup):
        step()
    repeat_s = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            last = step()
        repeat_s.append(time.perf_counter() - t0)
    if not math.isfinite(last):
        raise SystemExit(f"non-finite loss {last}")
    tokens = B * T * args.steps
    tps = statistics.median(tokens / s for s in repeat_s)
    ms = statistics.median(1e3 * s / args.steps for s in repeat_s)
    fpt = flops_per_token(cfg)
    res = {"impl": "pytorch", "preset": args.preset, "threads": args.threads,
           "tokens_per_s": round(tps, 1), "ms_per_step": round(ms, 3),
           "gflops": round(fpt * tps / 1e9, 2),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "repeat_ms": [round(1e3 * s / args.steps, 3) for s in repeat_s],
           # Extras (not in attnlab's contract): what this baseline is made of.
           "rss_after_import_mb": round(rss_import, 1), "flops_per_token": fpt, "batch": B, "seq_len": T,
           "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats, "final_loss": round(last, 4),
           "torch": torch.__version__, "blas_core": openblas_corename(),
           "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
           "fused": not args.unfused, "foreach": bool(args.foreach), "attention": "manual"}
    if args.json:
        print(json.dumps(res), flush=True)
    else:
        for k, v in res.items():
            print(f"{k:>22}: {v}")


# ---------------------------------------------------------------------------------------------------
# selftest


def numpy_forward_loss(cfg, P, tokens, targets):
    """Independent float64 forward written from the spec with explicit loops over heads and positions
    (no torch). P: name -> float64 array in attnlab naming. Returns (logits [B,T,V], loss)."""
    d, H, V = cfg["d_model"], cfg["n_head"], cfg["vocab"]
    dh, eps = d // H, cfg["norm_eps"]
    B, T = tokens.shape

    def rms(x, g):
        return g * x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)

    def rope_vec(vec, t):  # one head's vector at position t
        out = vec.copy()
        for i in range(dh // 2):
            th = t * cfg["rope_base"] ** (-2.0 * i / dh)
            x0, x1 = vec[2 * i], vec[2 * i + 1]
            out[2 * i] = x0 * math.cos(th) - x1 * math.sin(th)
            out[2 * i + 1] = x0 * math.sin(th) + x1 * math.cos(th)
        return out

    x = P["tok_emb"][tokens].copy()
    if cfg["pos"] == "sinusoidal":
        for t in range(T):
            for i in range(d // 2):
                x[:, t, 2 * i] += math.sin(t / 10000 ** (2 * i / d))
                x[:, t, 2 * i + 1] += math.cos(t / 10000 ** (2 * i / d))
    for l in range(cfg["n_layer"]):
        pre = f"blocks.{l}."
        a = rms(x, P[pre + "attn_norm.g"])
        q, k, v = a @ P[pre + "attn.w_q"].T, a @ P[pre + "attn.w_k"].T, a @ P[pre + "attn.w_v"].T
        y = np.zeros_like(q)
        for bi in range(B):
            for h in range(H):
                cs = slice(h * dh, (h + 1) * dh)
                qh, kh, vh = q[bi, :, cs].copy(), k[bi, :, cs].copy(), v[bi, :, cs]
                if cfg["pos"] == "rope":
                    for t in range(T):
                        qh[t], kh[t] = rope_vec(qh[t], t), rope_vec(kh[t], t)
                for i in range(T):
                    s = np.array([qh[i] @ kh[j] / math.sqrt(dh) for j in range(i + 1)])
                    p = np.exp(s - s.max())
                    p /= p.sum()
                    y[bi, i, cs] = p @ vh[:i + 1]
        x = x + y @ P[pre + "attn.w_o"].T
        m = rms(x, P[pre + "mlp_norm.g"])
        if cfg["mlp"] == "swiglu":
            g = m @ P[pre + "mlp.w_gate"].T
            act = g / (1 + np.exp(-g)) * (m @ P[pre + "mlp.w_up"].T)
        else:
            u = m @ P[pre + "mlp.w_up"].T
            act = 0.5 * u * (1 + np.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u ** 3)))
        x = x + act @ P[pre + "mlp.w_down"].T
    f = rms(x, P["final_norm.g"])
    logits = f @ (P["tok_emb"] if cfg["tied_head"] else P["lm_head"]).T
    total, count = 0.0, 0
    for bi in range(B):
        for t in range(T):
            tg = targets[bi, t]
            if tg >= 0:
                row = logits[bi, t]
                mx = row.max()
                total += mx + math.log(np.exp(row - mx).sum()) - row[tg]
                count += 1
    return logits, (total / count if count else 0.0)


def cmd_selftest(args):
    torch.set_num_threads(1)
    failures = []

    def check(ok, msg):
        print(("ok    " if ok else "FAIL  ") + msg)
        if not ok:
            failures.append(msg)

    # RoPE: norm preservation per pair, identity at t = 0, and relative-position property
    # <R(t)q, R(s)k> = <R(t+u)q, R(s+u)k>.
    T, dh = 16, 8
    cos, sin = rope_tables(T, dh, 10000.0, torch.float64)
    g = torch.Generator().manual_seed(0)
    xr = torch.randn(3, T, 2, dh, generator=g, dtype=torch.float64)
    yr = apply_rope(xr, cos, sin)
    pair_n = lambda z: z.reshape(*z.shape[:-1], dh // 2, 2).norm(dim=-1)
    check(torch.allclose(pair_n(xr), pair_n(yr), rtol=0, atol=1e-12), "rope preserves the norm of every pair")
    check(torch.equal(xr[:, 0], yr[:, 0]), "rope is the identity at t = 0")
    qv = torch.randn(1, 1, 1, dh, generator=g, dtype=torch.float64).expand(1, T, 1, dh)
    kv = torch.randn(1, 1, 1, dh, generator=g, dtype=torch.float64).expand(1, T, 1, dh)
    rq, rk = apply_rope(qv, cos, sin)[0, :, 0], apply_rope(kv, cos, sin)[0, :, 0]
    dots = rq @ rk.T  # dots[t, s] must depend on t - s only
    check(all(torch.allclose(dots[:-u, :-u], dots[u:, u:], rtol=0, atol=1e-12) for u in (1, 3, 7))
          and not torch.allclose(dots[0, 0], dots[0, 1]), "rope scores depend on t - s only")
    # Interleaving: pair 0 of a head rotates by exactly t radians (base^0 = 1).
    e = torch.zeros(1, T, 1, dh, dtype=torch.float64)
    e[..., 0] = 1.0
    re = apply_rope(e, cos, sin)[0, :, 0]
    ts = torch.arange(T, dtype=torch.float64)
    check(torch.allclose(re[:, 0], ts.cos(), atol=1e-12) and torch.allclose(re[:, 1], ts.sin(), atol=1e-12),
          "rope rotates interleaved pair (0, 1) by angle t")

    V, B, Tm = 23, 2, 8
    case = 0
    for pos in ("rope", "sinusoidal", "none"):
        for mlp in ("swiglu", "gelu"):
            for tied in (False, True):
                tag = f"pos={pos} mlp={mlp} tied={int(tied)}"
                cfg = model_config(vocab=V, d_model=16, n_layer=2, n_head=2, seq_len=Tm, mlp=mlp, pos=pos,
                                   tied_head=tied)
                case += 1
                gen = torch.Generator().manual_seed(1000 + case)
                tokens = torch.randint(0, V, (B, Tm), generator=gen)
                targets = torch.randint(0, V, (B, Tm), generator=gen)
                targets[0, 0] = -1
                targets[1, 3] = -1

                # Loss at the N(0, 0.02) init is ~ ln V (near-uniform predictions); many targets so the
                # sampling noise of the mean is well below the 0.05 tolerance.
                m0 = Model(cfg, dtype=torch.float64)
                m0.init_weights(0.02, torch.Generator().manual_seed(1))
                with torch.no_grad():
                    l0 = loss_fn(m0(torch.randint(0, V, (64, Tm), generator=gen)),
                                 torch.randint(0, V, (64, Tm), generator=gen)).item()
                check(abs(l0 - math.log(V)) < 0.05, f"{tag}: init loss {l0:.4f} vs ln V {math.log(V):.4f}")

                # Larger weights and non-unit gains so attention, RoPE and the gains matter in the checks.
                m = Model(cfg, dtype=torch.float64)
                with torch.no_grad():
                    for p in m.parameters():
                        if p.dim() == 1:
                            p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
                        else:
                            p.copy_(0.4 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
                named = {n: t.detach().numpy().copy() for n, t in m.named_tensors()}

                # Independent NumPy forward from the spec.
                logits = m(tokens)
                loss = loss_fn(logits, targets)
                np_logits, np_loss = numpy_forward_loss(cfg, named, tokens.numpy(), targets.numpy())
                check(np.max(np.abs(logits.detach().numpy() - np_logits)) < 1e-10
                      and abs(loss.item() - np_loss) < 1e-10,
                      f"{tag}: torch forward == independent numpy forward (loss {loss.item():.6f})")

                # Causality: changing the last token changes no earlier logits.
                tok2 = tokens.clone()
                tok2[:, -1] = (tok2[:, -1] + 1) % V
                with torch.no_grad():
                    l2 = m(tok2)
                check(torch.equal(l2[:, :-1], logits.detach()[:, :-1])
                      and not torch.equal(l2[:, -1], logits.detach()[:, -1]), f"{tag}: causal")

                # Autograd vs central finite differences on a few entries of several parameters.
                loss.backward()
                grads = dict(m.named_grads())
                tensors = dict(m.named_tensors())
                probe = ["tok_emb", "blocks.0.attn.w_q", "blocks.0.attn.w_k", "blocks.1.attn.w_v",
                         "blocks.1.attn.w_o", "blocks.0.attn_norm.g", "blocks.1.mlp_norm.g",
                         "blocks.0.mlp.w_up", "blocks.1.mlp.w_down", "final_norm.g"]
                probe += ["blocks.1.mlp.w_gate"] if mlp == "swiglu" else []
                probe += [] if tied else ["lm_head"]
                worst, worst_at = 0.0, ""

                def loss_at(t, idx, val):
                    with torch.no_grad():
                        orig = t[idx].item()
                        t[idx] = val
                        out = loss_fn(m(tokens), targets).item()
                        t[idx] = orig
                    return out

                def central(t, idx, h):
                    x0 = t[idx].item()
                    return (loss_at(t, idx, x0 + h) - loss_at(t, idx, x0 - h)) / (2 * h)

                h = 1e-4  # Richardson-extrapolated central differences: error O(h^4) + rounding ~1e-16/h
                for name in probe:
                    t = tensors[name]
                    flat_idx = torch.randint(0, t.numel(), (3,), generator=gen).tolist()
                    if name == "tok_emb":  # make sure a used row is probed
                        flat_idx[0] = int(tokens[0, 1]) * t.shape[1] + 2
                    for fi in flat_idx:
                        idx = tuple(int(i) for i in np.unravel_index(fi, tuple(t.shape)))
                        num = (4 * central(t, idx, h / 2) - central(t, idx, h)) / 3
                        ana = grads[name][idx].item()
                        err = abs(num - ana) / max(abs(num), abs(ana), 1e-3)
                        if err > worst:
                            worst, worst_at = err, f"{name}{list(idx)} ana {ana:.6e} num {num:.6e}"
                check(worst < 1e-6, f"{tag}: autograd vs finite differences, worst rel err {worst:.2e} {worst_at}")

                # The fused benchmark model is the same function: same loss and gradients.
                mf = Model(cfg, fused=True, dtype=torch.float64)
                mf.load_named(named)
                lf = loss_fn(mf(tokens), targets)
                lf.backward()
                gf = dict(mf.named_grads())
                gd = max(rel_err(gf[n].numpy(), grads[n].numpy()) for n in grads)
                check(abs(lf.item() - loss.item()) < 1e-12 and gd < 1e-12,
                      f"{tag}: fused model == unfused (grad rel err {gd:.1e})")

    # Safetensors round trip (including a scalar).
    import tempfile
    with tempfile.TemporaryDirectory() as td:
        p = os.path.join(td, "x.safetensors")
        src = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "loss": np.array(1.5, np.float32),
               "i": np.array([[1, -1]], np.int32)}
        write_safetensors(p, src, {"k": "v"})
        back, meta = read_safetensors(p)
        check(all(back[k].dtype == src[k].dtype and back[k].shape == src[k].shape and np.array_equal(back[k], src[k])
                  for k in src) and meta == {"k": "v"}, "safetensors round trip")

    print(f"selftest: {'FAILED (' + str(len(failures)) + ')' if failures else 'all passed'}")
    return 1 if failures else 0


# ---------------------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    b = sub.add_parser("bench", help="time training steps; one JSON line with --json")
    b.add_argument("--preset", choices=sorted(PRESETS), default="A")
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--warmup", type=int, default=3)
    b.add_argument("--steps", type=int, default=20)
    b.add_argument("--repeats", type=int, default=5)
    b.add_argument("--batch", type=int, default=0, help="override the preset's batch size")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--json", action="store_true")
    b.add_argument("--unfused", action="store_true", help="separate q/k/v and gate/up matmuls")
    b.add_argument("--foreach", action="store_true", help="AdamW(foreach=True) (multi-tensor path)")

    g = sub.add_parser("grads", help="loss and parameter gradients as safetensors")
    g.add_argument("--params", required=True)
    g.add_argument("--batch", required=True)
    g.add_argument("--config-json", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--grad-dtype", choices=("float64", "float32"), default="float64",
                   help="which computation's loss and gradients to write (both are computed)")
    g.add_argument("--threads", type=int, default=1)

    c = sub.add_parser("compare", help="per-tensor errors between two safetensors files")
    c.add_argument("--a", required=True)
    c.add_argument("--b", required=True)
    c.add_argument("--tol", type=float, default=1e-4, help="max allowed relative error per tensor")

    sub.add_parser("selftest", help="checks on tiny models")

    args = ap.parse_args(argv)
    if args.cmd == "bench":
        return cmd_bench(args) or 0
    if args.cmd == "grads":
        return cmd_grads(args) or 0
    if args.cmd == "compare":
        return cmd_compare(args)
    return cmd_selftest(args)


if __name__ == "__main__":
    sys.exit(main())
