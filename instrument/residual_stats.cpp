#include "instrument/residual_stats.h"

// GCC 12 reports a false -Wmaybe-uninitialized inside its own avx512fintrin.h when Eigen's AVX-512 kernels
// are inlined; the diagnostic fires at the end of the unit, so it is off file-wide (as in attention_stats.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Dense>
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "model/check.h"

namespace attnlab {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Σ a[c]·b[c] in double. Eight independent partial sums, combined in a fixed order: the compiler can
// vectorise them without reassociating (a single double accumulator is a 4-cycle chain per element).
double dot(const float* a, const float* b, int n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int c = 0;
  for (; c + 8 <= n; c += 8)
    for (int k = 0; k < 8; ++k) acc[k] += double(a[c + k]) * double(b[c + k]);
  double s = 0.0;
  for (; c < n; ++c) s += double(a[c]) * double(b[c]);
  return s + (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
}

// cos(a, b) with the conventions of residual_stats.h: cos(0, 0) = 1, cos(0, x≠0) = 0.
double cosine(const float* a, const float* b, int n) {
  const double ab = dot(a, b, n), aa = dot(a, a, n), bb = dot(b, b, n);
  if (aa == 0.0 && bb == 0.0) return 1.0;
  if (aa == 0.0 || bb == 0.0) return 0.0;
  return ab / std::sqrt(aa * bb);
}

double sum_squares(ConstMatView a) {
  double s = 0.0;
  for (int r = 0; r < a.rows; ++r) s += dot(a.row(r), a.row(r), a.cols);
  return s;
}

// The view of sequence b (rows b·T .. b·T+T−1) of an [B·T, ·] matrix.
ConstMatView sequence(ConstMatView x, int b, int T) { return ConstMatView(x.row(b * T), T, x.cols, x.stride); }

}  // namespace

struct RankWorkspace::Impl {
  Impl(int T, int d)
      : r(T, d), mean(d), x_col(d), r_col(d), u_sum(d), gram(std::min(T, d), std::min(T, d)),
        eig(std::min(T, d)) {}
  Eigen::MatrixXd r;                          // [T, d] centred tokens R, in double
  Eigen::VectorXd mean, x_col, r_col, u_sum;  // [d] column mean, abs column sums of X and R, Σ unit tokens
  Eigen::MatrixXd gram;                       // the smaller of R Rᵀ and Rᵀ R
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig;
};

RankWorkspace::RankWorkspace(int T, int d) : impl(std::make_unique<Impl>(T, d)) {}
RankWorkspace::~RankWorkspace() = default;

ResidualRankStats residual_rank_stats(ConstMatView x, RankWorkspace* work) {
  const int T = x.rows, d = x.cols;
  ATTNLAB_CHECK(T >= 2 && d >= 1, "residual_rank_stats: needs T >= 2");
  RankWorkspace::Impl& w = *work->impl;
  ATTNLAB_CHECK(w.r.rows() == T && w.r.cols() == d, "residual_rank_stats: workspace shape");
  ResidualRankStats s;

  // Pass 1 over X: column means, ‖X‖_F², abs column / row sums, and Σ_i X_i/‖X_i‖ for the pairwise cosine:
  // Σ_{i≠j} cos(X_i, X_j) = ‖Σ_i u_i‖² − Σ_i ‖u_i‖², so C(X) costs O(T·d) instead of O(T²·d).
  w.mean.setZero();
  w.x_col.setZero();
  w.u_sum.setZero();
  double x_f2 = 0.0, x_row_max = 0.0;
  int n_zero = 0;
  for (int t = 0; t < T; ++t) {
    const float* row = x.row(t);
    double sq = 0.0, abs_sum = 0.0;
    for (int c = 0; c < d; ++c) {
      w.mean[c] += row[c];
      w.x_col[c] += std::fabs(double(row[c]));
      sq += double(row[c]) * row[c];
      abs_sum += std::fabs(double(row[c]));
    }
    x_f2 += sq;
    x_row_max = std::max(x_row_max, abs_sum);
    if (sq == 0.0) {
      ++n_zero;
    } else {
      const double inv = 1.0 / std::sqrt(sq);
      for (int c = 0; c < d; ++c) w.u_sum[c] += row[c] * inv;
    }
  }
  if (!std::isfinite(x_f2)) return {kNaN, kNaN, kNaN, kNaN, kNaN};  // a diverged stream: no SVD of inf/NaN
  w.mean /= double(T);
  const double nonzero_self = double(T - n_zero);
  const double zero_pairs = double(n_zero) * (n_zero - 1);  // cos(0, 0) = 1
  s.tok_cos = (w.u_sum.squaredNorm() - nonzero_self + zero_pairs) / (double(T) * (T - 1));

  // Pass 2: R = X − 1x̄ᵀ and its norms.
  w.r_col.setZero();
  double r_f2 = 0.0, r_row_max = 0.0;
  for (int t = 0; t < T; ++t) {
    const float* row = x.row(t);
    double abs_sum = 0.0;
    for (int c = 0; c < d; ++c) {
      const double v = double(row[c]) - w.mean[c];
      w.r(t, c) = v;
      r_f2 += v * v;
      abs_sum += std::fabs(v);
      w.r_col[c] += std::fabs(v);
    }
    r_row_max = std::max(r_row_max, abs_sum);
  }
  const double x_1inf = std::sqrt(w.x_col.maxCoeff() * x_row_max);
  const double r_1inf = std::sqrt(w.r_col.maxCoeff() * r_row_max);
  s.r_dong = x_1inf > 0.0 ? r_1inf / x_1inf : 0.0;
  s.r_frob = x_f2 > 0.0 ? std::sqrt(r_f2 / x_f2) : 0.0;

  // Ranks from the singular values of R. All tokens equal ⇒ R = 0 (exactly, since x̄ of equal floats is
  // exact in double): report the floor of the range, rank 1.
  if (std::sqrt(r_f2) <= 1e-12 * std::sqrt(x_f2)) {
    s.erank = 1.0;
    s.srank = 1.0;
    return s;
  }
  // σ_k² are the eigenvalues of the min(T, d)-sized Gram matrix (in double: ~6× faster than an SVD of R
  // at 64×64). Eigenvalues below the solver's noise floor n·ε·λ_max are zero singular values (R has rank
  // ≤ T−1); they would otherwise enter the entropy as σ ≈ 1e-8·σ_max.
  if (T <= d) {
    w.gram.noalias() = w.r * w.r.transpose();
  } else {
    w.gram.noalias() = w.r.transpose() * w.r;
  }
  w.eig.compute(w.gram, Eigen::EigenvaluesOnly);
  const Eigen::VectorXd& lambda = w.eig.eigenvalues();  // ascending
  const Eigen::Index n = lambda.size();
  const double lambda_max = lambda[n - 1];
  const double floor = double(n) * std::numeric_limits<double>::epsilon() * lambda_max;
  double sum = 0.0;
  for (Eigen::Index k = 0; k < n; ++k)
    if (lambda[k] > floor) sum += std::sqrt(lambda[k]);
  double ent = 0.0;
  for (Eigen::Index k = 0; k < n; ++k) {
    if (lambda[k] <= floor) continue;
    const double p = std::sqrt(lambda[k]) / sum;
    ent -= p * std::log(p);
  }
  s.erank = std::exp(ent);
  s.srank = r_f2 / lambda_max;
  return s;
}

MassiveStats massive_stats(ConstMatView x, float* scratch) {
  const int T = x.rows, d = x.cols;
  const int64_t n = int64_t(T) * d;
  ATTNLAB_CHECK(n >= 1, "massive_stats: empty input");
  MassiveStats s;
  // The median is found by radix select: for non-negative floats the bit patterns order like the values,
  // so a histogram of the top 12 bits (sign, exponent, 3 mantissa bits) locates the bucket holding the
  // median, and nth_element only has to partition that bucket (a few % of the entries for typical data;
  // nth_element over all T·d entries costs ~8 ns per entry in branch mispredictions).
  constexpr int kShift = 19, kBuckets = 1 << 12;  // keys are < 2^31: 12 bits above bit 19
  uint32_t hist[kBuckets] = {};
  // One pass: |x| into scratch (non-finite entries count as +inf, so a diverged value is the top-1 and the
  // selection stays well-defined), the running top-3 and the histogram.
  for (int t = 0; t < T; ++t) {
    const float* row = x.row(t);
    float* dst = scratch + int64_t(t) * d;
    for (int c = 0; c < d; ++c) {
      float a = std::fabs(row[c]);
      if (!(a <= std::numeric_limits<float>::max())) a = std::numeric_limits<float>::infinity();
      dst[c] = a;
      ++hist[std::bit_cast<uint32_t>(a) >> kShift];
      if (a > s.top[2]) {
        if (a > s.top[0]) {
          s.top[2] = s.top[1];
          s.top[1] = s.top[0];
          s.top[0] = a;
          s.top_t = t;
          s.top_c = c;
        } else if (a > s.top[1]) {
          s.top[2] = s.top[1];
          s.top[1] = a;
        } else {
          s.top[2] = a;
        }
      }
    }
  }
  // The bucket of the element of rank k = n/2 (0-based), and k's rank r inside it.
  const int64_t k = n / 2;
  int64_t below = 0;
  uint32_t bucket = 0;
  while (below + hist[bucket] <= k) below += hist[bucket++];
  const int64_t r = k - below;
  // Rank k−1 (needed for even n) when it is not in the same bucket: the largest entry of the lower buckets.
  float lower_max = 0.0f;
  if (n % 2 == 0 && r == 0) {
    for (int64_t i = 0; i < n; ++i)
      if ((std::bit_cast<uint32_t>(scratch[i]) >> kShift) < bucket) lower_max = std::max(lower_max, scratch[i]);
  }
  // Move the bucket's entries to the front, branch-free (in place: the write index never passes the read index).
  int64_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float a = scratch[i];
    scratch[m] = a;
    m += (std::bit_cast<uint32_t>(a) >> kShift) == bucket;
  }
  std::nth_element(scratch, scratch + r, scratch + m);
  const double hi = scratch[r];
  if (n % 2 == 1) {
    s.median = hi;
  } else {
    const double lo = r > 0 ? *std::max_element(scratch, scratch + r) : lower_max;
    s.median = 0.5 * (lo + hi);
  }
  return s;
}

