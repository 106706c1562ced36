#include "model/vscale.h"

#include <cmath>

namespace attnlab {

namespace {

// ‖x‖² of one head slice in double (d_head terms; double keeps r exact enough that φ's cancellation-free
// form r/(r+C) carries no visible error).
inline double sqnorm(const float* x, int n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int e = 0; e < n; ++e) s += double(x[e]) * double(x[e]);
  return s;
}

}  // namespace

void vscale_sqnorm_forward(VScaleSaved s, ConstMatView v, int n_head) {
  ATTNLAB_CHECK(s.r != nullptr && n_head > 0 && v.cols % n_head == 0, "vscale_sqnorm_forward: shapes");
  const int H = n_head, dh = v.cols / n_head;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < v.rows; ++n)
    for (int h = 0; h < H; ++h) s.r[int64_t(n) * H + h] = float(sqnorm(v.row(n) + h * dh, dh));
}

void vscale_forward(MatView vhat, VScaleSaved s, ConstMatView v, ConstVecView theta, float c0) {
  ATTNLAB_CHECK(same_shape(vhat, v) && s.r != nullptr, "vscale_forward: shapes");
  ATTNLAB_CHECK(theta.n > 0 && v.cols % theta.n == 0 && c0 > 0.0f, "vscale_forward: theta must be [H], c0 > 0");
  const int H = int(theta.n), dh = v.cols / H;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < v.rows; ++n) {
    for (int h = 0; h < H; ++h) {
      const float* x = v.row(n) + h * dh;
      float* y = vhat.row(n) + h * dh;
      const float rf = float(sqnorm(x, dh));  // the saved value, so backward sees the same r
      const double r = rf, C = double(c0) * std::exp(double(theta[h]));
      const float phi = float(r / (r + C));
#pragma omp simd
      for (int e = 0; e < dh; ++e) y[e] = phi * x[e];
      s.r[int64_t(n) * H + h] = rf;
    }
  }
}

void vscale_backward(MatView dv, VecView dtheta, ConstMatView dvhat, ConstMatView v, ConstVecView theta,
                     float c0, VScaleSaved s) {
  ATTNLAB_CHECK(same_shape(dv, v) && same_shape(dvhat, v) && s.r != nullptr, "vscale_backward: shapes");
  ATTNLAB_CHECK(theta.n > 0 && v.cols % theta.n == 0 && c0 > 0.0f, "vscale_backward: theta must be [H], c0 > 0");
  ATTNLAB_CHECK(dtheta.n == 0 || dtheta.n == theta.n, "vscale_backward: dtheta must be [H] or empty");
  const int H = int(theta.n), dh = v.cols / H, N = v.rows;
  // dv = φ·dv̂ + (2C/(r+C)²)·⟨v, dv̂⟩·v: rows are independent.
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    for (int h = 0; h < H; ++h) {
      const float* x = v.row(n) + h * dh;
      const float* g = dvhat.row(n) + h * dh;
      float* out = dv.row(n) + h * dh;
      const double r = s.r[int64_t(n) * H + h];
      const double C = double(c0) * std::exp(double(theta[h]));
      double dot = 0.0;
#pragma omp simd reduction(+ : dot)
      for (int e = 0; e < dh; ++e) dot += double(x[e]) * double(g[e]);
      const float phi = float(r / (r + C));
      const float radial = float(2.0 * C / ((r + C) * (r + C)) * dot);
#pragma omp simd
      for (int e = 0; e < dh; ++e) out[e] += phi * g[e] + radial * x[e];
    }
  }
  if (dtheta.n == 0) return;
  // ∂L/∂θ_h reduces over rows: one head per iteration, rows in order, so the sum does not depend on the
  // thread count.
#pragma omp parallel for schedule(static)
  for (int h = 0; h < H; ++h) {
    const double C = double(c0) * std::exp(double(theta[h]));
    double acc = 0.0;
    for (int n = 0; n < N; ++n) {
      const float* x = v.row(n) + h * dh;
      const float* g = dvhat.row(n) + h * dh;
      double dot = 0.0;
#pragma omp simd reduction(+ : dot)
      for (int e = 0; e < dh; ++e) dot += double(x[e]) * double(g[e]);
      const double r = s.r[int64_t(n) * H + h];
      acc += dot * (-C * r / ((r + C) * (r + C)));
    }
    dtheta[h] += float(acc);
  }
}

}  // namespace attnlab
