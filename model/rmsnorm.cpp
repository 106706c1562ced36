#include "model/rmsnorm.h"

#include <cmath>

namespace attnlab {

namespace {
// dg is a reduction over rows. Threads own disjoint column blocks and each sums its columns in row
// order, so dg is bit-identical for any thread count and no thread-private copies are needed.
constexpr int kColBlock = 64;
}  // namespace

void rmsnorm_forward(MatView y, RmsNormSaved s, ConstMatView x, ConstVecView g, float eps) {
  ATTNLAB_CHECK(same_shape(x, y), "rmsnorm_forward: x and y shapes differ");
  ATTNLAB_CHECK(g.n == x.cols && x.cols > 0, "rmsnorm_forward: g must be [C]");
  ATTNLAB_CHECK(s.rstd != nullptr, "rmsnorm_forward: saved.rstd missing");
  ATTNLAB_CHECK(eps >= 0.0f, "rmsnorm_forward: eps must be >= 0");
  const int C = x.cols;
  const float* gp = g.p;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < x.rows; ++n) {
    const float* xr = x.row(n);
    float* yr = y.row(n);
    double sq = 0.0;  // double: a float sum of squares over C = 512+ loses digits
#pragma omp simd reduction(+ : sq)
    for (int c = 0; c < C; ++c) sq += double(xr[c]) * double(xr[c]);
    const float r = float(1.0 / std::sqrt(sq / C + double(eps)));
#pragma omp simd
    for (int c = 0; c < C; ++c) yr[c] = gp[c] * (xr[c] * r);
    s.rstd[n] = r;  // with x and g, all that backward needs
  }
}

void rmsnorm_backward(MatView dx, VecView dg, ConstMatView dy, ConstMatView x, ConstVecView g,
                      RmsNormSaved s) {
  ATTNLAB_CHECK(same_shape(x, dx) && same_shape(x, dy), "rmsnorm_backward: x, dx, dy shapes differ");
  ATTNLAB_CHECK(g.n == x.cols && dg.n == x.cols, "rmsnorm_backward: g and dg must be [C]");
  ATTNLAB_CHECK(s.rstd != nullptr, "rmsnorm_backward: saved.rstd missing");
  const int N = x.rows, C = x.cols;
  const float* gp = g.p;
  const float* rstd = s.rstd;
  // With xh = x·r: dx = r·(g⊙dy − xh·mean_c(g⊙dy⊙xh))  (gradient-sinks.md §3 item 6), dg = Σ_n dy⊙xh.
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const float r = rstd[n];
    const float* xr = x.row(n);
    const float* dyr = dy.row(n);
    float* dxr = dx.row(n);
    double dot = 0.0;
#pragma omp simd reduction(+ : dot)
    for (int c = 0; c < C; ++c) dot += double(gp[c] * dyr[c]) * double(xr[c]);
    const float m = float(dot * r / C);  // mean_c(g⊙dy⊙xh)
#pragma omp simd
    for (int c = 0; c < C; ++c) dxr[c] += r * (gp[c] * dyr[c] - (xr[c] * r) * m);
  }
  const int n_blocks = (C + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static)
  for (int b = 0; b < n_blocks; ++b) {
    const int c0 = b * kColBlock;
    const int len = C - c0 < kColBlock ? C - c0 : kColBlock;
    double acc[kColBlock] = {};
    for (int n = 0; n < N; ++n) {
      const float r = rstd[n];
      const float* xr = x.row(n) + c0;
      const float* dyr = dy.row(n) + c0;
#pragma omp simd
      for (int c = 0; c < len; ++c) acc[c] += double(dyr[c]) * double(xr[c] * r);
    }
    for (int c = 0; c < len; ++c) dg[c0 + c] += float(acc[c]);
  }
}

}  // namespace attnlab
