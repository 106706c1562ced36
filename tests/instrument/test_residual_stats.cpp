// Residual-stream metrics: each pure function on inputs whose answer is known in closed form, then the
// family entry point on a real tiny model (finite, consistent, passive, deterministic).
#include <catch2/catch.hpp>
#include <omp.h>

// GCC 12 false positive inside avx512fintrin.h when Eigen's AVX-512 kernels are inlined (see residual_stats.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Dense>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

#include "instrument/residual_stats.h"
#include "model/rng.h"
#include "model/transformer.h"
#include "tests/support/tiny_model.h"

using namespace attnlab;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;
using attnlab::testing::Mat;

namespace {

ResidualRankStats rank_of(const Mat& x) {
  RankWorkspace w(x.rows, x.cols);
  return residual_rank_stats(x.view(), &w);
}

// Shannon entropy based effective rank of a list of singular values, straight from the definition.
double erank_of(std::vector<double> s) {
  double sum = 0.0, h = 0.0;
  for (double x : s) sum += x;
  for (double x : s) h -= x / sum * std::log(x / sum);
  return std::exp(h);
}

}  // namespace

TEST_CASE("identical tokens: no residual, cosine 1, rank 1 by convention", "[instrument][residual]") {
  const float x[4] = {1.0f, -2.0f, 0.5f, 3.0f};
  Mat X(5, 4);
  for (int t = 0; t < 5; ++t)
    for (int c = 0; c < 4; ++c) X(t, c) = x[c];
  const ResidualRankStats s = rank_of(X);
  CHECK(s.r_dong == 0.0);
  CHECK(s.r_frob == 0.0);
  CHECK_THAT(s.tok_cos, WithinAbs(1.0, 1e-12));
  CHECK(s.erank == 1.0);
  CHECK(s.srank == 1.0);
}

TEST_CASE("rank-1 stream with varying token scale: exact Dong/Frobenius ratios, ranks 1", "[instrument][residual]") {
  // X = a xᵀ, a = (1, 2, 3, 4): R = (a − ā) xᵀ, ā = 2.5. For a rank-1 u vᵀ, ‖·‖_1 = ‖u‖_1 ‖v‖_∞ and
  // ‖·‖_∞ = ‖u‖_∞ ‖v‖_1, so r_dong² = (‖a−ā‖_1 ‖a−ā‖_∞)/(‖a‖_1 ‖a‖_∞) = (4·1.5)/(10·4) = 0.15 and
  // r_frob² = ‖a−ā‖²/‖a‖² = 5/30.
  const float a[4] = {1, 2, 3, 4}, x[4] = {1.0f, -2.0f, 0.5f, 3.0f};
  Mat X(4, 4);
  for (int t = 0; t < 4; ++t)
    for (int c = 0; c < 4; ++c) X(t, c) = a[t] * x[c];
  const ResidualRankStats s = rank_of(X);
  CHECK_THAT(s.r_dong, WithinRel(std::sqrt(0.15), 1e-12));
  CHECK_THAT(s.r_frob, WithinRel(std::sqrt(5.0 / 30.0), 1e-12));
  CHECK_THAT(s.tok_cos, WithinAbs(1.0, 1e-12));  // all tokens are positive multiples of x
  CHECK_THAT(s.erank, WithinAbs(1.0, 1e-9));
  CHECK_THAT(s.srank, WithinAbs(1.0, 1e-9));
}

TEST_CASE("Dong ratio of a small explicit matrix", "[instrument][residual]") {
  // X = [[3,0],[1,0],[2,4]], x̄ = (2, 4/3), R = [[1,−4/3],[−1,−4/3],[0,8/3]].
  // ‖R‖_1 = 16/3, ‖R‖_∞ = 8/3 → ‖R‖_{1,∞} = sqrt(128)/3; ‖X‖_1 = 6, ‖X‖_∞ = 6 → 6.
  Mat X(3, 2);
  X(0, 0) = 3;
  X(1, 0) = 1;
  X(2, 0) = 2;
  X(2, 1) = 4;
  const ResidualRankStats s = rank_of(X);
  CHECK_THAT(s.r_dong, WithinRel(std::sqrt(128.0) / 18.0, 1e-12));
  // ‖R‖_F² = 1 + 16/9 + 1 + 16/9 + 0 + 64/9 = 2 + 96/9;  ‖X‖_F² = 9 + 1 + 4 + 16 = 30.
  CHECK_THAT(s.r_frob, WithinRel(std::sqrt((2.0 + 96.0 / 9.0) / 30.0), 1e-12));
}

