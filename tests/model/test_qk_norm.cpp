// QK-norm's per-head RMSNorm (model/qk_norm.h): closed-form properties, finite differences for dx and dg
// on strided views (the q block of a fused qkv buffer), and the backward contracts.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "model/qk_norm.h"
#include "tests/support/gradcheck.h"

using namespace attnlab;
using namespace attnlab::testing;

namespace {

struct HCase {
  int N, H, dh;
  std::vector<float> x, y, rstd, g;
  HCase(int n, int h, int e, uint64_t seed)
      : N(n), H(h), dh(e), x(random_vec(int64_t(n) * 3 * h * e, seed, 2.0f)), y(x.size(), 0.0f),
        rstd(size_t(n) * h, 0.0f), g(random_vec(e, seed + 1, 0.3f, 1.0f)) {}
  int d() const { return H * dh; }
  // The middle third of each row, like the k block of qkv: a strided view.
  MatView xv() { return MatView(x.data() + d(), N, d(), 3 * d()); }
  MatView yv() { return MatView(y.data() + d(), N, d(), 3 * d()); }
  ConstVecView gv() const { return ConstVecView(g.data(), dh); }
};

}  // namespace

TEST_CASE("head_rmsnorm: each head slice has RMS 1 with unit gains and is scale invariant per head",
          "[model][qk_norm]") {
  HCase c(5, 3, 8, 1);
  std::fill(c.g.begin(), c.g.end(), 1.0f);
  head_rmsnorm_forward(c.yv(), {c.rstd.data()}, c.xv(), c.gv(), 0.0f);
  for (int n = 0; n < c.N; ++n)
    for (int h = 0; h < c.H; ++h) {
      double ms = 0.0;
      for (int e = 0; e < c.dh; ++e) ms += double(c.yv()(n, h * c.dh + e)) * c.yv()(n, h * c.dh + e);
      REQUIRE(ms / c.dh == Approx(1.0).epsilon(1e-5));
    }
  // Scaling one head of one row by 7 changes nothing in the output.
  const std::vector<float> y0 = c.y;
  for (int e = 0; e < c.dh; ++e) c.xv()(2, 1 * c.dh + e) *= 7.0f;
  head_rmsnorm_forward(c.yv(), {c.rstd.data()}, c.xv(), c.gv(), 0.0f);
  for (size_t i = 0; i < y0.size(); ++i) REQUIRE(c.y[i] == Approx(y0[i]).epsilon(1e-5).margin(1e-6));
  // The other two column blocks of the buffer are untouched.
  for (int n = 0; n < c.N; ++n)
    for (int j = 0; j < c.d(); ++j) {
      REQUIRE(c.y[size_t(n * 3 * c.d() + j)] == 0.0f);
      REQUIRE(c.y[size_t(n * 3 * c.d() + 2 * c.d() + j)] == 0.0f);
    }
}

TEST_CASE("head_rmsnorm_backward matches finite differences for dx and dg; accumulates; inputs unchanged",
          "[model][qk_norm][gradcheck]") {
  HCase c(6, 2, 4, 5);
  const float eps = 1e-5f;
  const std::vector<float> w = random_vec(int64_t(c.y.size()), 9);
  auto loss = [&] {
    head_rmsnorm_forward(c.yv(), {c.rstd.data()}, c.xv(), c.gv(), eps);
    return probe_loss(c.y.data(), w.data(), int64_t(w.size()));
  };
  loss();
  std::vector<float> dx(c.x.size(), 0.0f), dg(size_t(c.dh), 0.0f);
  const ConstMatView dy(w.data() + c.d(), c.N, c.d(), 3 * c.d());
  MatView dxv(dx.data() + c.d(), c.N, c.d(), 3 * c.d());
  const std::vector<float> x0 = c.x, r0 = c.rstd;
  head_rmsnorm_backward(dxv, VecView{dg.data(), c.dh}, dy, c.xv(), c.gv(), {c.rstd.data()});
  REQUIRE(c.x == x0);
  REQUIRE(c.rstd == r0);
  const auto rx = gradcheck(c.x.data(), int64_t(c.x.size()), dx.data(), loss);
  INFO(rx.describe("dx"));
  REQUIRE(rx.rel_err < 1e-3);
  const auto rg = gradcheck(c.g.data(), c.dh, dg.data(), loss);
  INFO(rg.describe("dg"));
  REQUIRE(rg.rel_err < 1e-3);
  const std::vector<float> dx1 = dx, dg1 = dg;
  loss();
  head_rmsnorm_backward(dxv, VecView{dg.data(), c.dh}, dy, c.xv(), c.gv(), {c.rstd.data()});
  for (size_t i = 0; i < dx.size(); ++i) REQUIRE(dx[i] == Approx(2.0 * dx1[i]).margin(1e-6));
  for (size_t i = 0; i < dg.size(); ++i) REQUIRE(dg[i] == Approx(2.0 * dg1[i]).margin(1e-6));
}
