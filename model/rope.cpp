#include "model/rope.h"

#include <cmath>

namespace attnlab {

RopeTable make_rope_table(int T, int d_head, float base) {
  ATTNLAB_CHECK(T > 0, "make_rope_table: T must be > 0");
  ATTNLAB_CHECK(d_head > 0 && d_head % 2 == 0, "make_rope_table: d_head must be even");
  ATTNLAB_CHECK(base > 0.0f, "make_rope_table: base must be > 0");
  RopeTable tab;
  tab.T = T;
  tab.d_head = d_head;
  const int half = d_head / 2;
  tab.cos.resize(size_t(T) * half);
  tab.sin.resize(size_t(T) * half);
  // Double, then rounded once: t·freq reaches T radians, where float angles would lose ~1e-4.
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < half; ++i) {
      const double angle = double(t) * std::pow(double(base), -2.0 * i / d_head);
      tab.cos[size_t(t) * half + i] = float(std::cos(angle));
      tab.sin[size_t(t) * half + i] = float(std::sin(angle));
    }
  }
  return tab;
}

namespace {

// sign = +1: R(t)·x;  sign = -1: R(t)ᵀ·x (the rotation by −angle).
void rope_apply(MatView qk, const RopeTable& table, int n_heads_total, float sign, const char* who) {
  const int dh = table.d_head, half = dh / 2, T = table.T;
  ATTNLAB_CHECK(T > 0 && dh > 0 && dh % 2 == 0, who);
  ATTNLAB_CHECK(table.cos.size() == size_t(T) * half && table.sin.size() == size_t(T) * half, who);
  ATTNLAB_CHECK(n_heads_total > 0 && qk.cols == n_heads_total * dh, who);
  const float* cos_tab = table.cos.data();
  const float* sin_tab = table.sin.data();
#pragma omp parallel for schedule(static)
  for (int n = 0; n < qk.rows; ++n) {
    const float* cs = cos_tab + size_t(n % T) * half;
    const float* sn = sin_tab + size_t(n % T) * half;
    float* row = qk.row(n);
    for (int h = 0; h < n_heads_total; ++h) {
      float* p = row + h * dh;
#pragma omp simd
      for (int i = 0; i < half; ++i) {
        const float c = cs[i], s = sign * sn[i];
        const float x0 = p[2 * i], x1 = p[2 * i + 1];
        p[2 * i] = x0 * c - x1 * s;
        p[2 * i + 1] = x0 * s + x1 * c;
      }
    }
  }
}

}  // namespace

void rope_forward(MatView qk, const RopeTable& table, int n_heads_total) {
  rope_apply(qk, table, n_heads_total, 1.0f, "rope_forward: qk must be [N, n_heads_total * d_head]");
}

void rope_backward(MatView dqk, const RopeTable& table, int n_heads_total) {
  rope_apply(dqk, table, n_heads_total, -1.0f, "rope_backward: dqk must be [N, n_heads_total * d_head]");
}

}  // namespace attnlab
