// V-scale (model/vscale.h; gradient-sinks.md §1): the kernel against the closed form, the Jacobian's
// eigen-structure (§1.1), finite differences of the kernel (dv and dθ), and the whole model in every mode
// and with every position encoding: gradients (incl. ∂L/∂θ), backward_only's forward bit-identical to off
// and its backward equal to J_φ(v) applied to the true ∂L/∂v̂.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "model/vscale.h"
#include "tests/support/gradcheck.h"
#include "tests/support/model_check.h"

using namespace attnlab;
using namespace attnlab::testing;

namespace {

// N rows of H heads of dh values, a strided view (row stride 3·H·dh, like the v block of qkv).
struct VCase {
  int N, H, dh;
  std::vector<float> buf, vhat, r, theta;
  VCase(int n, int h, int e, uint64_t seed, float std = 1.0f)
      : N(n), H(h), dh(e), buf(random_vec(int64_t(n) * 3 * h * e, seed, std)), vhat(size_t(n) * h * e, 0.0f),
        r(size_t(n) * h, 0.0f), theta(random_vec(h, seed + 1, 0.5f)) {}
  int d() const { return H * dh; }
  MatView v() { return MatView(buf.data() + 2 * d(), N, d(), 3 * d()); }
  MatView vh() { return MatView(vhat.data(), N, d()); }
  ConstVecView th() const { return ConstVecView(theta.data(), H); }
};

double phi_of(double r, double C) { return r / (r + C); }

}  // namespace

TEST_CASE("vscale_forward matches v̂ = r/(r+C)·v per row and head", "[model][vscale]") {
  VCase c(7, 3, 8, 11);
  const float c0 = 5.0f;
  vscale_forward(c.vh(), {c.r.data()}, c.v(), c.th(), c0);
  for (int n = 0; n < c.N; ++n)
    for (int h = 0; h < c.H; ++h) {
      double r = 0.0;
      for (int e = 0; e < c.dh; ++e) r += double(c.v()(n, h * c.dh + e)) * c.v()(n, h * c.dh + e);
      const double C = c0 * std::exp(double(c.theta[size_t(h)]));
      REQUIRE(c.r[size_t(n * c.H + h)] == Approx(r).epsilon(1e-6));
      for (int e = 0; e < c.dh; ++e)
        REQUIRE(c.vh()(n, h * c.dh + e) == Approx(phi_of(r, C) * c.v()(n, h * c.dh + e)).epsilon(1e-5).margin(1e-7));
    }
  // The sqnorm-only forward (backward_only) saves the same r.
  std::vector<float> r2(c.r.size(), -1.0f);
  vscale_sqnorm_forward({r2.data()}, c.v(), c.H);
  REQUIRE(r2 == c.r);
}

TEST_CASE("vscale: φ → 1 for ‖v‖² ≫ C and φ ≈ r/C for ‖v‖² ≪ C", "[model][vscale]") {
  VCase big(4, 2, 16, 3, /*std=*/100.0f);  // r ≈ 16·1e4 = 1.6e5
  std::vector<float> zero_theta(2, 0.0f);
  vscale_forward(big.vh(), {big.r.data()}, big.v(), ConstVecView(zero_theta.data(), 2), /*c0=*/1.0f);
  for (int n = 0; n < big.N; ++n)
    for (int j = 0; j < big.d(); ++j) REQUIRE(big.vh()(n, j) == Approx(big.v()(n, j)).epsilon(1e-4));
  VCase small(4, 2, 16, 5, /*std=*/1e-2f);  // r ≈ 1.6e-3, C = 100
  vscale_forward(small.vh(), {small.r.data()}, small.v(), ConstVecView(zero_theta.data(), 2), /*c0=*/100.0f);
  for (int n = 0; n < small.N; ++n)
    for (int h = 0; h < 2; ++h) {
      const double r = small.r[size_t(n * 2 + h)];
      for (int e = 0; e < 16; ++e)
        REQUIRE(small.vh()(n, h * 16 + e) == Approx(r / 100.0 * small.v()(n, h * 16 + e)).epsilon(1e-4));
    }
}

