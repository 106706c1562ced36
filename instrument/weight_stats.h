// weight_stats.h: data-independent statistics of the parameters (instrument/docs/weights.md lists every
// metric name, formula and source).
//
//   QK eigenspectrum   qk_mean, qk_var, qk_mean_nz, qk_var_nz, qk_cv, qk_spec   (metrics.md §1.5, Bao et al. 2024)
//   spectral norms     spec_wq, spec_wk, spec_wv, spec_wo, spec_win, spec_wdown, spec_lm_head
//                                                                               (metrics.md §1.6, σReparam)
//   tensor size        w_rms_*, w_norm_*                                        (metrics.md §1.9, Wortsman et al.)
//   toggle parameters  w_rms_/w_norm_ q_norm, k_norm, k_bias, v_bias; vscale_theta, sink_logit per head
//                      (only when the toggle is on; model/TOGGLES.md)
//
// Layout convention (nn.Linear, [out, in]): q = x·w_qᵀ, so head h's query map is the dh rows h·dh..(h+1)·dh
// of w_q (Q_h, [dh, d]); likewise K_h of w_k. The logit z_ij = x_i Q_hᵀ K_h x_jᵀ / √dh, so
// W_QK = Q_hᵀ K_h / √dh (d×d, rank ≤ dh), whose nonzero eigenvalues are those of K = K_h Q_hᵀ / √dh (dh×dh).
// QK and spectral metrics read the effective weights the linears multiply with (Layout::block_eff: Ŵ =
// (γ/σ)·W under σReparam, else the parameters); w_rms / w_norm read the parameters.
// Spectral norms are exact (largest eigenvalue of a small symmetric Gram matrix, in double), not iterated:
// no start vector and no convergence question. Everything is read-only, bitwise reproducible and
// independent of the thread count.
#pragma once

#include "instrument/metric.h"
#include "model/layout.h"
#include "model/model_config.h"
#include "model/tensor.h"

namespace attnlab {

struct QkSpectrum {
  double trace = 0;     // tr(K) = Σ λ
  double trace_sq = 0;  // tr(K²) = Σ λ² (real even when λ are complex)
  double mean = 0;      // tr(K) / d: mean over all d eigenvalues of W_QK (zeros included)
  double var = 0;       // tr(K²)/d − mean²  (can be < 0 when eigenvalues are complex)
  double mean_nz = 0;   // tr(K) / dh: mean over the dh nonzero ones
  double var_nz = 0;    // tr(K²)/dh − mean_nz²
  double cv = 0;        // sqrt(max(var, 0)) / |mean|  (+inf when mean = 0 < var)
  double spec = 0;      // ‖W_QK‖_2 = σ_max(Q_hᵀ K_h) / √dh
};
// q_h and k_h are one head's [dh, d] query and key maps.
QkSpectrum qk_spectrum(ConstMatView q_h, ConstMatView k_h);

// ‖W‖_2 (largest singular value) of an [m, n] matrix: sqrt of the largest eigenvalue of the
// min(m, n)-sized Gram matrix, in double.
double spectral_norm(ConstMatView w);

// ‖W‖_F and RMS(W) = ‖W‖_F / sqrt(numel); a gain vector is a [1, n] view.
struct WeightNorms {
  double norm = 0;
  double rms = 0;
};
WeightNorms weight_norms(ConstMatView w);

// Emits every metric above for every layer / head / tensor (names: instrument/docs/weights.md).
void weight_metrics(const ModelConfig& cfg, const Layout& y, MetricOut& out);

}  // namespace attnlab
