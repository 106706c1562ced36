#include "model/transformer.h"

#include <cmath>
#include <cstring>

#include "model/attention_variants.h"
#include "model/embedding.h"
#include "model/loss.h"
#include "model/mlp.h"
#include "model/qk_norm.h"
#include "model/rmsnorm.h"
#include "model/rng.h"
#include "model/sigma_reparam.h"
#include "model/vscale.h"

namespace attnlab {

namespace {

// out = a + b, element-wise over [N, C] (the residual additions).
void add_forward(MatView out, ConstMatView a, ConstMatView b) {
  ATTNLAB_CHECK(same_shape(out, a) && same_shape(out, b), "add_forward shapes");
#pragma omp parallel for schedule(static)
  for (int n = 0; n < out.rows; ++n) {
    float* o = out.row(n);
    const float *x = a.row(n), *y = b.row(n);
#pragma omp simd
    for (int c = 0; c < out.cols; ++c) o[c] = x[c] + y[c];
  }
}

void copy_into(MatView dst, ConstMatView src) {
  ATTNLAB_CHECK(same_shape(dst, src), "copy_into shapes");
#pragma omp parallel for schedule(static)
  for (int n = 0; n < dst.rows; ++n) std::memcpy(dst.row(n), src.row(n), sizeof(float) * size_t(dst.cols));
}

void zero(MatView m) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < m.rows; ++n) std::memset(m.row(n), 0, sizeof(float) * size_t(m.cols));
}

// out = a + alpha·b (residual_scale); alpha == 1 is exactly add_forward.
void residual_add(MatView out, ConstMatView a, ConstMatView b, float alpha) {
  if (alpha == 1.0f) {
    add_forward(out, a, b);
    return;
  }
  ATTNLAB_CHECK(same_shape(out, a) && same_shape(out, b), "residual_add shapes");
#pragma omp parallel for schedule(static)
  for (int n = 0; n < out.rows; ++n) {
    float* o = out.row(n);
    const float *x = a.row(n), *y = b.row(n);
#pragma omp simd
    for (int c = 0; c < out.cols; ++c) o[c] = x[c] + alpha * y[c];
  }
}

// dst = alpha·src.
void scale_into(MatView dst, ConstMatView src, float alpha) {
  ATTNLAB_CHECK(same_shape(dst, src), "scale_into shapes");
#pragma omp parallel for schedule(static)
  for (int n = 0; n < dst.rows; ++n) {
    float* o = dst.row(n);
    const float* x = src.row(n);
#pragma omp simd
    for (int c = 0; c < dst.cols; ++c) o[c] = alpha * x[c];
  }
}

// A sublayer's contribution to the stream: out = a + α·b with the skip connection (exactly residual_add),
// out = α·b without it (model.skip: false, Dong et al.'s x_{l+1} = f(x_l)).
void skip_add(MatView out, ConstMatView a, ConstMatView b, float alpha, bool skip) {
  if (skip) {
    residual_add(out, a, b, alpha);
  } else if (alpha == 1.0f) {
    copy_into(out, b);
  } else {
    scale_into(out, b, alpha);
  }
}

// dst += src.
void add_into(MatView dst, ConstMatView src) {
  ATTNLAB_CHECK(same_shape(dst, src), "add_into shapes");
#pragma omp parallel for schedule(static)
  for (int n = 0; n < dst.rows; ++n) {
    float* o = dst.row(n);
    const float* x = src.row(n);
#pragma omp simd
    for (int c = 0; c < dst.cols; ++c) o[c] += x[c];
  }
}

