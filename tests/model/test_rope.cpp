// Tests for model/rope: the table, the rotation's closed-form properties, and the transpose backward.
// RoPE works in place, so the accumulate and NaN-poisoned-output contracts do not apply; instead the
// backward is checked to be the exact transpose (gradcheck) and the inverse of forward.
#include <cmath>
#include <cstring>
#include <vector>

#include <catch2/catch.hpp>

#include "model/rope.h"
#include "tests/support/gradcheck.h"

using namespace attnlab;
using attnlab::testing::gradcheck;
using attnlab::testing::probe_loss;
using attnlab::testing::random_vec;

namespace {

double dot(const float* a, const float* b, int n) {
  double acc = 0.0;
  for (int i = 0; i < n; ++i) acc += double(a[i]) * b[i];
  return acc;
}

}  // namespace

TEST_CASE("rope table holds cos and sin of t * base^(-2i/d_head)", "[model][rope]") {
  const RopeTable tab = make_rope_table(3, 4, 10000.0f);
  REQUIRE(tab.T == 3);
  REQUIRE(tab.d_head == 4);
  REQUIRE(tab.cos.size() == 6);
  REQUIRE(tab.sin.size() == 6);
  // Pair 0 has frequency 1, pair 1 has 10000^(-1/2) = 0.01. Row t = 2:
  REQUIRE(tab.cos[4] == Approx(-0.4161468365).epsilon(1e-6));  // cos(2)
  REQUIRE(tab.sin[4] == Approx(0.9092974268).epsilon(1e-6));   // sin(2)
  REQUIRE(tab.cos[5] == Approx(0.9998000067).epsilon(1e-6));   // cos(0.02)
  REQUIRE(tab.sin[5] == Approx(0.0199986667).epsilon(1e-6));   // sin(0.02)
  REQUIRE(tab.cos[0] == 1.0f);
  REQUIRE(tab.sin[0] == 0.0f);
}

TEST_CASE("rope table is accurate at large positions", "[model][rope]") {
  // Angles of thousands of radians: computing them in float would be off by ~1e-4.
  const int T = 4096, dh = 64;
  const RopeTable tab = make_rope_table(T, dh, 10000.0f);
  const int t = 4095, i = 1;
  const double angle = t * std::pow(10000.0, -2.0 * i / dh);
  REQUIRE(tab.cos[size_t(t) * dh / 2 + i] == Approx(std::cos(angle)).margin(1e-6));
  REQUIRE(tab.sin[size_t(t) * dh / 2 + i] == Approx(std::sin(angle)).margin(1e-6));
}

TEST_CASE("rope rotates each interleaved pair counter-clockwise by its angle", "[model][rope]") {
  const int T = 3, dh = 4;
  const RopeTable tab = make_rope_table(T, dh, 10000.0f);
  // One head; row 2 has position 2. Pair 0 = e_x rotates to (cos 2, sin 2); pair 1 = e_y to
  // (−sin 0.02, cos 0.02).
  std::vector<float> qk(T * dh, 0.0f);
  qk[2 * dh + 0] = 1.0f;
  qk[2 * dh + 3] = 1.0f;
  rope_forward(MatView(qk.data(), T, dh), tab, 1);
  REQUIRE(qk[2 * dh + 0] == Approx(std::cos(2.0)).epsilon(1e-6));
  REQUIRE(qk[2 * dh + 1] == Approx(std::sin(2.0)).epsilon(1e-6));
  REQUIRE(qk[2 * dh + 2] == Approx(-std::sin(0.02)).epsilon(1e-6));
  REQUIRE(qk[2 * dh + 3] == Approx(std::cos(0.02)).epsilon(1e-6));
}

TEST_CASE("rope properties: identity at 0, pair norms, inverse, relative offsets", "[model][rope]") {
  const int T = 16, dh = 8, H = 4;  // H = 2 q heads + 2 k heads
  const int B = 2, N = B * T, W = H * dh;
  const RopeTable tab = make_rope_table(T, dh, 10000.0f);
  const auto x = random_vec(int64_t(N) * W, 1);
  auto y = x;
  rope_forward(MatView(y.data(), N, W), tab, H);

  SECTION("position 0 is the identity, in every sequence") {
    for (int b = 0; b < B; ++b)
      for (int c = 0; c < W; ++c) REQUIRE(y[size_t(b) * T * W + c] == x[size_t(b) * T * W + c]);
  }
  SECTION("every pair keeps its norm") {
    for (int i = 0; i < N * W; i += 2) {
      const double before = std::hypot(double(x[i]), double(x[i + 1]));
      const double after = std::hypot(double(y[i]), double(y[i + 1]));
      INFO("element " << i);
      REQUIRE(after == Approx(before).epsilon(1e-6));
    }
  }
  SECTION("the pairs actually move away from position 0") {
    double moved = 0.0;
    for (int i = W; i < T * W; ++i) moved += std::fabs(double(y[i]) - x[i]);
    REQUIRE(moved > 1.0);
  }
  SECTION("backward undoes forward") {
    auto z = y;
    rope_backward(MatView(z.data(), N, W), tab, H);
    for (int i = 0; i < N * W; ++i) REQUIRE(z[i] == Approx(x[i]).margin(1e-6));
  }
}

