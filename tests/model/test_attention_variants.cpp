// Attention toggles at the kernel level (model/attention_variants.h): closed forms of the extra key
// (softmax+1, sink logit, k/v bias), sigmoid attention and the temperature, and finite differences through
// the composed core (scores → [÷τ] → normalisation → values [+ p0·v']) for every input and parameter.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <vector>

#include "model/attention_variants.h"
#include "tests/support/gradcheck.h"

using namespace attnlab;
using namespace attnlab::testing;

namespace {

enum class Norm { kSoftmaxPlusOne, kSinkLogit, kKvBias, kSigmoid, kSigmoidBias };

const char* norm_name(Norm n) {
  switch (n) {
    case Norm::kSoftmaxPlusOne: return "softmax+1";
    case Norm::kSinkLogit: return "sink logit";
    case Norm::kKvBias: return "k/v bias";
    case Norm::kSigmoid: return "sigmoid";
    case Norm::kSigmoidBias: return "sigmoid+bias";
  }
  return "?";
}

// One attention call with a variant, on its own buffers; forward and backward compose the pieces the way
// Transformer::attention_core_forward/backward does.
struct VariantCase {
  int B, T, H, dh;
  Norm norm;
  float inv_tau;
  AttentionPlan plan;
  std::vector<float> qkv, out, probs, z0, p0, dqkv, dprobs, dz0, dout, sink, dsink, kb, vb, dkb, dvb;
  VariantCase(DnnlContext& ctx, int b, int t, int h, int e, Norm n, float tau, uint64_t seed)
      : B(b), T(t), H(h), dh(e), norm(n), inv_tau(1.0f / tau), plan(make_attention_plan(ctx, b, t, h, e)),
        qkv(random_vec(int64_t(b) * t * 3 * h * e, seed)), out(size_t(b) * t * h * e), probs(size_t(b) * h * t * t),
        z0(size_t(b) * h * t), p0(z0.size()), dqkv(qkv.size()), dprobs(probs.size()), dz0(z0.size()),
        dout(random_vec(int64_t(out.size()), seed + 1)), sink(random_vec(h, seed + 2)), dsink(size_t(h)),
        kb(random_vec(int64_t(h) * e, seed + 3)), vb(random_vec(int64_t(h) * e, seed + 4)), dkb(kb.size()),
        dvb(vb.size()) {}
  int d() const { return H * dh; }
  int N() const { return B * T; }
  ConstMatView qkv_v() const { return ConstMatView(qkv.data(), N(), 3 * d()); }
  MatView kbv() { return MatView(kb.data(), H, dh); }
  MatView vbv() { return MatView(vb.data(), H, dh); }
  bool extra() const { return norm == Norm::kSoftmaxPlusOne || norm == Norm::kSinkLogit || norm == Norm::kKvBias; }

  void forward() {
    attention_scores_forward(plan, {probs.data()}, qkv_v());
    if (inv_tau != 1.0f) attention_scale_scores(plan, probs.data(), inv_tau);
    if (norm == Norm::kSigmoid || norm == Norm::kSigmoidBias) {
      attention_sigmoid_forward(plan, {probs.data()}, norm == Norm::kSigmoidBias);
    } else {
      if (norm == Norm::kKvBias) attention_kv_bias_logits(plan, z0.data(), qkv_v(), kbv(), plan.scale * inv_tau);
      if (norm == Norm::kSinkLogit) attention_sink_logits(plan, z0.data(), ConstVecView(sink.data(), H));
      if (norm == Norm::kSoftmaxPlusOne) attention_sink_logits(plan, z0.data(), ConstVecView());
      attention_softmax_extra_forward(plan, {probs.data()}, {p0.data()}, z0.data());
    }
    attention_values_forward(plan, MatView(out.data(), N(), d()), {probs.data()}, qkv_v());
    if (norm == Norm::kKvBias) attention_kv_bias_values_forward(plan, MatView(out.data(), N(), d()), {p0.data()}, vbv());
  }
  void backward() {
    MatView dq(dqkv.data(), N(), 3 * d());
    const ConstMatView dy(dout.data(), N(), d());
    attention_values_backward(plan, dprobs.data(), dq.col_block(2 * d(), d()), dy, qkv_v().col_block(2 * d(), d()),
                              {probs.data()});
    if (norm == Norm::kKvBias) {
      attention_kv_bias_values_backward(plan, dz0.data(), MatView(dvb.data(), H, dh), dy, vbv(), {p0.data()});
    } else {
      std::fill(dz0.begin(), dz0.end(), 0.0f);
    }
    if (extra()) {
      attention_softmax_extra_backward(plan, dprobs.data(), dz0.data(), {probs.data()}, {p0.data()});
    } else {
      attention_sigmoid_backward(plan, dprobs.data(), {probs.data()});
    }
    if (inv_tau != 1.0f) attention_scale_scores(plan, dprobs.data(), inv_tau);
    attention_scores_backward(plan, dq, dprobs.data(), qkv_v());
    if (norm == Norm::kKvBias)
      attention_kv_bias_logits_backward(plan, dq, MatView(dkb.data(), H, dh), dz0.data(), qkv_v(), kbv(),
                                        plan.scale * inv_tau);
    if (norm == Norm::kSinkLogit) attention_sink_logits_backward(plan, VecView{dsink.data(), H}, dz0.data());
  }
  double loss() {
    forward();
    return probe_loss(out.data(), dout.data(), int64_t(out.size()));
  }
};

}  // namespace

