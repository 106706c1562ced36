// Causal attention core: forward against a naive double-precision reference, exact properties of the
// causal softmax, finite-difference gradients w.r.t. the whole qkv buffer, and the backward contracts.
#include <catch2/catch.hpp>

#include <omp.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "model/attention.h"
#include "tests/support/gradcheck.h"

using namespace attnlab;
using attnlab::testing::random_vec;

namespace {

struct Shape {
  int B, T, H, dh;
  int d() const { return H * dh; }
  int n() const { return B * T; }
  int64_t qkv_size() const { return int64_t(n()) * 3 * d(); }
  int64_t out_size() const { return int64_t(n()) * d(); }
  int64_t probs_size() const { return int64_t(B) * H * T * T; }
};

// Buffers for one attention call, and the calls themselves with views built from the shape.
struct Case {
  Shape s;
  AttentionPlan plan;
  std::vector<float> qkv, out, probs, dqkv, dprobs, dout;
  Case(DnnlContext& ctx, Shape sh, uint64_t seed, float std = 1.0f)
      : s(sh),
        plan(make_attention_plan(ctx, sh.B, sh.T, sh.H, sh.dh)),
        qkv(random_vec(sh.qkv_size(), seed, std)),
        out(size_t(sh.out_size()), 0.0f),
        probs(size_t(sh.probs_size()), 0.0f),
        dqkv(size_t(sh.qkv_size()), 0.0f),
        dprobs(size_t(sh.probs_size()), 0.0f),
        dout(random_vec(sh.out_size(), seed + 1000)) {}
  ConstMatView qkv_view() const { return ConstMatView(qkv.data(), s.n(), 3 * s.d()); }
  void forward() {
    attention_forward(plan, MatView(out.data(), s.n(), s.d()), {probs.data()}, qkv_view());
  }
  void backward() {
    attention_backward(plan, MatView(dqkv.data(), s.n(), 3 * s.d()), dprobs.data(),
                       ConstMatView(dout.data(), s.n(), s.d()), qkv_view(), {probs.data()});
  }
  float q(int b, int t, int h, int e) const { return at(qkv, b, t, 0 * s.d() + h * s.dh + e); }
  float k(int b, int t, int h, int e) const { return at(qkv, b, t, 1 * s.d() + h * s.dh + e); }
  float v(int b, int t, int h, int e) const { return at(qkv, b, t, 2 * s.d() + h * s.dh + e); }
  float at(const std::vector<float>& m, int b, int t, int col) const {
    return m[size_t((int64_t(b) * s.T + t) * 3 * s.d() + col)];
  }
  float prob(int b, int h, int i, int j) const {
    return probs[size_t(((int64_t(b) * s.H + h) * s.T + i) * s.T + j)];
  }
};

// Naive per-head reference in double: probs [B,H,T,T] (0 above the diagonal) and out [N, d].
void reference_forward(const Case& c, std::vector<double>& probs, std::vector<double>& out) {
  const Shape& s = c.s;
  probs.assign(size_t(s.probs_size()), 0.0);
  out.assign(size_t(s.out_size()), 0.0);
  const double scale = 1.0 / std::sqrt(double(s.dh));
  std::vector<double> row(size_t(s.T));
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h)
      for (int i = 0; i < s.T; ++i) {
        double mx = -1e300, sum = 0.0;
        for (int j = 0; j <= i; ++j) {
          double dot = 0.0;
          for (int e = 0; e < s.dh; ++e) dot += double(c.q(b, i, h, e)) * c.k(b, j, h, e);
          row[size_t(j)] = dot * scale;
          mx = std::max(mx, row[size_t(j)]);
        }
        for (int j = 0; j <= i; ++j) sum += std::exp(row[size_t(j)] - mx);
        for (int j = 0; j <= i; ++j) {
          const double p = std::exp(row[size_t(j)] - mx) / sum;
          probs[size_t(((int64_t(b) * s.H + h) * s.T + i) * s.T + j)] = p;
          for (int e = 0; e < s.dh; ++e)
            out[size_t((int64_t(b) * s.T + i) * s.d() + h * s.dh + e)] += p * c.v(b, j, h, e);
        }
      }
}

const Shape kTiny{2, 5, 2, 4};

}  // namespace

