// attention_stats.h: per-head attention statistics read from the saved probabilities and the saved
// post-RoPE q, k (instrument/docs/attention.md lists every metric name, formula and source).
//
//   entropy     ent_norm, ent_nats, ent_exp, ent_norm_late        (metrics.md §1.1, Zhai et al. 2023)
//   logits      zmax, zabsmax, q_rms, k_rms                        (metrics.md §1.2, Wortsman et al. 2023)
//   sinks       alpha0, sink_argmax, sink_mass, colmass_M/S, sink_gs, sink_gu, sink_gu_k, alpha0_uniform
//                                                                  (metrics.md §1.3 Gu et al.; gradient-sinks.md §2.1)
//   map rank    attn_kstar, attn_colmass_max                       (metrics.md §1.4, Inheritune)
//
// The pure functions take one head's data over the whole batch; attention_metrics() runs them for every
// (layer, head) and emits. Everything is read-only; results are bitwise reproducible and independent of
// the OpenMP thread count (each head is computed by one thread in a fixed order).
#pragma once
#include <array>
#include <cstdint>

#include "instrument/metric.h"
#include "instrument/probe.h"
#include "model/tensor.h"

namespace attnlab {

// Gu et al.'s sink protocol: ε = 0.3 on the first T_ε = 64 positions (metrics.md §1.3).
constexpr double kSinkEps = 0.3;
constexpr int kSinkTokens = 64;
constexpr int kColumnProfile = 16;  // colmass_M / colmass_S are logged for key positions s < 16
constexpr int kSinkPositions = 4;   // sink_gu_k is logged for k = 0..3
constexpr double kRankEnergy = 0.90;

// One head's attention maps over a batch: row-major T×T matrix of sequence b at p + b·batch_stride,
// P[i, j] = 0 for j > i (the entropy reads those zeros in whole vectors), rows sum to 1. The model's
// probs [B, H, T, T] give batch_stride = H·T·T. A NaN at some j ≤ i propagates to every statistic that
// reads it.
struct HeadProbs {
  const float* p = nullptr;
  int B = 0, T = 0;
  int64_t batch_stride = 0;
  const float* seq(int b) const { return p + int64_t(b) * batch_stride; }
};

struct EntropyStats {
  double ent_norm = 0;       // mean_{b, i≥1} H_i / ln(i+1)  ∈ [0, 1]
  double ent_nats = 0;       // mean_{b, i≥1} H_i
  double ent_exp = 0;        // mean_{b, i≥1} exp(H_i)  (effective number of keys, ∈ [1, i+1])
  double ent_norm_late = 0;  // ent_norm over rows i ≥ max(1, ⌊T/4⌋)
};
// Row entropies H_i = −Σ_j P_ij ln P_ij from the probabilities (0·ln 0 = 0), in double. Needs T ≥ 2.
EntropyStats attention_entropy(HeadProbs a);

struct LogitStats {
  double zmax = 0;     // max_{b, i, j≤i} z_ij, z = scale · q_i·k_j
  double zabsmax = 0;  // max |z_ij| over the same set
  double q_rms = 0;    // sqrt(mean over b, t, c of q²)
  double k_rms = 0;
};
// q and k are one head's [B·T, dh] column blocks (rows n = b·T + t); z is recomputed in double.
// zmax / zabsmax are NaN if any logit is NaN (max() would silently skip it).
LogitStats attention_logit_stats(ConstMatView q, ConstMatView k, int B, int T, double scale);

struct SinkStats {
  double alpha0 = 0;     // batch-mean α_0, α_k = (1/(T_ε−k)) Σ_{i=k}^{T_ε−1} P[i, k]
  double argmax = 0;     // argmax_{k<T_ε} of batch-mean α_k (lowest k on ties); NaN if an α_k is NaN
  double mass0 = 0;      // batch-mean M̄_0 = M_0 / T over all T queries
  int n_profile = 0;     // min(16, T) entries of col_m / col_s are valid
  std::array<double, kColumnProfile> col_m{};  // batch-mean M_s = Σ_{t≥s} P[t, s]
  std::array<double, kColumnProfile> col_s{};  // batch-mean S_s = Σ_{t≥s} P[t, s]²
  int n_above = 0;       // min(4, T_ε) entries of frac_above are valid
  std::array<double, kSinkPositions> frac_above{};  // fraction of sequences b with α_k(b) > ε
};
// T_ε is min(t_eps, T): with causal attention the first T_ε rows are exactly what a length-T_ε run gives.
SinkStats attention_sink_stats(HeadProbs a, double eps = kSinkEps, int t_eps = kSinkTokens);

// The uniform-attention baseline of α_0: (1/T) Σ_{i<T} 1/(i+1) = H_T / T (0.0742 at T = 64).
double alpha0_uniform(int T);

// Fraction of (head, sequence) pairs whose α exceeds ε, from per-head fractions over sequences:
// mean_b[(1/n) Σ_heads 1(α(b) > ε)] = (1/n) Σ_heads frac_above. Gu's Sink_k^ε (over all L·H heads) and the
// gradient-sink paper's per-layer Sink_0^{ε,ℓ} (over the H heads of layer ℓ) are both this.
double sink_rate(const double* frac_above, int n_heads);

struct RankStats {
  double kstar = 0;          // min r with Σ_{k≤r} s_k² ≥ 0.9 Σ s_k², s = singular values of Ā = mean_b P[b]
  double colmass_max = 0;    // max_j (1/T) Σ_i Ā[i, j]
  // Both are NaN when Ā is not finite.
};
RankStats attention_rank_stats(HeadProbs a, double energy = kRankEnergy);

// Emits every metric above for every layer and head of the probe batch (names: instrument/docs/attention.md).
void attention_metrics(const ProbeView& v, MetricOut& out);

}  // namespace attnlab