// Sink token: rows n ≡ 0 (mod T) of x get the vector r; backward dr += Σ of those rows of dx.
void sink_token_forward(MatView x, ConstVecView r, int T) {
  ATTNLAB_CHECK(r.n == x.cols && T > 0 && x.rows % T == 0, "sink_token_forward shapes");
  for (int n = 0; n < x.rows; n += T) std::memcpy(x.row(n), r.p, sizeof(float) * size_t(x.cols));
}
void sink_token_backward(VecView dr, ConstMatView dx, int T) {
  ATTNLAB_CHECK(dr.n == dx.cols && T > 0 && dx.rows % T == 0, "sink_token_backward shapes");
  for (int c = 0; c < dx.cols; ++c) {
    double acc = 0.0;
    for (int n = 0; n < dx.rows; n += T) acc += double(dx.row(n)[c]);
    dr[c] += float(acc);
  }
}

}  // namespace

Transformer::Transformer(const ModelConfig& cfg, int batch, DnnlContext& ctx)
    : cfg_(cfg), ctx_(ctx), layout_(cfg, batch) {
  const Layout& y = layout_;
  const int in_cols = cfg.mlp == MlpKind::kSwiGLU ? 2 * y.F : y.F;
  qkv_plan_ = make_linear_plan(ctx, y.N, y.d, 3 * y.d, y.d, 3 * y.d);
  o_plan_ = make_linear_plan(ctx, y.N, y.d, y.d, y.d, y.d);
  if (cfg.has_mlp()) {  // attention-only blocks have no MLP matmuls
    in_plan_ = make_linear_plan(ctx, y.N, y.d, in_cols, y.d, in_cols);
    down_plan_ = make_linear_plan(ctx, y.N, y.F, y.d, y.F, y.d);
  }
  head_plan_ = make_linear_plan(ctx, y.N, y.d, y.V, y.d, y.V);
  attn_plan_ = make_attention_plan(ctx, y.B, y.T, y.H, y.dh, /*dense_v=*/cfg.v_scale != VScaleMode::kOff);
  if (cfg.pos == PosEncoding::kRope) rope_ = make_rope_table(y.T, y.dh, cfg.rope_base);
  if (cfg.pos == PosEncoding::kSinusoidal) sinusoidal_table(y.head_acts().pos);
  inputs_.assign(size_t(y.N), 0);
  targets_.assign(size_t(y.N), -1);
}

void Transformer::init_params(uint64_t seed) {
  Rng rng(hash_u64(seed, 0x696e6974 /* "init" */));
  float* p = layout_.params();
  for (const ParamInfo& info : layout_.param_table()) {
    float* w = p + info.offset;
    switch (info.init) {
      case ParamInit::kNormal: {
        // Toggle tensors draw from a stream of their own (keyed by name), so the core weights do not
        // depend on which toggles are on: arms of an ablation start from the same core weights.
        uint64_t name_hash = 1469598103934665603ull;
        for (unsigned char c : info.name) name_hash = (name_hash ^ c) * 1099511628211ull;
        Rng own(hash_u64(seed, 0x746f67676c65 /* "toggle" */, name_hash));
        Rng& r = info.toggle ? own : rng;
        for (int64_t i = 0; i < info.size; ++i) w[i] = cfg_.init_std * float(r.normal());
        break;
      }
      case ParamInit::kOnes:
        for (int64_t i = 0; i < info.size; ++i) w[i] = 1.0f;
        break;
      case ParamInit::kConstant:
        for (int64_t i = 0; i < info.size; ++i) w[i] = info.init_value;
        break;
    }
  }
  // σReparam: u = W's top right singular vector and γ = σ_max(W), so that Ŵ = W at init.
  for (int l = 0; l < cfg_.n_layer; ++l)
    for (const SigmaView& sv : layout_.sigma_views(l)) *sv.gamma = float(sigma_reparam_init(sv.u, sv.w));
}

float Transformer::v_scale_c(int layer, int head) const {
  ATTNLAB_CHECK(cfg_.v_scale != VScaleMode::kOff && layer >= 0 && layer < cfg_.n_layer && head >= 0 &&
                    head < cfg_.n_head, "v_scale_c: V-scale off or index out of range");
  return float(double(cfg_.v_scale_c0()) * std::exp(double(layout_.block(layer).v_scale_theta[head])));
}

