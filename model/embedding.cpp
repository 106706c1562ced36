#include "model/embedding.h"

#include <cmath>

namespace attnlab {

namespace {
constexpr int kColBlock = 64;  // column block owned by one thread in embedding_backward

bool tokens_in_range(const int32_t* tokens, int n, int vocab) {
  for (int i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab) return false;
  return true;
}
}  // namespace

void embedding_forward(MatView x, const int32_t* tokens, ConstMatView wte) {
  ATTNLAB_CHECK(x.cols == wte.cols, "embedding_forward: x and wte widths differ");
  ATTNLAB_CHECK(tokens != nullptr || x.rows == 0, "embedding_forward: tokens missing");
  ATTNLAB_CHECK(tokens_in_range(tokens, x.rows, wte.rows), "embedding_forward: token id out of [0, V)");
  const int C = x.cols;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < x.rows; ++n) {
    const float* src = wte.row(tokens[n]);
    float* dst = x.row(n);
#pragma omp simd
    for (int c = 0; c < C; ++c) dst[c] = src[c];
  }
}

void embedding_backward(MatView dwte, ConstMatView dx, const int32_t* tokens) {
  ATTNLAB_CHECK(dx.cols == dwte.cols, "embedding_backward: dx and dwte widths differ");
  ATTNLAB_CHECK(tokens != nullptr || dx.rows == 0, "embedding_backward: tokens missing");
  ATTNLAB_CHECK(tokens_in_range(tokens, dx.rows, dwte.rows), "embedding_backward: token id out of [0, V)");
  // Repeated tokens make rows collide, so rows cannot be split across threads. Threads own column
  // blocks instead and add rows in order n = 0..N-1: the same float additions in the same order for
  // every thread count, hence identical bits.
  const int N = dx.rows, C = dx.cols;
  const int n_blocks = (C + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static)
  for (int b = 0; b < n_blocks; ++b) {
    const int c0 = b * kColBlock;
    const int len = C - c0 < kColBlock ? C - c0 : kColBlock;
    for (int n = 0; n < N; ++n) {
      const float* src = dx.row(n) + c0;
      float* dst = dwte.row(tokens[n]) + c0;
#pragma omp simd
      for (int c = 0; c < len; ++c) dst[c] += src[c];
    }
  }
}

void sinusoidal_table(MatView pe) {
  const int C = pe.cols;
  ATTNLAB_CHECK(C > 0, "sinusoidal_table: empty width");
  // Computed in double, once at construction: angles reach T (thousands of radians) where float
  // argument rounding alone would cost ~1e-4.
  for (int t = 0; t < pe.rows; ++t) {
    float* row = pe.row(t);
    for (int c = 0; c < C; ++c) {
      const int i = c / 2;
      const double angle = double(t) / std::pow(10000.0, 2.0 * i / C);
      row[c] = float(c % 2 == 0 ? std::sin(angle) : std::cos(angle));
    }
  }
}

void sinusoidal_forward(MatView x, ConstMatView pe) {
  ATTNLAB_CHECK(x.cols == pe.cols && pe.rows > 0, "sinusoidal_forward: pe must be [T, C]");
  const int C = x.cols, T = pe.rows;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < x.rows; ++n) {
    const float* p = pe.row(n % T);
    float* xr = x.row(n);
#pragma omp simd
    for (int c = 0; c < C; ++c) xr[c] += p[c];
  }
}

void sinusoidal_backward(MatView dx, ConstMatView dy) {
  ATTNLAB_CHECK(same_shape(dx, dy), "sinusoidal_backward: dx and dy shapes differ");
  const int C = dx.cols;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < dx.rows; ++n) {
    const float* src = dy.row(n);
    float* dst = dx.row(n);
#pragma omp simd
    for (int c = 0; c < C; ++c) dst[c] += src[c];
  }
}

}  // namespace attnlab