TEST_CASE("extra key: rows of P plus p0 sum to 1; softmax+1 with equal logits gives 1/(n+1)", "[model][attention]") {
  DnnlContext ctx;
  VariantCase c(ctx, 2, 5, 2, 4, Norm::kSinkLogit, 1.0f, 3);
  c.forward();
  for (int r = 0; r < c.B * c.H * c.T; ++r) {
    const int i = r % c.T;
    double sum = c.p0[size_t(r)];
    for (int j = 0; j < c.T; ++j) {
      if (j > i) REQUIRE(c.probs[size_t(r * c.T + j)] == 0.0f);
      sum += c.probs[size_t(r * c.T + j)];
    }
    REQUIRE(sum == Approx(1.0).epsilon(1e-6));
  }
  // softmax+1 with zero scores (q = 0): every live key and the extra key get 1/(n+1).
  VariantCase z(ctx, 1, 6, 2, 4, Norm::kSoftmaxPlusOne, 1.0f, 5);
  for (int n = 0; n < z.N(); ++n)
    for (int j = 0; j < z.d(); ++j) z.qkv[size_t(n * 3 * z.d() + j)] = 0.0f;
  z.forward();
  for (int h = 0; h < z.H; ++h)
    for (int i = 0; i < z.T; ++i) {
      const int r = h * z.T + i;
      REQUIRE(z.p0[size_t(r)] == Approx(1.0 / (i + 2)).epsilon(1e-6));
      for (int j = 0; j <= i; ++j) REQUIRE(z.probs[size_t(r * z.T + j)] == Approx(1.0 / (i + 2)).epsilon(1e-6));
    }
}

TEST_CASE("sink logit b → ∞ makes the attention output vanish; b → −∞ gives plain softmax", "[model][attention]") {
  DnnlContext ctx;
  VariantCase c(ctx, 2, 5, 2, 4, Norm::kSinkLogit, 1.0f, 7);
  std::fill(c.sink.begin(), c.sink.end(), 1e4f);
  c.forward();
  for (float y : c.out) REQUIRE(std::fabs(y) < 1e-30f);
  for (float p : c.p0) REQUIRE(p == 1.0f);
  std::fill(c.sink.begin(), c.sink.end(), -1e4f);
  c.forward();
  std::vector<float> ref_out(c.out.size()), ref_probs(c.probs.size());
  attention_forward(c.plan, MatView(ref_out.data(), c.N(), c.d()), {ref_probs.data()}, c.qkv_v());
  for (size_t i = 0; i < ref_out.size(); ++i) REQUIRE(c.out[i] == Approx(ref_out[i]).epsilon(1e-5).margin(1e-6));
  for (float p : c.p0) REQUIRE(p < 1e-30f);
}

TEST_CASE("k/v bias: a query orthogonal to every key but aligned with k' attends to v'", "[model][attention]") {
  DnnlContext ctx;
  VariantCase c(ctx, 1, 3, 1, 4, Norm::kKvBias, 1.0f, 9);
  // k_j = 0 for all j (scores 0), q = 40·k' / ‖k'‖²·√dh so ⟨q, k'⟩/√dh = 40: p0 = 1/(1 + n e^{-40}) ≈ 1.
  for (int n = 0; n < c.N(); ++n) {
    float* row = c.qkv.data() + n * 3 * c.d();
    double kk = 0.0;
    for (int e = 0; e < 4; ++e) kk += double(c.kb[size_t(e)]) * c.kb[size_t(e)];
    for (int e = 0; e < 4; ++e) {
      row[e] = float(40.0 * c.kb[size_t(e)] / kk * 2.0);
      row[4 + e] = 0.0f;
    }
  }
  c.forward();
  for (int n = 0; n < c.N(); ++n)
    for (int e = 0; e < 4; ++e) REQUIRE(c.out[size_t(n * 4 + e)] == Approx(c.vb[size_t(e)]).epsilon(1e-6));
}

