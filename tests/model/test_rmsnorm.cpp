// Tests for model/rmsnorm: gradcheck of x and g, the backward contract, and closed-form properties.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>
#include <omp.h>

#include "model/rmsnorm.h"
#include "tests/support/gradcheck.h"

using namespace attnlab;
using attnlab::testing::gradcheck;
using attnlab::testing::probe_loss;
using attnlab::testing::random_vec;

namespace {

struct RmsCase {
  int N, C;
  float eps = 1e-5f;
  std::vector<float> x, g, y, rstd, w;
  RmsCase(int n, int c, uint64_t seed) : N(n), C(c) {
    x = random_vec(int64_t(N) * C, seed);
    g = random_vec(C, seed + 1, 0.5f, 1.0f);
    w = random_vec(int64_t(N) * C, seed + 2);
    y.assign(size_t(N) * C, 0.0f);
    rstd.assign(size_t(N), 0.0f);
  }
  void forward() {
    rmsnorm_forward(MatView(y.data(), N, C), {rstd.data()}, ConstMatView(x.data(), N, C),
                    ConstVecView(g.data(), C), eps);
  }
  void backward(std::vector<float>& dx, std::vector<float>& dg, const std::vector<float>& dy) {
    rmsnorm_backward(MatView(dx.data(), N, C), VecView{dg.data(), C}, ConstMatView(dy.data(), N, C),
                     ConstMatView(x.data(), N, C), ConstVecView(g.data(), C), {rstd.data()});
  }
  double loss() {
    forward();
    return probe_loss(y.data(), w.data(), int64_t(N) * C);
  }
};

bool bits_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("rmsnorm backward matches finite differences", "[model][rmsnorm][gradcheck]") {
  // C = 8 is the brief's tiny shape; C = 130 also crosses the 64-column blocks of the dg reduction.
  const int C = GENERATE(8, 130);
  RmsCase k(6, C, 11);
  k.forward();
  std::vector<float> dx(k.x.size(), 0.0f), dg(k.g.size(), 0.0f);
  k.backward(dx, dg, k.w);

  const auto rx = gradcheck(k.x.data(), int64_t(k.x.size()), dx.data(), [&] { return k.loss(); });
  INFO(rx.describe("dx"));
  REQUIRE(rx.rel_err < 1e-3);
  const auto rg = gradcheck(k.g.data(), int64_t(k.g.size()), dg.data(), [&] { return k.loss(); });
  INFO(rg.describe("dg"));
  REQUIRE(rg.rel_err < 1e-3);
}

TEST_CASE("rmsnorm forward matches a double-precision reference", "[model][rmsnorm]") {
  RmsCase k(6, 8, 21);
  k.x[3] = 1e3f;  // one large entry: the row is still normalised
  k.forward();
  for (int n = 0; n < k.N; ++n) {
    double ms = 0.0;
    for (int c = 0; c < k.C; ++c) ms += double(k.x[n * k.C + c]) * k.x[n * k.C + c];
    const double r = 1.0 / std::sqrt(ms / k.C + k.eps);
    REQUIRE(k.rstd[n] == Approx(r).epsilon(1e-6));
    for (int c = 0; c < k.C; ++c) {
      INFO("n=" << n << " c=" << c);
      REQUIRE(k.y[n * k.C + c] == Approx(k.g[c] * k.x[n * k.C + c] * r).epsilon(1e-6).margin(1e-7));
    }
  }
}

TEST_CASE("rmsnorm with constant g gives rows of mean square g^2", "[model][rmsnorm]") {
  const float gval = GENERATE(1.0f, 2.5f);
  RmsCase k(6, 64, 31);
  for (int c = 0; c < k.C; ++c) k.x[c] *= 1e3f;        // row 0 large
  for (int c = 0; c < k.C; ++c) k.x[k.C + c] *= 0.1f;  // row 1 small, mean square still >> eps
  std::fill(k.g.begin(), k.g.end(), gval);
  k.forward();
  for (int n = 0; n < k.N; ++n) {
    double ms_x = 0.0, ms_y = 0.0;
    for (int c = 0; c < k.C; ++c) {
      ms_x += double(k.x[n * k.C + c]) * k.x[n * k.C + c] / k.C;
      ms_y += double(k.y[n * k.C + c]) * k.y[n * k.C + c] / k.C;
    }
    INFO("row " << n << " mean square of x " << ms_x);
    // Exactly g²·ms/(ms + eps); within eps/ms of g² itself.
    REQUIRE(ms_y == Approx(double(gval) * gval * ms_x / (ms_x + k.eps)).epsilon(1e-5));
    REQUIRE(std::fabs(ms_y / (double(gval) * gval) - 1.0) <= k.eps / ms_x + 1e-5);
  }
}

TEST_CASE("rmsnorm backward accumulates and leaves its inputs unchanged", "[model][rmsnorm][contract]") {
  RmsCase k(6, 8, 41);
  k.forward();
  const auto x0 = k.x, g0 = k.g, rstd0 = k.rstd, dy0 = k.w;
  std::vector<float> dx1(k.x.size(), 0.0f), dg1(k.g.size(), 0.0f);
  k.backward(dx1, dg1, k.w);
  REQUIRE(bits_equal(k.x, x0));
  REQUIRE(bits_equal(k.g, g0));
  REQUIRE(bits_equal(k.rstd, rstd0));
  REQUIRE(bits_equal(k.w, dy0));

  std::vector<float> dx2(k.x.size(), 0.0f), dg2(k.g.size(), 0.0f);
  k.backward(dx2, dg2, k.w);
  k.backward(dx2, dg2, k.w);
  for (size_t i = 0; i < dx1.size(); ++i) REQUIRE(dx2[i] == 2.0f * dx1[i]);
  for (size_t i = 0; i < dg1.size(); ++i) REQUIRE(dg2[i] == 2.0f * dg1[i]);
}

TEST_CASE("rmsnorm forward overwrites a NaN-poisoned output", "[model][rmsnorm][contract]") {
  RmsCase k(6, 8, 51);
  std::fill(k.y.begin(), k.y.end(), std::numeric_limits<float>::quiet_NaN());
  std::fill(k.rstd.begin(), k.rstd.end(), std::numeric_limits<float>::quiet_NaN());
  k.forward();
  for (float v : k.y) REQUIRE(std::isfinite(v));
  for (float v : k.rstd) REQUIRE(std::isfinite(v));
}

TEST_CASE("rmsnorm backward gives identical bits for 1 and 2 threads", "[model][rmsnorm][determinism]") {
  RmsCase k(37, 200, 61);
  k.forward();
  const int saved = omp_get_max_threads();
  std::vector<float> dx1(k.x.size(), 0.0f), dg1(k.g.size(), 0.0f);
  std::vector<float> dx2(k.x.size(), 0.0f), dg2(k.g.size(), 0.0f);
  omp_set_num_threads(1);
  k.backward(dx1, dg1, k.w);
  omp_set_num_threads(2);
  k.backward(dx2, dg2, k.w);
  omp_set_num_threads(saved);
  REQUIRE(bits_equal(dx1, dx2));
  REQUIRE(bits_equal(dg1, dg2));
}
