// End-to-end training properties at the Trainer level: overfitting, determinism, bitwise resume.
#include <catch2/catch.hpp>

#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "model/rng.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "tests/support/fixtures.h"

using namespace attnlab;
using namespace attnlab::testing;

TEST_CASE("overfits a single batch to near-zero loss", "[e2e]") {
  RunConfig cfg = tiny_run_config();
  cfg.optim.lr = 1e-2f;
  cfg.optim.weight_decay = 0.0f;
  DnnlContext ctx;
  Transformer m(cfg.model, cfg.train.batch, ctx);
  m.init_params(3);
  AdamW opt(cfg.optim, m.n_params(), decay_groups(m.param_table()));
  const int n = cfg.train.batch * cfg.model.seq_len;
  std::vector<int32_t> in(static_cast<size_t>(n)), tg(static_cast<size_t>(n));
  Rng rng(5);
  for (auto& x : in) x = int32_t(rng.below(32));
  for (auto& x : tg) x = int32_t(rng.below(32));
  double first = 0.0, loss = 0.0;
  for (int t = 1; t <= 300; ++t) {
    m.zero_grad();
    loss = m.forward(in.data(), tg.data());
    if (t == 1) first = loss;
    m.backward();
    opt.step(m.params(), m.grads(), cfg.optim.lr, t);
  }
  INFO("first loss " << first << ", last loss " << loss);
  REQUIRE(first == Approx(std::log(32.0)).margin(0.1));
  REQUIRE(loss < 0.05);
}

namespace {

std::vector<double> train_losses(const RunConfig& cfg, int steps, std::vector<float>* params = nullptr) {
  DnnlContext ctx;
  const auto data = make_dataset(cfg.data, cfg.model, cfg.train.seed);
  Trainer t(cfg, ctx, *data);
  std::vector<double> losses;
  for (int i = 0; i < steps; ++i) losses.push_back(t.step().loss);
  if (params) params->assign(t.model().params(), t.model().params() + t.model().n_params());
  return losses;
}

}  // namespace

TEST_CASE("same config, seed and threads give bitwise identical losses and parameters", "[e2e]") {
  RunConfig cfg = tiny_run_config();
  omp_set_num_threads(2);
  std::vector<float> p1, p2;
  const auto a = train_losses(cfg, 15, &p1);
  const auto b = train_losses(cfg, 15, &p2);
  REQUIRE(a == b);
  REQUIRE(std::memcmp(p1.data(), p2.data(), p1.size() * sizeof(float)) == 0);
  REQUIRE(a.back() < a.front());  // and it is learning

  cfg.train.seed = 12;  // a different seed is a different run
  REQUIRE(train_losses(cfg, 3) != std::vector<double>(a.begin(), a.begin() + 3));
}

TEST_CASE("gradient accumulation: accum=2 trains on both micro-batches", "[e2e]") {
  RunConfig cfg = tiny_run_config();
  cfg.train.accum = 2;
  const auto losses = train_losses(cfg, 5);
  for (double l : losses) REQUIRE(std::isfinite(l));
  // Step 0's loss is the mean of the two micro-batches' losses at the initial parameters.
  DnnlContext ctx;
  const auto data = make_dataset(cfg.data, cfg.model, cfg.train.seed);
  Transformer m(cfg.model, cfg.train.batch, ctx);
  m.init_params(cfg.train.seed);
  const int n = cfg.train.batch * cfg.model.seq_len;
  std::vector<int32_t> in(static_cast<size_t>(n)), tg(static_cast<size_t>(n));
  double sum = 0.0;
  for (int micro = 0; micro < 2; ++micro) {
    data->fill(Split::kTrain, uint64_t(micro), cfg.train.batch, in.data(), tg.data());
    sum += m.forward(in.data(), tg.data());
  }
  REQUIRE(losses[0] == sum / 2);
}

TEST_CASE("resume from a checkpoint continues bitwise identically", "[e2e]") {
  const RunConfig cfg = tiny_run_config();
  TempDir dir("resume");
  const std::string ckpt = dir.file("step5.safetensors");
  std::vector<double> straight, resumed;
  std::vector<float> p_straight, p_resumed;
  {
    DnnlContext ctx;
    const auto data = make_dataset(cfg.data, cfg.model, cfg.train.seed);
    Trainer t(cfg, ctx, *data);
    for (int i = 0; i < 12; ++i) {
      straight.push_back(t.step().loss);
      if (i == 4) save_checkpoint(ckpt, t.model(), t.optim(), 5, cfg);
      if (i == 4) t.evaluate();  // evaluation in between must not disturb anything
    }
    p_straight.assign(t.model().params(), t.model().params() + t.model().n_params());
  }
  {
    DnnlContext ctx;
    const auto data = make_dataset(cfg.data, cfg.model, cfg.train.seed);
    Trainer t(cfg, ctx, *data);
    t.model().init_params(999);  // garbage that the checkpoint must overwrite entirely
    t.set_next_step(load_checkpoint(ckpt, t.model(), &t.optim()));
    REQUIRE(t.next_step() == 5);
    for (int i = 5; i < 12; ++i) resumed.push_back(t.step().loss);
    p_resumed.assign(t.model().params(), t.model().params() + t.model().n_params());
  }
  REQUIRE(std::vector<double>(straight.begin() + 5, straight.end()) == resumed);
  REQUIRE(std::memcmp(p_straight.data(), p_resumed.data(), p_straight.size() * sizeof(float)) == 0);
}

TEST_CASE("a checkpoint for a different model is refused with the differing field", "[e2e]") {
  RunConfig cfg = tiny_run_config();
  TempDir dir("mismatch");
  const std::string ckpt = dir.file("c.safetensors");
  DnnlContext ctx;
  {
    Transformer m(cfg.model, 2, ctx);
    m.init_params(1);
    AdamW opt(cfg.optim, m.n_params(), decay_groups(m.param_table()));
    save_checkpoint(ckpt, m, opt, 3, cfg);
  }
  cfg.model.n_layer = 3;
  Transformer other(cfg.model, 2, ctx);
  try {
    load_checkpoint(ckpt, other, nullptr);
    FAIL("loaded a checkpoint of a different model");
  } catch (const IoError& e) {
    const std::string msg = e.what();
    INFO(msg);
    REQUIRE(msg.find("c.safetensors") != std::string::npos);
    REQUIRE(msg.find("n_layer=2") != std::string::npos);
    REQUIRE(msg.find("n_layer=3") != std::string::npos);
  }
}
