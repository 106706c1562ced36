// Tests for model/mlp: SwiGLU and tanh-GELU against double-precision formulas, gradchecks, contracts.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "model/mlp.h"
#include "tests/support/gradcheck.h"

using namespace attnlab;
using attnlab::testing::gradcheck;
using attnlab::testing::probe_loss;
using attnlab::testing::random_vec;

namespace {

// PyTorch's gelu(x, approximate='tanh'), written out in double.
double gelu_ref(double x) {
  const double k = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}
double silu_ref(double z) { return z / (1.0 + std::exp(-z)); }

bool bits_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

const std::vector<float> kPoints = {-12.0f, -6.0f, -3.0f, -1.5f, -1.0f, -0.5f, -1e-3f, 0.0f,
                                    1e-3f,  0.5f,  1.0f,  1.5f,  3.0f,  6.0f,  12.0f,  0.7071f};

}  // namespace

TEST_CASE("gelu forward matches the tanh formula in double", "[model][mlp][gelu]") {
  const int F = int(kPoints.size());
  std::vector<float> act(F, std::numeric_limits<float>::quiet_NaN());
  gelu_forward(MatView(act.data(), 1, F), ConstMatView(kPoints.data(), 1, F));
  for (int f = 0; f < F; ++f) {
    INFO("x=" << kPoints[f]);
    REQUIRE(act[f] == Approx(gelu_ref(kPoints[f])).epsilon(1e-6).margin(1e-12));
  }
  // Saturation: no NaN, gelu(x) = x for large x, ~0 for very negative x.
  const std::vector<float> big = {-1e4f, -100.0f, 100.0f, 1e4f};
  std::vector<float> out(4);
  gelu_forward(MatView(out.data(), 1, 4), ConstMatView(big.data(), 1, 4));
  REQUIRE(out[0] == 0.0f);
  REQUIRE(out[1] == 0.0f);
  REQUIRE(out[2] == 100.0f);
  REQUIRE(out[3] == 1e4f);
}

TEST_CASE("swiglu forward matches silu(gate) * up in double", "[model][mlp][swiglu]") {
  const int F = int(kPoints.size());
  std::vector<float> pre(2 * F);
  const auto up = random_vec(F, 1);
  for (int f = 0; f < F; ++f) {
    pre[f] = kPoints[f];
    pre[F + f] = up[f];
  }
  std::vector<float> act(F, std::numeric_limits<float>::quiet_NaN());
  swiglu_forward(MatView(act.data(), 1, F), ConstMatView(pre.data(), 1, 2 * F));
  for (int f = 0; f < F; ++f) {
    INFO("gate=" << pre[f] << " up=" << up[f]);
    REQUIRE(act[f] == Approx(silu_ref(pre[f]) * up[f]).epsilon(1e-6).margin(1e-12));
  }
  const std::vector<float> sat = {-200.0f, 200.0f, 2.0f, 3.0f};  // gates, then ups
  std::vector<float> out(2);
  swiglu_forward(MatView(out.data(), 1, 2), ConstMatView(sat.data(), 1, 4));
  REQUIRE(out[0] == 0.0f);
  REQUIRE(out[1] == 600.0f);
}

TEST_CASE("gelu backward matches finite differences", "[model][mlp][gelu][gradcheck]") {
  const int N = 6, F = 8;
  auto pre = random_vec(N * F, 2, 2.0f);
  const auto w = random_vec(N * F, 3);
  std::vector<float> act(N * F), dpre(N * F, 0.0f);
  gelu_backward(MatView(dpre.data(), N, F), ConstMatView(w.data(), N, F), ConstMatView(pre.data(), N, F));
  auto loss = [&] {
    gelu_forward(MatView(act.data(), N, F), ConstMatView(pre.data(), N, F));
    return probe_loss(act.data(), w.data(), N * F);
  };
  const auto r = gradcheck(pre.data(), N * F, dpre.data(), loss);
  INFO(r.describe("dpre"));
  REQUIRE(r.rel_err < 1e-3);
}

TEST_CASE("swiglu backward matches finite differences", "[model][mlp][swiglu][gradcheck]") {
  const int N = 6, F = 8;
  auto pre = random_vec(N * 2 * F, 4, 2.0f);
  const auto w = random_vec(N * F, 5);
  std::vector<float> act(N * F), dpre(N * 2 * F, 0.0f);
  swiglu_backward(MatView(dpre.data(), N, 2 * F), ConstMatView(w.data(), N, F),
                  ConstMatView(pre.data(), N, 2 * F));
  auto loss = [&] {
    swiglu_forward(MatView(act.data(), N, F), ConstMatView(pre.data(), N, 2 * F));
    return probe_loss(act.data(), w.data(), N * F);
  };
  const auto r = gradcheck(pre.data(), N * 2 * F, dpre.data(), loss);
  INFO(r.describe("dpre"));
  REQUIRE(r.rel_err < 1e-3);
}

