// Every-step statistics: the tensor slot scheme, per-tensor gradient and update statistics against naive
// loops and closed forms, thread-count independence, and the logit / log-partition statistics.
#include <catch2/catch.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "instrument/step_stats.h"
#include "model/rng.h"
#include "tests/support/tiny_model.h"

using namespace attnlab;

namespace {

ModelConfig small_config(MlpKind mlp, bool tied) {
  return testing::tiny_model({.vocab = 40, .d_model = 16, .n_layer = 3, .n_head = 2, .seq_len = 8, .mlp_hidden = 24,
                              .mlp = mlp, .tied_head = tied});
}

std::vector<float> random_buffer(int64_t n, uint64_t seed, double std = 1.0) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = float(std * rng.normal());
  return v;
}

// The role name after "blocks.<l>." (or the whole name outside the blocks).
std::string role(const std::string& name) {
  if (name.rfind("blocks.", 0) != 0) return name;
  return name.substr(name.find('.', 7) + 1);
}

}  // namespace

TEST_CASE("every parameter gets a unique (layer, slot) with its documented role", "[instrument][step]") {
  for (MlpKind mlp : {MlpKind::kSwiGLU, MlpKind::kGELU}) {
    for (bool tied : {false, true}) {
      const ModelConfig cfg = small_config(mlp, tied);
      int64_t total = 0;
      const auto table = build_param_table(cfg, &total);
      std::set<std::pair<int, int>> seen;
      for (const ParamInfo& p : table) {
        const ParamSlot s = param_slot(p.name);
        INFO(p.name);
        REQUIRE(s.slot >= 0);
        REQUIRE(seen.insert({s.layer, s.slot}).second);
        REQUIRE(role(p.name) == slot_name(s.layer, s.slot));
      }
      REQUIRE(seen.size() == table.size());
    }
  }
  // The fixed numbering of docs/step.md.
  REQUIRE(param_slot("tok_emb").layer == -1);
  REQUIRE(param_slot("tok_emb").slot == kSlotTokEmb);
  REQUIRE(param_slot("final_norm.g").slot == 1);
  REQUIRE(param_slot("lm_head").slot == 2);
  REQUIRE(param_slot("blocks.12.attn_norm.g").layer == 12);
  REQUIRE(param_slot("blocks.12.attn_norm.g").slot == 0);
  REQUIRE(param_slot("blocks.0.attn.w_q").slot == 1);
  REQUIRE(param_slot("blocks.0.attn.w_k").slot == 2);
  REQUIRE(param_slot("blocks.0.attn.w_v").slot == 3);
  REQUIRE(param_slot("blocks.0.attn.w_o").slot == 4);
  REQUIRE(param_slot("blocks.0.mlp_norm.g").slot == 5);
  REQUIRE(param_slot("blocks.0.mlp.w_gate").slot == 6);
  REQUIRE(param_slot("blocks.0.mlp.w_up").slot == 7);
  REQUIRE(param_slot("blocks.0.mlp.w_down").slot == 8);
  REQUIRE(param_slot("blocks.3.attn.theta").layer == 3);
  REQUIRE(param_slot("blocks.3.attn.theta").slot == -1);
  REQUIRE(param_slot("blocks.x.attn.w_q").layer == -1);
}

