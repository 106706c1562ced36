// Gradient family: gradient-sink ratio, ∇q/∇k/∇v by position, Bloat/Change/Compress, depth profile.
// Closed-form checks on synthetic gradients, then the entry point on a real tiny transformer.
#include <catch2/catch.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "instrument/grad_stats.h"
#include "model/rng.h"
#include "model/transformer.h"
#include "tests/support/tiny_model.h"

using namespace attnlab;
using attnlab::testing::random_batch;

namespace {

void fill(MatView m, float v) {
  for (int r = 0; r < m.rows; ++r)
    for (int c = 0; c < m.cols; ++c) m(r, c) = v;
}

// Planted gradient sink in g [B·T, C]: row (b, 0) = (6, 8, 0, …) (norm 10) for every b, row (b, t ≥ 1) =
// the unit vector e_{1 + t mod (C−1)}; rows at t ≥ 32 get norm 1000 (outside T_e, must be ignored).
void plant_sink(MatView g, int B, int T) {
  fill(g, 0.0f);
  for (int b = 0; b < B; ++b) {
    g(b * T, 0) = 6.0f;
    g(b * T, 1) = 8.0f;
    for (int t = 1; t < T; ++t) g(b * T + t, 1 + t % (g.cols - 1)) = t < 32 ? 1.0f : 1000.0f;
  }
}

ModelConfig tiny_config() {
  return testing::tiny_model({.vocab = 32, .d_model = 32, .n_layer = 3, .n_head = 4, .seq_len = 24, .mlp_hidden = 48,
                              .pos = PosEncoding::kRope,
                              .init_std = 0.2f});  // well above float noise, so every gradient is clearly nonzero
}

// A model after one forward + backward on a random batch.
struct Trained {
  DnnlContext ctx;
  ModelConfig cfg;
  Transformer m;
  std::vector<int32_t> in, tg;
  Trained(const ModelConfig& c, int B) : cfg(c), m(c, B, ctx) {
    m.init_params(3);
    random_batch(B * c.seq_len, c.vocab, 17, &in, &tg);
    m.zero_grad();
    m.forward(in.data(), tg.data());
    m.backward();
  }
  ProbeView view() const { return ProbeView{cfg, m.layout(), in.data(), tg.data()}; }
};

bool emitted(const MemoryOut& out, const char* name, int layer, int index) {
  for (const auto& e : out.entries)
    if (std::strcmp(e.name, name) == 0 && e.layer == layer && e.head == -1 && e.index == index) return true;
  return false;
}

bool identity_holds(const ReshapeRatios& r) {
  return std::fabs(r.change - 1.0) <= r.bloat * r.compress * (1.0 + 1e-12) + 1e-12;
}

}  // namespace

TEST_CASE("token groups are {0} {1} {2-3} {4-7} {8-15}", "[instrument][grad]") {
  const int expect[17] = {0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, -1};
  for (int t = 0; t < 17; ++t) REQUIRE(token_group(t) == expect[t]);
  REQUIRE(token_group(100) == -1);
}

TEST_CASE("planted gradient sink gives R_GS = 10 in both conventions", "[instrument][grad]") {
  const int B = 3, T = 40, C = 8;
  std::vector<float> buf(size_t(B) * T * C);
  MatView g(buf.data(), B * T, C);
  plant_sink(g, B, T);
  std::vector<double> s(T), m(T);
  position_grad_norms(s.data(), m.data(), g, B, T, T);
  // Rows agree across the batch: the batch sum has norm B·‖g_t‖, the batch mean of norms ‖g_t‖.
  REQUIRE(s[0] == 30.0);
  REQUIRE(m[0] == 10.0);
  REQUIRE(s[5] == 3.0);
  REQUIRE(m[5] == 1.0);
  REQUIRE(gradient_sink_ratio(s.data(), 0, 31) == 10.0);
  REQUIRE(gradient_sink_ratio(m.data(), 0, 31) == 10.0);
  // A general s: R(2; 4) = 1 / ((10 + 1 + 1 + 1)/4).
  REQUIRE(gradient_sink_ratio(m.data(), 2, 4) == Approx(4.0 / 13.0).epsilon(1e-15));
}

