// AdamW, the LR schedule and gradient clipping against independent double-precision references.
#include <catch2/catch.hpp>

#include <omp.h>

#include <cmath>
#include <vector>

#include "train/adamw.h"
#include "train/grad_clip.h"
#include "train/lr_schedule.h"
#include "tests/support/gradcheck.h"

using namespace attnlab;

TEST_CASE("AdamW matches PyTorch's update rule, decaying only the decay group", "[train][optim]") {
  for (DecayMode mode : {DecayMode::kCoupled, DecayMode::kIndependent}) {
    OptimConfig cfg;
    cfg.lr = 0.01f;
    cfg.beta1 = 0.9f;
    cfg.beta2 = 0.95f;
    cfg.eps = 1e-8f;
    cfg.weight_decay = 0.1f;
    cfg.decay_mode = mode;
    const int n = 10;
    AdamW opt(cfg, n, {{0, 6, true}, {6, 4, false}});
    std::vector<float> p = testing::random_vec(n, 1);
    std::vector<double> rp(p.begin(), p.end()), rm(n, 0.0), rv(n, 0.0);
    for (int t = 1; t <= 5; ++t) {
      const std::vector<float> g = testing::random_vec(n, 100 + t);
      const float lr = cfg.lr * (t == 5 ? 0.5f : 1.0f);  // a scheduled lr below the peak at the last step
      opt.step(p.data(), g.data(), lr, t);
      for (int i = 0; i < n; ++i) {
        rm[i] = 0.9 * rm[i] + 0.1 * g[i];
        rv[i] = 0.95 * rv[i] + 0.05 * double(g[i]) * g[i];
        const double mh = rm[i] / (1 - std::pow(0.9, t)), vh = rv[i] / (1 - std::pow(0.95, t));
        const double decay = i < 6 ? (mode == DecayMode::kCoupled ? lr * 0.1 : (lr / cfg.lr) * 0.1) : 0.0;
        rp[i] = rp[i] * (1 - decay) - lr * mh / (std::sqrt(vh) + 1e-8);
      }
    }
    for (int i = 0; i < n; ++i) {
      INFO("mode " << int(mode) << " index " << i);
      REQUIRE(p[i] == Approx(rp[i]).epsilon(1e-5));
    }
  }
}

TEST_CASE("LR schedule: warmup, cosine and linear end at the floor, constant stays", "[train][optim]") {
  ScheduleConfig s;
  s.warmup = 10;
  s.min_lr_frac = 0.1f;
  s.kind = ScheduleKind::kCosine;
  REQUIRE(lr_at(0, 100, 1.0f, s) == Approx(0.1f));
  REQUIRE(lr_at(9, 100, 1.0f, s) == Approx(1.0f));
  REQUIRE(lr_at(10, 100, 1.0f, s) == Approx(1.0f));
  REQUIRE(lr_at(99, 100, 1.0f, s) == Approx(0.1f));
  const float mid = lr_at(10 + 89 / 2, 100, 1.0f, s);
  REQUIRE(mid == Approx(0.55f).margin(0.02));
  for (int t = 11; t < 100; ++t) REQUIRE(lr_at(t, 100, 1.0f, s) <= lr_at(t - 1, 100, 1.0f, s));
  s.kind = ScheduleKind::kLinear;
  REQUIRE(lr_at(99, 100, 2.0f, s) == Approx(0.2f));
  REQUIRE(lr_at(10 + 89 / 2, 100, 1.0f, s) == Approx(0.55f).margin(0.01));
  s.kind = ScheduleKind::kConstant;
  REQUIRE(lr_at(99, 100, 2.0f, s) == 2.0f);
  s.warmup = 0;
  REQUIRE(lr_at(0, 100, 2.0f, s) == 2.0f);
}

TEST_CASE("global gradient norm is exact and thread-count independent; clipping scales to the bound",
          "[train][optim]") {
  std::vector<float> g(100000, 0.0f);
  g[7] = 3.0f;
  g[99999] = 4.0f;
  std::vector<double> scratch(size_t(grad_norm_scratch_size(int64_t(g.size()))));
  REQUIRE(global_grad_norm(g.data(), int64_t(g.size()), scratch.data()) == 5.0);

  g = testing::random_vec(100003, 3);
  omp_set_num_threads(1);
  const double n1 = global_grad_norm(g.data(), int64_t(g.size()), scratch.data());
  omp_set_num_threads(2);
  const double n2 = global_grad_norm(g.data(), int64_t(g.size()), scratch.data());
  REQUIRE(n1 == n2);

  REQUIRE_FALSE(clip_grads(g.data(), int64_t(g.size()), n1, 0.0));       // 0 disables clipping
  REQUIRE_FALSE(clip_grads(g.data(), int64_t(g.size()), n1, 2.0 * n1));  // under the bound: untouched
  REQUIRE(clip_grads(g.data(), int64_t(g.size()), n1, 1.0));
  REQUIRE(global_grad_norm(g.data(), int64_t(g.size()), scratch.data()) == Approx(1.0).epsilon(1e-5));

  g[5] = NAN;
  REQUIRE(std::isnan(global_grad_norm(g.data(), int64_t(g.size()), scratch.data())));
}