TEST_CASE("vscale Jacobian: eigenvalue r/(r+C) orthogonal to v, (r²+3Cr)/(r+C)² along v, max 9/8 at r = 3C",
          "[model][vscale]") {
  const int dh = 8, H = 1;
  const float c0 = 2.0f;
  std::vector<float> theta(1, 0.0f);
  for (double r_over_c : {0.01, 0.5, 1.0, 3.0, 40.0}) {
    // v with ‖v‖² = r_over_c · C exactly along a random direction.
    std::vector<float> v = random_vec(dh, 17);
    double n2 = 0.0;
    for (float x : v) n2 += double(x) * x;
    const double target = r_over_c * c0;
    for (float& x : v) x = float(x * std::sqrt(target / n2));
    std::vector<float> vhat(dh), r(1);
    const ConstMatView V(v.data(), 1, dh);
    vscale_forward(MatView(vhat.data(), 1, dh), {r.data()}, V, ConstVecView(theta.data(), H), c0);
    const double rr = r[0], C = c0;
    const double lam_perp = rr / (rr + C), lam_par = (rr * rr + 3 * C * rr) / ((rr + C) * (rr + C));

    // Along v: J v = λ_∥ v.
    std::vector<float> dv(dh, 0.0f);
    vscale_backward(MatView(dv.data(), 1, dh), VecView{}, V, V, ConstVecView(theta.data(), H), c0, {r.data()});
    for (int e = 0; e < dh; ++e) REQUIRE(dv[size_t(e)] == Approx(lam_par * v[size_t(e)]).epsilon(1e-5));
    if (r_over_c == 3.0) REQUIRE(lam_par == Approx(9.0 / 8.0).epsilon(1e-6));

    // Orthogonal to v: J u = λ_⊥ u (u = random minus its projection on v).
    std::vector<float> u = random_vec(dh, 23);
    double uv = 0.0, vv = 0.0;
    for (int e = 0; e < dh; ++e) uv += double(u[size_t(e)]) * v[size_t(e)], vv += double(v[size_t(e)]) * v[size_t(e)];
    for (int e = 0; e < dh; ++e) u[size_t(e)] = float(u[size_t(e)] - uv / vv * v[size_t(e)]);
    std::fill(dv.begin(), dv.end(), 0.0f);
    vscale_backward(MatView(dv.data(), 1, dh), VecView{}, ConstMatView(u.data(), 1, dh), V,
                    ConstVecView(theta.data(), H), c0, {r.data()});
    for (int e = 0; e < dh; ++e) REQUIRE(dv[size_t(e)] == Approx(lam_perp * u[size_t(e)]).margin(1e-6));
  }
  // λ_∥ ≤ 9/8 everywhere: scan r/C.
  for (double x = 0.01; x < 100.0; x *= 1.1) REQUIRE((x * x + 3 * x) / ((x + 1) * (x + 1)) <= 9.0 / 8.0 + 1e-12);
}

TEST_CASE("vscale_backward matches finite differences for dv and dθ; accumulates; leaves inputs alone",
          "[model][vscale][gradcheck]") {
  VCase c(6, 3, 4, 31);
  const float c0 = 3.0f;
  const std::vector<float> w = random_vec(int64_t(c.N) * c.d(), 41);  // probe: L = Σ w ⊙ v̂
  auto loss = [&] {
    vscale_forward(c.vh(), {c.r.data()}, c.v(), c.th(), c0);
    return probe_loss(c.vhat.data(), w.data(), int64_t(w.size()));
  };
  loss();
  std::vector<float> dbuf(c.buf.size(), 0.0f), dtheta(size_t(c.H), 0.0f);
  MatView dv(dbuf.data() + 2 * c.d(), c.N, c.d(), 3 * c.d());
  const ConstMatView dvhat(w.data(), c.N, c.d());
  const std::vector<float> buf0 = c.buf, r0 = c.r, theta0 = c.theta;
  vscale_backward(dv, VecView{dtheta.data(), c.H}, dvhat, c.v(), c.th(), c0, {c.r.data()});
  REQUIRE(c.buf == buf0);
  REQUIRE(c.r == r0);
  REQUIRE(c.theta == theta0);
  // Only the v block of the strided buffer is written.
  for (int n = 0; n < c.N; ++n)
    for (int j = 0; j < 2 * c.d(); ++j) REQUIRE(dbuf[size_t(n * 3 * c.d() + j)] == 0.0f);

  auto rv = gradcheck(c.buf.data(), int64_t(c.buf.size()), dbuf.data(), loss);
  INFO(rv.describe("dv"));
  REQUIRE(rv.rel_err < 1e-3);
  auto rt = gradcheck(c.theta.data(), c.H, dtheta.data(), loss);
  INFO(rt.describe("dtheta"));
  REQUIRE(rt.rel_err < 1e-3);

  // Accumulation: a second call adds the same amount.
  const std::vector<float> once = dbuf, theta_once = dtheta;
  loss();
  vscale_backward(dv, VecView{dtheta.data(), c.H}, dvhat, c.v(), c.th(), c0, {c.r.data()});
  for (size_t i = 0; i < dbuf.size(); ++i) REQUIRE(dbuf[i] == Approx(2.0 * once[i]).margin(1e-6));
  for (size_t i = 0; i < dtheta.size(); ++i) REQUIRE(dtheta[i] == Approx(2.0 * theta_once[i]).margin(1e-6));
}