TEST_CASE("gelu and swiglu derivatives match closed forms at fixed points", "[model][mlp]") {
  // d/dx gelu_tanh = 0.5(1 + tanh u) + 0.5 x (1 − tanh² u) k (1 + 3c x²);  silu' = σ(1 + z(1 − σ)).
  const int F = int(kPoints.size());
  std::vector<float> ones(F, 1.0f), dg(F, 0.0f);
  gelu_backward(MatView(dg.data(), 1, F), ConstMatView(ones.data(), 1, F),
                ConstMatView(kPoints.data(), 1, F));
  std::vector<float> pre(2 * F, 1.0f), ds(2 * F, 0.0f);
  std::copy(kPoints.begin(), kPoints.end(), pre.begin());
  swiglu_backward(MatView(ds.data(), 1, 2 * F), ConstMatView(ones.data(), 1, F),
                  ConstMatView(pre.data(), 1, 2 * F));
  const double k = std::sqrt(2.0 / M_PI), c = 0.044715;
  for (int f = 0; f < F; ++f) {
    const double x = kPoints[f];
    const double t = std::tanh(k * (x + c * x * x * x));
    const double dgelu = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * c * x * x);
    const double sg = 1.0 / (1.0 + std::exp(-x));
    INFO("x=" << x);
    REQUIRE(dg[f] == Approx(dgelu).epsilon(1e-5).margin(1e-7));
    REQUIRE(ds[f] == Approx(sg * (1.0 + x * (1.0 - sg))).epsilon(1e-5).margin(1e-7));  // d/dgate, up = 1
    REQUIRE(ds[F + f] == Approx(silu_ref(x)).epsilon(1e-6).margin(1e-12));             // d/dup
  }
  // Far tails stay finite.
  const std::vector<float> big = {-1e4f, -100.0f, 100.0f, 1e4f};
  std::vector<float> one4(4, 1.0f), d4(4, 0.0f);
  gelu_backward(MatView(d4.data(), 1, 4), ConstMatView(one4.data(), 1, 4), ConstMatView(big.data(), 1, 4));
  REQUIRE(d4[0] == 0.0f);
  REQUIRE(d4[1] == 0.0f);
  REQUIRE(d4[2] == 1.0f);
  REQUIRE(d4[3] == 1.0f);
}

TEST_CASE("mlp backward accumulates and leaves its inputs unchanged", "[model][mlp][contract]") {
  const int N = 6, F = 8;
  SECTION("gelu") {
    const auto pre = random_vec(N * F, 6, 2.0f), dact = random_vec(N * F, 7);
    const auto pre0 = pre, dact0 = dact;
    std::vector<float> d1(N * F, 0.0f), d2(N * F, 0.0f);
    gelu_backward(MatView(d1.data(), N, F), ConstMatView(dact.data(), N, F), ConstMatView(pre.data(), N, F));
    REQUIRE(bits_equal(pre, pre0));
    REQUIRE(bits_equal(dact, dact0));
    gelu_backward(MatView(d2.data(), N, F), ConstMatView(dact.data(), N, F), ConstMatView(pre.data(), N, F));
    gelu_backward(MatView(d2.data(), N, F), ConstMatView(dact.data(), N, F), ConstMatView(pre.data(), N, F));
    for (int i = 0; i < N * F; ++i) REQUIRE(d2[i] == 2.0f * d1[i]);
  }
  SECTION("swiglu") {
    const auto pre = random_vec(N * 2 * F, 8, 2.0f), dact = random_vec(N * F, 9);
    const auto pre0 = pre, dact0 = dact;
    std::vector<float> d1(N * 2 * F, 0.0f), d2(N * 2 * F, 0.0f);
    swiglu_backward(MatView(d1.data(), N, 2 * F), ConstMatView(dact.data(), N, F),
                    ConstMatView(pre.data(), N, 2 * F));
    REQUIRE(bits_equal(pre, pre0));
    REQUIRE(bits_equal(dact, dact0));
    swiglu_backward(MatView(d2.data(), N, 2 * F), ConstMatView(dact.data(), N, F),
                    ConstMatView(pre.data(), N, 2 * F));
    swiglu_backward(MatView(d2.data(), N, 2 * F), ConstMatView(dact.data(), N, F),
                    ConstMatView(pre.data(), N, 2 * F));
    for (int i = 0; i < N * 2 * F; ++i) REQUIRE(d2[i] == 2.0f * d1[i]);
  }
}

TEST_CASE("mlp forward overwrites a NaN-poisoned output", "[model][mlp][contract]") {
  const int N = 6, F = 8;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const auto pre = random_vec(N * 2 * F, 10, 2.0f);
  std::vector<float> act(N * F, nan);
  swiglu_forward(MatView(act.data(), N, F), ConstMatView(pre.data(), N, 2 * F));
  for (float v : act) REQUIRE(std::isfinite(v));
  std::fill(act.begin(), act.end(), nan);
  gelu_forward(MatView(act.data(), N, F), ConstMatView(pre.data(), N, F));
  for (float v : act) REQUIRE(std::isfinite(v));
}
