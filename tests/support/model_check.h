// model_check.h: the whole-model gradient check of the toggle tests (tests/model/test_vscale.cpp, test_toggles.cpp,
// test_block_variants.cpp): a finite-difference check of every parameter tensor through the composed
// forward/backward (the recipe of tests/support/gradcheck.h on the model's mean loss), on the tiny models and
// seeded batches of tests/support/tiny_model.h.
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "model/transformer.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tiny_model.h"

namespace attnlab::testing {

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
