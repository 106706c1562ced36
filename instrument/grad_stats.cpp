#include "instrument/grad_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace attnlab {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double sum_sq(const float* p, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += double(p[i]) * p[i];
  return s;
}

double sum_sq(ConstMatView m) {
  double s = 0.0;
  for (int r = 0; r < m.rows; ++r) s += sum_sq(m.row(r), m.cols);
  return s;
}

}  // namespace

int token_group(int t) {
  if (t < 0 || t >= 16) return -1;
  if (t < 2) return t;
  if (t < 4) return 2;
  if (t < 8) return 3;
  return 4;
}

void position_grad_norms(double* sum_conv, double* mean_conv, ConstMatView g, int B, int T, int n_pos) {
  ATTNLAB_CHECK(B > 0 && T > 0 && g.rows == B * T && n_pos >= 0 && n_pos <= T, "position_grad_norms shapes");
  constexpr int kColBlock = 64;  // Σ_b over a stack block of columns: rows are read contiguously
  for (int t = 0; t < n_pos; ++t) {
    if (sum_conv) {
      double sq = 0.0;
      for (int c0 = 0; c0 < g.cols; c0 += kColBlock) {
        const int nc = std::min(kColBlock, g.cols - c0);
        double acc[kColBlock] = {};
        for (int b = 0; b < B; ++b) {
          const float* r = g.row(b * T + t) + c0;
          for (int c = 0; c < nc; ++c) acc[c] += r[c];
        }
        for (int c = 0; c < nc; ++c) sq += acc[c] * acc[c];
      }
      sum_conv[t] = std::sqrt(sq);
    }
    if (mean_conv) {
      double s = 0.0;
      for (int b = 0; b < B; ++b) s += std::sqrt(sum_sq(g.row(b * T + t), g.cols));
      mean_conv[t] = s / B;
    }
  }
}

double gradient_sink_ratio(const double* norms, int s, int t_e) {
  ATTNLAB_CHECK(t_e >= 1 && s >= 0 && s <= t_e, "gradient_sink_ratio: need 0 <= s <= t_e, t_e >= 1");
  double den = 0.0;
  for (int t = 0; t <= t_e; ++t)
    if (t != s) den += norms[t];
  return norms[s] / (den / t_e);
}

ReshapeRatios reshape_ratios(const float* g_out, const float* g_norm, const float* g_in, int d) {
  double s1 = 0.0, s2 = 0.0, s3 = 0.0, s_in = 0.0;
  for (int c = 0; c < d; ++c) {
    const double g3 = double(g_in[c]) - double(g_out[c]);  // exact in double
    s1 += double(g_out[c]) * g_out[c];
    s2 += double(g_norm[c]) * g_norm[c];
    s3 += g3 * g3;
    s_in += double(g_in[c]) * g_in[c];
  }
  ReshapeRatios r;
  r.g1 = std::sqrt(s1);
  r.g2 = std::sqrt(s2);
  r.g3 = std::sqrt(s3);
  r.bloat = r.g2 / r.g1;
  r.change = std::sqrt(s_in) / r.g1;  // ‖g1 + g3‖ = ‖g_in‖
  r.compress = r.g3 / r.g2;
  return r;
}

void branch_reshape_groups(ReshapeGroups* out, ConstMatView g_out, ConstMatView g_norm, ConstMatView g_in,
                           ConstMatView h_in, int B, int T) {
  ATTNLAB_CHECK(g_out.rows == B * T && same_shape(g_out, g_norm) && same_shape(g_out, g_in) &&
                    same_shape(g_out, h_in),
                "branch_reshape_groups shapes");
  double bloat[kTokenGroups] = {}, change[kTokenGroups] = {}, compress[kTokenGroups] = {}, hin[kTokenGroups] = {};
  int n_all[kTokenGroups] = {}, n_g1[kTokenGroups] = {}, n_g2[kTokenGroups] = {};
  const int d = g_out.cols, t_max = std::min(T, 16);
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < t_max; ++t) {
      const int k = token_group(t), n = b * T + t;
      const ReshapeRatios r = reshape_ratios(g_out.row(n), g_norm.row(n), g_in.row(n), d);
      ++n_all[k];
      hin[k] += std::sqrt(sum_sq(h_in.row(n), d));
      if (r.g1 > 0.0) {  // a token with no gradient has no ratio; leave it out rather than emit inf
        bloat[k] += r.bloat;
        change[k] += r.change;
        ++n_g1[k];
      }
      if (r.g2 > 0.0) {
        compress[k] += r.compress;
        ++n_g2[k];
      }
    }
  }
  for (int k = 0; k < kTokenGroups; ++k) {
    out->count[k] = n_all[k];
    out->h_in_norm[k] = n_all[k] > 0 ? hin[k] / n_all[k] : kNaN;
    out->bloat[k] = n_g1[k] > 0 ? bloat[k] / n_g1[k] : kNaN;
    out->change[k] = n_g1[k] > 0 ? change[k] / n_g1[k] : kNaN;
    out->compress[k] = n_g2[k] > 0 ? compress[k] / n_g2[k] : kNaN;
  }
}

double frobenius_norm(ConstMatView m) { return std::sqrt(sum_sq(m)); }

double block_param_grad_norm(const Layout& y, int l) {
  const BlockParams& g = y.block_grad(l);
  const double s = sum_sq(g.attn_norm_g.p, g.attn_norm_g.n) + sum_sq(g.w_qkv) + sum_sq(g.w_o) +
                   sum_sq(g.mlp_norm_g.p, g.mlp_norm_g.n) + sum_sq(g.w_in) + sum_sq(g.w_down);
  return std::sqrt(s);
}

