// Gemm (oneDNN matmul) against gemm_reference on plain, transposed, strided, batched, scaled and
// accumulating shapes; the linear layer against naive loops and finite differences.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "model/matmul.h"
#include "tests/support/gradcheck.h"

using namespace attnlab;
using attnlab::testing::random_vec;

namespace {

// Extent of an operand buffer in floats: one past the largest address the strides reach.
int64_t extent(const GemmDesc& d, int64_t rows, int64_t cols, const int64_t s[4]) {
  return (d.batch0 - 1) * s[0] + (d.batch1 - 1) * s[1] + (rows - 1) * s[2] + (cols - 1) * s[3] + 1;
}

// Runs d through Gemm and through gemm_reference on the same seeded inputs and initial C (random, so
// accumulate is tested; the reference overwrites it when !accumulate). Every C element, including
// the gaps between strided rows/blocks, must match: the reference leaves the gaps untouched, so a Gemm
// that writes outside its view fails here too.
void check_gemm(DnnlContext& ctx, const GemmDesc& d, uint64_t seed) {
  const int64_t na = extent(d, d.M, d.K, d.sa), nb = extent(d, d.K, d.N, d.sb),
                nc = extent(d, d.M, d.N, d.sc);
  const std::vector<float> a = random_vec(na, seed), b = random_vec(nb, seed + 1),
                           c0 = random_vec(nc, seed + 2);
  std::vector<float> c = c0, ref = c0;
  Gemm g(ctx, d);
  REQUIRE(g.valid());
  INFO("impl " << g.impl_name() << " M=" << d.M << " N=" << d.N << " K=" << d.K << " batch "
               << d.batch0 << "x" << d.batch1 << " alpha=" << d.alpha << " acc=" << d.accumulate);
  g.run(a.data(), b.data(), c.data());
  gemm_reference(d, a.data(), b.data(), ref.data());

  // Error scale per element: |alpha|·Σ|a||b| (+ |c_old|), the size of what float rounding acts on.
  std::vector<float> abs_a(a.size()), abs_b(b.size()), mag(size_t(nc), 0.0f);
  for (size_t i = 0; i < a.size(); ++i) abs_a[i] = std::fabs(a[i]);
  for (size_t i = 0; i < b.size(); ++i) abs_b[i] = std::fabs(b[i]);
  GemmDesc dm = d;
  dm.alpha = std::fabs(d.alpha);
  dm.accumulate = false;
  gemm_reference(dm, abs_a.data(), abs_b.data(), mag.data());

  double worst = 0.0;
  int64_t worst_i = -1;
  for (int64_t i = 0; i < nc; ++i) {
    const double tol = 2e-6 * (double(mag[size_t(i)]) + std::fabs(c0[size_t(i)])) + 1e-7;
    const double err = std::fabs(double(c[size_t(i)]) - double(ref[size_t(i)]));
    if (err / tol > worst) {
      worst = err / tol;
      worst_i = i;
    }
  }
  INFO("worst element " << worst_i << " err/tol=" << worst << " got " << c[size_t(worst_i)] << " ref "
                        << ref[size_t(worst_i)]);
  REQUIRE(worst <= 1.0);
}

}  // namespace

TEST_CASE("gemm_desc_2d encodes transposes as strides", "[model][matmul]") {
  const GemmDesc d = gemm_desc_2d(3, 4, 5, true, 7, true, 9, 11, 0.5f, true);
  CHECK(d.sa[2] == 1);
  CHECK(d.sa[3] == 7);
  CHECK(d.sb[2] == 1);
  CHECK(d.sb[3] == 9);
  CHECK(d.sc[2] == 11);
  CHECK(d.sc[3] == 1);
  CHECK(d.alpha == 0.5f);
  CHECK(d.accumulate);
  const GemmDesc p = gemm_desc_2d(3, 4, 5, false, 6, false, 8, 4);
  CHECK(p.sa[2] == 6);
  CHECK(p.sa[3] == 1);
  CHECK(p.sb[2] == 8);
  CHECK(p.sb[3] == 1);
  CHECK(!p.accumulate);
}