MassiveSummary massive_summary(const MassiveStats* seqs, int n) {
  ATTNLAB_CHECK(n >= 1, "massive_summary: no sequences");
  MassiveSummary m;
  m.pos = seqs[0].top_t;
  m.chan = seqs[0].top_c;
  int best = 0;
  double med = 0.0, ratio = 0.0, sun = 0.0;
  for (int i = 0; i < n; ++i) {
    const MassiveStats& s = seqs[i];
    for (int k = 0; k < 3; ++k) m.top[k] = std::max(m.top[k], s.top[k]);
    int count = 0;
    for (int j = 0; j < n; ++j) count += seqs[j].top_t == s.top_t && seqs[j].top_c == s.top_c;
    best = std::max(best, count);  // the modal location's count (which one wins a tie does not matter here)
    const double top1 = s.top[0];
    med += s.median;
    ratio += s.median > 0.0 ? top1 / s.median : (top1 > 0.0 ? kInf : 1.0);
    sun += (top1 > kSunAbsolute && top1 >= kSunRelative * s.median) ? 1.0 : 0.0;
  }
  m.persist = double(best) / n;
  m.median = med / n;
  m.ratio = ratio / n;
  m.sun = sun / n;
  return m;
}

void token_norm_profile(double* out, ConstMatView x, int B, int T, int n_pos, int n_groups) {
  ATTNLAB_CHECK(x.rows == B * T && n_pos <= T && n_groups >= 1 && x.cols % n_groups == 0,
                "token_norm_profile: shapes");
  const int g = x.cols / n_groups;
  for (int t = 0; t < n_pos; ++t) {
    double acc = 0.0;
    for (int b = 0; b < B; ++b) {
      const float* row = x.row(b * T + t);
      double mean_norm = 0.0;
      for (int h = 0; h < n_groups; ++h) mean_norm += std::sqrt(dot(row + h * g, row + h * g, g));
      acc += mean_norm / n_groups;
    }
    out[t] = acc / B;
  }
}