TEST_CASE("token cosine: orthogonal tokens give 0, known angles give their mean", "[instrument][residual]") {
  SECTION("orthogonal, with signs and scales") {
    Mat X(4, 6);
    const float c[4] = {1.0f, 2.0f, -3.0f, 0.5f};
    for (int t = 0; t < 4; ++t) X(t, t) = c[t];
    CHECK_THAT(rank_of(X).tok_cos, WithinAbs(0.0, 1e-12));
  }
  SECTION("e0, 2·e0, e1: one parallel pair of three") {
    Mat X(3, 2);
    X(0, 0) = 1;
    X(1, 0) = 2;
    X(2, 1) = 1;
    CHECK_THAT(rank_of(X).tok_cos, WithinAbs(1.0 / 3.0, 1e-12));  // (2·1 + 4·0) / (3·2)
  }
  SECTION("60 degrees apart") {
    Mat X(2, 2);
    X(0, 0) = 1;
    X(1, 0) = 0.5f;
    X(1, 1) = float(std::sqrt(3.0) / 2.0);
    CHECK_THAT(rank_of(X).tok_cos, WithinAbs(0.5, 1e-7));
  }
  SECTION("zero tokens: cos(0,0) = 1, cos(0,x) = 0") {
    Mat X(3, 2);
    X(2, 0) = 1;
    CHECK_THAT(rank_of(X).tok_cos, WithinAbs(1.0 / 3.0, 1e-12));  // only the (0,1), (1,0) pairs
  }
}

TEST_CASE("known singular values of R give exact erank and srank, independent of a common offset",
          "[instrument][residual]") {
  // Columns 0..2 are s_k h_k with h_k orthonormal and orthogonal to 1 (rows of a 4×4 Hadamard matrix / 2),
  // so R = X − 1x̄ᵀ has singular values exactly s = (3, 2, 1) whatever offset m is added to every token.
  const double s[3] = {3, 2, 1};
  const float h[3][4] = {{1, 1, -1, -1}, {1, -1, 1, -1}, {1, -1, -1, 1}};
  const float m[6] = {5, -1, 2, 0.25f, 7, -3};
  Mat X(4, 6);
  for (int t = 0; t < 4; ++t) {
    for (int c = 0; c < 6; ++c) X(t, c) = m[c];
    for (int k = 0; k < 3; ++k) X(t, k) += float(s[k]) * 0.5f * h[k][t];
  }
  const ResidualRankStats r = rank_of(X);
  // p = (1/2, 1/3, 1/6)
  const double erank = std::exp(-(0.5 * std::log(0.5) + std::log(1.0 / 3.0) / 3.0 + std::log(1.0 / 6.0) / 6.0));
  CHECK_THAT(r.erank, WithinRel(erank, 1e-12));
  CHECK_THAT(r.erank, WithinRel(erank_of({3, 2, 1}), 1e-12));
  CHECK_THAT(r.srank, WithinRel(14.0 / 9.0, 1e-12));  // Σs² / s_max²
  // ‖X‖_F² = ‖R‖_F² + T‖m‖² (the cross term vanishes because the columns of R sum to 0).
  const double m2 = 25 + 1 + 4 + 0.0625 + 49 + 9;
  CHECK_THAT(r.r_frob, WithinRel(std::sqrt(14.0 / (14.0 + 4.0 * m2)), 1e-12));
}

TEST_CASE("a diverged stream gives NaN rank metrics instead of an SVD of inf", "[instrument][residual]") {
  Mat X(4, 3, 1.0f);
  X(1, 2) = std::numeric_limits<float>::infinity();
  const ResidualRankStats s = rank_of(X);
  CHECK(std::isnan(s.erank));
  CHECK(std::isnan(s.tok_cos));
}

