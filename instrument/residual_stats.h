// residual_stats.h: residual-stream statistics read from the saved block inputs, branch outputs and
// block outputs (instrument/docs/residual.md lists every metric name, formula and source).
//
//   rank collapse   r_dong, r_frob, tok_cos, erank, srank        (metrics.md §1.4: Dong 2021, Noci 2022,
//                                                                  Roy & Vetterli 2007)
//   token norms     norm_{in,half,out,attn,mlp,v}, t0_ratio_*     (gradient-sinks.md §2.3)
//   massive acts    mass_top, mass_pos, mass_chan, mass_persist,  (metrics.md §1.7, Sun et al. 2024)
//                   mass_median, mass_ratio, mass_sun
//   lazy layers     bi, rho_attn, rho_mlp                         (metrics.md §1.12, ShortGPT)
//
// The pure functions take one sequence ([T, d] view) or one layer's [N, d] views; residual_metrics() runs
// them for every layer and emits. Everything is read-only; results are bitwise reproducible and do not
// depend on the OpenMP thread count (each (layer, sequence) task fills its own slot, reduced in order).
#pragma once
#include <cstdint>
#include <memory>

#include "instrument/metric.h"
#include "instrument/probe.h"
#include "model/tensor.h"

namespace attnlab {

constexpr int kRankSequences = 8;   // SVD-based rank metrics use the first 8 sequences (metrics.md §1.4)
constexpr int kNormPositions = 16;  // token-norm profiles cover positions 0..15 (gradient-sinks.md §2.3)
constexpr double kSunAbsolute = 100.0;   // Sun et al.: |x| > 100 ...
constexpr double kSunRelative = 1000.0;  // ... and ≥ 1000 × median |x| of the hidden state

// Rank-collapse statistics of one sequence X [T, d] with R = X − 1x̄ᵀ, x̄ the mean token.
struct ResidualRankStats {
  double r_dong = 0;   // ‖R‖_{1,∞} / ‖X‖_{1,∞},  ‖A‖_{1,∞} = sqrt(max col abs sum · max row abs sum)
  double r_frob = 0;   // ‖R‖_F / ‖X‖_F
  double tok_cos = 0;  // (1/(T(T−1))) Σ_{i≠j} cos(X_i, X_j)
  double erank = 0;    // exp(−Σ p_k ln p_k), p_k = σ_k(R) / Σσ(R); σ_k² = eigenvalues of the Gram matrix
  double srank = 0;    // ‖R‖_F² / σ_max(R)²
};
// Conventions (documented in residual.md): cos(0, 0) = 1 and cos(0, x≠0) = 0; when R vanishes
// (‖R‖_F ≤ 1e-12 ‖X‖_F, i.e. all tokens equal) erank = srank = 1, the floor of their range, so a fully
// collapsed stream reads as rank 1; r_dong = r_frob = 0 when X = 0. Needs T ≥ 2.
// `work` is caller-owned scratch sized for [T, d] (R in double and the eigensolver's workspace), reused across
// calls; Eigen stays out of this header.
class RankWorkspace {
 public:
  RankWorkspace(int T, int d);
  ~RankWorkspace();
  RankWorkspace(const RankWorkspace&) = delete;
  RankWorkspace& operator=(const RankWorkspace&) = delete;
  struct Impl;
  std::unique_ptr<Impl> impl;
};
ResidualRankStats residual_rank_stats(ConstMatView x, RankWorkspace* work);

// Element-wise massive-activation statistics of one sequence X [T, d] (Sun et al. 2024).
struct MassiveStats {
  float top[3] = {0, 0, 0};  // the three largest |x| (descending; duplicates counted)
  int top_t = 0, top_c = 0;  // position and channel of top[0] (first in row-major order on ties)
  double median = 0;         // median |x| over all T·d entries (mean of the two middle ones if T·d even)
};
// `scratch` must hold T·d floats (it is overwritten).
MassiveStats massive_stats(ConstMatView x, float* scratch);

// Batch aggregate of per-sequence MassiveStats.
struct MassiveSummary {
  float top[3] = {0, 0, 0};  // batch max of each top-k
  int pos = 0, chan = 0;     // (t, c) of the top-1 of the first sequence
  double persist = 0;        // fraction of sequences whose top-1 sits at the modal (t, c)
  double median = 0;         // batch mean of the median |x|
  double ratio = 0;          // batch mean of top1 / median (+inf for a sequence with median 0 < top1)
  double sun = 0;            // fraction of sequences with top1 > 100 and top1 ≥ 1000 · median
};
// The modal (t, c) is the most frequent top-1 location; ties go to the one seen first in sequence order.
MassiveSummary massive_summary(const MassiveStats* seqs, int n);

// Batch-mean token norms: out[t] = (1/B) Σ_b g(x[b·T + t]) for t < n_pos, where g is the ℓ2 norm of the
// row, or with n_groups > 1 the mean over equal column groups (heads) of each group's ℓ2 norm.
void token_norm_profile(double* out, ConstMatView x, int B, int T, int n_pos, int n_groups = 1);
// profile[0] / mean(profile[1..n−1]) (token 0 against the early rest). Needs n ≥ 2.
double token0_ratio(const double* profile, int n);

// 1 − mean over rows of cos(x_in[n], x_out[n]) (ShortGPT block influence); same cos conventions as above.
double block_influence(ConstMatView x_in, ConstMatView x_out);
// ‖a‖_F / ‖b‖_F (0 when both vanish).
double frobenius_ratio(ConstMatView a, ConstMatView b);

// Emits every metric above for every layer (names and index meaning: instrument/docs/residual.md).
// Rank metrics use the first min(B, rank_seqs) sequences; everything else uses the whole batch.
void residual_metrics(const ProbeView& v, MetricOut& out, int rank_seqs = kRankSequences);

}  // namespace attnlab
