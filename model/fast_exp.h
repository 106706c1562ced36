// fast_exp.h: a branch-free float exp that GCC vectorizes inside `#pragma omp simd` loops.
// Why: glibc's vector expf is only declared under -ffast-math, which we do not use, so a loop calling
// std::exp stays scalar; softmax, SiLU and GELU call exp on every element of [N, V] or [N, F].
// Cephes expf: e^x = 2^n · e^r with n = rint(x·log2 e), |r| ≤ ln2/2, degree-6 polynomial for e^r.
// Max relative error ≈ 2 ulp on [-87.33, 88.37] (tests/model/test_fast_exp.cpp). Below -87.33 the
// result is 0 (the true value is subnormal); above 88.37 it is +inf; NaN propagates.
#pragma once
#include <bit>
#include <cstdint>
#include <limits>

namespace attnlab {

inline float fast_exp(float x) {
  constexpr float kLo = -87.3365402f;  // ≈ ln(FLT_MIN): keeps n ≥ -126, a normal 2^n
  constexpr float kHi = 88.3762589f;   // just below 127.5·ln2: keeps n ≤ 127
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;  // ln 2 split so n·kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5·2^23: adding and subtracting rounds to nearest
  float xc = x > kLo ? x : kLo;          // also maps NaN to kLo; restored below
  xc = xc < kHi ? xc : kHi;
  const float n = (xc * kLog2e + kRound) - kRound;
  float r = xc - n * kLn2Hi;
  r = r - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const float scale = std::bit_cast<float>((int32_t(n) + 127) << 23);
  float y = p * scale;
  y = x < kLo ? 0.0f : y;
  y = x > kHi ? std::numeric_limits<float>::infinity() : y;
  return x == x ? y : x;
}

// 1 / (1 + e^-z), accurate in both tails (no cancellation: 1 + e^-z ≥ 1).
inline float fast_sigmoid(float z) { return 1.0f / (1.0f + fast_exp(-z)); }

}  // namespace attnlab
