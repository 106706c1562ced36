#include "train/grad_clip.h"

#include <cmath>
#include <algorithm>

namespace attnlab {

namespace {
constexpr int64_t kBlock = 4096;
}

int64_t grad_norm_scratch_size(int64_t n) { return (n + kBlock - 1) / kBlock; }

double global_grad_norm(const float* g, int64_t n, double* partial) {
  const int64_t nb = grad_norm_scratch_size(n);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t lo = b * kBlock, hi = std::min(n, lo + kBlock);
    double acc = 0.0;
    for (int64_t i = lo; i < hi; ++i) acc += double(g[i]) * double(g[i]);
    partial[b] = acc;
  }
  double total = 0.0;
  for (int64_t b = 0; b < nb; ++b) total += partial[b];
  return std::sqrt(total);
}

bool clip_grads(float* g, int64_t n, double norm, double max_norm) {
  if (max_norm <= 0.0 || !(norm > max_norm)) return false;
  const float scale = float(max_norm / (norm + 1e-6));
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) g[i] *= scale;
  return true;
}

}  // namespace attnlab
