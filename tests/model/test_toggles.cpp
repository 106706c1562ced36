// The mitigation / ablation toggles of model/TOGGLES.md through the whole model: finite differences of
// every parameter (toggle parameters included) for each toggle alone and with each position encoding, all
// compatible toggles at once, and closed forms that pin each toggle's meaning.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "model/toggles.h"
#include "tests/support/model_check.h"

using namespace attnlab;
using namespace attnlab::testing;

namespace {

struct Toggle {
  const char* name;
  std::function<void(ModelConfig&)> set;
  std::function<void(Transformer&)> prepare;  // optional: give toggle parameters non-trivial values
};

// Random values for a named parameter tensor (all layers), from a fixed seed.
void randomize(Transformer& m, const std::string& suffix, float std, float mean = 0.0f) {
  uint64_t seed = 100;
  for (const ParamInfo& p : m.param_table()) {
    if (p.name.size() < suffix.size() || p.name.compare(p.name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::vector<float> v = random_vec(p.size, seed++, std, mean);
    std::memcpy(m.params() + p.offset, v.data(), sizeof(float) * v.size());
  }
}

std::vector<Toggle> toggles() {
  return {
      {"qk_norm", [](ModelConfig& c) { c.qk_norm = true; },
       [](Transformer& m) {
         randomize(m, "q_norm.g", 0.3f, 1.0f);
         randomize(m, "k_norm.g", 0.3f, 1.0f);
       }},
      {"z_loss", [](ModelConfig& c) { c.z_loss = 0.05f; }, {}},
      {"softmax_plus_one", [](ModelConfig& c) { c.softmax_plus_one = true; }, {}},
      {"sink_logit", [](ModelConfig& c) { c.sink_logit = true; }, [](Transformer& m) { randomize(m, "sink_logit", 1.0f); }},
      {"attn_bias_kv", [](ModelConfig& c) { c.attn_bias_kv = true; },
       [](Transformer& m) {
         randomize(m, "k_bias", 1.0f);
         randomize(m, "v_bias", 1.0f);
       }},
      {"sigmoid_attn", [](ModelConfig& c) { c.sigmoid_attn = true; }, {}},
      {"sigmoid_attn+bias",
       [](ModelConfig& c) {
         c.sigmoid_attn = true;
         c.sigmoid_attn_bias = true;
       },
       {}},
      {"attn_temperature",
       [](ModelConfig& c) {
         c.attn_temperature = 0.7f;
         c.attn_temperature_start = 3;
         c.attn_temperature_end = 9;
       },
       [](Transformer& m) { m.set_step(5); }},  // inside the window
      {"residual_scale", [](ModelConfig& c) { c.residual_scale = 0.6f; }, {}},
      {"embed_scale", [](ModelConfig& c) { c.embed_scale = true; }, {}},
      {"norm_position=post", [](ModelConfig& c) { c.norm_position = NormPosition::kPost; },
       [](Transformer& m) {
         randomize(m, "attn_norm.g", 0.3f, 1.0f);
         randomize(m, "mlp_norm.g", 0.3f, 1.0f);
       }},
      {"sink_token", [](ModelConfig& c) { c.sink_token = true; }, {}},
      {"sigma_reparam", [](ModelConfig& c) { c.sigma_reparam = true; },
       [](Transformer& m) {
         randomize(m, "sn_gamma", 0.5f, 2.0f);
         randomize(m, "sn_u", 1.0f);  // any u: σ = ‖W u‖ with u a constant of the forward
       }},
  };
}

std::vector<int32_t> g_in, g_tg;

// Loss and gradients of one forward/backward at init seed `seed` on a fixed batch.
double loss_and_grads(Transformer& m, uint64_t seed, std::vector<float>* grads) {
  m.init_params(seed);
  make_batch(2, m.config().seq_len, m.config().vocab, 17, &g_in, &g_tg);
  m.zero_grad();
  const double loss = m.forward(g_in.data(), g_tg.data());
  m.backward(1.0f);
  grads->assign(m.grads(), m.grads() + m.n_params());
  return loss;
}

}  // namespace

TEST_CASE("every toggle alone: whole-model gradients match finite differences, with each position encoding",
          "[model][toggles][gradcheck]") {
  DnnlContext ctx;
  for (const Toggle& t : toggles()) {
    for (PosEncoding pos : {PosEncoding::kNone, PosEncoding::kSinusoidal, PosEncoding::kRope}) {
      ModelConfig cfg = tiny_model(pos, pos == PosEncoding::kSinusoidal ? MlpKind::kGELU : MlpKind::kSwiGLU,
                                   pos == PosEncoding::kNone);
      t.set(cfg);
      check_model_gradients(ctx, cfg, std::string(t.name) + " " + pos_name(pos), t.prepare, /*points=*/12);
    }
  }
}

TEST_CASE("compatible toggles together: whole-model gradients match finite differences", "[model][toggles][gradcheck]") {
  DnnlContext ctx;
  for (PosEncoding pos : {PosEncoding::kNone, PosEncoding::kSinusoidal, PosEncoding::kRope}) {
    ModelConfig cfg = tiny_model(pos);
    cfg.qk_norm = true;
    cfg.z_loss = 0.05f;
    cfg.attn_bias_kv = true;
    cfg.v_scale = VScaleMode::kLearned;
    cfg.attn_temperature = 1.3f;
    check_model_gradients(ctx, cfg, std::string("qk_norm+z_loss+kv_bias+v_scale+tau ") + pos_name(pos),
                          [](Transformer& m) {
                            randomize(m, "k_bias", 1.0f);
                            randomize(m, "v_bias", 1.0f);
                            randomize(m, "v_scale_theta", 0.5f);
                          });
    cfg.attn_bias_kv = false;
    cfg.sink_logit = true;
    cfg.v_scale = VScaleMode::kFixed;
    check_model_gradients(ctx, cfg, std::string("qk_norm+z_loss+sink_logit+v_scale fixed+tau ") + pos_name(pos),
                          [](Transformer& m) { randomize(m, "sink_logit", 1.0f); });
    ModelConfig c2 = tiny_model(pos);
    c2.residual_scale = 0.7f;
    c2.embed_scale = true;
    c2.sink_token = true;
    c2.sigma_reparam = true;
    c2.softmax_plus_one = true;
    c2.v_scale = VScaleMode::kLearned;
    check_model_gradients(ctx, c2, std::string("alpha+embed_scale+sink_token+sigma_reparam+softmax+1+v_scale ") +
                                       pos_name(pos));
    c2.norm_position = NormPosition::kPost;
    c2.softmax_plus_one = false;
    c2.sigmoid_attn = true;
    check_model_gradients(ctx, c2, std::string("post-norm+alpha+embed_scale+sink_token+sigma_reparam+sigmoid ") +
                                       pos_name(pos));
  }
}

TEST_CASE("the default ModelConfig has every toggle off", "[model][toggles]") {
  const ModelConfig c;
  REQUIRE(c.v_scale == VScaleMode::kOff);
  REQUIRE_FALSE(c.qk_norm);
  REQUIRE(c.z_loss == 0.0f);
  REQUIRE_FALSE(c.extra_key());
  REQUIRE_FALSE(c.sigmoid_attn);
  REQUIRE_FALSE(c.attention_variant());
  int64_t total = 0;
  for (const ParamInfo& p : build_param_table(c, &total)) REQUIRE_FALSE(p.toggle);
}

TEST_CASE("toggle parameters: names, shapes, no weight decay, and the core weights do not move", "[model][toggles]") {
  ModelConfig base = tiny_model();
  ModelConfig cfg = base;
  cfg.qk_norm = true;
  cfg.sink_logit = true;
  int64_t t0 = 0, t1 = 0;
  const auto core = build_param_table(base, &t0);
  const auto tab = build_param_table(cfg, &t1);
  auto find = [&](const std::string& n) -> const ParamInfo* {
    for (const auto& p : tab)
      if (p.name == n) return &p;
    return nullptr;
  };
  REQUIRE(find("blocks.1.attn.q_norm.g") != nullptr);
  REQUIRE(find("blocks.1.attn.q_norm.g")->shape == std::vector<int64_t>{cfg.d_head()});
  REQUIRE(find("blocks.0.attn.k_norm.g")->shape == std::vector<int64_t>{cfg.d_head()});
  REQUIRE(find("blocks.0.attn.sink_logit")->shape == std::vector<int64_t>{cfg.n_head});
  for (const auto& p : tab)
    if (p.toggle) REQUIRE_FALSE(p.matrix);
  ModelConfig kv = base;
  kv.attn_bias_kv = true;
  int64_t t2 = 0;
  for (const auto& p : build_param_table(kv, &t2))
    if (p.name == "blocks.0.attn.k_bias" || p.name == "blocks.1.attn.v_bias") {
      REQUIRE(p.shape == std::vector<int64_t>{kv.n_head, kv.d_head()});
      REQUIRE_FALSE(p.matrix);  // biases are not weight-decayed
    }
  // Same seed, same core weights with and without the toggle tensors.
  DnnlContext ctx;
  Transformer a(base, 1, ctx), b(kv, 1, ctx);
  a.init_params(3);
  b.init_params(3);
  for (const ParamInfo& p : a.param_table())
    for (const ParamInfo& q : b.param_table())
      if (p.name == q.name)
        REQUIRE(std::memcmp(a.params() + p.offset, b.params() + q.offset, sizeof(float) * size_t(p.size)) == 0);
}

TEST_CASE("z-loss: the objective is CE + c·mean(lse²); CE and every activation equal the plain model's",
          "[model][toggles]") {
  DnnlContext ctx;
  ModelConfig off = tiny_model();
  ModelConfig z = off;
  z.z_loss = 1e-2f;
  Transformer a(off, 2, ctx), b(z, 2, ctx);
  std::vector<float> ga, gb;
  const double la = loss_and_grads(a, 5, &ga), lb = loss_and_grads(b, 5, &gb);
  REQUIRE(b.last_ce_loss() == la);
  double want = 0.0;
  int n = 0;
  for (int i = 0; i < b.layout().N; ++i)
    if (g_tg[size_t(i)] >= 0) want += double(b.layout().head_acts().lse[i]) * b.layout().head_acts().lse[i], ++n;
  REQUIRE(b.last_z_loss() == Approx(double(1e-2f) * want / n).epsilon(1e-12));
  REQUIRE(lb == b.last_ce_loss() + b.last_z_loss());
  REQUIRE(ga != gb);  // the extra term has a gradient
}

TEST_CASE("attention temperature: bitwise the plain model outside its window; inside, τ = W_q scaled by 1/τ",
          "[model][toggles]") {
  DnnlContext ctx;
  for (PosEncoding pos : {PosEncoding::kNone, PosEncoding::kRope}) {
    ModelConfig off = tiny_model(pos);
    ModelConfig t = off;
    t.attn_temperature = 2.0f;
    t.attn_temperature_start = 10;
    t.attn_temperature_end = 20;
    Transformer a(off, 2, ctx), b(t, 2, ctx);
    std::vector<float> ga, gb;
    for (int64_t step : {int64_t(0), int64_t(9), int64_t(20)}) {
      b.set_step(step);
      const double la = loss_and_grads(a, 8, &ga), lb = loss_and_grads(b, 8, &gb);
      REQUIRE(la == lb);
      REQUIRE(ga == gb);
    }
    // Inside the window: the same loss as the plain model with every W_q divided by τ (the scores are
    // linear in q, and RoPE is linear too).
    b.set_step(10);
    const double lb = loss_and_grads(b, 8, &gb);
    a.init_params(8);
    for (int l = 0; l < off.n_layer; ++l) {
      const MatView w = a.layout().block(l).w_qkv;
      for (int r = 0; r < off.d_model; ++r)
        for (int c = 0; c < off.d_model; ++c) w(r, c) /= 2.0f;
    }
    const double la = a.forward(g_in.data(), g_tg.data());
    REQUIRE(la == Approx(lb).epsilon(1e-6));
    REQUIRE(std::fabs(la - a.forward(g_in.data(), g_tg.data())) == 0.0);
    a.init_params(8);
    REQUIRE(std::fabs(a.forward(g_in.data(), g_tg.data()) - lb) > 1e-4);  // τ does change the loss
  }
}

TEST_CASE("sink logit → ∞ turns attention off: each block's attention branch output is exactly 0", "[model][toggles]") {
  DnnlContext ctx;
  ModelConfig cfg = tiny_model();
  cfg.sink_logit = true;
  Transformer m(cfg, 2, ctx);
  m.init_params(4);
  for (int l = 0; l < cfg.n_layer; ++l)
    for (int h = 0; h < cfg.n_head; ++h) m.layout().block(l).sink_logit[h] = 1e4f;
  make_batch(2, cfg.seq_len, cfg.vocab, 3, &g_in, &g_tg);
  m.forward(g_in.data(), g_tg.data());
  for (int l = 0; l < cfg.n_layer; ++l) {
    const MatView att = m.layout().acts(l).att;
    double worst = 0.0;
    for (int n = 0; n < att.rows; ++n)
      for (int c = 0; c < att.cols; ++c) worst = std::max(worst, std::fabs(double(att(n, c))));
    REQUIRE(worst < 1e-30);
  }
}

TEST_CASE("residual_scale α = 0 makes every pre-norm block the identity", "[model][toggles]") {
  DnnlContext ctx;
  ModelConfig cfg = tiny_model();
  cfg.residual_scale = 0.0f;
  Transformer m(cfg, 2, ctx);
  m.init_params(6);
  make_batch(2, cfg.seq_len, cfg.vocab, 3, &g_in, &g_tg);
  m.forward(g_in.data(), g_tg.data());
  const Layout& y = m.layout();
  REQUIRE(std::memcmp(y.acts(0).x.p, y.head_acts().x.p, sizeof(float) * size_t(y.N * y.d)) == 0);
  // and α changes the output when it is not 0
  ModelConfig half = cfg;
  half.residual_scale = 0.5f;
  Transformer h(half, 2, ctx);
  h.init_params(6);
  h.forward(g_in.data(), g_tg.data());
  REQUIRE(std::memcmp(h.layout().acts(0).x.p, h.layout().head_acts().x.p, sizeof(float) * size_t(y.N * y.d)) != 0);
}

TEST_CASE("embed_scale: x0 = √d_model · tok_emb[token]", "[model][toggles]") {
  DnnlContext ctx;
  ModelConfig cfg = tiny_model(PosEncoding::kNone);
  cfg.embed_scale = true;
  Transformer m(cfg, 2, ctx);
  m.init_params(6);
  make_batch(2, cfg.seq_len, cfg.vocab, 3, &g_in, &g_tg);
  m.forward(g_in.data(), g_tg.data());
  const Layout& y = m.layout();
  for (int n = 0; n < y.N; ++n)
    for (int c = 0; c < y.d; ++c)
      REQUIRE(y.acts(0).x(n, c) == Approx(4.0 * y.head().tok_emb(g_in[size_t(n)], c)).epsilon(1e-6));
}

TEST_CASE("post-norm: every block output is RMSNorm'd (RMS 1 with unit gains) and differs from pre-norm",
          "[model][toggles]") {
  DnnlContext ctx;
  ModelConfig cfg = tiny_model();
  cfg.norm_position = NormPosition::kPost;
  cfg.norm_eps = 1e-12f;
  Transformer m(cfg, 2, ctx);
  m.init_params(6);
  make_batch(2, cfg.seq_len, cfg.vocab, 3, &g_in, &g_tg);
  const double lpost = m.forward(g_in.data(), g_tg.data());
  const Layout& y = m.layout();
  for (int l = 0; l < cfg.n_layer; ++l) {
    const MatView out = l + 1 < cfg.n_layer ? y.acts(l + 1).x : y.head_acts().x;
    for (int n = 0; n < y.N; ++n) {
      double ms = 0.0, ms_mid = 0.0;
      for (int c = 0; c < y.d; ++c) ms += double(out(n, c)) * out(n, c), ms_mid += double(y.acts(l).resid_mid(n, c)) * y.acts(l).resid_mid(n, c);
      REQUIRE(ms / y.d == Approx(1.0).epsilon(1e-5));
      REQUIRE(ms_mid / y.d == Approx(1.0).epsilon(1e-5));
    }
    REQUIRE(y.acts(l).norm1.p == y.acts(l).x.p);  // the attention input is x itself
  }
  ModelConfig pre = cfg;
  pre.norm_position = NormPosition::kPre;
  Transformer p(pre, 2, ctx);
  p.init_params(6);
  REQUIRE(std::fabs(p.forward(g_in.data(), g_tg.data()) - lpost) > 1e-3);
}

TEST_CASE("sink token: position 0 holds the learned vector, its prediction is not in the loss, data shift by one",
          "[model][toggles]") {
  DnnlContext ctx;
  ModelConfig cfg = tiny_model();
  cfg.sink_token = true;
  const int B = 2;
  Transformer m(cfg, B, ctx);
  m.init_params(6);
  const Layout& y = m.layout();
  REQUIRE(y.T == cfg.seq_len + 1);
  make_batch(B, cfg.seq_len, cfg.vocab, 3, &g_in, &g_tg);
  int valid = 0;
  for (int32_t t : g_tg) valid += t >= 0;
  m.zero_grad();
  const double loss = m.forward(g_in.data(), g_tg.data());
  REQUIRE(m.valid_targets() == valid);
  for (int b = 0; b < B; ++b) {
    REQUIRE(std::memcmp(y.acts(0).x.row(b * y.T), y.head().sink_token.p, sizeof(float) * size_t(y.d)) == 0);
    REQUIRE(y.head_acts().row_loss[b * y.T] == 0.0f);
    for (int t = 0; t < cfg.seq_len; ++t)
      for (int c = 0; c < y.d; ++c)
        REQUIRE(y.acts(0).x(b * y.T + 1 + t, c) == y.head().tok_emb(g_in[size_t(b * cfg.seq_len + t)], c));
  }
  // The mean over the data positions' own losses.
  double sum = 0.0;
  for (int n = 0; n < y.N; ++n) sum += y.head_acts().row_loss[n];
  REQUIRE(loss == Approx(sum / valid).epsilon(1e-6));
  // Causal: changing the last data token changes no earlier position's logits.
  std::vector<float> logits(y.head_acts().logits.p, y.head_acts().logits.p + size_t(y.N) * y.V);
  std::vector<int32_t> in2 = g_in;
  in2[size_t(cfg.seq_len - 1)] = (in2[size_t(cfg.seq_len - 1)] + 1) % cfg.vocab;
  m.forward(in2.data(), g_tg.data());
  for (int n = 0; n < y.T - 1; ++n)
    for (int v = 0; v < y.V; ++v) REQUIRE(y.head_acts().logits(n, v) == logits[size_t(n) * y.V + v]);
  // The sink vector gets a gradient.
  m.forward(g_in.data(), g_tg.data());
  m.backward();
  double gn = 0.0;
  for (int c = 0; c < y.d; ++c) gn += std::fabs(double(y.head_grad().sink_token[c]));
  REQUIRE(gn > 0.0);
}

TEST_CASE("σReparam: Ŵ = W at init (so the loss is the plain model's bitwise); one power step per new step",
          "[model][toggles]") {
  DnnlContext ctx;
  ModelConfig off = tiny_model();
  ModelConfig sn = off;
  sn.sigma_reparam = true;
  Transformer a(off, 2, ctx), b(sn, 2, ctx);
  std::vector<float> ga, gb;
  const double la = loss_and_grads(a, 12, &ga), lb = loss_and_grads(b, 12, &gb);
  REQUIRE(la == lb);
  const Layout& y = b.layout();
  REQUIRE(y.sigma_views(0).size() == 7);  // q, k, v, o, gate, up, down
  for (const SigmaView& sv : y.sigma_views(1)) {
    REQUIRE(*sv.gamma == *sv.sigma);
    for (int r = 0; r < sv.w.rows; ++r) REQUIRE(std::memcmp(sv.w.row(r), sv.w_eff.row(r), sizeof(float) * size_t(sv.w.cols)) == 0);
  }
  // Power iteration: set_step(s) updates u once for each new s and never for a repeated one.
  const SigmaView& sv = y.sigma_views(0)[2];
  for (int c = 0; c < sv.w.cols; ++c) sv.u[c] = c == 0 ? 1.0f : 0.0f;  // far from converged
  std::vector<float> u0(sv.u, sv.u + sv.w.cols);
  b.set_step(0);
  std::vector<float> u1(sv.u, sv.u + sv.w.cols);
  REQUIRE(u1 != u0);
  b.set_step(0);
  REQUIRE(std::vector<float>(sv.u, sv.u + sv.w.cols) == u1);
  b.forward(g_in.data(), g_tg.data());  // forwards never touch u
  REQUIRE(std::vector<float>(sv.u, sv.u + sv.w.cols) == u1);
  b.set_step(1);
  REQUIRE(std::vector<float>(sv.u, sv.u + sv.w.cols) != u1);
  // γ, u are parameters: γ trainable and never decayed, u not trainable.
  for (const ParamInfo& p : b.param_table()) {
    if (p.name.find(".sn_gamma") != std::string::npos) REQUIRE((p.trainable && !p.matrix && p.size == 1));
    if (p.name.find(".sn_u") != std::string::npos) REQUIRE_FALSE(p.trainable);
  }
}

TEST_CASE("toggle_signature is empty for the core model and names every toggle that is on", "[model][toggles]") {
  REQUIRE(toggle_signature(ModelConfig{}).empty());
  ModelConfig c;
  c.v_scale = VScaleMode::kBackwardOnly;
  c.sigma_reparam = true;
  c.attn_temperature = 0.5f;
  c.norm_position = NormPosition::kPost;
  REQUIRE(toggle_signature(c) == " v_scale=backward_only attn_temperature=0.5 norm_position=post sigma_reparam=true");
}