TEST_CASE("per-tensor gradient norm, RMS and tiny fraction match a naive double loop", "[instrument][step]") {
  const ModelConfig cfg = small_config(MlpKind::kSwiGLU, false);
  int64_t total = 0;
  const auto table = build_param_table(cfg, &total);
  std::vector<float> g = random_buffer(total, 5, 1e-3);
  // Plant tiny entries: every 7th is 0, every 11th is 5e-9 (tiny), every 13th is 2e-8 (not tiny).
  for (int64_t i = 0; i < total; ++i) {
    if (i % 13 == 0) g[size_t(i)] = 2e-8f;
    if (i % 11 == 0) g[size_t(i)] = 5e-9f;
    if (i % 7 == 0) g[size_t(i)] = 0.0f;
  }
  MemoryOut out;
  param_grad_metrics(table, g.data(), out);

  std::vector<double> block_sq(size_t(cfg.n_layer), 0.0);
  std::vector<int64_t> block_n(size_t(cfg.n_layer), 0), block_tiny(size_t(cfg.n_layer), 0);
  double all_sq = 0.0;
  int64_t all_tiny = 0;
  for (const ParamInfo& p : table) {
    double sq = 0.0;
    int64_t tiny = 0;
    for (int64_t i = p.offset; i < p.offset + p.size; ++i) {
      sq += double(g[size_t(i)]) * g[size_t(i)];
      if (i % 7 == 0 || i % 11 == 0) ++tiny;  // by construction, not by testing |g| < 1e-8
    }
    const ParamSlot s = param_slot(p.name);
    INFO(p.name);
    REQUIRE(out.get("grad_norm_p", s.layer, s.slot) == Approx(std::sqrt(sq)).epsilon(1e-12));
    REQUIRE(out.get("grad_rms_p", s.layer, s.slot) == Approx(std::sqrt(sq / double(p.size))).epsilon(1e-12));
    REQUIRE(out.get("grad_tiny_frac", s.layer, s.slot) == Approx(double(tiny) / double(p.size)).epsilon(1e-15));
    if (s.layer >= 0) {
      block_sq[size_t(s.layer)] += sq;
      block_n[size_t(s.layer)] += p.size;
      block_tiny[size_t(s.layer)] += tiny;
    }
    all_sq += sq;
    all_tiny += tiny;
  }
  for (int l = 0; l < cfg.n_layer; ++l) {
    REQUIRE(out.get("grad_norm_p", l, -1) == Approx(std::sqrt(block_sq[size_t(l)])).epsilon(1e-12));
    REQUIRE(out.get("grad_rms_p", l, -1) ==
            Approx(std::sqrt(block_sq[size_t(l)] / double(block_n[size_t(l)]))).epsilon(1e-12));
    REQUIRE(out.get("grad_tiny_frac", l, -1) ==
            Approx(double(block_tiny[size_t(l)]) / double(block_n[size_t(l)])).epsilon(1e-15));
  }
  REQUIRE(out.get("grad_norm_p") == Approx(std::sqrt(all_sq)).epsilon(1e-12));
  REQUIRE(out.get("grad_tiny_frac") == Approx(double(all_tiny) / double(total)).epsilon(1e-15));
  // One value per tensor, per block and for the model, for each of the three metrics.
  REQUIRE(out.entries.size() == 3 * (table.size() + size_t(cfg.n_layer) + 1));
}

TEST_CASE("update ratio and RMS for a known update", "[instrument][step]") {
  const ModelConfig cfg = small_config(MlpKind::kGELU, true);
  int64_t total = 0;
  const auto table = build_param_table(cfg, &total);
  // W = 2 everywhere, ΔW = ±0.25 alternating: ‖ΔW‖/‖W‖ = 0.125 and RMS(ΔW) = 0.25 for every tensor,
  // every block and the model, exactly.
  std::vector<float> before(size_t(total), 2.0f), after(static_cast<size_t>(total));
  for (int64_t i = 0; i < total; ++i) after[size_t(i)] = i % 2 ? 2.25f : 1.75f;
  MemoryOut out;
  update_metrics(table, before.data(), after.data(), out);
  REQUIRE(out.entries.size() == 2 * (table.size() + size_t(cfg.n_layer) + 1));
  for (const auto& e : out.entries) {
    INFO(e.name << " " << e.layer << " " << e.head);
    REQUIRE(e.value == Approx(std::strcmp(e.name, "upd_ratio") == 0 ? 0.125 : 0.25).epsilon(1e-14));
  }

  SECTION("random update against a naive loop") {
    const std::vector<float> w = random_buffer(total, 8, 0.02);
    std::vector<float> w2 = w;
    const std::vector<float> dw = random_buffer(total, 9, 1e-4);
    for (size_t i = 0; i < w2.size(); ++i) w2[i] += dw[i];
    MemoryOut o;
    update_metrics(table, w.data(), w2.data(), o);
    for (const ParamInfo& p : table) {
      double d2 = 0.0, n2 = 0.0;
      for (int64_t i = p.offset; i < p.offset + p.size; ++i) {
        const double d = double(w2[size_t(i)]) - double(w[size_t(i)]);
        d2 += d * d;
        n2 += double(w[size_t(i)]) * w[size_t(i)];
      }
      const ParamSlot s = param_slot(p.name);
      REQUIRE(o.get("upd_ratio", s.layer, s.slot) == Approx(std::sqrt(d2 / n2)).epsilon(1e-12));
      REQUIRE(o.get("upd_rms", s.layer, s.slot) == Approx(std::sqrt(d2 / double(p.size))).epsilon(1e-12));
    }
  }
}

