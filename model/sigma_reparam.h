// sigma_reparam.h: σReparam (Zhai et al. 2023, "Stabilizing Transformer Training by Preventing Attention
// Entropy Collapse"; apple/ml-sigma-reparam). A weight W [rows, cols] is used as
//
//   Ŵ = (γ / σ)·W,   σ = ‖W u‖₂,   u a persistent unit vector [cols] (the running estimate of W's top right
//   singular vector), γ a learnable scalar initialised to σ_max(W) at init (so Ŵ = W at step 0).
//
// u is updated by one power-iteration step per training step (sigma_reparam_power_step, called from
// Transformer::set_step), never inside forward, and no gradient flows through it (as torch's
// spectral_norm). With v = W u / σ:  ∂σ/∂W = v uᵀ, so
//   ∂L/∂W = (γ/σ)·∂L/∂Ŵ − (γ k / σ²)·v uᵀ,   ∂L/∂γ = k / σ,   k = ⟨∂L/∂Ŵ, W⟩.
// Saved state: σ [1] and v [rows].
#pragma once
#include "model/tensor.h"

namespace attnlab {

struct SigmaSaved {
  float* sigma = nullptr;  // [1]
  float* v = nullptr;      // [rows]: W u / σ
};

void sigma_reparam_forward(MatView w_eff, SigmaSaved s, ConstMatView w, float gamma, const float* u);
// dw += ...; *dgamma += ...; w, u and the saved state are read only.
void sigma_reparam_backward(MatView dw, float* dgamma, ConstMatView dw_eff, ConstMatView w, float gamma,
                            const float* u, SigmaSaved s);
// u ← Wᵀv / ‖Wᵀv‖ with v = W u / ‖W u‖. tmp is scratch of at least `rows` floats.
void sigma_reparam_power_step(float* u, ConstMatView w, float* tmp);
// Power iteration to convergence (in double, deterministic): sets u to W's top right singular vector and
// returns σ_max(W). For initialisation.
double sigma_reparam_init(float* u, ConstMatView w);

}  // namespace attnlab