TEST_CASE("massive activation planted in Gaussian noise", "[instrument][residual]") {
  const int T = 16, d = 32;
  Mat X(T, d);
  Rng rng(123);
  for (float& x : X.v) x = float(rng.normal());
  X(5, 7) = -1e4f;  // sign must not matter
  std::vector<float> scratch(size_t(T) * d);
  const MassiveStats s = massive_stats(X.view(), scratch.data());

  // Independent reference: fully sort |x|.
  std::vector<float> a(X.v.size());
  for (size_t i = 0; i < a.size(); ++i) a[i] = std::fabs(X.v[i]);
  std::sort(a.begin(), a.end(), std::greater<float>());
  const double median = 0.5 * (double(a[255]) + a[256]);  // 512 entries
  CHECK(s.top[0] == 1e4f);
  CHECK(s.top[1] == a[1]);
  CHECK(s.top[2] == a[2]);
  CHECK(s.top_t == 5);
  CHECK(s.top_c == 7);
  CHECK(s.median == median);
  CHECK_THAT(s.median, WithinAbs(0.674, 0.1));  // median of |N(0,1)|

  const MassiveSummary m = massive_summary(&s, 1);
  CHECK(m.top[0] == 1e4f);
  CHECK(m.pos == 5);
  CHECK(m.chan == 7);
  CHECK(m.persist == 1.0);
  CHECK_THAT(m.ratio, WithinRel(1e4 / median, 1e-12));
  CHECK(m.sun == 1.0);  // 1e4 > 100 and 1e4 ≥ 1000 · ~0.67

  SECTION("without the plant, Gaussian noise is not massive") {
    X(5, 7) = 0.0f;
    const MassiveStats g = massive_stats(X.view(), scratch.data());
    CHECK(massive_summary(&g, 1).sun == 0.0);
    CHECK(g.top[0] / g.median < 20.0);  // ≈ sqrt(2 ln 512)/0.674 ≈ 5.2 for Gaussian data (metrics.md §1.7)
  }
}

TEST_CASE("massive_stats: odd/even medians, duplicates and first-occurrence ties", "[instrument][residual]") {
  std::vector<float> scratch(16);
  SECTION("odd count") {
    Mat X(3, 3);
    const float v[9] = {-9, 2, 7, 4, -5, 1, 3, 8, -6};
    std::copy(v, v + 9, X.v.begin());
    const MassiveStats s = massive_stats(X.view(), scratch.data());
    CHECK(s.median == 5.0);
    CHECK(s.top[0] == 9.0f);
    CHECK(s.top[1] == 8.0f);
    CHECK(s.top[2] == 7.0f);
    CHECK((s.top_t == 0 && s.top_c == 0));
  }
  SECTION("even count") {
    Mat X(2, 4);
    const float v[8] = {1, -2, 3, -4, 5, -6, 7, -8};
    std::copy(v, v + 8, X.v.begin());
    const MassiveStats s = massive_stats(X.view(), scratch.data());
    CHECK(s.median == 4.5);
    CHECK((s.top_t == 1 && s.top_c == 3));
  }
  SECTION("all equal") {
    Mat X(2, 3, -2.0f);
    const MassiveStats s = massive_stats(X.view(), scratch.data());
    CHECK((s.top[0] == 2.0f && s.top[1] == 2.0f && s.top[2] == 2.0f));
    CHECK((s.top_t == 0 && s.top_c == 0));
    CHECK(s.median == 2.0);
    CHECK(massive_summary(&s, 1).ratio == 1.0);
  }
  SECTION("a strided view (column block of a wider matrix)") {
    Mat W(2, 6);
    for (int c = 0; c < 6; ++c) W(0, c) = W(1, c) = 100.0f;  // outside the block
    W(0, 2) = 1;
    W(0, 3) = 2;
    W(1, 2) = 3;
    W(1, 3) = -4;
    const MassiveStats s = massive_stats(W.view().col_block(2, 2), scratch.data());
    CHECK(s.top[0] == 4.0f);
    CHECK((s.top_t == 1 && s.top_c == 1));
    CHECK(s.median == 2.5);
  }
}

