#include "instrument/weight_stats.h"

// GCC 12 reports a false -Wmaybe-uninitialized inside its own avx512fintrin.h when Eigen's AVX-512 kernels
// are inlined; the diagnostic fires at the end of the unit, so it is off file-wide (as in attention_stats.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "model/check.h"

namespace attnlab {

namespace {

using RowMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMapF = Eigen::Map<const RowMajorF, 0, Eigen::OuterStride<>>;

ConstMapF as_eigen(ConstMatView w) { return ConstMapF(w.p, w.rows, w.cols, Eigen::OuterStride<>(w.stride)); }

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Largest eigenvalue of a symmetric PSD matrix; NaN for a diverged input. Householder tridiagonalisation,
// then bisection on Sturm counts (LAPACK dstebz's method): exact to ~ε·λ_max, deterministic, and about 4×
// cheaper than the full tridiagonal QR when only λ_max is needed.
double max_eigenvalue(const Eigen::MatrixXd& g) {
  if (!g.allFinite()) return kNaN;
  const Eigen::Index n = g.rows();
  if (n == 1) return std::max(g(0, 0), 0.0);
  Eigen::Tridiagonalization<Eigen::MatrixXd> tri(g);
  const Eigen::VectorXd a = tri.diagonal(), e = tri.subDiagonal();  // a: [n], e: [n−1]
  // λ_max lies between the largest diagonal entry and the largest Gershgorin bound.
  double lo = a.maxCoeff(), hi = lo, e2_max = 0.0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const double left = i > 0 ? std::fabs(e[i - 1]) : 0.0, right = i + 1 < n ? std::fabs(e[i]) : 0.0;
    hi = std::max(hi, a[i] + left + right);
    if (i + 1 < n) e2_max = std::max(e2_max, e[i] * e[i]);
  }
  const double pivmin = std::numeric_limits<double>::min() * std::max(1.0, e2_max);
  // Number of eigenvalues below x: the negative pivots of the LDLᵀ factorisation of T − xI.
  auto below = [&](double x) {
    Eigen::Index count = 0;
    double q = a[0] - x;
    for (Eigen::Index i = 0;; ++i) {
      if (std::fabs(q) < pivmin) q = -pivmin;
      count += q < 0.0;
      if (i + 1 == n) break;
      q = a[i + 1] - x - e[i] * e[i] / q;
    }
    return count;
  };
  for (int it = 0; it < 200 && hi - lo > 2.0 * std::numeric_limits<double>::epsilon() * std::fabs(hi); ++it) {
    const double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    (below(mid) == n ? hi : lo) = mid;
  }
  return std::max(0.5 * (lo + hi), 0.0);
}

ConstMatView gain(VecView g) { return ConstMatView(g.p, 1, int(g.n)); }

}  // namespace

QkSpectrum qk_spectrum(ConstMatView q_h, ConstMatView k_h) {
  ATTNLAB_CHECK(same_shape(q_h, k_h) && q_h.rows >= 1 && q_h.rows <= q_h.cols, "qk_spectrum: shapes");
  const int dh = q_h.rows, d = q_h.cols;
  const double inv_sqrt_dh = 1.0 / std::sqrt(double(dh));
  const Eigen::MatrixXd q = as_eigen(q_h).cast<double>(), k = as_eigen(k_h).cast<double>();

  // Moments from traces of the small kernel K = K_h Q_hᵀ / √dh: no eigensolver needed.
  const Eigen::MatrixXd kern = (k * q.transpose()) * inv_sqrt_dh;
  QkSpectrum s;
  s.trace = kern.trace();
  s.trace_sq = kern.cwiseProduct(kern.transpose()).sum();  // Σ_ab K_ab K_ba = tr(K²)
  s.mean = s.trace / d;
  s.var = s.trace_sq / d - s.mean * s.mean;
  s.mean_nz = s.trace / dh;
  s.var_nz = s.trace_sq / dh - s.mean_nz * s.mean_nz;
  const double sd = std::sqrt(std::max(s.var, 0.0));
  s.cv = s.mean != 0.0 ? sd / std::fabs(s.mean) : (sd > 0.0 ? std::numeric_limits<double>::infinity() : 0.0);

  if (!q.allFinite() || !k.allFinite()) {
    s.spec = kNaN;
    return s;
  }
  // σ_max(Q_hᵀ K_h)² = λ_max(K_hᵀ A K_h) = λ_max(A^½ B A^½) with A = Q_h Q_hᵀ, B = K_h K_hᵀ (both dh×dh).
  const Eigen::MatrixXd A = q * q.transpose(), Bm = k * k.transpose();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> ea(A);
  const Eigen::VectorXd root = ea.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  const Eigen::MatrixXd S = ea.eigenvectors() * root.asDiagonal() * ea.eigenvectors().transpose();
  const Eigen::MatrixXd C = S * Bm * S;
  s.spec = std::sqrt(max_eigenvalue(0.5 * (C + C.transpose()))) * inv_sqrt_dh;
  return s;
}

