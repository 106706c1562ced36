// attention_variants.h: the attention toggles of model/TOGGLES.md that change the score → probability
// map or add a key. They operate on the same buffers as attention.h (probs [B, H, T, T] holding scores
// before normalisation, qkv [N, 3d]) and are composed in transformer.cpp between the pieces of
// attention.h. Row i of a head sees keys j ≤ i (n_i = i + 1 of them).
//
// Temperature (Zhai et al. 2023 intervention): Z = S / τ.  attention_scale_scores multiplies the scores
//   (forward) or dS (backward) by a factor.
// One extra key per row, index −1, always visible, with logit z0[b,h,i] and value v0 (per head):
//   P_ij = e^{Z_ij} / (e^{z0_i} + Σ_{j'≤i} e^{Z_ij'}),  p0_i = e^{z0_i} / (same),  Y_i = Σ_j P_ij V_j + p0_i v0.
//   softmax+1  (Miller 2023 "Attention is off by one"):  z0 = 0, v0 = 0.
//   sink logit (learned per-head sink, as in gpt-oss):      z0 = b_h (a parameter), v0 = 0.
//   k/v bias   (Sun et al. 2024 "Massive activations" §4): z0 = scale/τ·⟨q_i, k'_h⟩, v0 = v'_h (parameters).
//   Backward: with dP_ij and dp0_i = ⟨dY_i, v0⟩, c_i = Σ_j dP_ij P_ij + dp0_i p0_i:
//   dZ_ij = P_ij (dP_ij − c_i),  dz0_i = p0_i (dp0_i − c_i).
// Sigmoid attention (Gu et al. 2024 "When attention sink emerges", no normalisation; Ramapuram et al.
//   2024 for the bias): P_ij = σ(Z_ij + β_i), β_i = −ln n_i with the length bias, else 0;
//   dZ_ij = dP_ij · P_ij (1 − P_ij).
#pragma once
#include "model/attention.h"

namespace attnlab {

struct ExtraKeySaved {
  float* p0 = nullptr;  // [B, H, T]: the extra key's probability per row
};

// scores[b,h,i,j] *= factor over every entry (temperature, forward on S and backward on dS).
void attention_scale_scores(AttentionPlan& plan, float* scores, float factor);

// Softmax over the causal row plus the extra key; in place S → P on s.probs, p0 into e.p0.
// z0 is [B, H, T].
void attention_softmax_extra_forward(AttentionPlan& plan, AttentionSaved s, ExtraKeySaved e, const float* z0);
// In place: dprobs dP → dS (zeros above the diagonal); dz0 holds dp0 on entry and dz0 on exit ([B, H, T]).
void attention_softmax_extra_backward(AttentionPlan& plan, float* dprobs, float* dz0, AttentionSaved s,
                                      ExtraKeySaved e);

// Extra-key logits. Sink logit: z0[b,h,i] = b[h] (b empty: 0, softmax+1). db[h] += Σ_{b,i} dz0.
void attention_sink_logits(AttentionPlan& plan, float* z0, ConstVecView b);
void attention_sink_logits_backward(AttentionPlan& plan, VecView db, const float* dz0);

// k/v bias; k_bias and v_bias are [H, d_head]. z0 = factor·⟨q_i, k'_h⟩ (factor = scale/τ).
void attention_kv_bias_logits(AttentionPlan& plan, float* z0, ConstMatView qkv, ConstMatView k_bias, float factor);
// dq += factor·dz0·k'  (into dqkv's q block);  dk' += factor·Σ_{b,i} dz0·q_i.
void attention_kv_bias_logits_backward(AttentionPlan& plan, MatView dqkv, MatView dk_bias, const float* dz0,
                                       ConstMatView qkv, ConstMatView k_bias, float factor);
// out += p0 ⊗ v'  (out [N, d]).
void attention_kv_bias_values_forward(AttentionPlan& plan, MatView out, ExtraKeySaved e, ConstMatView v_bias);
// dp0 = ⟨dY_i, v'_h⟩ (WRITTEN, [B, H, T]);  dv' += Σ_{b,i} p0·dY_i.
void attention_kv_bias_values_backward(AttentionPlan& plan, float* dp0, MatView dv_bias, ConstMatView dout,
                                       ConstMatView v_bias, ExtraKeySaved e);

// Sigmoid attention, in place S → P on s.probs (exact zeros above the diagonal).
void attention_sigmoid_forward(AttentionPlan& plan, AttentionSaved s, bool length_bias);
// In place on dprobs: dP → dZ.
void attention_sigmoid_backward(AttentionPlan& plan, float* dprobs, AttentionSaved s);

}  // namespace attnlab