TEST_CASE("attention forward matches a naive double-precision reference", "[model][attention]") {
  DnnlContext ctx;
  // The tiny shape, and one with rows long enough for the vectorised softmax body and remainder,
  // with larger logits (std 2.5) so exp sees a wide range of arguments.
  const Shape shape = GENERATE(Shape{2, 5, 2, 4}, Shape{2, 37, 3, 8});
  const float std = shape.T > 5 ? 2.5f : 1.0f;
  Case c(ctx, shape, 11, std);
  c.forward();
  std::vector<double> probs, out;
  reference_forward(c, probs, out);
  INFO("B=" << shape.B << " T=" << shape.T << " H=" << shape.H << " dh=" << shape.dh);
  for (size_t i = 0; i < probs.size(); ++i) {
    INFO("probs index " << i);
    REQUIRE(std::fabs(c.probs[i] - probs[i]) <= 1e-6 * (1.0 + probs[i]));
  }
  for (size_t i = 0; i < out.size(); ++i) {
    INFO("out index " << i);
    REQUIRE(std::fabs(c.out[i] - out[i]) <= 1e-5 * (1.0 + std::fabs(out[i])));
  }
}

TEST_CASE("causal softmax rows are normalised and exactly zero above the diagonal",
          "[model][attention]") {
  DnnlContext ctx;
  Case c(ctx, Shape{2, 19, 2, 4}, 12, 2.0f);
  // Forward must overwrite every entry of probs and out, never read them.
  std::fill(c.probs.begin(), c.probs.end(), std::nanf(""));
  std::fill(c.out.begin(), c.out.end(), std::nanf(""));
  c.forward();
  for (int b = 0; b < c.s.B; ++b)
    for (int h = 0; h < c.s.H; ++h)
      for (int i = 0; i < c.s.T; ++i) {
        double sum = 0.0;
        for (int j = 0; j <= i; ++j) sum += c.prob(b, h, i, j);
        INFO("b=" << b << " h=" << h << " i=" << i);
        REQUIRE(std::fabs(sum - 1.0) <= 1e-6);
        for (int j = i + 1; j < c.s.T; ++j) REQUIRE(c.prob(b, h, i, j) == 0.0f);
      }
  for (float x : c.out) REQUIRE(std::isfinite(x));
}

TEST_CASE("attention with q = 0 is uniform over the causal prefix", "[model][attention]") {
  DnnlContext ctx;
  Case c(ctx, kTiny, 13);
  for (int t = 0; t < c.s.n(); ++t)
    for (int e = 0; e < c.s.d(); ++e) c.qkv[size_t(t * 3 * c.s.d() + e)] = 0.0f;
  c.forward();
  for (int b = 0; b < c.s.B; ++b)
    for (int h = 0; h < c.s.H; ++h)
      for (int i = 0; i < c.s.T; ++i)
        for (int j = 0; j <= i; ++j) {
          INFO("b=" << b << " h=" << h << " i=" << i << " j=" << j);
          REQUIRE(c.prob(b, h, i, j) == Approx(1.0 / (i + 1)).epsilon(1e-6));
        }
}

TEST_CASE("attention output at position 0 is exactly v_0", "[model][attention]") {
  DnnlContext ctx;
  Case c(ctx, kTiny, 14, 3.0f);
  c.forward();
  for (int b = 0; b < c.s.B; ++b)
    for (int h = 0; h < c.s.H; ++h) {
      REQUIRE(c.prob(b, h, 0, 0) == 1.0f);
      for (int e = 0; e < c.s.dh; ++e) {
        INFO("b=" << b << " h=" << h << " e=" << e);
        REQUIRE(c.out[size_t(int64_t(b) * c.s.T * c.s.d() + h * c.s.dh + e)] == c.v(b, 0, h, e));
      }
    }
}