TEST_CASE("V-scale learned and fixed: whole-model gradients incl. ∂L/∂θ, with every position encoding",
          "[model][vscale][gradcheck]") {
  DnnlContext ctx;
  for (PosEncoding pos : {PosEncoding::kNone, PosEncoding::kSinusoidal, PosEncoding::kRope}) {
    for (VScaleMode mode : {VScaleMode::kLearned, VScaleMode::kFixed}) {
      ModelConfig cfg = tiny_model(pos, MlpKind::kSwiGLU, pos == PosEncoding::kSinusoidal);
      cfg.v_scale = mode;
      cfg.v_scale_theta = 0.3f;
      const std::string tag = std::string(pos_name(pos)) + (mode == VScaleMode::kLearned ? " learned" : " fixed");
      check_model_gradients(ctx, cfg, tag, [&](Transformer& m) {
        // θ differs per layer and head so a mix-up of indices cannot pass.
        for (int l = 0; l < cfg.n_layer; ++l)
          for (int h = 0; h < cfg.n_head; ++h) {
            const VecView th = m.layout().block(l).v_scale_theta;
            REQUIRE(th.n == cfg.n_head);
            REQUIRE(th[h] == 0.3f);  // initialised to model.v_scale_theta
            th[h] = 0.3f * float(l + 1) - 0.4f * float(h);
          }
      });
    }
  }
}

TEST_CASE("V-scale parameters: θ is a per-head vector, trained only when learned, never weight-decayed",
          "[model][vscale]") {
  for (VScaleMode mode : {VScaleMode::kLearned, VScaleMode::kFixed, VScaleMode::kBackwardOnly}) {
    ModelConfig cfg = tiny_model();
    cfg.v_scale = mode;
    int64_t total = 0;
    int found = 0;
    for (const ParamInfo& p : build_param_table(cfg, &total)) {
      if (p.name.find("v_scale_theta") == std::string::npos) continue;
      ++found;
      REQUIRE(p.shape == std::vector<int64_t>{cfg.n_head});
      REQUIRE_FALSE(p.matrix);
      REQUIRE(p.trainable == (mode == VScaleMode::kLearned));
    }
    REQUIRE(found == cfg.n_layer);
  }
  ModelConfig off = tiny_model();
  int64_t t_off = 0;
  for (const ParamInfo& p : build_param_table(off, &t_off)) REQUIRE(p.name.find("v_scale") == std::string::npos);
}

TEST_CASE("V-scale's C = d_model·d_head·init_std²·exp(θ) and φ ≈ 1/2 at init", "[model][vscale]") {
  DnnlContext ctx;
  ModelConfig cfg = tiny_model();
  cfg.v_scale = VScaleMode::kFixed;
  cfg.init_std = 0.02f;
  cfg.d_model = 64;
  cfg.n_head = 4;
  cfg.seq_len = 32;
  Transformer m(cfg, 4, ctx);
  m.init_params(3);
  REQUIRE(m.v_scale_c(0, 0) == Approx(64.0 * 16 * 0.02 * 0.02).epsilon(1e-6));
  m.layout().block(1).v_scale_theta[2] = 1.0f;
  REQUIRE(m.v_scale_c(1, 2) == Approx(64.0 * 16 * 0.02 * 0.02 * std::exp(1.0)).epsilon(1e-6));
  // gradient-sinks.md §1.5: at init r ≈ C, so the mean φ over layer 0 is about 1/2.
  std::vector<int32_t> in, tg;
  make_batch(4, cfg.seq_len, cfg.vocab, 5, &in, &tg);
  m.forward(in.data(), tg.data());
  const BlockActs& a = m.layout().acts(0);
  double phi = 0.0;
  const int n = m.layout().N * cfg.n_head;
  for (int i = 0; i < n; ++i) phi += a.v_sqnorm[i] / (a.v_sqnorm[i] + m.v_scale_c(0, i % cfg.n_head));
  REQUIRE(phi / n == Approx(0.5).margin(0.1));
}