TEST_CASE("batch rows that cancel separate the sum and mean conventions", "[instrument][grad]") {
  const int B = 2, T = 8, C = 4;
  std::vector<float> buf(size_t(B) * T * C, 0.0f);
  MatView g(buf.data(), B * T, C);
  plant_sink(g, B, T);
  g(T, 0) = -6.0f;  // row (b = 1, t = 0) = −u
  g(T, 1) = -8.0f;
  std::vector<double> s(T), m(T);
  position_grad_norms(s.data(), m.data(), g, B, T, T);
  REQUIRE(s[0] == 0.0);
  REQUIRE(m[0] == 10.0);
  REQUIRE(gradient_sink_ratio(s.data(), 0, T - 1) == 0.0);
  REQUIRE(gradient_sink_ratio(m.data(), 0, T - 1) == 10.0);
}

TEST_CASE("entry point on a planted layout: R_GS, profile length, T_e clamp", "[instrument][grad]") {
  ModelConfig cfg = tiny_config();
  cfg.n_layer = 2;
  cfg.seq_len = 40;  // profile stops at 32, T_e = 31
  const int B = 2;
  Layout y(cfg, B);  // zero-filled arenas; plant dnorm1 only
  for (int l = 0; l < y.L; ++l) plant_sink(y.act_grads(l).dnorm1, B, y.T);
  MemoryOut out;
  gradient_metrics(ProbeView{cfg, y, nullptr, nullptr}, out);
  for (int l = 0; l < y.L; ++l) {
    REQUIRE(out.get("rgs_sum", l) == 10.0);
    REQUIRE(out.get("rgs_mean", l) == 10.0);
    REQUIRE(out.get("grad_h_norm", l, -1, 0) == 20.0);
    REQUIRE(out.get("grad_h_norm", l, -1, 31) == 2.0);
    REQUIRE(std::isnan(out.get("grad_h_norm", l, -1, 32)));  // not emitted
  }
  REQUIRE(out.get("rgs_median") == 10.0);

  SECTION("short sequences clamp T_e to T − 1") {
    ModelConfig c2 = cfg;
    c2.seq_len = 6;
    Layout y2(c2, B);
    plant_sink(y2.act_grads(0).dnorm1, B, y2.T);
    plant_sink(y2.act_grads(1).dnorm1, B, y2.T);
    MemoryOut o2;
    gradient_metrics(ProbeView{c2, y2, nullptr, nullptr}, o2);
    REQUIRE(o2.get("rgs_sum", 0) == 10.0);  // denominator = mean over t = 1..5
    REQUIRE(!std::isnan(o2.get("grad_q_norm", 0, -1, 5)));
    REQUIRE(std::isnan(o2.get("grad_q_norm", 0, -1, 6)));
    // Zero residual gradients: no Bloat/Change ratio exists, so the group value is NaN (but emitted).
    REQUIRE(emitted(o2, "attn_bloat", 0, 3));
    REQUIRE(std::isnan(o2.get("attn_bloat", 0, -1, 3)));
    REQUIRE(o2.get("hin_norm", 0, -1, 3) == 0.0);  // {4–7} covers t = 4, 5 (zero activations)
    REQUIRE(!emitted(o2, "hin_norm", 0, 4));       // {8–15} is past T = 6
  }
}

TEST_CASE("Bloat / Change / Compress on hand-made vectors", "[instrument][grad]") {
  // g1 = (3, 4, 0, 0), g2 = (0, 0, 0, 10), g3 = (0, 0, 1, 0), so g_in = g1 + g3 = (3, 4, 1, 0).
  const float g1[4] = {3, 4, 0, 0}, g2[4] = {0, 0, 0, 10}, g_in[4] = {3, 4, 1, 0};
  ReshapeRatios r = reshape_ratios(g1, g2, g_in, 4);
  REQUIRE(r.bloat == 2.0);
  REQUIRE(r.change == Approx(std::sqrt(26.0) / 5.0).epsilon(1e-15));
  REQUIRE(r.compress == 0.1);
  REQUIRE(identity_holds(r));

  // g3 parallel to g1 makes the triangle inequality an equality: g3 = (3, 4) → Change = 2, Bloat·Compress = 1.
  const float g_in2[4] = {6, 8, 0, 0};
  r = reshape_ratios(g1, g2, g_in2, 4);
  REQUIRE(r.change == 2.0);
  REQUIRE(r.bloat * r.compress == Approx(1.0).epsilon(1e-15));
  REQUIRE(std::fabs(r.change - 1.0) == Approx(r.bloat * r.compress).epsilon(1e-15));
}