void gradient_metrics(const ProbeView& v, MetricOut& out) {
  if (!v.has_grads) return;
  const Layout& y = v.layout;
  const int B = y.B, T = y.T, L = y.L, d = y.d, H = y.H, dh = y.dh;
  const int P = std::min(kGradProfilePositions, T);  // profiled positions
  const int t_e = std::min(kGradSinkWindow, T - 1);  // R_GS needs T ≥ 2

  struct LayerResult {
    std::vector<double> h_sum, h_mean, q, k, v, head;
    ReshapeGroups attn, mlp;
    double rgs_sum = kNaN, rgs_mean = kNaN, dx_norm = 0.0, param_norm = 0.0;
  };
  std::vector<LayerResult> res(static_cast<size_t>(L));
  for (LayerResult& r : res) {
    r.h_sum.assign(size_t(P), 0.0);
    r.h_mean.assign(size_t(P), 0.0);
    r.q.assign(size_t(P), 0.0);
    r.k.assign(size_t(P), 0.0);
    r.v.assign(size_t(P), 0.0);
    r.head.assign(size_t(P), 0.0);
  }

  // Layers are independent and each is summed in a fixed order: bitwise identical for any thread count.
#pragma omp parallel for schedule(static)
  for (int l = 0; l < L; ++l) {
    LayerResult& r = res[size_t(l)];
    const BlockGrads& g = y.act_grads(l);
    const BlockActs& a = y.acts(l);

    position_grad_norms(r.h_sum.data(), r.h_mean.data(), g.dnorm1, B, T, P);
    if (t_e >= 1) {
      r.rgs_sum = gradient_sink_ratio(r.h_sum.data(), 0, t_e);
      r.rgs_mean = gradient_sink_ratio(r.h_mean.data(), 0, t_e);
    }
    // ∇q, ∇k, ∇v: per-head norms of the batch-summed gradient, then the mean over heads.
    std::vector<double>* parts[3] = {&r.q, &r.k, &r.v};
    for (int part = 0; part < 3; ++part) {
      for (int h = 0; h < H; ++h) {
        position_grad_norms(r.head.data(), nullptr, ConstMatView(g.dqkv).col_block(part * d + h * dh, dh), B, T,
                            P);
        for (int t = 0; t < P; ++t) (*parts[part])[size_t(t)] += r.head[size_t(t)];
      }
      for (int t = 0; t < P; ++t) (*parts[part])[size_t(t)] /= H;
    }
    // Attention branch h → h½: g1 = ∇h½, g2 = ∇h̃, g_in = ∇h.  MLP branch h½ → h': g1 = ∇h', g2 = ∇h̃½.
    branch_reshape_groups(&r.attn, g.dresid_mid, g.dnorm1, g.dx, a.x, B, T);
    branch_reshape_groups(&r.mlp, y.act_grads(l + 1).dx, g.dnorm2, g.dresid_mid, a.resid_mid, B, T);
    r.dx_norm = frobenius_norm(g.dx);
    r.param_norm = block_param_grad_norm(y, l);
  }

  for (int l = 0; l < L; ++l) {
    const LayerResult& r = res[size_t(l)];
    if (t_e >= 1) {
      out.emit("rgs_sum", l, -1, r.rgs_sum);
      out.emit("rgs_mean", l, -1, r.rgs_mean);
    }
    for (int t = 0; t < P; ++t) {
      out.emit("grad_h_norm", l, -1, t, r.h_sum[size_t(t)]);
      out.emit("grad_q_norm", l, -1, t, r.q[size_t(t)]);
      out.emit("grad_k_norm", l, -1, t, r.k[size_t(t)]);
      out.emit("grad_v_norm", l, -1, t, r.v[size_t(t)]);
    }
    for (int k = 0; k < kTokenGroups; ++k) {
      if (r.attn.count[k] == 0) continue;  // T < 2^(k−1): the group has no positions
      out.emit("attn_bloat", l, -1, k, r.attn.bloat[k]);
      out.emit("attn_change", l, -1, k, r.attn.change[k]);
      out.emit("attn_compress", l, -1, k, r.attn.compress[k]);
      out.emit("hin_norm", l, -1, k, r.attn.h_in_norm[k]);
      out.emit("mlp_bloat", l, -1, k, r.mlp.bloat[k]);
      out.emit("mlp_change", l, -1, k, r.mlp.change[k]);
      out.emit("mlp_compress", l, -1, k, r.mlp.compress[k]);
      out.emit("mlp_hin_norm", l, -1, k, r.mlp.h_in_norm[k]);
    }
    out.emit("grad_dx_norm", l, -1, r.dx_norm);
  }
  out.emit("grad_depth_ratio", -1, -1, res.front().dx_norm / res.back().dx_norm);
  out.emit("grad_depth_ratio_params", -1, -1, res.front().param_norm / res.back().param_norm);
  if (t_e >= 1) {
    // The paper reports the median of R_GS(0) over layers (gradient-sinks.md §2.2, §4.4).
    std::vector<double> rgs;
    for (const LayerResult& r : res)
      if (!std::isnan(r.rgs_sum)) rgs.push_back(r.rgs_sum);
    if (!rgs.empty()) {
      std::sort(rgs.begin(), rgs.end());
      const size_t m = rgs.size() / 2;
      out.emit("rgs_median", -1, -1, rgs.size() % 2 ? rgs[m] : 0.5 * (rgs[m - 1] + rgs[m]));
    }
  }
}

}  // namespace attnlab