TEST_CASE("massive_stats median matches a full sort on awkward distributions", "[instrument][residual]") {
  // The median uses a radix select over float bit patterns; check it against std::sort on data that puts
  // the median bucket at every kind of place: one exponent, many exponents, ties, zeros, infinities.
  Rng rng(77);
  const int shapes[][2] = {{1, 1}, {1, 2}, {3, 5}, {16, 32}, {17, 31}, {64, 64}};
  for (int kind = 0; kind < 7; ++kind) {
    for (const auto& sh : shapes) {
      const int T = sh[0], d = sh[1], n = T * d;
      Mat X(T, d);
      for (float& x : X.v) {
        const double u = rng.uniform();
        switch (kind) {
          case 0: x = float(rng.normal()); break;                             // Gaussian
          case 1: x = float(std::exp(80.0 * (u - 0.5))); break;               // log-uniform over 35 decades
          case 2: x = float(1.0 + 0.1 * u); break;                            // one bucket holds everything
          case 3: x = float(int(u * 3.0)); break;                             // many ties, zeros
          case 4: x = u < 0.6 ? 0.0f : float(rng.normal()); break;            // mostly zeros
          case 5: x = u < 0.3 ? std::numeric_limits<float>::infinity() : float(-u); break;  // infinities
          default: x = u < 0.5 ? 1e-40f * float(u) : float(u); break;         // subnormals
        }
      }
      std::vector<float> a(X.v.size());
      for (size_t i = 0; i < a.size(); ++i) a[i] = std::fabs(X.v[i]);
      std::sort(a.begin(), a.end());
      const double expected = n % 2 ? double(a[n / 2]) : 0.5 * (double(a[n / 2 - 1]) + a[n / 2]);
      std::vector<float> scratch(static_cast<size_t>(n));
      const MassiveStats s = massive_stats(X.view(), scratch.data());
      INFO("kind " << kind << " T " << T << " d " << d);
      CHECK(s.median == expected);
      CHECK(s.top[0] == a[n - 1]);
    }
  }
}

TEST_CASE("massive_summary: batch max, modal location persistence, Sun's criterion", "[instrument][residual]") {
  MassiveStats s[4];
  const float top1[4] = {200, 150, 50, 1000};
  const double med[4] = {0.1, 0.2, 0.01, 1.0};
  const int tt[4] = {3, 3, 0, 3}, cc[4] = {1, 1, 2, 1};
  for (int i = 0; i < 4; ++i) {
    s[i].top[0] = top1[i];
    s[i].top[1] = top1[i] / 2;
    s[i].top[2] = top1[i] / 4;
    s[i].median = med[i];
    s[i].top_t = tt[i];
    s[i].top_c = cc[i];
  }
  const MassiveSummary m = massive_summary(s, 4);
  CHECK(m.top[0] == 1000.0f);
  CHECK(m.top[1] == 500.0f);
  CHECK(m.top[2] == 250.0f);
  CHECK((m.pos == 3 && m.chan == 1));
  CHECK(m.persist == 0.75);  // (3,1) in 3 of 4 sequences
  CHECK_THAT(m.median, WithinRel((0.1 + 0.2 + 0.01 + 1.0) / 4, 1e-12));
  CHECK_THAT(m.ratio, WithinRel((2000.0 + 750.0 + 5000.0 + 1000.0) / 4, 1e-12));
  // Sun: seq 0 yes (200 > 100, 200 ≥ 100); seq 1 no (150 < 200); seq 2 no (50 ≤ 100); seq 3 yes (1000 ≥ 1000).
  CHECK(m.sun == 0.5);
}

TEST_CASE("token-norm profiles and the token-0 ratio", "[instrument][residual]") {
  // B = 2, T = 3, d = 4; rows n = b·T + t.
  Mat X(6, 4);
  const float rows[6][4] = {{3, 4, 0, 0}, {0, 0, 6, 8}, {1, 0, 0, 0},   // b = 0
                            {0, 0, 0, 5}, {3, 4, 6, 8}, {0, 0, 0, 0}};  // b = 1
  for (int n = 0; n < 6; ++n)
    for (int c = 0; c < 4; ++c) X(n, c) = rows[n][c];
  double p[3];
  token_norm_profile(p, X.view(), 2, 3, 3);
  CHECK_THAT(p[0], WithinRel(5.0, 1e-12));
  CHECK_THAT(p[1], WithinRel((10.0 + std::sqrt(125.0)) / 2, 1e-12));
  CHECK_THAT(p[2], WithinRel(0.5, 1e-12));
  // Two heads of width 2: the per-row value is the mean of the two head norms.
  double q[3] = {-1, -1, -1};
  token_norm_profile(q, X.view(), 2, 3, 2, 2);
  CHECK_THAT(q[0], WithinRel((2.5 + 2.5) / 2, 1e-12));
  CHECK_THAT(q[1], WithinRel((5.0 + 7.5) / 2, 1e-12));
  CHECK(q[2] == -1);  // n_pos = 2: position 2 untouched

  const double prof[4] = {10, 1, 2, 3};
  CHECK_THAT(token0_ratio(prof, 4), WithinRel(5.0, 1e-12));
}

