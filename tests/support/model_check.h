// model_check.h: whole-model helpers for the toggle tests (tests/model/test_vscale.cpp, test_toggles.cpp):
// a tiny config, a seeded batch, and a finite-difference check of every parameter tensor through the
// composed forward/backward (the recipe of tests/support/gradcheck.h on the model's mean loss).
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "model/transformer.h"
#include "tests/support/gradcheck.h"

namespace attnlab::testing {

// 2 layers, d = 16, 2 heads of 8, T = 8: small enough for central differences on every tensor.
inline ModelConfig tiny_model(PosEncoding pos = PosEncoding::kRope, MlpKind mlp = MlpKind::kSwiGLU,
                              bool tied = false) {
  ModelConfig c;
  c.vocab = 11;
  c.d_model = 16;
  c.n_layer = 2;
  c.n_head = 2;
  c.seq_len = 8;
  c.mlp = mlp;
  c.mlp_hidden = 24;
  c.pos = pos;
  c.tied_head = tied;
  c.init_std = 0.3f;  // larger than the 0.02 default so every gradient is well above float noise
  return c;
}

inline const char* pos_name(PosEncoding p) {
  return p == PosEncoding::kRope ? "rope" : p == PosEncoding::kSinusoidal ? "sinusoidal" : "none";
}

// Seeded inputs and targets [B, T]; targets[3] = -1 exercises the ignore mask.
inline void make_batch(int B, int T, int V, uint64_t seed, std::vector<int32_t>* in, std::vector<int32_t>* tg) {
  Rng rng(seed);
  in->resize(size_t(B) * T);
  tg->resize(size_t(B) * T);
  for (auto& x : *in) x = int32_t(rng.below(uint64_t(V)));
  for (auto& x : *tg) x = int32_t(rng.below(uint64_t(V)));
  (*tg)[3] = -1;
}

// Finite differences of the model's loss against backward, for every trainable parameter tensor (up to
// `points` seeded elements each); non-trainable tensors must get exactly zero gradient. `prepare` runs
// after init_params (to set toggle parameters to interesting values, call set_step, ...).
inline void check_model_gradients(DnnlContext& ctx, const ModelConfig& cfg, const std::string& tag,
                                  const std::function<void(Transformer&)>& prepare = {}, int points = 24,
                                  double tol = 2e-2, int B = 2) {
  Transformer m(cfg, B, ctx);
  m.init_params(42);
  if (prepare) prepare(m);
  std::vector<int32_t> in, tg;
  make_batch(B, cfg.seq_len, cfg.vocab, 7, &in, &tg);
  m.zero_grad();
  m.forward(in.data(), tg.data());
  m.backward(1.0f);
  const std::vector<float> analytic(m.grads(), m.grads() + m.n_params());
  auto loss = [&] { return m.forward(in.data(), tg.data()); };
  for (const ParamInfo& p : m.param_table()) {
    if (!p.trainable) {
      double worst = 0.0;
      for (int64_t i = 0; i < p.size; ++i) worst = std::max(worst, std::fabs(double(analytic[size_t(p.offset + i)])));
      INFO(tag << ": non-trainable " << p.name << " got a gradient");
      REQUIRE(worst == 0.0);
      continue;
    }
    const auto r = gradcheck(m.params() + p.offset, p.size, analytic.data() + p.offset, loss, points,
                             /*seed=*/uint64_t(p.offset) + 1, /*h_rel=*/1e-2);
    INFO(tag << " " << r.describe(p.name));
    REQUIRE(r.rel_err < tol);
  }
}

}  // namespace attnlab::testing