void Transformer::zero_grad() { std::memset(layout_.grads(), 0, sizeof(float) * size_t(layout_.n_params())); }

double Transformer::flops_per_token() const {
  const double d = cfg_.d_model, F = cfg_.hidden(), V = cfg_.vocab, L = cfg_.n_layer, T = cfg_.context_len();
  const double mlp = cfg_.mlp == MlpKind::kSwiGLU ? 3.0 * d * F : 2.0 * d * F;
  const double n_matmul = L * (4.0 * d * d + mlp) + V * d;
  return 6.0 * n_matmul + 12.0 * L * T * d;
}

double Transformer::forward(const int32_t* inputs, const int32_t* targets) {
  Layout& y = layout_;
  const HeadParams& hp = y.head();
  const HeadActs& ha = y.head_acts();
  MatView x0 = y.acts(0).x;
  if (!cfg_.sink_token) {
    std::memcpy(inputs_.data(), inputs, sizeof(int32_t) * size_t(y.N));
    std::memcpy(targets_.data(), targets, sizeof(int32_t) * size_t(y.N));
    embedding_forward(x0, inputs_.data(), hp.tok_emb);
  } else {
    // Position 0 of each sequence is the sink token (token id and target −1: never embedded, no loss);
    // the seq_len data tokens follow at positions 1..T−1.
    const int T = y.T, Td = T - 1;
    for (int b = 0; b < y.B; ++b) {
      inputs_[size_t(b) * T] = -1;
      targets_[size_t(b) * T] = -1;
      std::memcpy(&inputs_[size_t(b) * T + 1], inputs + size_t(b) * Td, sizeof(int32_t) * size_t(Td));
      std::memcpy(&targets_[size_t(b) * T + 1], targets + size_t(b) * Td, sizeof(int32_t) * size_t(Td));
      embedding_forward(MatView(x0.row(b * T + 1), Td, y.d), &inputs_[size_t(b) * T + 1], hp.tok_emb);
    }
    sink_token_forward(x0, hp.sink_token, T);
  }
  if (cfg_.embed_scale) scale_into(x0, x0, std::sqrt(float(y.d)));
  if (cfg_.pos == PosEncoding::kSinusoidal) sinusoidal_forward(x0, ha.pos);
  for (int l = 0; l < y.L; ++l) block_forward(l);

  rmsnorm_forward(ha.normf, {ha.rstdf}, ha.x, hp.final_norm_g, cfg_.norm_eps);
  linear_forward(head_plan_, ha.logits, ha.normf, hp.lm_head);
  tap(Tap::kLogits, -1, Pass::kForward, ha.logits);
  n_valid_ = count_valid_targets(targets_.data(), y.N);
  last_ce_ = cross_entropy_forward({ha.lse, ha.row_loss}, ha.logits, targets_.data());
  if (cfg_.z_loss == 0.0f) return last_ce_;
  last_z_ = z_loss_forward({ha.lse, ha.row_loss}, targets_.data(), y.N, cfg_.z_loss);
  return last_ce_ + last_z_;
}

