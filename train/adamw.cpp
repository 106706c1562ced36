#include "train/adamw.h"

#include <cmath>

#include "model/check.h"

namespace attnlab {

AdamW::AdamW(const OptimConfig& cfg, int64_t n_params, std::vector<ParamGroup> groups)
    : cfg_(cfg), n_(n_params), groups_(std::move(groups)) {
  m_.reserve(n_);
  v_.reserve(n_);
  m_.allocate();
  v_.allocate();
  int64_t covered = 0;
  for (const ParamGroup& g : groups_) {
    ATTNLAB_CHECK(g.offset == covered && g.size >= 0, "AdamW: groups must tile the buffer in order");
    covered += g.size;
  }
  ATTNLAB_CHECK(covered == n_, "AdamW: groups must cover every parameter");
}

void AdamW::step(float* params, const float* grads, float lr, int64_t t) {
  ATTNLAB_CHECK(t >= 1, "AdamW::step: t is 1-based");
  // PyTorch's arithmetic order: p -= (lr/bc1) · m / (√v/√bc2 + eps), decay applied first as p *= 1 − lr·wd.
  const double bc1 = 1.0 - std::pow(double(cfg_.beta1), double(t));
  const double bc2 = 1.0 - std::pow(double(cfg_.beta2), double(t));
  const float step_size = float(double(lr) / bc1);
  const float inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
  const float b1 = cfg_.beta1, b2 = cfg_.beta2, eps = cfg_.eps;
  // Coupled: decay scales with the scheduled lr. Independent: with the schedule only (lr / peak lr).
  const float decay_rate = cfg_.decay_mode == DecayMode::kCoupled ? lr * cfg_.weight_decay
                                                                  : (lr / cfg_.lr) * cfg_.weight_decay;
  float* m = m_.data();
  float* v = v_.data();
  for (const ParamGroup& g : groups_) {
    const float keep = g.decay ? 1.0f - decay_rate : 1.0f;
    const int64_t end = g.offset + g.size;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = g.offset; i < end; ++i) {
      const float gi = grads[i];
      m[i] = b1 * m[i] + (1.0f - b1) * gi;
      v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
      const float denom = std::sqrt(v[i]) * inv_sqrt_bc2 + eps;
      params[i] = params[i] * keep - step_size * m[i] / denom;
    }
  }
}

}  // namespace attnlab