TEST_CASE("gemm_reference computes a known product", "[model][matmul]") {
  // [[1,2],[3,4]] · [[5,6],[7,8]] = [[19,22],[43,50]]; then 2·A·B + C with C = that result.
  const float a[] = {1, 2, 3, 4}, b[] = {5, 6, 7, 8};
  float c[4] = {-1, -1, -1, -1};
  gemm_reference(gemm_desc_2d(2, 2, 2, false, 2, false, 2, 2), a, b, c);
  CHECK(c[0] == 19.0f);
  CHECK(c[1] == 22.0f);
  CHECK(c[2] == 43.0f);
  CHECK(c[3] == 50.0f);
  gemm_reference(gemm_desc_2d(2, 2, 2, false, 2, false, 2, 2, 2.0f, true), a, b, c);
  CHECK(c[0] == 57.0f);
  CHECK(c[3] == 150.0f);
  // Transposed A: stored [K, M] = [[1,3],[2,4]] is the same logical A.
  const float at[] = {1, 3, 2, 4};
  gemm_reference(gemm_desc_2d(2, 2, 2, true, 2, false, 2, 2), at, b, c);
  CHECK(c[1] == 22.0f);
  CHECK(c[2] == 43.0f);
}

TEST_CASE("Gemm matches the reference on 2-D shapes", "[model][matmul]") {
  DnnlContext ctx;
  SECTION("plain") { check_gemm(ctx, gemm_desc_2d(8, 12, 16, false, 16, false, 12, 12), 1); }
  SECTION("transposed A") { check_gemm(ctx, gemm_desc_2d(8, 12, 16, true, 8, false, 12, 12), 2); }
  SECTION("transposed B") { check_gemm(ctx, gemm_desc_2d(8, 12, 16, false, 16, true, 16, 12), 3); }
  SECTION("both transposed") { check_gemm(ctx, gemm_desc_2d(8, 12, 16, true, 8, true, 16, 12), 4); }
  SECTION("odd sizes") { check_gemm(ctx, gemm_desc_2d(7, 13, 5, false, 5, false, 13, 13), 5); }
  SECTION("odd sizes, both transposed") {
    check_gemm(ctx, gemm_desc_2d(7, 13, 5, true, 7, true, 5, 13), 6);
  }
  SECTION("column-block views (ld larger than cols)") {
    // A is 7 of 12 columns, B 13 of 20, C 5 of 9 columns of wider buffers.
    check_gemm(ctx, gemm_desc_2d(11, 5, 7, false, 12, false, 20, 9), 7);
    check_gemm(ctx, gemm_desc_2d(11, 5, 7, true, 15, true, 10, 9), 8);
  }
  SECTION("alpha != 1") { check_gemm(ctx, gemm_desc_2d(9, 6, 10, false, 10, true, 10, 6, 0.37f), 9); }
  SECTION("accumulate") { check_gemm(ctx, gemm_desc_2d(9, 6, 10, false, 10, false, 6, 6, 1.0f, true), 10); }
  SECTION("alpha and accumulate, strided and transposed") {
    check_gemm(ctx, gemm_desc_2d(9, 6, 10, true, 11, false, 8, 7, -1.75f, true), 11);
  }
  SECTION("larger, long K") { check_gemm(ctx, gemm_desc_2d(64, 96, 300, false, 300, true, 300, 96), 12); }
  SECTION("single row and single column") {
    check_gemm(ctx, gemm_desc_2d(1, 9, 4, false, 4, false, 9, 9), 13);
    check_gemm(ctx, gemm_desc_2d(9, 1, 4, false, 4, false, 1, 1), 14);
  }
}

TEST_CASE("Gemm accumulate adds exactly A·B to the old C", "[model][matmul]") {
  // Independent of gemm_reference's accumulate path: C_new − C_old against a non-accumulating product.
  DnnlContext ctx;
  const int64_t M = 7, N = 13, K = 5;
  const std::vector<float> a = random_vec(M * K, 21), b = random_vec(K * N, 22),
                           c0 = random_vec(M * N, 23);
  std::vector<float> c = c0, prod(size_t(M * N));
  Gemm acc(ctx, gemm_desc_2d(M, N, K, false, K, false, N, N, 1.0f, true));
  Gemm plain(ctx, gemm_desc_2d(M, N, K, false, K, false, N, N));
  acc.run(a.data(), b.data(), c.data());
  plain.run(a.data(), b.data(), prod.data());
  for (int64_t i = 0; i < M * N; ++i) {
    INFO("i=" << i);
    REQUIRE(c[size_t(i)] == Approx(c0[size_t(i)] + prod[size_t(i)]).margin(1e-5));
  }
  // A second run adds the product again: the primitive keeps no state between runs.
  acc.run(a.data(), b.data(), c.data());
  for (int64_t i = 0; i < M * N; ++i)
    REQUIRE(c[size_t(i)] == Approx(c0[size_t(i)] + 2.0f * prod[size_t(i)]).margin(2e-5));
}

