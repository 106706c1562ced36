// attention_stats.cpp: see attention_stats.h and instrument/docs/attention.md for the definitions.
#include "instrument/attention_stats.h"

// GCC 12 reports a false -Wmaybe-uninitialized inside its own avx512fintrin.h (_mm256_undefined_pd) when
// Eigen's AVX-512 reductions are inlined; the diagnostic fires at the end of the unit, so it is off file-wide.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Dense>
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "model/check.h"

namespace attnlab {

namespace {

// ln(x) for the probabilities of a row, written so the row loop vectorizes under `omp simd` (glibc's
// logf does not without -ffast-math): x = 2^e·m with m in [√½, √2), then Cephes' logf polynomial in
// m − 1 (about 1 ulp for normal x). For x = 0 and subnormal x it returns a finite value near −88, so
// x·ln(x) is 0 at x = 0 (the 0·ln 0 = 0 convention) and below 1e-36 for subnormals.
inline float ln_prob(float x) {
  const int32_t bits = std::bit_cast<int32_t>(x);
  float e = float(((bits >> 23) & 0xff) - 127);
  float m = std::bit_cast<float>((bits & 0x007fffff) | 0x3f800000);  // [1, 2)
  const bool big = m > 1.41421356f;
  m = big ? 0.5f * m : m;
  e = big ? e + 1.0f : e;
  const float f = m - 1.0f, z = f * f;
  float y = 7.0376836292e-2f;
  y = std::fma(y, f, -1.1514610310e-1f);
  y = std::fma(y, f, 1.1676998740e-1f);
  y = std::fma(y, f, -1.2420140846e-1f);
  y = std::fma(y, f, 1.4249322787e-1f);
  y = std::fma(y, f, -1.6668057665e-1f);
  y = std::fma(y, f, 2.0000714765e-1f);
  y = std::fma(y, f, -2.4999993993e-1f);
  y = std::fma(y, f, 3.3333331174e-1f);
  y = y * f * z;
  y = std::fma(e, -2.12194440e-4f, y);  // ln 2 split into a low correction and an exact high part
  y = std::fma(z, -0.5f, y);
  return std::fma(e, 0.693359375f, f + y);
}

constexpr int kLanes = 16;

}  // namespace

EntropyStats attention_entropy(HeadProbs a) {
  ATTNLAB_CHECK(a.p && a.B > 0 && a.T >= 2, "attention_entropy: needs B >= 1 and T >= 2");
  const int T = a.T, late = std::max(1, T / 4);
  double sum_norm = 0, sum_nats = 0, sum_exp = 0, sum_late = 0;
  for (int b = 0; b < a.B; ++b) {
    const float* P = a.seq(b);
    for (int i = 1; i < T; ++i) {
      const float* row = P + int64_t(i) * T;
      // −Σ p ln p: each term in float (relative error ~1e-7), summed in double. Whole 16-wide vectors
      // with one partial sum per lane (as in the model's softmax rows): the zeros above the diagonal add
      // exactly 0; only when T is not a multiple of 16 do long rows get a scalar tail.
      const int m = std::min((i + kLanes) / kLanes * kLanes, T / kLanes * kLanes);
      double acc[kLanes] = {};
      for (int j = 0; j < m; j += kLanes)
#pragma omp simd
        for (int l = 0; l < kLanes; ++l) acc[l] -= double(row[j + l] * ln_prob(row[j + l]));
      for (int j = m; j <= i; ++j) acc[0] -= double(row[j] * ln_prob(row[j]));
      for (int w = kLanes / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
      const double h = acc[0];
      const double hn = h / std::log(double(i + 1));
      sum_nats += h;
      sum_norm += hn;
      sum_exp += std::exp(h);
      if (i >= late) sum_late += hn;
    }
  }
  const double rows = double(a.B) * (T - 1), rows_late = double(a.B) * (T - late);
  return {sum_norm / rows, sum_nats / rows, sum_exp / rows, sum_late / rows_late};
}

LogitStats attention_logit_stats(ConstMatView q, ConstMatView k, int B, int T, double scale) {
  ATTNLAB_CHECK(B > 0 && T > 0 && q.rows == B * T && same_shape(q, k), "attention_logit_stats: shapes");
  using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using FloatMap = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                              Eigen::OuterStride<>>;
  const int dh = q.cols;
  RowMat qd(T, dh), kd(T, dh), z(T, T);  // once per head: float → double copies and the T×T logits
  double zmax = -std::numeric_limits<double>::infinity(), zabs = 0, q2 = 0, k2 = 0;
  bool nan = false;  // std::max would drop NaN logits; a diverged run must show NaN, not a stale max
  for (int b = 0; b < B; ++b) {
    qd = FloatMap(q.row(b * T), T, dh, Eigen::OuterStride<>(q.stride)).cast<double>();
    kd = FloatMap(k.row(b * T), T, dh, Eigen::OuterStride<>(k.stride)).cast<double>();
    q2 += qd.squaredNorm();
    k2 += kd.squaredNorm();
    z.noalias() = qd * kd.transpose();  // products of floats are exact in double
    nan = nan || z.hasNaN();  // a NaN in q_i or k_j reaches row i or row T−1, both inside j ≤ i
    for (int i = 0; i < T; ++i) {
      const double* zr = z.data() + int64_t(i) * T;
      double hi = zr[0], lo = zr[0];
      for (int j = 1; j <= i; ++j) {
        hi = std::max(hi, zr[j]);
        lo = std::min(lo, zr[j]);
      }
      zmax = std::max(zmax, hi * scale);  // scale > 0: max and min commute with it
      zabs = std::max(zabs, std::max(std::abs(hi), std::abs(lo)) * scale);
    }
  }
  const double n = double(B) * T * dh;
  if (nan) zmax = zabs = std::numeric_limits<double>::quiet_NaN();
  return {zmax, zabs, std::sqrt(q2 / n), std::sqrt(k2 / n)};
}

SinkStats attention_sink_stats(HeadProbs a, double eps, int t_eps) {
  ATTNLAB_CHECK(a.p && a.B > 0 && a.T > 0 && t_eps > 0, "attention_sink_stats: shapes");
  const int T = a.T, Te = std::min(t_eps, T);
  SinkStats s;
  s.n_profile = std::min(kColumnProfile, T);
  s.n_above = std::min(kSinkPositions, Te);
  std::vector<double> col(T), col_sq(T), col_eps(Te), alpha_mean(Te, 0.0);  // once per head
  for (int b = 0; b < a.B; ++b) {
    const float* P = a.seq(b);
    std::fill(col.begin(), col.end(), 0.0);
    std::fill(col_sq.begin(), col_sq.end(), 0.0);
    for (int i = 0; i < T; ++i) {
      const float* row = P + int64_t(i) * T;
      if (i == Te) col_eps.assign(col.begin(), col.begin() + Te);  // column sums over rows < T_ε
      for (int j = 0; j <= i; ++j) {
        const double p = row[j];
        col[j] += p;
        col_sq[j] += p * p;
      }
    }
    if (Te == T) col_eps.assign(col.begin(), col.begin() + Te);
    for (int k = 0; k < Te; ++k) {
      const double alpha = col_eps[k] / (Te - k);  // mean over the T_ε − k queries that see key k
      alpha_mean[k] += alpha;
      if (k < s.n_above) s.frac_above[k] += std::isnan(alpha) ? alpha : double(alpha > eps);  // NaN stays NaN
    }
    s.mass0 += col[0] / T;
    for (int j = 0; j < s.n_profile; ++j) {
      s.col_m[j] += col[j];
      s.col_s[j] += col_sq[j];
    }
  }
  const double inv_b = 1.0 / a.B;
  for (int k = 0; k < Te; ++k) alpha_mean[k] *= inv_b;
  s.alpha0 = alpha_mean[0];
  s.argmax = double(std::max_element(alpha_mean.begin(), alpha_mean.end()) - alpha_mean.begin());  // first max
  for (int k = 0; k < Te; ++k)
    if (std::isnan(alpha_mean[k])) s.argmax = alpha_mean[k];
  s.mass0 *= inv_b;
  for (int j = 0; j < s.n_profile; ++j) {
    s.col_m[j] *= inv_b;
    s.col_s[j] *= inv_b;
  }
  for (int k = 0; k < s.n_above; ++k) s.frac_above[k] *= inv_b;
  return s;
}

double alpha0_uniform(int T) {
  ATTNLAB_CHECK(T > 0, "alpha0_uniform: T > 0");
  double h = 0;
  for (int i = T; i >= 1; --i) h += 1.0 / i;  // smallest terms first
  return h / T;
}

double sink_rate(const double* frac_above, int n_heads) {
  ATTNLAB_CHECK(n_heads > 0, "sink_rate: n_heads > 0");
  double s = 0;
  for (int h = 0; h < n_heads; ++h) s += frac_above[h];
  return s / n_heads;
}

RankStats attention_rank_stats(HeadProbs a, double energy) {
  ATTNLAB_CHECK(a.p && a.B > 0 && a.T > 0 && energy > 0 && energy <= 1, "attention_rank_stats: args");
  const int T = a.T;
  Eigen::MatrixXd mean = Eigen::MatrixXd::Zero(T, T);
  for (int b = 0; b < a.B; ++b) {
    const float* P = a.seq(b);
    for (int i = 0; i < T; ++i)
      for (int j = 0; j <= i; ++j) mean(i, j) += P[int64_t(i) * T + j];
  }
  mean /= double(a.B);
  RankStats r;
  if (!mean.allFinite()) {  // a diverged run: report NaN rather than the rank of a broken matrix
    r.kstar = r.colmass_max = std::numeric_limits<double>::quiet_NaN();
    return r;
  }
  r.colmass_max = mean.colwise().sum().maxCoeff() / T;
  // The energy rule needs only the squared singular values s_k², which are the eigenvalues of the Gram
  // matrix ĀĀᵀ: a symmetric eigensolve (values only) is ~10x faster than BDCSVD at T = 64. Squaring
  // moves rounding to ~1e-16·s_max², which cannot move a 90% threshold except at an exact split.
  Eigen::MatrixXd gram(T, T);
  gram.noalias() = mean * mean.transpose();
  const Eigen::VectorXd ev =
      Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(gram, Eigen::EigenvaluesOnly).eigenvalues();  // ascending
  double total = 0;
  for (int k = 0; k < T; ++k) total += std::max(ev[k], 0.0);
  // A relative slack of 1e-9 keeps an exact split (e.g. 9 of 10 equal values at 90%) from being decided
  // by rounding.
  const double target = energy * total * (1.0 - 1e-9);
  double cum = 0;
  r.kstar = T;
  for (int k = 0; k < T; ++k) {
    cum += std::max(ev[T - 1 - k], 0.0);  // largest first
    if (cum >= target) {
      r.kstar = k + 1;
      break;
    }
  }
  return r;
}

namespace {

struct HeadResult {
  EntropyStats ent;
  LogitStats logit;
  SinkStats sink;
  RankStats rank;
};

}  // namespace

void attention_metrics(const ProbeView& v, MetricOut& out) {
  const Layout& lay = v.layout;
  const int L = lay.L, H = lay.H, B = lay.B, T = lay.T, d = lay.d, dh = lay.dh;
  ATTNLAB_CHECK(T >= 2, "attention_metrics: needs T >= 2");
  const double scale = 1.0 / std::sqrt(double(dh));
  std::vector<HeadResult> res(size_t(L) * H);

  // One (layer, head) per iteration: each result is computed by a single thread in a fixed order.
#pragma omp parallel for schedule(static)
  for (int lh = 0; lh < L * H; ++lh) {
    const int l = lh / H, h = lh % H;
    const BlockActs& acts = lay.acts(l);
    const HeadProbs hp{acts.probs + int64_t(h) * T * T, B, T, int64_t(H) * T * T};
    const ConstMatView qkv = acts.qkv;
    HeadResult& r = res[lh];
    r.ent = attention_entropy(hp);
    r.logit = attention_logit_stats(qkv.col_block(h * dh, dh), qkv.col_block(d + h * dh, dh), B, T, scale);
    r.sink = attention_sink_stats(hp);
    r.rank = attention_rank_stats(hp);
  }

  std::vector<double> frac(size_t(L) * H);
  for (int l = 0; l < L; ++l) {
    double zmax = -std::numeric_limits<double>::infinity(), zabs = 0;
    for (int h = 0; h < H; ++h) {
      const HeadResult& r = res[size_t(l) * H + h];
      out.emit("ent_norm", l, h, r.ent.ent_norm);
      out.emit("ent_nats", l, h, r.ent.ent_nats);
      out.emit("ent_exp", l, h, r.ent.ent_exp);
      out.emit("ent_norm_late", l, h, r.ent.ent_norm_late);
      out.emit("zmax", l, h, r.logit.zmax);
      out.emit("zabsmax", l, h, r.logit.zabsmax);
      out.emit("q_rms", l, h, r.logit.q_rms);
      out.emit("k_rms", l, h, r.logit.k_rms);
      out.emit("alpha0", l, h, r.sink.alpha0);
      out.emit("sink_argmax", l, h, r.sink.argmax);
      out.emit("sink_mass", l, h, r.sink.mass0);
      for (int s = 0; s < r.sink.n_profile; ++s) {
        out.emit("colmass_M", l, h, s, r.sink.col_m[s]);
        out.emit("colmass_S", l, h, s, r.sink.col_s[s]);
      }
      out.emit("attn_kstar", l, h, r.rank.kstar);
      out.emit("attn_colmass_max", l, h, r.rank.colmass_max);
      zmax = std::max(zmax, r.logit.zmax);
      zabs = std::max(zabs, r.logit.zabsmax);
      frac[size_t(l) * H + h] = r.sink.frac_above[0];
    }
    out.emit("zmax", l, -1, zmax);
    out.emit("zabsmax", l, -1, zabs);
    out.emit("sink_gs", l, -1, sink_rate(frac.data() + size_t(l) * H, H));
  }

  const int n_above = res[0].sink.n_above;  // the same for every head
  for (int k = 0; k < n_above; ++k) {
    for (size_t lh = 0; lh < res.size(); ++lh) frac[lh] = res[lh].sink.frac_above[k];
    const double rate = sink_rate(frac.data(), L * H);
    if (k == 0) out.emit("sink_gu", -1, -1, rate);
    out.emit("sink_gu_k", -1, -1, k, rate);
  }
  out.emit("alpha0_uniform", -1, -1, alpha0_uniform(std::min(kSinkTokens, T)));
}

}  // namespace attnlab