void Transformer::block_forward(int l) {
  Layout& y = layout_;
  const BlockParams& p = y.block(l);
  const BlockParams& w = y.block_eff(l);  // the matrices the linears use (Ŵ under σReparam, else p)
  const BlockActs& a = y.acts(l);
  const MatView out = l + 1 < y.L ? y.acts(l + 1).x : y.head_acts().x;
  const bool post = cfg_.norm_position == NormPosition::kPost;
  const float alpha = cfg_.residual_scale, eps = cfg_.norm_eps;
  const bool skip = cfg_.skip;
  for (const SigmaView& sv : y.sigma_views(l)) sigma_reparam_forward(sv.w_eff, {sv.sigma, sv.v}, sv.w, *sv.gamma, sv.u);

  // Attention: pre-norm x + α·Attn(N(x)); post-norm N(x + α·Attn(x)) (norm1 then aliases x).
  if (!post) rmsnorm_forward(a.norm1, {a.rstd1}, a.x, p.attn_norm_g, eps);
  linear_forward(qkv_plan_, a.qkv, a.norm1, w.w_qkv);
  if (cfg_.qk_norm) {  // before RoPE: the norm sees the projection's output
    copy_into(a.qk_pre, a.qkv.col_block(0, 2 * y.d));
    head_rmsnorm_forward(a.qkv.col_block(0, y.d), {a.q_rstd}, a.qk_pre.col_block(0, y.d), p.q_norm_g, eps);
    head_rmsnorm_forward(a.qkv.col_block(y.d, y.d), {a.k_rstd}, a.qk_pre.col_block(y.d, y.d), p.k_norm_g, eps);
  }
  if (cfg_.pos == PosEncoding::kRope) rope_forward(a.qkv.col_block(0, 2 * y.d), rope_, 2 * y.H);
  attention_core_forward(l);
  linear_forward(o_plan_, a.attn_out, a.att, w.w_o);
  if (post) {
    skip_add(a.sum1, a.x, a.attn_out, alpha, skip);
    rmsnorm_forward(a.resid_mid, {a.rstd1}, a.sum1, p.attn_norm_g, eps);
  } else {
    skip_add(a.resid_mid, a.x, a.attn_out, alpha, skip);
  }
  if (!cfg_.has_mlp()) {  // attention-only block: its output is resid_mid (mlp_out, norm2 stay 0)
    copy_into(out, a.resid_mid);
    return;
  }

  // MLP, the same way (post-norm: norm2 aliases resid_mid).
  if (!post) rmsnorm_forward(a.norm2, {a.rstd2}, a.resid_mid, p.mlp_norm_g, eps);
  linear_forward(in_plan_, a.pre, a.norm2, w.w_in);
  if (cfg_.mlp == MlpKind::kSwiGLU) {
    swiglu_forward(a.act, a.pre);
  } else {
    gelu_forward(a.act, a.pre);
  }
  linear_forward(down_plan_, a.mlp_out, a.act, w.w_down);
  if (post) {
    skip_add(a.sum2, a.resid_mid, a.mlp_out, alpha, skip);
    rmsnorm_forward(out, {a.rstd2}, a.sum2, p.mlp_norm_g, eps);
  } else {
    skip_add(out, a.resid_mid, a.mlp_out, alpha, skip);
  }
}

void Transformer::set_step(int64_t step) {
  step_ = step;
  // σReparam's one power-iteration step per training step: the first time each new step is set.
  if (!cfg_.sigma_reparam || step <= last_power_step_) return;
  last_power_step_ = step;
  for (int l = 0; l < cfg_.n_layer; ++l)
    for (const SigmaView& sv : layout_.sigma_views(l)) sigma_reparam_power_step(sv.u, sv.w, layout_.sigma_tmp());
}

float Transformer::temperature_factor() const {
  if (cfg_.attn_temperature == 1.0f) return 1.0f;
  const bool in_window = step_ >= cfg_.attn_temperature_start &&
                         (cfg_.attn_temperature_end == 0 || step_ < cfg_.attn_temperature_end);
  return in_window ? 1.0f / cfg_.attn_temperature : 1.0f;
}

