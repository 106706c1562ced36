// exp_nonpos.h: the vectorizable exp of the attention softmax rows (attention.cpp and the attention
// variants of model/attention_variants.cpp share it). Header-only.
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace attnlab {

// exp(x) for the max-subtracted logits of softmax, written so the softmax row loops vectorize under
// `omp simd` (glibc's expf only vectorizes with -ffast-math; std::floor and a float-compare select do
// not vectorize either, hence nearbyint and clamps). Cody-Waite reduction x = n·ln2 + r, |r| ≤ ln2/2,
// then Cephes' degree-6 polynomial: ≤ 1.02 ulp over all floats in [−87, 0]. exp(0) == 1 exactly, which
// keeps P[0,0] == 1 and uniform rows exactly 1/(i+1). The argument is clamped to [−87, 0]: live logits
// are ≤ 0 by construction, the upper clamp keeps masked lanes (raw scores above the row max) finite,
// and below −87 the result stays exp(−87) ≈ 1.6e-38 (2^n must be a normal float), invisible next to a
// row sum ≥ 1. Not fast_exp.h: it returns inf for those masked lanes (inf·0 = NaN), and with the extra
// clamp that needs, GCC 12 stopped vectorizing the row loop (softmax 2x slower).
inline float exp_nonpos(float x) {
  const float xc = std::min(std::max(x, -87.0f), 0.0f);
  const float n = std::nearbyint(xc * 1.44269504088896341f);
  float r = std::fma(n, -0.693359375f, xc);  // ln2 split into an exact high part and a low correction
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  p = std::fma(p * r, r, r) + 1.0f;
  return p * std::bit_cast<float>((int32_t(n) + 127) << 23);  // · 2^n
}

}  // namespace attnlab
