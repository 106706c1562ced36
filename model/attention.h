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
};
AttentionPlan make_attention_plan(DnnlContext& ctx, int B, int T, int H, int d_head);

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

}  // namespace attnlab