// scores → probabilities → values, with the attention toggles (model/attention_variants.h, vscale.h).
void Transformer::attention_core_forward(int l) {
  Layout& y = layout_;
  const BlockParams& p = y.block(l);
  const BlockActs& a = y.acts(l);
  attention_scores_forward(attn_plan_, {a.probs}, a.qkv);
  inv_tau_ = temperature_factor();  // kept so backward uses the factor of this forward
  if (inv_tau_ != 1.0f) attention_scale_scores(attn_plan_, a.probs, inv_tau_);
  tap(Tap::kAttnScores, l, Pass::kForward, ConstMatView(a.probs, y.B * y.H * y.T, y.T));
  if (cfg_.sigmoid_attn) {
    attention_sigmoid_forward(attn_plan_, {a.probs}, cfg_.sigmoid_attn_bias);
  } else if (cfg_.extra_key()) {
    if (cfg_.attn_bias_kv) {
      attention_kv_bias_logits(attn_plan_, a.z0, a.qkv, p.k_bias, attn_plan_.scale * inv_tau_);
    } else {
      attention_sink_logits(attn_plan_, a.z0, p.sink_logit);  // empty view (softmax+1): logit 0
    }
    attention_softmax_extra_forward(attn_plan_, {a.probs}, {a.p0}, a.z0);
  } else {
    attention_softmax_forward(attn_plan_, {a.probs});
  }
  const ConstMatView v = a.qkv.col_block(2 * y.d, y.d);
  switch (cfg_.v_scale) {
    case VScaleMode::kOff:
      attention_values_forward(attn_plan_, a.att, {a.probs}, a.qkv);
      break;
    case VScaleMode::kLearned:
    case VScaleMode::kFixed:
      vscale_forward(a.vhat, {a.v_sqnorm}, v, p.v_scale_theta, cfg_.v_scale_c0());
      attention_values_forward_v(attn_plan_, a.att, {a.probs}, a.vhat);
      break;
    case VScaleMode::kBackwardOnly:  // forward identity: the values are v itself
      vscale_sqnorm_forward({a.v_sqnorm}, v, y.H);
      attention_values_forward(attn_plan_, a.att, {a.probs}, a.qkv);
      break;
  }
  if (cfg_.attn_bias_kv) attention_kv_bias_values_forward(attn_plan_, a.att, {a.p0}, p.v_bias);
}

void Transformer::attention_core_backward(int l) {
  Layout& y = layout_;
  const BlockParams& p = y.block(l);
  const BlockParams& g = y.block_grad(l);
  const BlockActs& a = y.acts(l);
  const BlockGrads& ag = y.act_grads(l);
  const ScratchGrads& s = y.scratch();
  if (!cfg_.attention_variant()) {
    attention_backward(attn_plan_, ag.dqkv, s.dprobs, s.datt, a.qkv, {a.probs});
    return;
  }
  // Values: the attention core saw v̂ (V-scale learned/fixed) or v; with V-scale ∂L/∂v̂ goes to a scratch
  // buffer that V-scale's Jacobian maps to ∂L/∂v at the end.
  const ConstMatView v = a.qkv.col_block(2 * y.d, y.d);
  const bool vhat = cfg_.v_scale == VScaleMode::kLearned || cfg_.v_scale == VScaleMode::kFixed;
  MatView dv = ag.dqkv.col_block(2 * y.d, y.d);
  if (cfg_.v_scale != VScaleMode::kOff) {
    zero(s.dvhat);
    dv = s.dvhat;
  }
  attention_values_backward(attn_plan_, s.dprobs, dv, s.datt, vhat ? ConstMatView(a.vhat) : v, {a.probs});
  if (cfg_.attn_bias_kv) {
    attention_kv_bias_values_backward(attn_plan_, s.dz0, g.v_bias, s.datt, p.v_bias, {a.p0});
  } else if (cfg_.extra_key()) {
    std::memset(s.dz0, 0, sizeof(float) * size_t(y.B) * size_t(y.H) * size_t(y.T));  // its value is 0
  }
  if (cfg_.sigmoid_attn) {
    attention_sigmoid_backward(attn_plan_, s.dprobs, {a.probs});
  } else if (cfg_.extra_key()) {
    attention_softmax_extra_backward(attn_plan_, s.dprobs, s.dz0, {a.probs}, {a.p0});
  } else {
    attention_softmax_backward(attn_plan_, s.dprobs, {a.probs});
  }
  if (inv_tau_ != 1.0f) attention_scale_scores(attn_plan_, s.dprobs, inv_tau_);
  attention_scores_backward(attn_plan_, ag.dqkv, s.dprobs, a.qkv);
  if (cfg_.attn_bias_kv)
    attention_kv_bias_logits_backward(attn_plan_, ag.dqkv, g.k_bias, s.dz0, a.qkv, p.k_bias,
                                      attn_plan_.scale * inv_tau_);
  if (cfg_.sink_logit) attention_sink_logits_backward(attn_plan_, g.sink_logit, s.dz0);
  if (cfg_.v_scale != VScaleMode::kOff)
    vscale_backward(ag.dqkv.col_block(2 * y.d, y.d), cfg_.v_scale == VScaleMode::kLearned ? g.v_scale_theta : VecView{},
                    s.dvhat, v, p.v_scale_theta, cfg_.v_scale_c0(), {a.v_sqnorm});
}