TEST_CASE("V-scale backward_only: forward bit-identical to off; ∂L/∂v = J_φ(v)·(∂L/∂v of off)",
          "[model][vscale]") {
  DnnlContext ctx;
  for (PosEncoding pos : {PosEncoding::kNone, PosEncoding::kSinusoidal, PosEncoding::kRope}) {
    INFO(pos_name(pos));
    ModelConfig off = tiny_model(pos);
    ModelConfig bo = off;
    bo.v_scale = VScaleMode::kBackwardOnly;
    bo.v_scale_theta = 0.2f;
    const int B = 2;
    Transformer a(off, B, ctx), b(bo, B, ctx);
    a.init_params(9);
    b.init_params(9);  // the same core weights (toggle tensors draw from their own stream)
    for (const ParamInfo& p : a.param_table()) {
      const ParamInfo* q = nullptr;
      for (const ParamInfo& x : b.param_table())
        if (x.name == p.name) q = &x;
      REQUIRE(q != nullptr);
      REQUIRE(std::memcmp(a.params() + p.offset, b.params() + q->offset, sizeof(float) * size_t(p.size)) == 0);
    }
    std::vector<int32_t> in, tg;
    make_batch(B, off.seq_len, off.vocab, 13, &in, &tg);
    a.zero_grad();
    b.zero_grad();
    const double la = a.forward(in.data(), tg.data()), lb = b.forward(in.data(), tg.data());
    REQUIRE(la == lb);
    const Layout &ya = a.layout(), &yb = b.layout();
    REQUIRE(std::memcmp(ya.head_acts().logits.p, yb.head_acts().logits.p, sizeof(float) * size_t(ya.N * ya.V)) == 0);
    for (int l = 0; l < ya.L; ++l)
      REQUIRE(std::memcmp(ya.acts(l).att.p, yb.acts(l).att.p, sizeof(float) * size_t(ya.N * ya.d)) == 0);

    a.backward();
    b.backward();
    // The last layer's ∂L/∂v̂ is the same in both models (identical forward, identical downstream
    // backward): backward_only's ∂L/∂v must be J_φ(v) applied to off's, computed here in double.
    const int l = ya.L - 1, d = ya.d, dh = ya.dh;
    const ConstMatView dv_off = ConstMatView(ya.act_grads(l).dqkv).col_block(2 * d, d);
    const ConstMatView dv_bo = ConstMatView(yb.act_grads(l).dqkv).col_block(2 * d, d);
    const ConstMatView v = ConstMatView(yb.acts(l).qkv).col_block(2 * d, d);
    double err = 0.0, ref = 0.0;
    for (int n = 0; n < ya.N; ++n)
      for (int h = 0; h < ya.H; ++h) {
        double r = 0.0, dot = 0.0;
        for (int e = 0; e < dh; ++e) {
          r += double(v(n, h * dh + e)) * v(n, h * dh + e);
          dot += double(v(n, h * dh + e)) * dv_off(n, h * dh + e);
        }
        const double C = bo.v_scale_c0() * std::exp(0.2);
        for (int e = 0; e < dh; ++e) {
          const double want = r / (r + C) * dv_off(n, h * dh + e) + 2 * C / ((r + C) * (r + C)) * dot * v(n, h * dh + e);
          err = std::max(err, std::fabs(want - dv_bo(n, h * dh + e)));
          ref = std::max(ref, std::fabs(want));
        }
      }
    REQUIRE(ref > 1e-4);
    REQUIRE(err < 1e-5 * ref);
    // Parameters that do not feed the last layer's values get bitwise the same gradient; θ gets none.
    for (const ParamInfo& p : b.param_table()) {
      if (p.name.find("v_scale_theta") != std::string::npos) {
        for (int64_t i = 0; i < p.size; ++i) REQUIRE(b.grads()[p.offset + i] == 0.0f);
        continue;
      }
      const bool downstream = p.name == "final_norm.g" || p.name == "lm_head" ||
                              p.name.rfind("blocks." + std::to_string(l) + ".mlp", 0) == 0 ||
                              p.name == "blocks." + std::to_string(l) + ".attn.w_o";
      if (!downstream) continue;
      for (const ParamInfo& q : a.param_table())
        if (q.name == p.name)
          REQUIRE(std::memcmp(a.grads() + q.offset, b.grads() + p.offset, sizeof(float) * size_t(p.size)) == 0);
    }
  }
}