TEST_CASE("Gemm matches the reference on batched qkv-style views", "[model][matmul]") {
  DnnlContext ctx;
  const int64_t B = 2, T = 5, H = 3, dh = 4, d = H * dh, ld = 3 * d;
  SECTION("scores: scale · Q Kᵀ from the fused qkv buffer into [B,H,T,T]") {
    GemmDesc g;
    g.batch0 = B;
    g.batch1 = H;
    g.M = T;
    g.N = T;
    g.K = dh;
    const int64_t sa[4] = {T * ld, dh, ld, 1}, sb[4] = {T * ld, dh, 1, ld},
                  sc[4] = {H * T * T, T * T, T, 1};
    std::memcpy(g.sa, sa, sizeof sa);
    std::memcpy(g.sb, sb, sizeof sb);
    std::memcpy(g.sc, sc, sizeof sc);
    g.alpha = 0.5f;
    check_gemm(ctx, g, 31);
  }
  SECTION("values: P V into head columns of out [N, d], and accumulating Pᵀ dY into dV") {
    GemmDesc g;
    g.batch0 = B;
    g.batch1 = H;
    g.M = T;
    g.N = dh;
    g.K = T;
    const int64_t sa[4] = {H * T * T, T * T, T, 1}, sb[4] = {T * ld, dh, ld, 1},
                  sc[4] = {T * d, dh, d, 1};
    std::memcpy(g.sa, sa, sizeof sa);
    std::memcpy(g.sb, sb, sizeof sb);
    std::memcpy(g.sc, sc, sizeof sc);
    check_gemm(ctx, g, 32);
    GemmDesc t = g;  // Pᵀ dY, written into the v block of a [N, 3d] gradient with accumulate
    const int64_t ta[4] = {H * T * T, T * T, 1, T}, tb[4] = {T * d, dh, d, 1},
                  tc[4] = {T * ld, dh, ld, 1};
    std::memcpy(t.sa, ta, sizeof ta);
    std::memcpy(t.sb, tb, sizeof tb);
    std::memcpy(t.sc, tc, sizeof tc);
    t.accumulate = true;
    t.alpha = 0.25f;
    check_gemm(ctx, t, 33);
  }
  SECTION("one batch dim only") {
    GemmDesc g;
    g.batch0 = 3;
    g.M = 6;
    g.N = 5;
    g.K = 7;
    const int64_t sa[4] = {60, 0, 9, 1}, sb[4] = {40, 0, 1, 8}, sc[4] = {35, 0, 5, 1};
    std::memcpy(g.sa, sa, sizeof sa);
    std::memcpy(g.sb, sb, sizeof sb);
    std::memcpy(g.sc, sc, sizeof sc);
    check_gemm(ctx, g, 34);
  }
}

TEST_CASE("Gemm reports its oneDNN implementation", "[model][matmul]") {
  DnnlContext ctx;
  Gemm none;
  CHECK(!none.valid());
  Gemm g(ctx, gemm_desc_2d(4, 4, 4, false, 4, false, 4, 4));
  REQUIRE(g.valid());
  CHECK(std::string(g.impl_name()).size() > 0);
  Gemm moved = std::move(g);  // the plan moves Gemms into place; a moved-to Gemm still runs
  REQUIRE(moved.valid());
  const std::vector<float> a(16, 1.0f), b(16, 2.0f);
  std::vector<float> c(16, 0.0f);
  moved.run(a.data(), b.data(), c.data());
  CHECK(c[5] == 8.0f);
}

namespace {

// Naive y[r,o] = Σ_i x[r,i] W[o,i] in double.
void naive_linear(std::vector<double>& y, const std::vector<float>& x, int64_t ldx,
                  const std::vector<float>& w, int64_t n, int64_t in, int64_t out) {
  y.assign(size_t(n * out), 0.0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double acc = 0.0;
      for (int64_t i = 0; i < in; ++i) acc += double(x[size_t(r * ldx + i)]) * w[size_t(o * in + i)];
      y[size_t(r * out + o)] = acc;
    }
}

}  // namespace