void Transformer::backward(float loss_scale) {
  Layout& y = layout_;
  const HeadParams& hp = y.head();
  const HeadParams& hg = y.head_grad();
  const HeadActs& ha = y.head_acts();
  const ScratchGrads& s = y.scratch();
  const MatView dxL = y.act_grads(y.L).dx;

  zero(s.dlogits);
  if (n_valid_ > 0)
    cross_entropy_backward(s.dlogits, ha.logits, targets_.data(), {ha.lse, ha.row_loss},
                           loss_scale / float(n_valid_));
  if (n_valid_ > 0 && cfg_.z_loss != 0.0f)
    z_loss_backward(s.dlogits, ha.logits, targets_.data(), {ha.lse, ha.row_loss},
                    loss_scale * cfg_.z_loss / float(n_valid_));
  zero(s.dnormf);
  linear_backward(head_plan_, s.dnormf, hg.lm_head, s.dlogits, ha.normf, hp.lm_head);
  zero(dxL);
  rmsnorm_backward(dxL, hg.final_norm_g, s.dnormf, ha.x, hp.final_norm_g, {ha.rstdf});
  for (int l = y.L - 1; l >= 0; --l) block_backward(l);
  // Sinusoidal PE has no parameters: its backward passes dx0 through unchanged to the embedding.
  ConstMatView dx0 = y.act_grads(0).dx;
  if (cfg_.embed_scale) {
    scale_into(s.dbranch, dx0, std::sqrt(float(y.d)));
    dx0 = s.dbranch;
  }
  if (!cfg_.sink_token) {
    embedding_backward(hg.tok_emb, dx0, inputs_.data());
  } else {
    const int T = y.T;
    for (int b = 0; b < y.B; ++b)
      embedding_backward(hg.tok_emb, ConstMatView(dx0.row(b * T + 1), T - 1, y.d), &inputs_[size_t(b) * T + 1]);
    sink_token_backward(hg.sink_token, dx0, T);
  }
}