TEST_CASE("block influence and contribution ratios", "[instrument][residual]") {
  Mat A(3, 4);
  Rng rng(5);
  for (float& x : A.v) x = float(rng.normal());
  SECTION("identity block: BI = 0") { CHECK_THAT(block_influence(A.view(), A.view()), WithinAbs(0.0, 1e-12)); }
  SECTION("negating block: BI = 2") {
    Mat B = A;
    for (float& x : B.v) x = -x;
    CHECK_THAT(block_influence(A.view(), B.view()), WithinAbs(2.0, 1e-12));
  }
  SECTION("one unchanged row, one rotated by 90 degrees, one by 60 degrees") {
    Mat X(3, 2), Y(3, 2);
    X(0, 0) = Y(0, 0) = 1;  // cos 1
    X(1, 0) = 1;
    Y(1, 1) = 2;  // cos 0
    X(2, 0) = 1;
    Y(2, 0) = 1;
    Y(2, 1) = float(std::sqrt(3.0));  // cos 1/2
    CHECK_THAT(block_influence(X.view(), Y.view()), WithinAbs(1.0 - 1.5 / 3.0, 1e-7));
  }
  SECTION("Frobenius ratio of a scaled copy") {
    Mat B = A;
    for (float& x : B.v) x *= -0.25f;
    CHECK_THAT(frobenius_ratio(B.view(), A.view()), WithinRel(0.25, 1e-12));
    CHECK(frobenius_ratio(Mat(2, 2).view(), Mat(2, 2).view()) == 0.0);
  }
}

namespace {

ModelConfig tiny_model() {
  return testing::tiny_model({.vocab = 40, .d_model = 32, .n_layer = 3, .n_head = 4,
                              .seq_len = 20,  // > 16: the norm profiles stop at position 15
                              .mlp_hidden = 48, .init_std = 0.2f});
}

// Copies of everything the model owns that a probe could touch.
std::vector<float> snapshot(const Transformer& m) {
  const Layout& y = m.layout();
  std::vector<float> s(y.params(), y.params() + y.n_params());
  s.insert(s.end(), y.grads(), y.grads() + y.n_params());
  auto add = [&](ConstMatView v) {
    for (int r = 0; r < v.rows; ++r) s.insert(s.end(), v.row(r), v.row(r) + v.cols);
  };
  for (int l = 0; l < y.L; ++l) {
    const BlockActs& a = y.acts(l);
    for (ConstMatView v : {ConstMatView(a.x), ConstMatView(a.norm1), ConstMatView(a.qkv), ConstMatView(a.att),
                           ConstMatView(a.attn_out), ConstMatView(a.resid_mid), ConstMatView(a.norm2),
                           ConstMatView(a.pre), ConstMatView(a.act), ConstMatView(a.mlp_out)})
      add(v);
    s.insert(s.end(), a.probs, a.probs + size_t(y.B) * y.H * y.T * y.T);
  }
  add(y.head_acts().x);
  add(y.head_acts().logits);
  return s;
}

void run_model(Transformer& m, int B, int T, int V, uint64_t seed) {
  std::vector<int32_t> in, tg;
  testing::random_batch(B * T, V, seed, &in, &tg);
  m.zero_grad();
  m.forward(in.data(), tg.data());
  m.backward();
}

}  // namespace