TEST_CASE("linear_forward and linear_backward match naive loops", "[model][matmul][linear]") {
  DnnlContext ctx;
  // x and dx are 9-column blocks of 14-wide buffers; y and dy 6 of 10: the strided case of qkv slices.
  const int64_t n = 11, in = 9, out = 6, ldx = 14, ldy = 10;
  LinearPlan plan = make_linear_plan(ctx, n, in, out, ldx, ldy);
  const std::vector<float> x = random_vec(n * ldx, 41), w = random_vec(out * in, 42),
                           dy = random_vec(n * ldy, 43);
  ConstMatView xv(x.data(), int(n), int(in), ldx), wv(w.data(), int(out), int(in)),
      dyv(dy.data(), int(n), int(out), ldy);

  std::vector<float> y(size_t(n * ldy), 123.0f);  // the gap columns must keep their sentinel
  linear_forward(plan, MatView(y.data(), int(n), int(out), ldy), xv, wv);
  std::vector<double> yref;
  naive_linear(yref, x, ldx, w, n, in, out);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < ldy; ++c) {
      INFO("y r=" << r << " c=" << c);
      if (c < out)
        REQUIRE(y[size_t(r * ldy + c)] == Approx(yref[size_t(r * out + c)]).margin(1e-5));
      else
        REQUIRE(y[size_t(r * ldy + c)] == 123.0f);
    }

  const std::vector<float> dx0 = random_vec(n * ldx, 44), dw0 = random_vec(out * in, 45);
  std::vector<float> dx = dx0, dw = dw0;
  linear_backward(plan, MatView(dx.data(), int(n), int(in), ldx), MatView(dw.data(), int(out), int(in)),
                  dyv, xv, wv);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < ldx; ++c) {
      double want = dx0[size_t(r * ldx + c)];
      if (c < in)
        for (int64_t o = 0; o < out; ++o) want += double(dy[size_t(r * ldy + o)]) * w[size_t(o * in + c)];
      INFO("dx r=" << r << " c=" << c);
      REQUIRE(dx[size_t(r * ldx + c)] == Approx(want).margin(1e-5));
    }
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      double want = dw0[size_t(o * in + i)];
      for (int64_t r = 0; r < n; ++r) want += double(dy[size_t(r * ldy + o)]) * x[size_t(r * ldx + i)];
      INFO("dw o=" << o << " i=" << i);
      REQUIRE(dw[size_t(o * in + i)] == Approx(want).margin(1e-5));
    }

  SECTION("a null dx skips the data gradient and still accumulates dW") {
    std::vector<float> dw2 = dw0;
    linear_backward(plan, MatView(), MatView(dw2.data(), int(out), int(in)), dyv, xv, wv);
    for (size_t i = 0; i < dw2.size(); ++i) REQUIRE(dw2[i] == dw[i]);
  }
}

TEST_CASE("linear_backward gradcheck", "[model][matmul][linear][gradcheck]") {
  DnnlContext ctx;
  const int64_t n = 6, in = 8, out = 5;
  LinearPlan plan = make_linear_plan(ctx, n, in, out, in, out);
  std::vector<float> x = random_vec(n * in, 51), w = random_vec(out * in, 52);
  const std::vector<float> probe = random_vec(n * out, 53);
  std::vector<float> y(size_t(n * out));
  auto loss = [&] {
    linear_forward(plan, MatView(y.data(), int(n), int(out)), ConstMatView(x.data(), int(n), int(in)),
                   ConstMatView(w.data(), int(out), int(in)));
    return attnlab::testing::probe_loss(y.data(), probe.data(), n * out);
  };
  std::vector<float> dx(size_t(n * in), 0.0f), dw(size_t(out * in), 0.0f);
  linear_backward(plan, MatView(dx.data(), int(n), int(in)), MatView(dw.data(), int(out), int(in)),
                  ConstMatView(probe.data(), int(n), int(out)), ConstMatView(x.data(), int(n), int(in)),
                  ConstMatView(w.data(), int(out), int(in)));
  const auto rx = attnlab::testing::gradcheck(x.data(), n * in, dx.data(), loss);
  INFO(rx.describe("dx"));
  REQUIRE(rx.rel_err < 1e-3);
  const auto rw = attnlab::testing::gradcheck(w.data(), out * in, dw.data(), loss);
  INFO(rw.describe("dW"));
  REQUIRE(rw.rel_err < 1e-3);
}
