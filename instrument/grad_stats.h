// grad_stats.h: the GRADIENTS probe family (instrument/docs/gradients.md). Reads the activation gradients
// of a backward pass on the probe batch and reports, per layer:
//   - the gradient sink at the post-RMSNorm attention input h̃ (R_GS, gradient-sinks.md §2.2),
//   - ‖∇q_t‖, ‖∇k_t‖, ‖∇v_t‖ by position (gradient-sinks.md §2.2 "pathway split", §3 item 3),
//   - Bloat / Change / Compress across the attention and MLP branches by token group (§2.2, Eq. 4),
//   - the depth profile of the residual-stream gradient and ρ_grad (metrics.md §1.8).
// Rows of every [N, ·] buffer are n = b·T + t. The pure functions below work on raw views so they can be
// tested on synthetic inputs; gradient_metrics() is the family entry point.
#pragma once
#include "instrument/metric.h"
#include "instrument/probe.h"
#include "model/tensor.h"

namespace attnlab {

inline constexpr int kGradProfilePositions = 32;  // positions 0..31: the paper's violin plots
inline constexpr int kGradSinkWindow = 31;        // T_e of R_GS(0; T_e) (gradient-sinks.md §2.2)
inline constexpr int kTokenGroups = 5;            // {0}, {1}, {2–3}, {4–7}, {8–15}

// Token group of position t: 0 → 0, 1 → 1, 2–3 → 2, 4–7 → 3, 8–15 → 4; −1 for t ≥ 16.
int token_group(int t);

// Per-position norms of a gradient g [B·T, C] for t < n_pos (n_pos ≤ T), in double:
//   sum_conv[t]  = ‖Σ_b g[b·T + t]‖₂   (batch-summed gradient: the primary gradient-sink convention)
//   mean_conv[t] = mean_b ‖g[b·T + t]‖₂
// Either output may be null. g may be a column block of a wider buffer (e.g. one head of dqkv).
void position_grad_norms(double* sum_conv, double* mean_conv, ConstMatView g, int B, int T, int n_pos);

// R_GS(s; T_e) = norms[s] / ((1/T_e) Σ_{0≤t≤T_e, t≠s} norms[t])  (gradient-sinks.md §2.2, Def. 1).
// Requires 0 ≤ s ≤ T_e and T_e ≥ 1; norms has at least T_e + 1 entries. For s = 0 the denominator is
// the mean over positions 1..T_e.
double gradient_sink_ratio(const double* norms, int s, int t_e);

// Gradient reshaping of one token across one pre-norm branch (gradient-sinks.md §2.2, Eq. 4):
// g1 = g_out (∇ at the residual after the branch), g2 = g_norm (∇ at the branch's post-norm input),
// g3 = g_in − g_out (the branch's contribution to ∇ at the residual before the branch, = J_RMSᵀ g2).
//   bloat = ‖g2‖/‖g1‖,  change = ‖g1 + g3‖/‖g1‖ = ‖g_in‖/‖g_out‖,  compress = ‖g3‖/‖g2‖.
// By the triangle inequality |change − 1| ≤ bloat·compress for every token.
struct ReshapeRatios {
  double bloat = 0.0, change = 0.0, compress = 0.0;
  double g1 = 0.0, g2 = 0.0, g3 = 0.0;  // the three norms
};
ReshapeRatios reshape_ratios(const float* g_out, const float* g_norm, const float* g_in, int d);

// Token-group means over the batch of the per-token ratios of one branch, and of ‖h_in‖ (the branch's
// residual input). Tokens whose ratio has a zero denominator are left out of that ratio's mean; a group
// with no token (T too short) has count 0 and NaN means.
struct ReshapeGroups {
  double bloat[kTokenGroups], change[kTokenGroups], compress[kTokenGroups], h_in_norm[kTokenGroups];
  int count[kTokenGroups];
};
// g_out, g_norm, g_in, h_in are [B·T, d].
void branch_reshape_groups(ReshapeGroups* out, ConstMatView g_out, ConstMatView g_norm, ConstMatView g_in,
                           ConstMatView h_in, int B, int T);

// Frobenius norm of a matrix, accumulated in double in row order.
double frobenius_norm(ConstMatView m);

// ‖Σ over all of block l's parameter gradients‖₂ (attn/mlp norm gains, w_qkv, w_o, w_in, w_down).
double block_param_grad_norm(const Layout& y, int l);

// The family entry point: emits every metric of instrument/docs/gradients.md for every layer.
// Does nothing when v.has_grads is false. Reads only; allocates a few small per-layer buffers per call.
void gradient_metrics(const ProbeView& v, MetricOut& out);

}  // namespace attnlab