TEST_CASE("sigmoid attention: P_ij = σ(Z_ij − ln(i+1)) with the bias, no row normalisation", "[model][attention]") {
  DnnlContext ctx;
  VariantCase c(ctx, 1, 7, 1, 4, Norm::kSigmoidBias, 1.0f, 11);
  for (int n = 0; n < c.N(); ++n)
    for (int j = 0; j < c.d(); ++j) c.qkv[size_t(n * 3 * c.d() + j)] = 0.0f;  // Z = 0
  c.forward();
  for (int i = 0; i < c.T; ++i)
    for (int j = 0; j < c.T; ++j)
      REQUIRE(c.probs[size_t(i * c.T + j)] == (j <= i ? Approx(1.0 / (i + 2)).epsilon(1e-6) : Approx(0.0)));
  VariantCase u(ctx, 1, 7, 1, 4, Norm::kSigmoid, 1.0f, 11);
  u.forward();  // random Z: compare with σ of the scores computed here
  for (int i = 0; i < u.T; ++i)
    for (int j = 0; j <= i; ++j) {
      double z = 0.0;
      for (int e = 0; e < 4; ++e) z += double(u.qkv[size_t(i * 12 + e)]) * u.qkv[size_t(j * 12 + 4 + e)];
      REQUIRE(u.probs[size_t(i * u.T + j)] == Approx(1.0 / (1.0 + std::exp(-z / 2.0))).epsilon(1e-5));
    }
}

TEST_CASE("attention variants match finite differences for qkv and their parameters, with and without τ",
          "[model][attention][gradcheck]") {
  DnnlContext ctx;
  for (Norm norm : {Norm::kSoftmaxPlusOne, Norm::kSinkLogit, Norm::kKvBias, Norm::kSigmoid, Norm::kSigmoidBias}) {
    for (float tau : {1.0f, 0.6f}) {
      VariantCase c(ctx, 2, 5, 2, 4, norm, tau, 21);
      c.forward();
      c.backward();
      auto loss = [&] { return c.loss(); };
      const std::string tag = std::string(norm_name(norm)) + " tau=" + std::to_string(tau);
      const auto rq = gradcheck(c.qkv.data(), int64_t(c.qkv.size()), c.dqkv.data(), loss);
      INFO(tag << " " << rq.describe("dqkv"));
      REQUIRE(rq.rel_err < 2e-3);
      if (norm == Norm::kSinkLogit) {
        const auto r = gradcheck(c.sink.data(), c.H, c.dsink.data(), loss);
        INFO(tag << " " << r.describe("dsink"));
        REQUIRE(r.rel_err < 2e-3);
      }
      if (norm == Norm::kKvBias) {
        const auto rk = gradcheck(c.kb.data(), int64_t(c.kb.size()), c.dkb.data(), loss);
        INFO(tag << " " << rk.describe("dk_bias"));
        REQUIRE(rk.rel_err < 2e-3);
        const auto rv = gradcheck(c.vb.data(), int64_t(c.vb.size()), c.dvb.data(), loss);
        INFO(tag << " " << rv.describe("dv_bias"));
        REQUIRE(rv.rel_err < 2e-3);
      }
    }
  }
}

TEST_CASE("temperature τ equals scaling the queries by 1/τ", "[model][attention]") {
  DnnlContext ctx;
  VariantCase a(ctx, 2, 6, 2, 4, Norm::kSoftmaxPlusOne, 2.5f, 31);
  VariantCase b(ctx, 2, 6, 2, 4, Norm::kSoftmaxPlusOne, 1.0f, 31);
  for (int n = 0; n < b.N(); ++n)
    for (int j = 0; j < b.d(); ++j) b.qkv[size_t(n * 3 * b.d() + j)] /= 2.5f;
  a.forward();
  b.forward();
  for (size_t i = 0; i < a.out.size(); ++i) REQUIRE(a.out[i] == Approx(b.out[i]).epsilon(1e-5).margin(1e-6));
}
