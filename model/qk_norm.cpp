#include "model/qk_norm.h"

#include <cmath>

namespace attnlab {

void head_rmsnorm_forward(MatView y, HeadNormSaved s, ConstMatView x, ConstVecView g, float eps) {
  ATTNLAB_CHECK(same_shape(x, y) && s.rstd != nullptr, "head_rmsnorm_forward: shapes");
  ATTNLAB_CHECK(g.n > 0 && x.cols % g.n == 0, "head_rmsnorm_forward: g must be [d_head]");
  const int dh = int(g.n), H = x.cols / dh;
  const float* gp = g.p;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < x.rows; ++n) {
    for (int h = 0; h < H; ++h) {
      const float* xr = x.row(n) + h * dh;
      float* yr = y.row(n) + h * dh;
      double sq = 0.0;
#pragma omp simd reduction(+ : sq)
      for (int e = 0; e < dh; ++e) sq += double(xr[e]) * double(xr[e]);
      const float r = float(1.0 / std::sqrt(sq / dh + double(eps)));
#pragma omp simd
      for (int e = 0; e < dh; ++e) yr[e] = gp[e] * (xr[e] * r);
      s.rstd[int64_t(n) * H + h] = r;
    }
  }
}

void head_rmsnorm_backward(MatView dx, VecView dg, ConstMatView dy, ConstMatView x, ConstVecView g,
                           HeadNormSaved s) {
  ATTNLAB_CHECK(same_shape(x, dx) && same_shape(x, dy) && s.rstd != nullptr, "head_rmsnorm_backward: shapes");
  ATTNLAB_CHECK(g.n > 0 && x.cols % g.n == 0 && dg.n == g.n, "head_rmsnorm_backward: g, dg must be [d_head]");
  const int dh = int(g.n), H = x.cols / dh, N = x.rows;
  const float* gp = g.p;
  // Per slice, with xh = x·r: dx = r·(g⊙dy − xh·mean(g⊙dy⊙xh)) (as rmsnorm.cpp).
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    for (int h = 0; h < H; ++h) {
      const float r = s.rstd[int64_t(n) * H + h];
      const float* xr = x.row(n) + h * dh;
      const float* dyr = dy.row(n) + h * dh;
      float* dxr = dx.row(n) + h * dh;
      double dot = 0.0;
#pragma omp simd reduction(+ : dot)
      for (int e = 0; e < dh; ++e) dot += double(gp[e] * dyr[e]) * double(xr[e]);
      const float m = float(dot * r / dh);
#pragma omp simd
      for (int e = 0; e < dh; ++e) dxr[e] += r * (gp[e] * dyr[e] - (xr[e] * r) * m);
    }
  }
  // dg[e] = Σ_{n,h} dy⊙xh: one gain entry per iteration, summed in (n, h) order, so the result does not
  // depend on the thread count.
#pragma omp parallel for schedule(static)
  for (int e = 0; e < dh; ++e) {
    double acc = 0.0;
    for (int n = 0; n < N; ++n)
      for (int h = 0; h < H; ++h)
        acc += double(dy.row(n)[h * dh + e]) * double(x.row(n)[h * dh + e] * s.rstd[int64_t(n) * H + h]);
    dg[e] += float(acc);
  }
}

}  // namespace attnlab