TEST_CASE("unlisted tensors are numbered from kFirstUnlistedSlot within their block", "[instrument][step]") {
  std::vector<ParamInfo> table;
  auto add = [&](const char* name, int64_t n) {
    ParamInfo p;
    p.name = name;
    p.shape = {n};
    p.size = n;
    p.offset = table.empty() ? 0 : table.back().offset + table.back().size;
    table.push_back(p);
  };
  add("tok_emb", 4);
  add("blocks.0.attn.w_q", 4);
  add("blocks.0.attn.theta", 2);
  add("blocks.0.attn.phi", 2);
  add("blocks.1.attn.theta", 2);
  add("scale", 1);
  std::vector<float> g = {1, 1, 1, 1, /*w_q*/ 0, 0, 3, 4, /*theta*/ 0, 0, /*phi*/ 6, 8, /*1.theta*/ 0, 1, /*scale*/ 2};
  MemoryOut out;
  param_grad_metrics(table, g.data(), out);
  REQUIRE(out.get("grad_norm_p", -1, kSlotTokEmb) == 2.0);
  REQUIRE(out.get("grad_norm_p", 0, kSlotWq) == 5.0);
  REQUIRE(out.get("grad_norm_p", 0, kFirstUnlistedSlot) == 0.0);
  REQUIRE(out.get("grad_norm_p", 0, kFirstUnlistedSlot + 1) == 10.0);
  REQUIRE(out.get("grad_norm_p", 1, kFirstUnlistedSlot) == 1.0);
  REQUIRE(out.get("grad_norm_p", -1, kFirstUnlistedSlot) == 2.0);
  REQUIRE(out.get("grad_norm_p", 0, -1) == Approx(std::sqrt(125.0)).epsilon(1e-15));
  REQUIRE(out.get("grad_tiny_frac", 0, kFirstUnlistedSlot) == 1.0);
}

TEST_CASE("step statistics are bitwise identical for 1 and 2 threads", "[instrument][step]") {
  ModelConfig cfg = small_config(MlpKind::kSwiGLU, false);
  cfg.d_model = 128;
  cfg.mlp_hidden = 512;  // tensors of 65k elements: several chunks each
  int64_t total = 0;
  const auto table = build_param_table(cfg, &total);
  const std::vector<float> g = random_buffer(total, 1), w = random_buffer(total, 2), w2 = random_buffer(total, 3);
  const int threads = omp_get_max_threads();
  MemoryOut a, b;
  omp_set_num_threads(1);
  param_grad_metrics(table, g.data(), a);
  update_metrics(table, w.data(), w2.data(), a);
  omp_set_num_threads(2);
  param_grad_metrics(table, g.data(), b);
  update_metrics(table, w.data(), w2.data(), b);
  omp_set_num_threads(threads);
  REQUIRE(a.entries.size() == b.entries.size());
  for (size_t i = 0; i < a.entries.size(); ++i)
    REQUIRE(std::memcmp(&a.entries[i].value, &b.entries[i].value, sizeof(double)) == 0);
  // And against a naive loop over a multi-chunk tensor.
  const ParamInfo& big = table[1 + 7];  // blocks.0.mlp.w_up [512, 128]
  REQUIRE(big.size > 8192 * 4);
  double sq = 0.0;
  for (int64_t i = big.offset; i < big.offset + big.size; ++i) sq += double(g[size_t(i)]) * g[size_t(i)];
  REQUIRE(grad_sums(g.data() + big.offset, big.size).sq == Approx(sq).epsilon(1e-13));
}