TEST_CASE("branch_reshape_groups averages per-token ratios over batch and group", "[instrument][grad]") {
  const int B = 2, T = 5, d = 2;  // groups {0}, {1}, {2,3}, {4}
  std::vector<float> go(B * T * d), gn(B * T * d), gi(B * T * d), h(B * T * d);
  for (int n = 0; n < B * T; ++n) {
    const int t = n % T;
    go[2 * n] = 1.0f;                                 // ‖g1‖ = 1
    gn[2 * n + 1] = float(1 + t);                     // ‖g2‖ = 1 + t → bloat = 1 + t
    gi[2 * n] = 1.0f;                                 // g3 = (0, 2)·(n < T ? 1 : 2)
    gi[2 * n + 1] = n < T ? 2.0f : 4.0f;
    h[2 * n] = float(3 * (1 + t));                    // ‖h‖ = 3(1 + t)
  }
  ReshapeGroups r;
  branch_reshape_groups(&r, ConstMatView(go.data(), B * T, d), ConstMatView(gn.data(), B * T, d),
                        ConstMatView(gi.data(), B * T, d), ConstMatView(h.data(), B * T, d), B, T);
  REQUIRE(r.count[0] == 2);
  REQUIRE(r.count[2] == 4);
  REQUIRE(r.count[3] == 2);
  REQUIRE(r.count[4] == 0);
  REQUIRE(std::isnan(r.bloat[4]));
  REQUIRE(r.bloat[0] == 1.0);
  REQUIRE(r.bloat[2] == 3.5);  // t = 2, 3
  REQUIRE(r.h_in_norm[2] == 10.5);
  // change: ‖(1, 2)‖ for b = 0, ‖(1, 4)‖ for b = 1; compress: 2/(1+t) and 4/(1+t).
  REQUIRE(r.change[1] == Approx((std::sqrt(5.0) + std::sqrt(17.0)) / 2).epsilon(1e-15));
  REQUIRE(r.compress[3] == Approx((2.0 / 5 + 4.0 / 5) / 2).epsilon(1e-15));
}

TEST_CASE("real tiny transformer: grad_q_norm(t=0) is exactly 0, k and v are not", "[instrument][grad]") {
  Trained tr(tiny_config(), 4);
  const Layout& y = tr.m.layout();
  MemoryOut out;
  gradient_metrics(tr.view(), out);
  for (int l = 0; l < y.L; ++l) {
    INFO("layer " << l);
    REQUIRE(out.get("grad_q_norm", l, -1, 0) == 0.0);  // gradient-sinks.md §3 item 3
    REQUIRE(out.get("grad_k_norm", l, -1, 0) > 0.0);
    REQUIRE(out.get("grad_v_norm", l, -1, 0) > 0.0);
    for (int t = 1; t < y.T; ++t) REQUIRE(out.get("grad_q_norm", l, -1, t) > 0.0);
    // Every head's ∇q_0 is zero in every batch row, not only on average.
    for (int h = 0; h < y.H; ++h)
      for (int b = 0; b < y.B; ++b)
        for (int c = 0; c < y.dh; ++c) REQUIRE(y.act_grads(l).dqkv(b * y.T, h * y.dh + c) == 0.0f);
    REQUIRE(std::isfinite(out.get("rgs_sum", l)));
    REQUIRE(out.get("rgs_sum", l) > 0.0);
  }
  // grad_v_norm at t = 1 matches a direct computation: mean over heads of ‖Σ_b ∇v_{b,1,h}‖.
  const int l = 1, t = 1;
  double expect = 0.0;
  for (int h = 0; h < y.H; ++h) {
    double sq = 0.0;
    for (int c = 0; c < y.dh; ++c) {
      double s = 0.0;
      for (int b = 0; b < y.B; ++b) s += y.act_grads(l).dqkv(b * y.T + t, 2 * y.d + h * y.dh + c);
      sq += s * s;
    }
    expect += std::sqrt(sq) / y.H;
  }
  REQUIRE(out.get("grad_v_norm", l, -1, t) == Approx(expect).epsilon(1e-12));
}

