// vscale.h: V-scale (Chen, Lin, Yao, "Attention Sinks Induce Gradient Sinks", arXiv 2603.17771 v2 §5.1;
// shared/docs/gradient-sinks.md §1). Per row n (token) and head h, on the value vector v = v[n, h·dh, dh):
//
//   r = ‖v‖²,   φ(r) = r / (r + C_h),   v̂ = φ(r)·v,   C_h = c0·exp(θ_h),   c0 = d_model·d_head·σ²
//
// Backward is the exact Jacobian J_φ(v) = φ I + (2C/(r+C)²) v vᵀ (symmetric), and for a learnable θ
//   ∂L/∂θ_h = Σ_n ⟨∂L/∂v̂, v⟩ · (−C r/(r+C)²)        (∂φ/∂C = −r/(r+C)², ∂C/∂θ = C).
//
// v, vhat, dv, dvhat are [N, H·dh] views (v is usually the strided v block of the fused qkv buffer);
// theta and dtheta are [H]; saved.r is [N, H] (‖v‖² per row and head, in float from a double sum).
// backward_only mode uses vscale_sqnorm_forward (v̂ = v in the forward) and the same vscale_backward.
#pragma once
#include "model/tensor.h"

namespace attnlab {

struct VScaleSaved {
  float* r = nullptr;  // [N, H]: ‖v‖² of each row's head slice
};

// saved.r only (the forward of backward_only V-scale: the values themselves are not changed).
void vscale_sqnorm_forward(VScaleSaved s, ConstMatView v, int n_head);
// vhat = φ(‖v‖²)·v per row and head; also fills saved.r.
void vscale_forward(MatView vhat, VScaleSaved s, ConstMatView v, ConstVecView theta, float c0);
// dv += J_φ(v)·dvhat per row and head. dtheta += ∂L/∂θ when dtheta.n > 0 (learned θ); dtheta.n == 0
// skips it (frozen θ). v, theta and saved state are read only.
void vscale_backward(MatView dv, VecView dtheta, ConstMatView dvhat, ConstMatView v, ConstVecView theta,
                     float c0, VScaleSaved s);

}  // namespace attnlab