TEST_CASE("residual_metrics on a real tiny model: finite, consistent, passive, deterministic",
          "[instrument][residual]") {
  DnnlContext ctx;
  const ModelConfig cfg = tiny_model();
  const int B = 10, T = cfg.seq_len, d = cfg.d_model, L = cfg.n_layer;
  Transformer m(cfg, B, ctx);
  m.init_params(3);
  run_model(m, B, T, cfg.vocab, 17);
  const Layout& y = m.layout();
  const ProbeView view{cfg, y, nullptr, nullptr};

  const std::vector<float> before = snapshot(m);
  MemoryOut out;
  residual_metrics(view, out);
  const std::vector<float> after = snapshot(m);
  REQUIRE(before.size() == after.size());
  CHECK(std::memcmp(before.data(), after.data(), before.size() * sizeof(float)) == 0);

  for (const auto& e : out.entries) {
    INFO(e.name << " layer " << e.layer << " index " << e.index);
    REQUIRE(std::isfinite(e.value));
  }

  auto block_out = [&](int l) { return l + 1 < L ? ConstMatView(y.acts(l + 1).x) : ConstMatView(y.head_acts().x); };
  for (int l = 0; l < L; ++l) {
    INFO("layer " << l);
    for (const char* name : {"r_dong", "r_frob", "tok_cos", "erank", "srank", "mass_persist", "mass_median",
                             "mass_ratio", "mass_sun", "mass_pos", "mass_chan", "bi", "rho_attn", "rho_mlp",
                             "t0_ratio_in", "t0_ratio_half", "t0_ratio_out", "t0_ratio_attn", "t0_ratio_mlp",
                             "t0_ratio_v"})
      REQUIRE(!std::isnan(out.get(name, l)));
    CHECK(std::isnan(out.get("norm_in", l, -1, 16)));  // profiles stop at position 15
    CHECK(out.get("erank", l) >= 1.0);
    CHECK(out.get("erank", l) <= std::min(T, d));
    CHECK(out.get("srank", l) >= 1.0);
    // srank = Σσ²/σ₁² ≤ Σσ/σ₁ = 1/max p ≤ exp(H(p)) = erank (min-entropy ≤ Shannon entropy).
    CHECK(out.get("srank", l) <= out.get("erank", l) * (1.0 + 1e-12));
    CHECK(out.get("r_frob", l) <= 1.0 + 1e-12);  // the mean is the Frobenius minimiser, R ≤ X − 1·0ᵀ
    CHECK(out.get("bi", l) >= 0.0);
    CHECK(out.get("bi", l) <= 2.0);
    CHECK(out.get("mass_top", l, -1, 0) >= out.get("mass_top", l, -1, 1));
    CHECK(out.get("mass_top", l, -1, 1) >= out.get("mass_top", l, -1, 2));

    // The same tensor seen from both sides of a block boundary gives the same profile, bit for bit.
    for (int t = 0; t < 16; ++t) {
      if (l + 1 < L) CHECK(out.get("norm_out", l, -1, t) == out.get("norm_in", l + 1, -1, t));
      if (l == 0) CHECK(out.get("norm_out", -1, -1, t) == out.get("norm_in", 0, -1, t));
    }

    // Independent recomputations: O(T²d) pairwise cosine, erank from Eigen's JacobiSVD, rho_attn, top-1.
    double cos_sum = 0.0, erank_sum = 0.0;
    const ConstMatView xo = block_out(l);
    for (int b = 0; b < std::min(B, kRankSequences); ++b) {
      Eigen::MatrixXd X(T, d);
      for (int t = 0; t < T; ++t)
        for (int c = 0; c < d; ++c) X(t, c) = xo(b * T + t, c);
      double pair = 0.0;
      for (int i = 0; i < T; ++i)
        for (int j = 0; j < T; ++j)
          if (i != j) pair += X.row(i).dot(X.row(j)) / (X.row(i).norm() * X.row(j).norm());
      cos_sum += pair / (T * (T - 1));
      const Eigen::MatrixXd R = X.rowwise() - X.colwise().mean();
      Eigen::JacobiSVD<Eigen::MatrixXd> svd(R);
      const Eigen::VectorXd sv = svd.singularValues();
      erank_sum += erank_of(std::vector<double>(sv.data(), sv.data() + sv.size()));
    }
    const int Br = std::min(B, kRankSequences);
    CHECK_THAT(out.get("tok_cos", l), WithinAbs(cos_sum / Br, 1e-10));
    CHECK_THAT(out.get("erank", l), WithinRel(erank_sum / Br, 1e-8));
    double aa = 0.0, xx = 0.0, top = 0.0;
    for (int n = 0; n < y.N; ++n)
      for (int c = 0; c < d; ++c) {
        aa += double(y.acts(l).attn_out(n, c)) * y.acts(l).attn_out(n, c);
        xx += double(y.acts(l).x(n, c)) * y.acts(l).x(n, c);
        top = std::max(top, double(std::fabs(xo(n, c))));
      }
    CHECK_THAT(out.get("rho_attn", l), WithinRel(std::sqrt(aa / xx), 1e-12));
    CHECK(out.get("mass_top", l, -1, 0) == top);
  }

  SECTION("repeated calls and thread counts give bitwise identical output") {
    const int threads = omp_get_max_threads();
    MemoryOut again, serial;
    residual_metrics(view, again);
    omp_set_num_threads(1);
    residual_metrics(view, serial);
    omp_set_num_threads(threads);
    for (const MemoryOut* o : {&again, &serial}) {
      REQUIRE(o->entries.size() == out.entries.size());
      for (size_t i = 0; i < out.entries.size(); ++i) {
        INFO(out.entries[i].name);
        CHECK(std::strcmp(o->entries[i].name, out.entries[i].name) == 0);
        CHECK(std::memcmp(&o->entries[i].value, &out.entries[i].value, sizeof(double)) == 0);
      }
    }
  }
  SECTION("rank_seqs = 1 uses only the first sequence") {
    MemoryOut one;
    residual_metrics(view, one, 1);
    RankWorkspace w(T, d);
    const ResidualRankStats s = residual_rank_stats(ConstMatView(block_out(0).row(0), T, d), &w);
    CHECK(one.get("erank", 0) == s.erank);
    CHECK(one.get("r_dong", 0) == s.r_dong);
  }
}