double spectral_norm(ConstMatView w) {
  ATTNLAB_CHECK(w.rows >= 1 && w.cols >= 1, "spectral_norm: empty matrix");
  const Eigen::MatrixXd m = as_eigen(w).cast<double>();
  const Eigen::MatrixXd g = w.rows >= w.cols ? Eigen::MatrixXd(m.transpose() * m) : Eigen::MatrixXd(m * m.transpose());
  return std::sqrt(max_eigenvalue(g));
}

WeightNorms weight_norms(ConstMatView w) {
  double sq = 0.0;
  for (int r = 0; r < w.rows; ++r) {
    const float* row = w.row(r);
    for (int c = 0; c < w.cols; ++c) sq += double(row[c]) * row[c];
  }
  WeightNorms n;
  n.norm = std::sqrt(sq);
  n.rms = w.size() > 0 ? std::sqrt(sq / double(w.size())) : 0.0;
  return n;
}

void weight_metrics(const ModelConfig& cfg, const Layout& y, MetricOut& out) {
  const int L = y.L, H = y.H, d = y.d, dh = y.dh;
  ATTNLAB_CHECK(cfg.d_model == d && cfg.n_layer == L && cfg.n_head == H, "weight_metrics: config/layout mismatch");

  // The matrices of block l, in emission order; w_q, w_k, w_v are the row blocks of the fused w_qkv.
  constexpr int kMats = 6;
  static const char* const kSpecNames[kMats] = {"spec_wq", "spec_wk", "spec_wv", "spec_wo", "spec_win", "spec_wdown"};
  static const char* const kRmsNames[kMats] = {"w_rms_q", "w_rms_k", "w_rms_v", "w_rms_o", "w_rms_in", "w_rms_down"};
  static const char* const kNormNames[kMats] = {"w_norm_q", "w_norm_k", "w_norm_v", "w_norm_o", "w_norm_in",
                                                "w_norm_down"};
  // Spectra describe the map the model applies, so they read the effective weights (Ŵ = (γ/σ)·W under
  // σReparam, else the parameters themselves); sizes (w_rms, w_norm) read the parameters.
  auto matrix = [&](int l, int m, bool effective) -> ConstMatView {
    const BlockParams& p = effective ? y.block_eff(l) : y.block(l);
    switch (m) {
      case 0: return ConstMatView(p.w_qkv.row(0), d, d, p.w_qkv.stride);
      case 1: return ConstMatView(p.w_qkv.row(d), d, d, p.w_qkv.stride);
      case 2: return ConstMatView(p.w_qkv.row(2 * d), d, d, p.w_qkv.stride);
      case 3: return p.w_o;
      case 4: return p.w_in;
      default: return p.w_down;
    }
  };

  // One slot per task (QK per head, then spectral norms per matrix, then the LM head). Attention-only
  // blocks (mlp: none) have no w_in / w_down: those slots are skipped and not emitted.
  const int n_qk = L * H, n_spec = L * kMats, n_mats = cfg.has_mlp() ? kMats : 4;
  std::vector<QkSpectrum> qk(n_qk);
  std::vector<double> spec(n_spec + 1);
  // Round-robin (static, 1): task costs differ (w_in's Gram is the largest), consecutive tasks alternate.
  #pragma omp parallel for schedule(static, 1)
  for (int task = 0; task < n_qk + n_spec + 1; ++task) {
    if (task < n_qk) {
      const int l = task / H, h = task % H;
      const MatView w = y.block_eff(l).w_qkv;
      qk[task] = qk_spectrum(ConstMatView(w.row(h * dh), dh, d, w.stride),
                             ConstMatView(w.row(d + h * dh), dh, d, w.stride));
    } else if (task < n_qk + n_spec) {
      const int i = task - n_qk;
      if (i % kMats < n_mats) spec[i] = spectral_norm(matrix(i / kMats, i % kMats, /*effective=*/true));
    } else {
      spec[n_spec] = spectral_norm(y.head().lm_head);
    }
  }

  for (int l = 0; l < L; ++l) {
    for (int h = 0; h < H; ++h) {
      const QkSpectrum& s = qk[l * H + h];
      out.emit("qk_mean", l, h, s.mean);
      out.emit("qk_var", l, h, s.var);
      out.emit("qk_mean_nz", l, h, s.mean_nz);
      out.emit("qk_var_nz", l, h, s.var_nz);
      out.emit("qk_cv", l, h, s.cv);
      out.emit("qk_spec", l, h, s.spec);
    }
    for (int m = 0; m < n_mats; ++m) {
      out.emit(kSpecNames[m], l, -1, spec[l * kMats + m]);
      const WeightNorms n = weight_norms(matrix(l, m, /*effective=*/false));
      out.emit(kRmsNames[m], l, -1, n.rms);
      out.emit(kNormNames[m], l, -1, n.norm);
    }
    const BlockParams& p = y.block(l);
    const WeightNorms an = weight_norms(gain(p.attn_norm_g));
    out.emit("w_rms_attn_norm", l, -1, an.rms);
    out.emit("w_norm_attn_norm", l, -1, an.norm);
    if (cfg.has_mlp()) {
      const WeightNorms mn = weight_norms(gain(p.mlp_norm_g));
      out.emit("w_rms_mlp_norm", l, -1, mn.rms);
      out.emit("w_norm_mlp_norm", l, -1, mn.norm);
    }

    // Toggle parameters, only when their toggle is on (empty views otherwise; model/TOGGLES.md).
    if (p.q_norm_g.p != nullptr) {
      const WeightNorms q = weight_norms(gain(p.q_norm_g)), k = weight_norms(gain(p.k_norm_g));
      out.emit("w_rms_q_norm", l, -1, q.rms);
      out.emit("w_norm_q_norm", l, -1, q.norm);
      out.emit("w_rms_k_norm", l, -1, k.rms);
      out.emit("w_norm_k_norm", l, -1, k.norm);
    }
    if (p.k_bias.p != nullptr) {
      const WeightNorms k = weight_norms(p.k_bias), v = weight_norms(p.v_bias);
      out.emit("w_rms_k_bias", l, -1, k.rms);
      out.emit("w_norm_k_bias", l, -1, k.norm);
      out.emit("w_rms_v_bias", l, -1, v.rms);
      out.emit("w_norm_v_bias", l, -1, v.norm);
    }
    for (int h = 0; h < int(p.v_scale_theta.n); ++h) out.emit("vscale_theta", l, h, p.v_scale_theta[h]);
    for (int h = 0; h < int(p.sink_logit.n); ++h) out.emit("sink_logit", l, h, p.sink_logit[h]);
  }
  out.emit("spec_lm_head", -1, -1, spec[n_spec]);
  const HeadParams& hp = y.head();
  const WeightNorms te = weight_norms(hp.tok_emb), fn = weight_norms(gain(hp.final_norm_g)),
                    lm = weight_norms(hp.lm_head);
  out.emit("w_rms_tok_emb", -1, -1, te.rms);
  out.emit("w_norm_tok_emb", -1, -1, te.norm);
  out.emit("w_rms_final_norm", -1, -1, fn.rms);
  out.emit("w_norm_final_norm", -1, -1, fn.norm);
  out.emit("w_rms_lm_head", -1, -1, lm.rms);  // equals tok_emb when the head is tied
  out.emit("w_norm_lm_head", -1, -1, lm.norm);
}

}  // namespace attnlab