TEST_CASE("logit statistics on planted logits and log-partitions", "[instrument][step]") {
  ModelConfig cfg = small_config(MlpKind::kSwiGLU, false);
  cfg.seq_len = 15;
  const int B = 2, N = B * cfg.seq_len, V = cfg.vocab;  // N = 30, V = 40
  Layout y(cfg, B);
  const MatView logits = y.head_acts().logits;
  for (int n = 0; n < N; ++n) {
    for (int v = 0; v < V; ++v) logits(n, v) = float(n % 3) - float(v);
    y.head_acts().lse[n] = float(n % 5);
  }
  MemoryOut out;
  logit_metrics(y, out);
  // y[n, v] = (n mod 3) − v: max 2, min −(V−1); mean = mean(n mod 3) − (V−1)/2 = 1 − 19.5.
  REQUIRE(out.get("logit_absmax") == double(V - 1));
  REQUIRE(out.get("logit_min") == -double(V - 1));
  REQUIRE(out.get("logit_mean") == Approx(1.0 - 19.5).epsilon(1e-15));
  REQUIRE(out.get("logz_mean") == Approx(2.0).epsilon(1e-15));   // mean of 0..4
  REQUIRE(out.get("logz2_mean") == Approx(6.0).epsilon(1e-15));  // mean of 0, 1, 4, 9, 16

  logits(17, 3) = -500.0f;  // was 2 − 3 = −1
  logits(29, 0) = 77.0f;    // was 2
  out.clear();
  logit_metrics(y, out);
  REQUIRE(out.get("logit_absmax") == 500.0);
  REQUIRE(out.get("logit_min") == -500.0);
  REQUIRE(out.get("logit_mean") == Approx(-18.5 + (-499.0 + 75.0) / (N * V)).epsilon(1e-14));
  logits(3, 3) = 600.0f;
  out.clear();
  logit_metrics(y, out);
  REQUIRE(out.get("logit_absmax") == 600.0);
}

// Cost for a ~25M-parameter model (d=512, L=6, F=2048 SwiGLU). Hidden: `test_instrument_step_stats "[bench]"`.
TEST_CASE("step statistics cost", "[.][bench]") {
  ModelConfig cfg;
  cfg.vocab = 256;
  cfg.d_model = 512;
  cfg.n_layer = 6;
  cfg.mlp_hidden = 2048;
  int64_t total = 0;
  const auto table = build_param_table(cfg, &total);
  const std::vector<float> g = random_buffer(total, 1), w = random_buffer(total, 2), w2 = random_buffer(total, 3);
  MemoryOut out;
  auto time_ms = [&](auto fn) {
    fn();
    double best = 1e300;  // the machine is shared: the minimum is the cleanest number
    for (int i = 0; i < 10; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      fn();
      best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
  };
  const double tg = time_ms([&] { out.clear(); param_grad_metrics(table, g.data(), out); });
  const double tu = time_ms([&] { out.clear(); update_metrics(table, w.data(), w2.data(), out); });
  ModelConfig lc;
  lc.vocab = 256;
  lc.seq_len = 64;
  Layout y(lc, 32);
  const double tl = time_ms([&] { out.clear(); logit_metrics(y, out); });
  std::printf("%.1fM params, %d threads, min of 10: param_grad_metrics %.2f ms, update_metrics %.2f ms; "
              "logit_metrics (N=2048, V=256) %.3f ms\n",
              double(total) / 1e6, omp_get_max_threads(), tg, tu, tl);
}