double token0_ratio(const double* profile, int n) {
  ATTNLAB_CHECK(n >= 2, "token0_ratio: needs two positions");
  double rest = 0.0;
  for (int t = 1; t < n; ++t) rest += profile[t];
  return profile[0] / (rest / (n - 1));
}

double block_influence(ConstMatView x_in, ConstMatView x_out) {
  ATTNLAB_CHECK(same_shape(x_in, x_out) && x_in.rows >= 1, "block_influence: shapes");
  double acc = 0.0;
  for (int n = 0; n < x_in.rows; ++n) acc += cosine(x_in.row(n), x_out.row(n), x_in.cols);
  return 1.0 - acc / x_in.rows;
}

double frobenius_ratio(ConstMatView a, ConstMatView b) {
  const double aa = sum_squares(a), bb = sum_squares(b);
  if (aa == 0.0 && bb == 0.0) return 0.0;
  return std::sqrt(aa / bb);
}

void residual_metrics(const ProbeView& v, MetricOut& out, int rank_seqs) {
  const Layout& y = v.layout;
  const int L = y.L, B = y.B, T = y.T, d = y.d, H = y.H;
  const int Br = std::min(B, std::max(rank_seqs, 0));
  const bool do_rank = T >= 2 && Br >= 1;
  const int P = std::min(kNormPositions, T);
  auto block_out = [&](int l) -> ConstMatView { return l + 1 < L ? ConstMatView(y.acts(l + 1).x) : y.head_acts().x; };

  // Token-norm sites per layer, in emission order; slot L·n_sites holds X0 (the embedding output). The
  // V-scale toggle adds v̂ = φ(‖v‖²)·v, the values attention actually aggregates.
  constexpr int kMaxSites = 7, kSiteV = 5;  // v̂ is site 6
  static const char* const kNormNames[kMaxSites] = {"norm_in",  "norm_half", "norm_out", "norm_attn",
                                                    "norm_mlp", "norm_v",    "norm_vhat"};
  static const char* const kRatioNames[kMaxSites] = {"t0_ratio_in",  "t0_ratio_half", "t0_ratio_out", "t0_ratio_attn",
                                                     "t0_ratio_mlp", "t0_ratio_v",    "t0_ratio_vhat"};
  const int n_sites = y.acts(0).vhat.p != nullptr ? kMaxSites : kMaxSites - 1;
  auto site = [&](int l, int s) -> ConstMatView {
    const BlockActs& a = y.acts(l);
    switch (s) {
      case 0: return a.x;
      case 1: return a.resid_mid;
      case 2: return block_out(l);
      case 3: return a.attn_out;
      case 4: return a.mlp_out;
      case kSiteV: return ConstMatView(a.qkv).col_block(2 * d, d);
      default: return a.vhat;
    }
  };

  // One slot per task, reduced below in a fixed order: results do not depend on the thread count.
  std::vector<ResidualRankStats> rank(size_t(L) * Br);
  std::vector<MassiveStats> mass(size_t(L) * B);
  std::vector<double> profiles(size_t(L * n_sites + 1) * P);
  std::vector<double> lazy(size_t(L) * 3);

  #pragma omp parallel
  {
    // Per-thread scratch, allocated once per call.
    RankWorkspace work(do_rank ? T : 1, do_rank ? d : 1);
    std::vector<float> abs_buf(size_t(T) * d);

    if (do_rank) {
      #pragma omp for schedule(static) nowait
      for (int task = 0; task < L * Br; ++task) {
        const int l = task / Br, b = task % Br;
        rank[task] = residual_rank_stats(sequence(block_out(l), b, T), &work);
      }
    }
    #pragma omp for schedule(static) nowait
    for (int task = 0; task < L * B; ++task) {
      const int l = task / B, b = task % B;
      mass[task] = massive_stats(sequence(block_out(l), b, T), abs_buf.data());
    }
    #pragma omp for schedule(static) nowait
    for (int task = 0; task < L * n_sites + 1; ++task) {
      double* dst = profiles.data() + size_t(task) * P;
      if (task == L * n_sites) {
        token_norm_profile(dst, y.acts(0).x, B, T, P);
      } else {
        const int l = task / n_sites, s = task % n_sites;
        token_norm_profile(dst, site(l, s), B, T, P, s >= kSiteV ? H : 1);  // values: mean over heads
      }
    }
    #pragma omp for schedule(static)
    for (int l = 0; l < L; ++l) {
      const BlockActs& a = y.acts(l);
      lazy[l * 3 + 0] = block_influence(a.x, block_out(l));
      lazy[l * 3 + 1] = frobenius_ratio(a.attn_out, a.x);
      lazy[l * 3 + 2] = frobenius_ratio(a.mlp_out, a.resid_mid);
    }
  }

  auto emit_profile = [&](int layer, int slot, int s) {
    const double* p = profiles.data() + size_t(slot) * P;
    for (int t = 0; t < P; ++t) out.emit(kNormNames[s], layer, -1, t, p[t]);
    if (P >= 2) out.emit(kRatioNames[s], layer, -1, -1, token0_ratio(p, P));
  };
  emit_profile(-1, L * n_sites, 2);  // X0 as the "output" of the embedding (layer −1)

  for (int l = 0; l < L; ++l) {
    if (do_rank) {
      ResidualRankStats m;
      for (int b = 0; b < Br; ++b) {
        const ResidualRankStats& r = rank[size_t(l) * Br + b];
        m.r_dong += r.r_dong;
        m.r_frob += r.r_frob;
        m.tok_cos += r.tok_cos;
        m.erank += r.erank;
        m.srank += r.srank;
      }
      out.emit("r_dong", l, -1, m.r_dong / Br);
      out.emit("r_frob", l, -1, m.r_frob / Br);
      out.emit("tok_cos", l, -1, m.tok_cos / Br);
      out.emit("erank", l, -1, m.erank / Br);
      out.emit("srank", l, -1, m.srank / Br);
    }
    for (int s = 0; s < n_sites; ++s) emit_profile(l, l * n_sites + s, s);

    const MassiveSummary ms = massive_summary(mass.data() + size_t(l) * B, B);
    for (int k = 0; k < 3; ++k) out.emit("mass_top", l, -1, k, ms.top[k]);
    out.emit("mass_pos", l, -1, ms.pos);
    out.emit("mass_chan", l, -1, ms.chan);
    out.emit("mass_persist", l, -1, ms.persist);
    out.emit("mass_median", l, -1, ms.median);
    out.emit("mass_ratio", l, -1, ms.ratio);
    out.emit("mass_sun", l, -1, ms.sun);

    out.emit("bi", l, -1, lazy[l * 3 + 0]);
    out.emit("rho_attn", l, -1, lazy[l * 3 + 1]);
    out.emit("rho_mlp", l, -1, lazy[l * 3 + 2]);
  }
}

}  // namespace attnlab
