// attention.h: causal multi-head softmax attention core (no projections; those are LinearPlans).
//
// qkv is the fused projection output [N, 3·d] (N = B·T, d = H·d_head): columns [0,d) are q, [d,2d) k,
// [2d,3d) v, head h at columns h·d_head within each block. out is [N, d] (heads concatenated, before W_o).
// probs is [B, H, T, T] row-major: probs[b,h,i,j] = softmax_j≤i(q_i·k_j · scale), exactly 0 for j > i.
//
//   S = scale · Q Kᵀ         (attention_scores_forward: batched Gemm over (B, H); full T×T computed)
//   P = causal_softmax(S)    (attention_softmax_forward: in place, S → P; zeroes j > i)
//   Y = P V                  (attention_values_forward)
//
// Backward (accumulates into dqkv; dprobs is scratch [B,H,T,T] it may overwrite):
//   dP = dY Vᵀ;  dV += Pᵀ dY;  dS = P ⊙ (dP − rowsum(dP ⊙ P));  dQ += scale·dS K;  dK += scale·dSᵀ Q
#pragma once
#include "model/matmul.h"
#include "model/tensor.h"

namespace attnlab {

struct AttentionPlan {
  int B = 0, T = 0, H = 0, d_head = 0;
  float scale = 0.0f;  // 1/sqrt(d_head)
  Gemm scores;         // S  = scale · Q Kᵀ
  Gemm values;         // Y  = P V
  Gemm dprobs;         // dP = dY Vᵀ
  Gemm dv;             // dV += Pᵀ dY
  Gemm dq;             // dQ += scale · dS K
  Gemm dk;             // dK += scale · dSᵀ Q
  // With dense_v (V-scale): the same products with V / dV in a separate dense [N, d] buffer.
  Gemm values_dense, dprobs_dense, dv_dense;
};
// dense_v: also plan the products on a dense [N, d] value buffer (attention_values_forward_v and
// attention_values_backward with a view of row stride d).
AttentionPlan make_attention_plan(DnnlContext& ctx, int B, int T, int H, int d_head, bool dense_v = false);

struct AttentionSaved {
  float* probs = nullptr;  // [B, H, T, T]
};

void attention_scores_forward(AttentionPlan& plan, AttentionSaved s, ConstMatView qkv);
void attention_softmax_forward(AttentionPlan& plan, AttentionSaved s);
void attention_values_forward(AttentionPlan& plan, MatView out, AttentionSaved s, ConstMatView qkv);
// The three steps above in order.
void attention_forward(AttentionPlan& plan, MatView out, AttentionSaved s, ConstMatView qkv);

void attention_backward(AttentionPlan& plan, MatView dqkv, float* dprobs, ConstMatView dout,
                        ConstMatView qkv, AttentionSaved s);

// The pieces, for variants that replace one of them (attention_forward / attention_backward are exactly
// these calls in order). v and dv are [N, d] views of row stride 3d (the v block of qkv / dqkv) or d (a
// dense buffer such as V-scale's v̂; needs a plan made with dense_v).
void attention_values_forward_v(AttentionPlan& plan, MatView out, AttentionSaved s, ConstMatView v);
// dP = dY Vᵀ (overwrites dprobs, full T×T);  dV += Pᵀ dY.
void attention_values_backward(AttentionPlan& plan, float* dprobs, MatView dv, ConstMatView dout, ConstMatView v,
                               AttentionSaved s);
// In place on dprobs: dS = P ⊙ (dP − rowsum(dP ⊙ P)) over j ≤ i, exact zeros above the diagonal.
void attention_softmax_backward(AttentionPlan& plan, float* dprobs, AttentionSaved s);
// dQ += scale·dS K;  dK += scale·dSᵀ Q  (into dqkv's q and k blocks; its v block is not touched).
void attention_scores_backward(AttentionPlan& plan, MatView dqkv, const float* dscores, ConstMatView qkv);

}  // namespace attnlab
