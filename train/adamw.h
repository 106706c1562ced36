// adamw.h: AdamW over the flat parameter and gradient buffers. Owns the first and second moments.
#pragma once
#include <cstdint>
#include <vector>

#include "model/arena.h"

namespace attnlab {

enum class DecayMode : uint8_t {
  kCoupled,     // PyTorch AdamW: p -= lr·(m̂/(√v̂+eps) + wd·p)
  kIndependent  // Wortsman et al.: p -= (lr/lr_max)·(lr_max·m̂/(√v̂+eps) + wd·p), decay not scaled by lr_max
};

struct OptimConfig {
  float lr = 3e-3f;          // peak learning rate
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;  // applied to 2-D weight matrices only (never to gains or other vectors)
  DecayMode decay_mode = DecayMode::kCoupled;
  float grad_clip = 1.0f;     // global-norm clip threshold; 0 disables clipping
};

// A contiguous run of parameters with one decay setting.
struct ParamGroup {
  int64_t offset = 0, size = 0;
  bool decay = false;
};

class AdamW {
 public:
  AdamW(const OptimConfig& cfg, int64_t n_params, std::vector<ParamGroup> groups);
  // One update at schedule value lr (already warmed up / decayed); t is the 1-based update count.
  void step(float* params, const float* grads, float lr, int64_t t);
  float* m() { return m_.data(); }
  float* v() { return v_.data(); }
  const float* m() const { return m_.data(); }
  const float* v() const { return v_.data(); }
  int64_t size() const { return n_; }

 private:
  OptimConfig cfg_;
  int64_t n_;
  std::vector<ParamGroup> groups_;
  Arena m_, v_;
};

}  // namespace attnlab