TEST_CASE("real tiny transformer: |Change − 1| <= Bloat·Compress for every token, both branches",
          "[instrument][grad]") {
  Trained tr(tiny_config(), 4);
  const Layout& y = tr.m.layout();
  for (int l = 0; l < y.L; ++l) {
    const BlockGrads& g = y.act_grads(l);
    const ConstMatView dx_next = y.act_grads(l + 1).dx;
    for (int n = 0; n < y.N; ++n) {
      INFO("layer " << l << " row " << n);
      const ReshapeRatios ra = reshape_ratios(g.dresid_mid.row(n), g.dnorm1.row(n), g.dx.row(n), y.d);
      const ReshapeRatios rm = reshape_ratios(dx_next.row(n), g.dnorm2.row(n), g.dresid_mid.row(n), y.d);
      REQUIRE(ra.g1 > 0.0);
      REQUIRE(identity_holds(ra));
      REQUIRE(identity_holds(rm));
    }
  }

  SECTION("g3 = dx − dresid_mid is the RMSNorm backward of g2 = dnorm1") {
    // g_x = (γ⊙g_y)·r − x·r³·⟨x, γ⊙g_y⟩/d  (gradient-sinks.md §3 item 6, r = rstd here).
    const int l = 1;
    const BlockActs& a = y.acts(l);
    const ConstVecView gamma = y.block(l).attn_norm_g;
    for (int n = 0; n < y.N; n += 7) {
      const double r = a.rstd1[n];
      double dot = 0.0;
      for (int c = 0; c < y.d; ++c) dot += double(a.x(n, c)) * gamma[c] * y.act_grads(l).dnorm1(n, c);
      for (int c = 0; c < y.d; ++c) {
        const double expect =
            gamma[c] * y.act_grads(l).dnorm1(n, c) * r - a.x(n, c) * r * r * r * dot / y.d;
        const double mid = y.act_grads(l).dresid_mid(n, c);
        const double got = double(y.act_grads(l).dx(n, c)) - mid;
        // dx = float(dresid_mid + g3): the difference carries rounding of the size of ulp(dresid_mid).
        REQUIRE(got == Approx(expect).margin(1e-6 * (std::fabs(mid) + std::fabs(expect))).epsilon(1e-4));
      }
    }
  }

  SECTION("with B = 1 the emitted single-token groups {0}, {1} obey the identity") {
    Trained one(tiny_config(), 1);
    MemoryOut out;
    gradient_metrics(one.view(), out);
    for (int l = 0; l < one.m.layout().L; ++l)
      for (int k = 0; k < 2; ++k)
        for (const char* br : {"attn", "mlp"}) {
          const bool attn = std::strcmp(br, "attn") == 0;
          const double b = out.get(attn ? "attn_bloat" : "mlp_bloat", l, -1, k);
          const double ch = out.get(attn ? "attn_change" : "mlp_change", l, -1, k);
          const double co = out.get(attn ? "attn_compress" : "mlp_compress", l, -1, k);
          INFO(br << " layer " << l << " group " << k);
          REQUIRE(std::isfinite(b * ch * co));
          REQUIRE(std::fabs(ch - 1.0) <= b * co * (1.0 + 1e-12));
        }
  }
}

