#include "model/sigma_reparam.h"

#include <cmath>
#include <vector>

namespace attnlab {

namespace {

// y[r] = Σ_c w[r,c]·x[c] (double accumulation), rows in parallel.
void matvec(double* y, ConstMatView w, const double* x) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < w.rows; ++r) {
    const float* wr = w.row(r);
    double acc = 0.0;
    for (int c = 0; c < w.cols; ++c) acc += double(wr[c]) * x[c];
    y[r] = acc;
  }
}

// y[c] = Σ_r w[r,c]·x[r], one column per iteration summed in row order (deterministic).
void matvec_t(double* y, ConstMatView w, const double* x) {
#pragma omp parallel for schedule(static)
  for (int c = 0; c < w.cols; ++c) {
    double acc = 0.0;
    for (int r = 0; r < w.rows; ++r) acc += double(w.row(r)[c]) * x[r];
    y[c] = acc;
  }
}

double norm2(const double* x, int n) {
  double s = 0.0;
  for (int i = 0; i < n; ++i) s += x[i] * x[i];
  return std::sqrt(s);
}

}  // namespace

void sigma_reparam_forward(MatView w_eff, SigmaSaved s, ConstMatView w, float gamma, const float* u) {
  ATTNLAB_CHECK(same_shape(w_eff, w) && s.sigma != nullptr && s.v != nullptr && u != nullptr,
                "sigma_reparam_forward: shapes");
  // σ = ‖W u‖ and v = W u / σ, in double; rows are independent.
  double sq = 0.0;
  for (int r = 0; r < w.rows; ++r) {
    const float* wr = w.row(r);
    double acc = 0.0;
    for (int c = 0; c < w.cols; ++c) acc += double(wr[c]) * double(u[c]);
    s.v[r] = float(acc);
    sq += acc * acc;
  }
  const double sigma = std::sqrt(sq);
  ATTNLAB_CHECK(sigma > 0.0, "sigma_reparam_forward: W u = 0");
  for (int r = 0; r < w.rows; ++r) s.v[r] = float(double(s.v[r]) / sigma);
  *s.sigma = float(sigma);
  const float scale = float(double(gamma) / double(*s.sigma));
#pragma omp parallel for schedule(static)
  for (int r = 0; r < w.rows; ++r) {
    const float* wr = w.row(r);
    float* er = w_eff.row(r);
#pragma omp simd
    for (int c = 0; c < w.cols; ++c) er[c] = scale * wr[c];
  }
}

void sigma_reparam_backward(MatView dw, float* dgamma, ConstMatView dw_eff, ConstMatView w, float gamma,
                            const float* u, SigmaSaved s) {
  ATTNLAB_CHECK(same_shape(dw, w) && same_shape(dw_eff, w) && dgamma != nullptr && u != nullptr &&
                    s.sigma != nullptr && s.v != nullptr, "sigma_reparam_backward: shapes");
  double k = 0.0;  // ⟨∂L/∂Ŵ, W⟩ in row order
  for (int r = 0; r < w.rows; ++r) {
    const float* gr = dw_eff.row(r);
    const float* wr = w.row(r);
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (int c = 0; c < w.cols; ++c) acc += double(gr[c]) * double(wr[c]);
    k += acc;
  }
  const double sigma = *s.sigma;
  *dgamma += float(k / sigma);
  const float a = float(double(gamma) / sigma), b = float(double(gamma) * k / (sigma * sigma));
#pragma omp parallel for schedule(static)
  for (int r = 0; r < w.rows; ++r) {
    const float* gr = dw_eff.row(r);
    float* out = dw.row(r);
    const float bv = b * s.v[r];
#pragma omp simd
    for (int c = 0; c < w.cols; ++c) out[c] += a * gr[c] - bv * u[c];
  }
}

void sigma_reparam_power_step(float* u, ConstMatView w, float* tmp) {
  ATTNLAB_CHECK(u != nullptr && tmp != nullptr && w.rows > 0 && w.cols > 0, "sigma_reparam_power_step");
  // v = W u / ‖W u‖ into tmp, then u ← Wᵀ v / ‖Wᵀ v‖ in place (u is not read after v is formed). Sums in
  // double; no allocation (this runs once per training step).
#pragma omp parallel for schedule(static)
  for (int r = 0; r < w.rows; ++r) {
    const float* wr = w.row(r);
    double acc = 0.0;
    for (int c = 0; c < w.cols; ++c) acc += double(wr[c]) * double(u[c]);
    tmp[r] = float(acc);
  }
  double nv = 0.0;
  for (int r = 0; r < w.rows; ++r) nv += double(tmp[r]) * double(tmp[r]);
  ATTNLAB_CHECK(nv > 0.0, "sigma_reparam_power_step: W u = 0");
  const float inv_v = float(1.0 / std::sqrt(nv));
  for (int r = 0; r < w.rows; ++r) tmp[r] *= inv_v;
#pragma omp parallel for schedule(static)
  for (int c = 0; c < w.cols; ++c) {
    double acc = 0.0;  // one column per iteration, rows in order: deterministic
    for (int r = 0; r < w.rows; ++r) acc += double(w.row(r)[c]) * double(tmp[r]);
    u[c] = float(acc);
  }
  double nu = 0.0;
  for (int c = 0; c < w.cols; ++c) nu += double(u[c]) * double(u[c]);
  ATTNLAB_CHECK(nu > 0.0, "sigma_reparam_power_step: Wᵀ v = 0");
  const float inv_u = float(1.0 / std::sqrt(nu));
  for (int c = 0; c < w.cols; ++c) u[c] *= inv_u;
}

double sigma_reparam_init(float* u, ConstMatView w) {
  ATTNLAB_CHECK(u != nullptr && w.rows > 0 && w.cols > 0, "sigma_reparam_init");
  std::vector<double> ud(size_t(w.cols)), vd(size_t(w.rows));
  for (int c = 0; c < w.cols; ++c) ud[size_t(c)] = 1.0 + 0.5 * std::sin(double(c));  // fixed, generic start
  double nu = norm2(ud.data(), w.cols), sigma = 0.0;
  for (int c = 0; c < w.cols; ++c) ud[size_t(c)] /= nu;
  for (int it = 0; it < 5000; ++it) {
    matvec(vd.data(), w, ud.data());
    const double s_new = norm2(vd.data(), w.rows);
    for (double& x : vd) x /= s_new;
    matvec_t(ud.data(), w, vd.data());
    nu = norm2(ud.data(), w.cols);
    for (double& x : ud) x /= nu;
    const bool done = it > 0 && std::fabs(s_new - sigma) <= 1e-14 * s_new;
    sigma = s_new;
    if (done) break;
  }
  for (int c = 0; c < w.cols; ++c) u[c] = float(ud[size_t(c)]);
  matvec(vd.data(), w, ud.data());  // σ for the stored (float) u, so Ŵ = W exactly at init up to rounding
  double sq = 0.0;
  for (int r = 0; r < w.rows; ++r) {
    double acc = 0.0;
    for (int c = 0; c < w.cols; ++c) acc += double(w.row(r)[c]) * double(u[c]);
    sq += acc * acc;
  }
  return std::sqrt(sq);
}

}  // namespace attnlab