TEST_CASE("attention_backward gradcheck over the whole qkv buffer", "[model][attention][gradcheck]") {
  DnnlContext ctx;
  Case c(ctx, kTiny, 15);
  c.forward();
  c.backward();  // dout is the probe w, so dqkv = ∂(Σ w⊙out)/∂qkv
  Case fd(ctx, kTiny, 15);  // same qkv and probe; its forward is the loss
  auto loss = [&] {
    fd.forward();
    return attnlab::testing::probe_loss(fd.out.data(), fd.dout.data(), fd.s.out_size());
  };
  const auto r = attnlab::testing::gradcheck(fd.qkv.data(), fd.s.qkv_size(), c.dqkv.data(), loss);
  INFO(r.describe("dqkv"));
  REQUIRE(r.rel_err < 5e-3);
  // Each block separately, so a wrong dq hidden by large dk/dv still fails.
  const int d = c.s.d();
  for (int blk = 0; blk < 3; ++blk) {
    double diff2 = 0.0, a2 = 0.0;
    std::vector<float> num(size_t(c.s.qkv_size()), 0.0f);
    for (int t = 0; t < c.s.n(); ++t)
      for (int e = 0; e < d; ++e) {
        const size_t i = size_t(t * 3 * d + blk * d + e);
        const float orig = fd.qkv[i], h = 1e-3f * std::max(1.0f, std::fabs(orig));
        fd.qkv[i] = orig + h;
        const double lp = loss();
        fd.qkv[i] = orig - h;
        const double lm = loss();
        fd.qkv[i] = orig;
        const double n = (lp - lm) / (double(orig + h) - double(orig - h));
        diff2 += (c.dqkv[i] - n) * (c.dqkv[i] - n);
        a2 += double(c.dqkv[i]) * c.dqkv[i];
      }
    INFO("block " << blk << " (0=q 1=k 2=v) |a-n|/|a| = " << std::sqrt(diff2 / a2));
    REQUIRE(a2 > 0.0);
    REQUIRE(std::sqrt(diff2 / a2) < 1e-2);
  }
}

TEST_CASE("the query gradient at position 0 is exactly zero", "[model][attention]") {
  DnnlContext ctx;
  Case c(ctx, kTiny, 16, 2.0f);
  c.forward();
  c.backward();
  const int d = c.s.d();
  double other = 0.0;
  for (int b = 0; b < c.s.B; ++b)
    for (int t = 0; t < c.s.T; ++t)
      for (int e = 0; e < d; ++e) {
        const float g = c.at(c.dqkv, b, t, e);
        if (t == 0) {
          INFO("b=" << b << " e=" << e);
          REQUIRE(std::bit_cast<uint32_t>(g) == 0u);  // +0.0f exactly, not merely tiny
        } else {
          other += std::fabs(g);
        }
      }
  REQUIRE(other > 0.0);  // the other positions do get a query gradient
}

TEST_CASE("attention_backward accumulates and leaves its inputs untouched", "[model][attention]") {
  DnnlContext ctx;
  Case c(ctx, kTiny, 17);
  c.forward();
  const std::vector<float> qkv0 = c.qkv, probs0 = c.probs, dout0 = c.dout;
  std::fill(c.dprobs.begin(), c.dprobs.end(), std::nanf(""));  // scratch: its old contents must not matter
  c.backward();
  const std::vector<float> once = c.dqkv;
  REQUIRE(std::memcmp(qkv0.data(), c.qkv.data(), qkv0.size() * sizeof(float)) == 0);
  REQUIRE(std::memcmp(probs0.data(), c.probs.data(), probs0.size() * sizeof(float)) == 0);
  REQUIRE(std::memcmp(dout0.data(), c.dout.data(), dout0.size() * sizeof(float)) == 0);
  for (float g : once) REQUIRE(std::isfinite(g));
  c.backward();
  for (size_t i = 0; i < once.size(); ++i) {
    INFO("i=" << i);
    REQUIRE(c.dqkv[i] == Approx(2.0f * once[i]).epsilon(1e-6).margin(1e-7));
  }
}

TEST_CASE("attention is bitwise identical with 1 and 2 OpenMP threads", "[model][attention]") {
  const Shape shape = GENERATE(Shape{2, 5, 2, 4}, Shape{2, 64, 4, 16});
  const int saved = omp_get_max_threads();
  std::vector<float> out[2], probs[2], dqkv[2];
  for (int run = 0; run < 2; ++run) {
    omp_set_num_threads(run + 1);  // before planning: oneDNN fixes its threading at creation
    DnnlContext ctx;
    Case c(ctx, shape, 18);
    c.forward();
    c.backward();
    out[run] = c.out;
    probs[run] = c.probs;
    dqkv[run] = c.dqkv;
  }
  omp_set_num_threads(saved);
  INFO("B=" << shape.B << " T=" << shape.T << " H=" << shape.H << " dh=" << shape.dh);
  REQUIRE(std::memcmp(out[0].data(), out[1].data(), out[0].size() * sizeof(float)) == 0);
  REQUIRE(std::memcmp(probs[0].data(), probs[1].data(), probs[0].size() * sizeof(float)) == 0);
  REQUIRE(std::memcmp(dqkv[0].data(), dqkv[1].data(), dqkv[0].size() * sizeof(float)) == 0);
}
