#include "model/layout.h"

#include <algorithm>

namespace attnlab {

namespace {

ParamInfo& add_param(std::vector<ParamInfo>& t, int64_t& total, std::string name, std::vector<int64_t> shape) {
  ParamInfo p;
  p.name = std::move(name);
  p.shape = std::move(shape);
  p.size = 1;
  for (int64_t s : p.shape) p.size *= s;
  p.matrix = p.shape.size() == 2;
  p.init = p.matrix ? ParamInit::kNormal : ParamInit::kOnes;
  p.offset = total;
  total += p.size;  // no padding: fused tensors (w_q|w_k|w_v) must be exactly adjacent
  t.push_back(std::move(p));
  return t.back();
}

// A tensor that exists only because a toggle is on. Never weight-decayed (these are scalars, biases and
// buffers, not weight matrices).
ParamInfo& add_toggle(std::vector<ParamInfo>& t, int64_t& total, std::string name, std::vector<int64_t> shape,
                      ParamInit init, float value = 0.0f, bool trainable = true) {
  ParamInfo& p = add_param(t, total, std::move(name), std::move(shape));
  p.matrix = false;
  p.init = init;
  p.init_value = value;
  p.trainable = trainable;
  p.toggle = true;
  return p;
}

// The matrices σReparam reparametrises in block l: name (without "blocks.l."), rows, cols, and the row
// offset inside the fused weight it belongs to (w_qkv or w_in).
struct SigmaMatrix {
  const char* name;
  int rows, cols, row0;
  int fused;  // 0: w_qkv, 1: w_o, 2: w_in, 3: w_down
};
std::vector<SigmaMatrix> sigma_matrices(const ModelConfig& cfg) {
  const int d = cfg.d_model, F = cfg.hidden();
  std::vector<SigmaMatrix> m = {{"attn.w_q", d, d, 0, 0}, {"attn.w_k", d, d, d, 0}, {"attn.w_v", d, d, 2 * d, 0},
                                {"attn.w_o", d, d, 0, 1}};
  if (!cfg.has_mlp()) return m;
  if (cfg.mlp == MlpKind::kSwiGLU) {
    m.push_back({"mlp.w_gate", F, d, 0, 2});
    m.push_back({"mlp.w_up", F, d, F, 2});
  } else {
    m.push_back({"mlp.w_up", F, d, 0, 2});
  }
  m.push_back({"mlp.w_down", d, F, 0, 3});
  return m;
}

}  // namespace

std::vector<ParamInfo> build_param_table(const ModelConfig& cfg, int64_t* total_out) {
  const int64_t d = cfg.d_model, F = cfg.hidden(), V = cfg.vocab;
  std::vector<ParamInfo> t;
  int64_t total = 0;
  add_param(t, total, "tok_emb", {V, d});
  if (cfg.sink_token) add_toggle(t, total, "sink_token", {d}, ParamInit::kNormal);
  for (int l = 0; l < cfg.n_layer; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    add_param(t, total, p + "attn_norm.g", {d});
    add_param(t, total, p + "attn.w_q", {d, d});
    add_param(t, total, p + "attn.w_k", {d, d});
    add_param(t, total, p + "attn.w_v", {d, d});
    add_param(t, total, p + "attn.w_o", {d, d});
    if (cfg.qk_norm) {
      add_toggle(t, total, p + "attn.q_norm.g", {cfg.d_head()}, ParamInit::kOnes);
      add_toggle(t, total, p + "attn.k_norm.g", {cfg.d_head()}, ParamInit::kOnes);
    }
    if (cfg.sink_logit) add_toggle(t, total, p + "attn.sink_logit", {cfg.n_head}, ParamInit::kConstant, 0.0f);
    if (cfg.attn_bias_kv) {
      add_toggle(t, total, p + "attn.k_bias", {cfg.n_head, cfg.d_head()}, ParamInit::kNormal);
      add_toggle(t, total, p + "attn.v_bias", {cfg.n_head, cfg.d_head()}, ParamInit::kNormal);
    }
    if (cfg.v_scale != VScaleMode::kOff)
      add_toggle(t, total, p + "attn.v_scale_theta", {cfg.n_head}, ParamInit::kConstant, cfg.v_scale_theta,
                 /*trainable=*/cfg.v_scale == VScaleMode::kLearned);
    if (cfg.has_mlp()) {  // attention-only blocks (mlp: none) have no MLP tensors at all
      add_param(t, total, p + "mlp_norm.g", {d});
      if (cfg.mlp == MlpKind::kSwiGLU) add_param(t, total, p + "mlp.w_gate", {F, d});
      add_param(t, total, p + "mlp.w_up", {F, d});
      add_param(t, total, p + "mlp.w_down", {d, F});
    }
    if (cfg.sigma_reparam) {
      // γ is set to σ_max(W) and u to W's top right singular vector by Transformer::init_params.
      for (const SigmaMatrix& m : sigma_matrices(cfg)) {
        add_toggle(t, total, p + m.name + ".sn_gamma", {1}, ParamInit::kConstant, 1.0f);
        add_toggle(t, total, p + m.name + ".sn_u", {m.cols}, ParamInit::kConstant, 0.0f, /*trainable=*/false);
      }
    }
  }
  add_param(t, total, "final_norm.g", {d});
  if (!cfg.tied_head) add_param(t, total, "lm_head", {V, d});
  *total_out = total;
  return t;
}

LayoutEstimate estimate_layout(const ModelConfig& cfg, int batch) {
  // Every size in double, including those ModelConfig computes in int (hidden() = 4·d_model, context_len()
  // = seq_len + 1), which overflow for the absurd sizes this function exists to refuse (UBSan found it).
  const double B = batch, T = double(cfg.seq_len) + (cfg.sink_token ? 1.0 : 0.0), N = B * T, d = cfg.d_model,
               H = cfg.n_head, V = cfg.vocab, L = cfg.n_layer;
  const double F = cfg.mlp == MlpKind::kNone ? 0.0 : cfg.mlp_hidden > 0 ? double(cfg.mlp_hidden) : 4.0 * d;
  const double in_rows = cfg.mlp == MlpKind::kSwiGLU ? 2.0 * F : F;
  const double probs = B * H * T * T, Nd = N * d;
  LayoutEstimate e;
  const double block_params = 4.0 * d * d + (in_rows + F) * d + 2.0 * d;  // qkv, o, MLP in/down, two norm gains
  e.params = L * block_params + V * d * (cfg.tied_head ? 1.0 : 2.0) + d;
  // Per block: 17 [N, d] tensors (with dqkv and qkv at 3 each), probs, the MLP's pre and act, toggles' extras.
  const double toggles = (cfg.qk_norm ? 2.0 : 0.0) + (cfg.v_scale != VScaleMode::kOff ? 1.0 : 0.0) +
                         (cfg.norm_position == NormPosition::kPost ? 2.0 : 0.0);
  const double block_acts = (17.0 + toggles) * Nd + probs + N * (in_rows + F) + 2.0 * N;
  // Head and shared scratch: logits and their gradient, a second probs (dprobs), the MLP scratch, [N, d]s.
  const double head = 2.0 * N * V + probs + N * (in_rows + F) + 8.0 * Nd + T * d + 3.0 * N;
  e.activations = L * block_acts + head;
  e.sigma = cfg.sigma_reparam ? (L + 1.0) * block_params : 0.0;  // effective weights per block + one ∂L/∂Ŵ
  return e;
}

Layout::Layout(const ModelConfig& cfg, int batch)
    : B(batch), T(cfg.context_len()), N(batch * cfg.context_len()), d(cfg.d_model), H(cfg.n_head),
      dh(cfg.d_head()), F(cfg.hidden()), V(cfg.vocab), L(cfg.n_layer) {
  ATTNLAB_CHECK(B > 0 && T > 0 && d > 0 && H > 0 && d % H == 0 && L > 0 && V > 0, "Layout: bad shapes");
  params_table_ = build_param_table(cfg, &n_params_);
  params_.reserve(n_params_);
  grads_.reserve(n_params_);
  params_.allocate();
  grads_.allocate();

  // Parameters (and, with the same offsets, their gradients) by name, in table order.
  const bool swiglu = cfg.mlp == MlpKind::kSwiGLU;
  const int in_rows = swiglu ? 2 * F : F;  // 0 without an MLP (F = 0)
  auto find = [&](const std::string& name) -> int64_t {
    for (const auto& p : params_table_)
      if (p.name == name) return p.offset;
    ATTNLAB_CHECK(false, "Layout: missing parameter");
    return 0;
  };
  auto find_opt = [&](const std::string& name) -> int64_t {
    for (const auto& p : params_table_)
      if (p.name == name) return p.offset;
    return -1;
  };
  auto bind = [&](Arena& a, BlockParams& bp, int l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    auto vec = [&](const std::string& name, int64_t n) {
      const int64_t off = find_opt(p + name);
      return off < 0 ? VecView{} : VecView{a.at(off), n};
    };
    bp.v_scale_theta = vec("attn.v_scale_theta", H);
    bp.q_norm_g = vec("attn.q_norm.g", dh);
    bp.k_norm_g = vec("attn.k_norm.g", dh);
    bp.sink_logit = vec("attn.sink_logit", H);
    auto mat = [&](const std::string& name, int rows, int cols) {
      const int64_t off = find_opt(p + name);
      return off < 0 ? MatView{} : MatView(a.at(off), rows, cols);
    };
    bp.k_bias = mat("attn.k_bias", H, dh);
    bp.v_bias = mat("attn.v_bias", H, dh);
    bp.attn_norm_g = VecView{a.at(find(p + "attn_norm.g")), d};
    bp.w_qkv = MatView(a.at(find(p + "attn.w_q")), 3 * d, d);
    bp.w_o = MatView(a.at(find(p + "attn.w_o")), d, d);
    if (cfg.has_mlp()) {  // else empty views
      bp.mlp_norm_g = VecView{a.at(find(p + "mlp_norm.g")), d};
      bp.w_in = MatView(a.at(find(p + (swiglu ? "mlp.w_gate" : "mlp.w_up"))), in_rows, d);
      bp.w_down = MatView(a.at(find(p + "mlp.w_down")), d, F);
    }
  };
  block_params_.resize(L);
  block_dparams_.resize(L);
  for (int l = 0; l < L; ++l) {
    bind(params_, block_params_[l], l);
    bind(grads_, block_dparams_[l], l);
  }
  auto bind_head = [&](Arena& a, HeadParams& hp) {
    hp.tok_emb = MatView(a.at(find("tok_emb")), V, d);
    hp.final_norm_g = VecView{a.at(find("final_norm.g")), d};
    hp.lm_head = cfg.tied_head ? hp.tok_emb : MatView(a.at(find("lm_head")), V, d);
    const int64_t sink = find_opt("sink_token");
    hp.sink_token = sink < 0 ? VecView{} : VecView{a.at(sink), d};
  };
  bind_head(params_, head_params_);
  bind_head(grads_, head_dparams_);

  // Activations: reserve every slice, allocate once, then hand out views.
  const int64_t Nd = int64_t(N) * d, probs = int64_t(B) * H * T * T;
  struct BlockOff { int64_t x, norm1, rstd1, qkv, probs, att, attn_out, resid_mid, norm2, rstd2, pre, act, mlp_out, dx, dnorm1, dqkv, dmid, dnorm2;
                    int64_t vhat = -1, v_sqnorm = -1, qk_pre = -1, qk_rstd = -1, z0 = -1, p0 = -1, sum1 = -1, sum2 = -1; };
  const bool post = cfg.norm_position == NormPosition::kPost;
  const int64_t BHT = int64_t(B) * H * T;
  const bool vscale = cfg.v_scale != VScaleMode::kOff;
  const bool vhat = cfg.v_scale == VScaleMode::kLearned || cfg.v_scale == VScaleMode::kFixed;
  std::vector<BlockOff> off(L);
  for (int l = 0; l < L; ++l) {
    BlockOff& o = off[l];
    o.x = acts_arena_.reserve(Nd);
    o.norm1 = acts_arena_.reserve(Nd);
    o.rstd1 = acts_arena_.reserve(N);
    o.qkv = acts_arena_.reserve(3 * Nd);
    o.probs = acts_arena_.reserve(probs);
    o.att = acts_arena_.reserve(Nd);
    o.attn_out = acts_arena_.reserve(Nd);
    o.resid_mid = acts_arena_.reserve(Nd);
    o.norm2 = acts_arena_.reserve(Nd);
    o.rstd2 = acts_arena_.reserve(N);
    o.pre = acts_arena_.reserve(int64_t(N) * in_rows);
    o.act = acts_arena_.reserve(int64_t(N) * F);
    o.mlp_out = acts_arena_.reserve(Nd);
    o.dx = acts_arena_.reserve(Nd);
    o.dnorm1 = acts_arena_.reserve(Nd);
    o.dqkv = acts_arena_.reserve(3 * Nd);
    o.dmid = acts_arena_.reserve(Nd);
    o.dnorm2 = acts_arena_.reserve(Nd);
    if (vhat) o.vhat = acts_arena_.reserve(Nd);
    if (vscale) o.v_sqnorm = acts_arena_.reserve(int64_t(N) * H);
    if (cfg.qk_norm) {
      o.qk_pre = acts_arena_.reserve(2 * Nd);
      o.qk_rstd = acts_arena_.reserve(2 * int64_t(N) * H);
    }
    if (cfg.extra_key()) {
      o.z0 = acts_arena_.reserve(BHT);
      o.p0 = acts_arena_.reserve(BHT);
    }
    if (post) {
      o.sum1 = acts_arena_.reserve(Nd);
      o.sum2 = acts_arena_.reserve(Nd);
    }
  }
  const int64_t hx = acts_arena_.reserve(Nd), hnorm = acts_arena_.reserve(Nd), hrstd = acts_arena_.reserve(N),
                hlogits = acts_arena_.reserve(int64_t(N) * V), hlse = acts_arena_.reserve(N),
                hloss = acts_arena_.reserve(N), hpos = acts_arena_.reserve(int64_t(T) * d),
                hdx = acts_arena_.reserve(Nd);
  const int64_t s_dprobs = acts_arena_.reserve(probs), s_datt = acts_arena_.reserve(Nd),
                s_dpre = acts_arena_.reserve(int64_t(N) * in_rows), s_dact = acts_arena_.reserve(int64_t(N) * F),
                s_dnormf = acts_arena_.reserve(Nd), s_dlogits = acts_arena_.reserve(int64_t(N) * V);
  const int64_t s_dvhat = vscale ? acts_arena_.reserve(Nd) : -1;
  const int64_t s_dqk = cfg.qk_norm ? acts_arena_.reserve(2 * Nd) : -1;
  const int64_t s_dz0 = cfg.extra_key() ? acts_arena_.reserve(BHT) : -1;
  const bool branch = post || cfg.residual_scale != 1.0f || cfg.embed_scale;
  const int64_t s_dsum = post ? acts_arena_.reserve(Nd) : -1;
  const int64_t s_dbranch = branch ? acts_arena_.reserve(Nd) : -1;
  // σReparam's saved state per block: σ per matrix and v = W u / σ (rows of every matrix).
  const std::vector<SigmaMatrix> smats = cfg.sigma_reparam ? sigma_matrices(cfg) : std::vector<SigmaMatrix>{};
  int64_t sigma_rows = 0;
  for (const SigmaMatrix& m : smats) sigma_rows += m.rows;
  std::vector<int64_t> sigma_saved(size_t(L), -1);
  for (int l = 0; l < L && !smats.empty(); ++l) sigma_saved[size_t(l)] = acts_arena_.reserve(int64_t(smats.size()) + sigma_rows);
  acts_arena_.allocate();

  Arena& A = acts_arena_;
  acts_.resize(L);
  act_grads_.resize(L + 1);
  for (int l = 0; l < L; ++l) {
    const BlockOff& o = off[l];
    BlockActs& a = acts_[l];
    a.x = MatView(A.at(o.x), N, d);
    a.norm1 = MatView(A.at(o.norm1), N, d);
    a.rstd1 = A.at(o.rstd1);
    a.qkv = MatView(A.at(o.qkv), N, 3 * d);
    a.probs = A.at(o.probs);
    a.att = MatView(A.at(o.att), N, d);
    a.attn_out = MatView(A.at(o.attn_out), N, d);
    a.resid_mid = MatView(A.at(o.resid_mid), N, d);
    a.norm2 = MatView(A.at(o.norm2), N, d);
    a.rstd2 = A.at(o.rstd2);
    a.pre = MatView(A.at(o.pre), N, in_rows);
    a.act = MatView(A.at(o.act), N, F);
    a.mlp_out = MatView(A.at(o.mlp_out), N, d);
    if (o.vhat >= 0) a.vhat = MatView(A.at(o.vhat), N, d);
    if (o.v_sqnorm >= 0) a.v_sqnorm = A.at(o.v_sqnorm);
    if (o.qk_pre >= 0) {
      a.qk_pre = MatView(A.at(o.qk_pre), N, 2 * d);
      a.q_rstd = A.at(o.qk_rstd);
      a.k_rstd = a.q_rstd + int64_t(N) * H;
    }
    if (o.z0 >= 0) a.z0 = A.at(o.z0);
    if (o.p0 >= 0) a.p0 = A.at(o.p0);
    if (post) {
      a.sum1 = MatView(A.at(o.sum1), N, d);
      a.sum2 = MatView(A.at(o.sum2), N, d);
      a.norm1 = a.x;  // the attention input is x itself
      a.norm2 = a.resid_mid;
    }
    BlockGrads& g = act_grads_[l];
    g.dx = MatView(A.at(o.dx), N, d);
    g.dnorm1 = MatView(A.at(o.dnorm1), N, d);
    g.dqkv = MatView(A.at(o.dqkv), N, 3 * d);
    g.dresid_mid = MatView(A.at(o.dmid), N, d);
    g.dnorm2 = MatView(A.at(o.dnorm2), N, d);
  }
  act_grads_[L].dx = MatView(A.at(hdx), N, d);  // ∂L/∂(final residual stream)
  head_acts_.x = MatView(A.at(hx), N, d);
  head_acts_.normf = MatView(A.at(hnorm), N, d);
  head_acts_.rstdf = A.at(hrstd);
  head_acts_.logits = MatView(A.at(hlogits), N, V);
  head_acts_.lse = A.at(hlse);
  head_acts_.row_loss = A.at(hloss);
  head_acts_.pos = MatView(A.at(hpos), T, d);
  scratch_.dprobs = A.at(s_dprobs);
  scratch_.datt = MatView(A.at(s_datt), N, d);
  scratch_.dpre = MatView(A.at(s_dpre), N, in_rows);
  scratch_.dact = MatView(A.at(s_dact), N, F);
  scratch_.dnormf = MatView(A.at(s_dnormf), N, d);
  scratch_.dlogits = MatView(A.at(s_dlogits), N, V);
  if (s_dvhat >= 0) scratch_.dvhat = MatView(A.at(s_dvhat), N, d);
  if (s_dqk >= 0) scratch_.dqk = MatView(A.at(s_dqk), N, 2 * d);
  if (s_dz0 >= 0) scratch_.dz0 = A.at(s_dz0);
  if (s_dsum >= 0) scratch_.dsum = MatView(A.at(s_dsum), N, d);
  if (s_dbranch >= 0) scratch_.dbranch = MatView(A.at(s_dbranch), N, d);

  // σReparam: effective weights per block, one block's ∂L/∂Ŵ scratch, and the power-iteration scratch.
  if (smats.empty()) return;
  sigma_ = true;
  const int64_t sz_qkv = 3 * int64_t(d) * d, sz_o = int64_t(d) * d, sz_in = int64_t(in_rows) * d, sz_down = int64_t(d) * F;
  struct EffOff { int64_t qkv, o, in, down; };
  std::vector<EffOff> eff_off(static_cast<size_t>(L));
  for (EffOff& o : eff_off) o = {eff_.reserve(sz_qkv), eff_.reserve(sz_o), eff_.reserve(sz_in), eff_.reserve(sz_down)};
  const int64_t g_qkv = eff_.reserve(sz_qkv), g_o = eff_.reserve(sz_o), g_in = eff_.reserve(sz_in),
                g_down = eff_.reserve(sz_down), tmp = eff_.reserve(std::max<int64_t>(in_rows, 3 * int64_t(d)));
  eff_.allocate();
  block_eff_.resize(L);
  sigma_views_.resize(L);
  eff_grad_ = block_params_[0];
  eff_grad_.w_qkv = MatView(eff_.at(g_qkv), 3 * d, d);
  eff_grad_.w_o = MatView(eff_.at(g_o), d, d);
  eff_grad_.w_in = MatView(eff_.at(g_in), in_rows, d);
  eff_grad_.w_down = MatView(eff_.at(g_down), d, F);
  sigma_tmp_ = eff_.at(tmp);
  for (int l = 0; l < L; ++l) {
    BlockParams& e = block_eff_[l];
    e = block_params_[l];
    const EffOff& o = eff_off[size_t(l)];
    e.w_qkv = MatView(eff_.at(o.qkv), 3 * d, d);
    e.w_o = MatView(eff_.at(o.o), d, d);
    e.w_in = MatView(eff_.at(o.in), in_rows, d);
    e.w_down = MatView(eff_.at(o.down), d, F);
    const BlockParams &p = block_params_[l], &g = block_dparams_[l];
    const std::string pre = "blocks." + std::to_string(l) + ".";
    float* saved = A.at(sigma_saved[size_t(l)]);
    float* v = saved + smats.size();
    for (size_t k = 0; k < smats.size(); ++k) {
      const SigmaMatrix& m = smats[k];
      auto pick = [&](const BlockParams& b) {
        const MatView full = m.fused == 0 ? b.w_qkv : m.fused == 1 ? b.w_o : m.fused == 2 ? b.w_in : b.w_down;
        return MatView(full.row(m.row0), m.rows, m.cols, full.stride);
      };
      SigmaView sv;
      sv.w = pick(p);
      sv.w_eff = pick(e);
      sv.dw = pick(g);
      sv.dw_eff = pick(eff_grad_);
      sv.gamma = params_.at(find(pre + m.name + ".sn_gamma"));
      sv.dgamma = grads_.at(find(pre + m.name + ".sn_gamma"));
      sv.u = params_.at(find(pre + m.name + ".sn_u"));
      sv.sigma = saved + k;
      sv.v = v;
      v += m.rows;
      sigma_views_[l].push_back(sv);
    }
  }
}

}  // namespace attnlab
