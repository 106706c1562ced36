// Whole-model tests: finite differences through the composed forward/backward for every combination of
// positions × MLP × tied head, plus contracts the composition must keep.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "model/transformer.h"
#include "tests/support/model_check.h"
#include "tests/support/tiny_model.h"

using namespace attnlab;
using attnlab::testing::check_model_gradients;
using attnlab::testing::make_batch;
using attnlab::testing::pos_name;
using attnlab::testing::tiny_model;

TEST_CASE("whole-model gradient matches finite differences for every pos x mlp x tied", "[model][gradcheck]") {
  DnnlContext ctx;
  for (PosEncoding pos : {PosEncoding::kNone, PosEncoding::kSinusoidal, PosEncoding::kRope}) {
    for (MlpKind mlp : {MlpKind::kSwiGLU, MlpKind::kGELU}) {
      for (bool tied : {false, true}) {
        const ModelConfig cfg = tiny_model(pos, mlp, tied);
        check_model_gradients(ctx, cfg, std::string(pos_name(pos)) + (mlp == MlpKind::kSwiGLU ? " swiglu" : " gelu") +
                                            (tied ? " tied" : " untied"));
      }
    }
  }
}

TEST_CASE("loss at init is close to ln V and backward accumulates", "[model]") {
  DnnlContext ctx;
  ModelConfig cfg = tiny_model(PosEncoding::kRope, MlpKind::kSwiGLU, false);
  cfg.init_std = 0.02f;
  cfg.vocab = 64;
  Transformer m(cfg, 3, ctx);
  m.init_params(1);
  std::vector<int32_t> in, tg;
  make_batch(3, cfg.seq_len, cfg.vocab, 3, &in, &tg);
  const double loss = m.forward(in.data(), tg.data());
  REQUIRE(std::fabs(loss - std::log(64.0)) < 0.05);

  m.zero_grad();
  m.forward(in.data(), tg.data());
  m.backward(1.0f);
  const std::vector<float> once(m.grads(), m.grads() + m.n_params());
  m.backward(1.0f);  // same saved state, second accumulation
  // oneDNN's sum post-op may fold the old value into the accumulator before the K loop, so "2x" holds
  // to rounding, not bitwise, for matmul weights.
  double worst = 0.0;
  for (int64_t i = 0; i < m.n_params(); ++i)
    worst = std::max(worst, std::fabs(double(m.grads()[i]) - 2.0 * once[size_t(i)]) / (1e-6 + std::fabs(2.0 * once[size_t(i)])));
  REQUIRE(worst < 1e-4);
}

TEST_CASE("forward and backward are deterministic and leave parameters untouched", "[model]") {
  DnnlContext ctx;
  const ModelConfig cfg = tiny_model(PosEncoding::kRope, MlpKind::kSwiGLU, false);
  Transformer m(cfg, 2, ctx);
  m.init_params(5);
  const std::vector<float> p0(m.params(), m.params() + m.n_params());
  std::vector<int32_t> in, tg;
  make_batch(2, cfg.seq_len, cfg.vocab, 9, &in, &tg);
  m.zero_grad();
  const double l1 = m.forward(in.data(), tg.data());
  m.backward();
  const std::vector<float> g1(m.grads(), m.grads() + m.n_params());
  m.zero_grad();
  const double l2 = m.forward(in.data(), tg.data());
  m.backward();
  REQUIRE(l1 == l2);
  REQUIRE(std::memcmp(g1.data(), m.grads(), sizeof(float) * g1.size()) == 0);
  REQUIRE(std::memcmp(p0.data(), m.params(), sizeof(float) * p0.size()) == 0);
}

TEST_CASE("parameter table names, shapes and adjacency of fused weights", "[model]") {
  ModelConfig cfg = tiny_model(PosEncoding::kRope, MlpKind::kSwiGLU, false);
  int64_t total = 0;
  const auto t = build_param_table(cfg, &total);
  auto find = [&](const std::string& n) -> const ParamInfo& {
    for (const auto& p : t)
      if (p.name == n) return p;
    FAIL("missing " << n);
    return t[0];
  };
  REQUIRE(find("tok_emb").shape == std::vector<int64_t>{11, 16});
  REQUIRE(find("blocks.1.attn.w_k").shape == std::vector<int64_t>{16, 16});
  REQUIRE(find("blocks.0.mlp.w_down").shape == std::vector<int64_t>{16, 24});
  REQUIRE(find("blocks.0.attn.w_k").offset == find("blocks.0.attn.w_q").offset + 256);
  REQUIRE(find("blocks.0.attn.w_v").offset == find("blocks.0.attn.w_k").offset + 256);
  REQUIRE(find("blocks.0.mlp.w_up").offset == find("blocks.0.mlp.w_gate").offset + 24 * 16);
  REQUIRE(find("lm_head").shape == std::vector<int64_t>{11, 16});
  REQUIRE_FALSE(find("final_norm.g").matrix);
  int64_t sum = 0;
  for (const auto& p : t) sum += p.size;
  REQUIRE(sum == total);
  cfg.tied_head = true;
  for (const auto& p : build_param_table(cfg, &total)) REQUIRE(p.name != "lm_head");
}
