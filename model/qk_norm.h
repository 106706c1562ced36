// qk_norm.h: QK-norm, a per-head RMSNorm of the queries and keys before RoPE (Dehghani et al. 2023,
// Wortsman et al. 2023 §3.1 use LayerNorm; RMSNorm before RoPE as in OLMo 2 / Qwen3). For each row n and
// head h, on the slice x = x[n, h·dh, dh):
//
//   y = g ⊙ x · rstd,   rstd = 1/sqrt(mean(x²) + eps),   one gain vector g [dh] shared by all heads.
//
// x, y, dx, dy are [N, H·dh] views (strided: the q or k block of the fused qkv buffer); g, dg are [dh];
// saved.rstd is [N, H]. Backward accumulates into dx and dg; x, g and the saved state are read only.
#pragma once
#include "model/tensor.h"

namespace attnlab {

struct HeadNormSaved {
  float* rstd = nullptr;  // [N, H]
};

void head_rmsnorm_forward(MatView y, HeadNormSaved s, ConstMatView x, ConstVecView g, float eps);
void head_rmsnorm_backward(MatView dx, VecView dg, ConstMatView dy, ConstMatView x, ConstVecView g,
                           HeadNormSaved s);

}  // namespace attnlab