void Transformer::block_backward(int l) {
  Layout& y = layout_;
  const BlockParams& p = y.block(l);
  const BlockParams& w = y.block_eff(l);
  const BlockParams& g = y.block_grad(l);
  const BlockActs& a = y.acts(l);
  const BlockGrads& ag = y.act_grads(l);
  const ScratchGrads& s = y.scratch();
  const MatView dout = y.act_grads(l + 1).dx;  // ∂L/∂(block output)
  const bool post = cfg_.norm_position == NormPosition::kPost;
  const bool sigma = cfg_.sigma_reparam;
  const float alpha = cfg_.residual_scale;
  // Under σReparam the linears' weight gradients are ∂L/∂Ŵ, into a zeroed scratch, mapped to ∂L/∂W, ∂L/∂γ below.
  const BlockParams& gw = sigma ? y.eff_grad() : g;
  if (sigma) {
    zero(gw.w_qkv);
    zero(gw.w_o);
    zero(gw.w_in);  // empty views without an MLP
    zero(gw.w_down);
  }
  // What a branch receives from the residual gradient dr: α·dr (dr itself when α = 1).
  auto branch = [&](ConstMatView dr) -> ConstMatView {
    if (alpha == 1.0f) return dr;
    scale_into(s.dbranch, dr, alpha);
    return s.dbranch;
  };

  // MLP branch: out = resid_mid + α·W_down·act(W_in·RMSNorm(resid_mid)); post-norm: out = RMSNorm(that).
  // Without the skip connection the resid_mid term is absent; without an MLP, out = resid_mid.
  ConstMatView dsum = dout;
  if (!cfg_.has_mlp()) {
    copy_into(ag.dresid_mid, dout);
  } else {
    if (post) {
      zero(s.dsum);
      rmsnorm_backward(s.dsum, g.mlp_norm_g, dout, a.sum2, p.mlp_norm_g, {a.rstd2});
      dsum = s.dsum;
    }
    if (cfg_.skip) {
      copy_into(ag.dresid_mid, dsum);
    } else {
      zero(ag.dresid_mid);
    }
    zero(s.dact);
    linear_backward(down_plan_, s.dact, gw.w_down, branch(dsum), a.act, w.w_down);
    zero(s.dpre);
    if (cfg_.mlp == MlpKind::kSwiGLU) {
      swiglu_backward(s.dpre, s.dact, a.pre);
    } else {
      gelu_backward(s.dpre, s.dact, a.pre);
    }
    zero(ag.dnorm2);
    linear_backward(in_plan_, ag.dnorm2, gw.w_in, s.dpre, a.norm2, w.w_in);
    if (post) {
      add_into(ag.dresid_mid, ag.dnorm2);  // the MLP input is resid_mid itself
    } else {
      rmsnorm_backward(ag.dresid_mid, g.mlp_norm_g, ag.dnorm2, a.resid_mid, p.mlp_norm_g, {a.rstd2});
    }
  }

  // Attention branch: resid_mid = x + α·W_o·Attn(RoPE(W_qkv·RMSNorm(x))); post-norm: RMSNorm(x + α·W_o·Attn(x)).
  dsum = ag.dresid_mid;
  if (post) {
    zero(s.dsum);
    rmsnorm_backward(s.dsum, g.attn_norm_g, ag.dresid_mid, a.sum1, p.attn_norm_g, {a.rstd1});
    dsum = s.dsum;
  }
  zero(s.datt);
  linear_backward(o_plan_, s.datt, gw.w_o, branch(dsum), a.att, w.w_o);
  zero(ag.dqkv);
  attention_core_backward(l);
  if (cfg_.pos == PosEncoding::kRope) rope_backward(ag.dqkv.col_block(0, 2 * y.d), rope_, 2 * y.H);
  if (cfg_.qk_norm) {  // ∂L/∂(normed q, k) → ∂L/∂(W_qkv's q, k output)
    zero(s.dqk);
    head_rmsnorm_backward(s.dqk.col_block(0, y.d), g.q_norm_g, ag.dqkv.col_block(0, y.d),
                          a.qk_pre.col_block(0, y.d), p.q_norm_g, {a.q_rstd});
    head_rmsnorm_backward(s.dqk.col_block(y.d, y.d), g.k_norm_g, ag.dqkv.col_block(y.d, y.d),
                          a.qk_pre.col_block(y.d, y.d), p.k_norm_g, {a.k_rstd});
    copy_into(ag.dqkv.col_block(0, 2 * y.d), s.dqk);
  }
  zero(ag.dnorm1);
  linear_backward(qkv_plan_, ag.dnorm1, gw.w_qkv, ag.dqkv, a.norm1, w.w_qkv);
  if (cfg_.skip) {
    copy_into(ag.dx, dsum);
  } else {
    zero(ag.dx);  // no skip path: x reaches the loss only through the attention input
  }
  if (post) {
    add_into(ag.dx, ag.dnorm1);  // the attention input is x itself
  } else {
    rmsnorm_backward(ag.dx, g.attn_norm_g, ag.dnorm1, a.x, p.attn_norm_g, {a.rstd1});
  }
  for (const SigmaView& sv : y.sigma_views(l))
    sigma_reparam_backward(sv.dw, sv.dgamma, sv.dw_eff, sv.w, *sv.gamma, sv.u, {sv.sigma, sv.v});
}

}  // namespace attnlab