TEST_CASE("residual_metrics with V-scale also profiles v-hat, which is shorter than v", "[instrument][residual]") {
  DnnlContext ctx;
  ModelConfig cfg = tiny_model();
  const int B = 3;
  for (VScaleMode mode : {VScaleMode::kOff, VScaleMode::kLearned}) {
    cfg.v_scale = mode;
    Transformer m(cfg, B, ctx);
    m.init_params(4);
    run_model(m, B, cfg.seq_len, cfg.vocab, 8);
    MemoryOut out;
    residual_metrics(ProbeView{cfg, m.layout(), nullptr, nullptr}, out);
    if (mode == VScaleMode::kOff) {
      CHECK(!out.has("norm_vhat"));
      CHECK(!out.has("t0_ratio_vhat"));
      continue;
    }
    // v̂ = φ(‖v‖²)·v per head with 0 < φ = r/(r+C) < 1, so every head norm, hence their mean, shrinks.
    for (int l = 0; l < cfg.n_layer; ++l)
      for (int t = 0; t < 16; ++t) {
        INFO("layer " << l << " t " << t);
        const double v = out.get("norm_v", l, -1, t), vh = out.get("norm_vhat", l, -1, t);
        CHECK(vh > 0.0);
        CHECK(vh < v);
      }
    CHECK(std::isfinite(out.get("t0_ratio_vhat", 0)));
  }
}

TEST_CASE("residual_metrics timing at d=64, L=4, H=4, T=64, B=32", "[.][bench]") {
  DnnlContext ctx;
  ModelConfig cfg;
  cfg.d_model = 64;
  cfg.n_layer = 4;
  cfg.n_head = 4;
  cfg.seq_len = 64;
  const int B = 32;
  Transformer m(cfg, B, ctx);
  m.init_params(1);
  run_model(m, B, cfg.seq_len, cfg.vocab, 2);
  const ProbeView view{cfg, m.layout(), nullptr, nullptr};
  MemoryOut out;
  residual_metrics(view, out);  // warm-up
  // Minimum and median over repetitions: the minimum is what the code costs on an otherwise idle machine.
  std::vector<double> ms;
  for (int i = 0; i < 30; ++i) {
    out.clear();
    const auto t0 = std::chrono::steady_clock::now();
    residual_metrics(view, out);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  WARN("residual_metrics: min " << ms.front() << " ms, median " << ms[ms.size() / 2] << " ms per call, " << out.entries.size()
                      << " values, " << omp_get_max_threads() << " threads");
}