TEST_CASE("real tiny transformer: group means, hin_norm and the depth profile match direct loops",
          "[instrument][grad]") {
  Trained tr(tiny_config(), 3);
  const Layout& y = tr.m.layout();
  MemoryOut out;
  gradient_metrics(tr.view(), out);

  for (int l = 0; l < y.L; ++l) {
    const BlockGrads& g = y.act_grads(l);
    for (int k = 0; k < kTokenGroups; ++k) {
      double bl = 0.0, ch = 0.0, co = 0.0, hn = 0.0;
      int cnt = 0;
      for (int b = 0; b < y.B; ++b)
        for (int t = 0; t < 16; ++t) {
          if (token_group(t) != k) continue;
          const int n = b * y.T + t;
          const ReshapeRatios r = reshape_ratios(y.act_grads(l + 1).dx.row(n), g.dnorm2.row(n),
                                                 g.dresid_mid.row(n), y.d);
          bl += r.bloat;
          ch += r.change;
          co += r.compress;
          double sq = 0.0;
          for (int c = 0; c < y.d; ++c) sq += double(y.acts(l).x(n, c)) * y.acts(l).x(n, c);
          hn += std::sqrt(sq);
          ++cnt;
        }
      INFO("layer " << l << " group " << k);
      REQUIRE(out.get("mlp_bloat", l, -1, k) == Approx(bl / cnt).epsilon(1e-12));
      REQUIRE(out.get("mlp_change", l, -1, k) == Approx(ch / cnt).epsilon(1e-12));
      REQUIRE(out.get("mlp_compress", l, -1, k) == Approx(co / cnt).epsilon(1e-12));
      REQUIRE(out.get("hin_norm", l, -1, k) == Approx(hn / cnt).epsilon(1e-12));
    }
    double sq = 0.0;
    for (int n = 0; n < y.N; ++n)
      for (int c = 0; c < y.d; ++c) sq += double(g.dx(n, c)) * g.dx(n, c);
    REQUIRE(out.get("grad_dx_norm", l) == Approx(std::sqrt(sq)).epsilon(1e-12));
  }
  REQUIRE(out.get("grad_depth_ratio") ==
          Approx(out.get("grad_dx_norm", 0) / out.get("grad_dx_norm", y.L - 1)).epsilon(1e-15));

  // ρ_grad from the flat gradient buffer through the parameter table (an independent path to the
  // block views the family uses).
  double s0 = 0.0, sl = 0.0;
  const std::string first = "blocks.0.", last = "blocks." + std::to_string(y.L - 1) + ".";
  for (const ParamInfo& p : y.param_table()) {
    double s = 0.0;
    for (int64_t i = 0; i < p.size; ++i) s += double(y.grads()[p.offset + i]) * y.grads()[p.offset + i];
    if (p.name.rfind(first, 0) == 0) s0 += s;
    if (p.name.rfind(last, 0) == 0) sl += s;
  }
  REQUIRE(out.get("grad_depth_ratio_params") == Approx(std::sqrt(s0 / sl)).epsilon(1e-12));

  // Every emitted value is finite.
  for (const auto& e : out.entries) {
    INFO(e.name << " " << e.layer << " " << e.index);
    REQUIRE(std::isfinite(e.value));
  }
}

TEST_CASE("gradient_metrics is passive, deterministic across thread counts, and silent without grads",
          "[instrument][grad]") {
  Trained tr(tiny_config(), 2);
  const Layout& y = tr.m.layout();
  const std::vector<float> grads(y.grads(), y.grads() + y.n_params());
  const std::vector<float> dx(y.act_grads(1).dx.p, y.act_grads(1).dx.p + y.act_grads(1).dx.size());

  const int threads = omp_get_max_threads();
  MemoryOut a, b;
  omp_set_num_threads(1);
  gradient_metrics(tr.view(), a);
  omp_set_num_threads(2);
  gradient_metrics(tr.view(), b);
  omp_set_num_threads(threads);
  REQUIRE(a.entries.size() == b.entries.size());
  for (size_t i = 0; i < a.entries.size(); ++i) {
    REQUIRE(std::strcmp(a.entries[i].name, b.entries[i].name) == 0);
    REQUIRE(std::memcmp(&a.entries[i].value, &b.entries[i].value, sizeof(double)) == 0);
  }
  REQUIRE(std::memcmp(grads.data(), y.grads(), sizeof(float) * grads.size()) == 0);
  REQUIRE(std::memcmp(dx.data(), y.act_grads(1).dx.p, sizeof(float) * dx.size()) == 0);

  ProbeView no_grads = tr.view();
  no_grads.has_grads = false;
  MemoryOut c;
  gradient_metrics(no_grads, c);
  REQUIRE(c.entries.empty());
}

// Cost at the reference probe size (d=64, L=4, H=4, T=64, B=32). Hidden: run with
// `test_instrument_grad_stats "[bench]"`.
TEST_CASE("gradient_metrics cost", "[.][bench]") {
  ModelConfig c;
  c.vocab = 256;
  c.d_model = 64;
  c.n_layer = 4;
  c.n_head = 4;
  c.seq_len = 64;
  c.mlp_hidden = 176;
  Trained tr(c, 32);
  MemoryOut out;
  gradient_metrics(tr.view(), out);  // warm-up
  double best = 1e300, total = 0.0;  // the machine is shared: the minimum is the cleanest number
  const int reps = 50;
  for (int i = 0; i < reps; ++i) {
    out.clear();
    const auto t0 = std::chrono::steady_clock::now();
    gradient_metrics(tr.view(), out);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, ms);
    total += ms;
  }
  std::printf("gradient_metrics: min %.3f ms, mean %.3f ms per call (%d threads, %zu values)\n", best,
              total / reps, omp_get_max_threads(), out.entries.size());
}