TEST_CASE("rope makes q.k depend only on the relative offset", "[model][rope]") {
  const int T = 16, dh = 8, H = 2;  // one q head, one k head
  const RopeTable tab = make_rope_table(T, dh, 10000.0f);
  const auto q = random_vec(dh, 2), k = random_vec(dh, 3);
  std::vector<float> qk(size_t(T) * H * dh);
  for (int n = 0; n < T; ++n) {  // the same q and k at every position
    std::memcpy(&qk[size_t(n) * H * dh], q.data(), dh * sizeof(float));
    std::memcpy(&qk[size_t(n) * H * dh + dh], k.data(), dh * sizeof(float));
  }
  rope_forward(MatView(qk.data(), T, H * dh), tab, H);
  auto score = [&](int t, int s) { return dot(&qk[size_t(t) * H * dh], &qk[size_t(s) * H * dh + dh], dh); };
  const int pairs[][2] = {{2, 5}, {7, 1}, {0, 0}, {9, 12}};
  for (const auto& p : pairs) {
    const int t = p[0], s = p[1];
    INFO("t=" << t << " s=" << s);
    REQUIRE(score(t + 3, s + 3) == Approx(score(t, s)).epsilon(1e-5).margin(1e-6));
  }
  REQUIRE(score(0, 0) == Approx(dot(q.data(), k.data(), dh)).epsilon(1e-6));
}

TEST_CASE("rope backward is the transpose of forward (gradcheck), on a strided qk view",
          "[model][rope][gradcheck]") {
  // qk is the [q | k] block of a fused [q | k | v] buffer; v must never be touched.
  const int T = 3, dh = 4, H = 4, N = 6;  // two sequences; 2 q heads + 2 k heads
  const int W = H * dh, stride = W + 2 * dh;
  const RopeTable tab = make_rope_table(T, dh, 10000.0f);
  auto xbuf = random_vec(int64_t(N) * stride, 4);
  const auto w = random_vec(int64_t(N) * W, 5);
  std::vector<float> ybuf(xbuf.size());
  auto loss = [&] {
    ybuf = xbuf;
    rope_forward(MatView(ybuf.data(), N, W, stride), tab, H);
    double acc = 0.0;
    for (int n = 0; n < N; ++n) acc += probe_loss(&ybuf[size_t(n) * stride], &w[size_t(n) * W], W);
    return acc;
  };
  loss();
  for (int n = 0; n < N; ++n)
    for (int c = W; c < stride; ++c) REQUIRE(ybuf[size_t(n) * stride + c] == xbuf[size_t(n) * stride + c]);

  // Analytic gradient: rope_backward applied in place to a copy of w, laid out with the same stride.
  std::vector<float> gbuf(xbuf.size(), 7.0f);
  for (int n = 0; n < N; ++n) std::memcpy(&gbuf[size_t(n) * stride], &w[size_t(n) * W], W * sizeof(float));
  rope_backward(MatView(gbuf.data(), N, W, stride), tab, H);
  for (int n = 0; n < N; ++n)
    for (int c = W; c < stride; ++c) REQUIRE(gbuf[size_t(n) * stride + c] == 7.0f);

  // Check only the qk columns: the padding (v) columns have zero gradient in both.
  std::vector<float> x(size_t(N) * W), g(size_t(N) * W);
  for (int n = 0; n < N; ++n) {
    std::memcpy(&x[size_t(n) * W], &xbuf[size_t(n) * stride], W * sizeof(float));
    std::memcpy(&g[size_t(n) * W], &gbuf[size_t(n) * stride], W * sizeof(float));
  }
  auto loss_dense = [&] {
    for (int n = 0; n < N; ++n) std::memcpy(&xbuf[size_t(n) * stride], &x[size_t(n) * W], W * sizeof(float));
    return loss();
  };
  const auto r = gradcheck(x.data(), int64_t(x.size()), g.data(), loss_dense);
  INFO(r.describe("dqk"));
  REQUIRE(r.rel_err < 1e-3);
}
