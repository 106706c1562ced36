// estimate_layout (model/layout.h): the config check refuses what cannot fit from this estimate, before any
// allocation; it must track the real arenas closely, for every toggle that adds activations.
#include <catch2/catch.hpp>

#include "model/dnnl_context.h"
#include "model/layout.h"
#include "tests/support/tiny_model.h"

using namespace attnlab;

TEST_CASE("estimate_layout is within 10% of the allocated parameters and activations", "[model][layout]") {
  struct Case {
    const char* name;
    void (*set)(ModelConfig&);
  };
  const Case cases[] = {
      {"default", [](ModelConfig&) {}},
      {"gelu tied", [](ModelConfig& c) { c.mlp = MlpKind::kGELU, c.tied_head = true; }},
      {"sink token", [](ModelConfig& c) { c.sink_token = true; }},
      {"qk_norm + v_scale", [](ModelConfig& c) { c.qk_norm = true, c.v_scale = VScaleMode::kLearned; }},
      {"post-norm", [](ModelConfig& c) { c.norm_position = NormPosition::kPost; }},
      {"sigma_reparam", [](ModelConfig& c) { c.sigma_reparam = true; }},
      {"long context", [](ModelConfig& c) { c.seq_len = 128; }},
      {"wide vocab", [](ModelConfig& c) { c.vocab = 4096; }},
  };
  for (const Case& k : cases) {
    INFO(k.name);
    ModelConfig c = testing::tiny_model({.vocab = 64, .d_model = 64, .n_layer = 3, .n_head = 4, .seq_len = 32,
                                         .mlp_hidden = 128});
    k.set(c);
    const int B = 4;
    const LayoutEstimate e = estimate_layout(c, B);
    Layout y(c, B);
    CHECK(e.params == Approx(double(y.n_params())).epsilon(0.10));
    CHECK(e.activations == Approx(double(y.activation_floats())).epsilon(0.10));
  }
  // Absurd sizes stay finite (double), where int64 products would overflow.
  ModelConfig huge;
  huge.d_model = 1 << 30, huge.n_head = 1 << 10, huge.seq_len = 1 << 30, huge.n_layer = 1 << 30;
  const LayoutEstimate h = estimate_layout(huge, 1 << 30);
  CHECK(h.activations > 1e30);
  CHECK(std::isfinite(h.activations));
}
