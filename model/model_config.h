// model_config.h: the model's shape and numerics. A plain struct with in-class defaults; decoded from YAML
// in train/config/config.cpp only, validated there (d_model % n_head == 0 and so on) before any model is built.
#pragma once
#include <cstdint>

namespace attnlab {

enum class PosEncoding : uint8_t { kNone, kSinusoidal, kRope };
// kNone: attention-only blocks (no MLP sublayer, no MLP parameters; rank-collapse ablation, Dong et al. 2021).
enum class MlpKind : uint8_t { kSwiGLU, kGELU, kNone };
// V-scale (model/vscale.h, model/TOGGLES.md): off; learned θ; θ frozen; forward identity with V-scale's
// Jacobian in the backward only.
enum class VScaleMode : uint8_t { kOff, kLearned, kFixed, kBackwardOnly };
// Where the RMSNorms sit: pre-norm x + f(N(x)) (the core model) or post-norm N(x + f(x)) (ablation).
enum class NormPosition : uint8_t { kPre, kPost };

struct ModelConfig {
  int vocab = 256;             // vocabulary size (byte-level by default)
  int d_model = 64;            // residual stream width
  int n_layer = 2;             // number of pre-norm blocks
  int n_head = 4;              // attention heads; d_head = d_model / n_head
  int seq_len = 64;            // T: tokens per sequence (context length)
  MlpKind mlp = MlpKind::kSwiGLU;
  int mlp_hidden = 0;          // MLP hidden width; 0 means 4 * d_model
  PosEncoding pos = PosEncoding::kRope;
  float rope_base = 10000.0f;  // RoPE frequency base: angle(t, i) = t * base^(-2i/d_head)
  bool tied_head = false;      // LM head shares the token-embedding matrix
  float norm_eps = 1e-5f;      // RMSNorm epsilon inside the square root
  float init_std = 0.02f;      // std of the N(0, init_std^2) init of every weight matrix and embedding

  // Mitigation and ablation toggles (model/TOGGLES.md has each formula and source). All off by default;
  // with every toggle off the model is bit-identical to the core model (tests/model/test_core_golden.cpp).
  VScaleMode v_scale = VScaleMode::kOff;  // v̂ = φ(‖v‖²)·v per head, φ(r) = r/(r+C), C = d·d_head·init_std²·e^θ
  float v_scale_theta = 0.0f;             // θ at init (learned) or its frozen value (fixed, backward_only)
  bool qk_norm = false;                   // per-head RMSNorm (gain [d_head] shared by heads) on q and k, before RoPE
  float z_loss = 0.0f;                    // z-loss coefficient c: loss += c·mean_t(logsumexp_v logits[t]²); 0 = off
  // One extra, always-visible key per head (at most one of the three):
  bool softmax_plus_one = false;          // P_ij = e^Z_ij / (1 + Σ_j' e^Z_ij'): a key with logit 0 and value 0
  bool sink_logit = false;                // learnable per-head logit b_h (init 0) of a key with value 0
  bool attn_bias_kv = false;              // learnable per-head key k'_h and value v'_h [d_head] (init N(0, init_std²))
  bool sigmoid_attn = false;              // P_ij = sigmoid(Z_ij + β_i), no normalisation over j
  bool sigmoid_attn_bias = false;         // sigmoid_attn's β_i = −ln(i + 1) (else 0)
  float attn_temperature = 1.0f;          // τ: logits Z = scale·q·k / τ for steps in [start, end)
  int64_t attn_temperature_start = 0;     // first step of the temperature window (set_step)
  int64_t attn_temperature_end = 0;       // end of the window, exclusive; 0 means no end
  float residual_scale = 1.0f;            // α: x + α·f(N(x)) for both branches of every block
  bool skip = true;                       // skip connections; false: each sublayer replaces x (x ← α·f(N(x)))
  bool embed_scale = false;               // x0 = √d_model · tok_emb[token] (+ PE)
  NormPosition norm_position = NormPosition::kPre;
  bool sink_token = false;                // a learnable vector at position 0 of every sequence (context + 1)
  bool sigma_reparam = false;             // every block linear: Ŵ = (γ/σ(W))·W, σ by power iteration

  int d_head() const { return d_model / n_head; }
  // MLP hidden width F; 0 for attention-only blocks (mlp: none).
  int hidden() const { return mlp == MlpKind::kNone ? 0 : mlp_hidden > 0 ? mlp_hidden : 4 * d_model; }
  bool has_mlp() const { return mlp != MlpKind::kNone; }
  // Positions the model processes per sequence: seq_len data tokens, plus the sink token when on.
  int context_len() const { return seq_len + (sink_token ? 1 : 0); }
  bool extra_key() const { return softmax_plus_one || sink_logit || attn_bias_kv; }
  // Any toggle that changes the attention core between the score and value products.
  bool attention_variant() const {
    return extra_key() || sigmoid_attn || attn_temperature != 1.0f || v_scale != VScaleMode::kOff;
  }
  // V-scale's C at θ = 0: d_model·d_head·init_std² (≈ E‖v‖² at init, gradient-sinks.md §1.2).
  float v_scale_c0() const { return float(double(d_model) * d_head() * double(init_std) * double(init_std)); }
};

}  // namespace attnlab
