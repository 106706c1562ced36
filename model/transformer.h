// transformer.h: the decoder-only pre-norm transformer. Owns the Layout (parameters, gradients,
// activations: all allocated at construction) and the oneDNN plans; forward and backward are short lists
// of layer calls in the same order, forward and reversed. A training step allocates nothing.
//
//   x0 = tok_emb[tokens] (+ sinusoidal PE)
//   per block: x += W_o·Attn(RoPE(W_qkv·RMSNorm(x)));  x += W_down·MLP(W_in·RMSNorm(x))
//   (ablations, model/TOGGLES.md: skip: false replaces each `x +=` by `x =`; mlp: none drops the MLP line)
//   logits = RMSNorm(x) · lm_headᵀ;  loss = mean cross-entropy over targets >= 0
#pragma once
#include <cstdint>
#include <vector>

#include "model/attention.h"
#include "model/dnnl_context.h"
#include "model/layout.h"
#include "model/matmul.h"
#include "model/model_config.h"
#include "model/rope.h"
#include "model/taps.h"

namespace attnlab {

class Transformer {
 public:
  Transformer(const ModelConfig& cfg, int batch, DnnlContext& ctx);
  Transformer(const Transformer&) = delete;
  Transformer& operator=(const Transformer&) = delete;

  // N(0, init_std²) for matrices and embeddings, 1 for gains, drawn in param_table() order from a
  // generator seeded with `seed`; bitwise reproducible.
  void init_params(uint64_t seed);

  // inputs and targets are [B, T] row-major. Returns the training objective: the mean cross-entropy over
  // targets >= 0, plus the z-loss term when model.z_loss > 0 (both also available separately below).
  // Keeps every activation for backward and for observers.
  double forward(const int32_t* inputs, const int32_t* targets);
  double last_ce_loss() const { return last_ce_; }     // cross-entropy part of the last forward
  double last_z_loss() const { return last_z_; }       // z-loss part (0 when off)
  // Accumulates ∂(loss_scale · loss)/∂params into grads() (call zero_grad() once per optimizer step).
  // Uses the inputs/targets of the last forward.
  void backward(float loss_scale = 1.0f);
  void zero_grad();

  const ModelConfig& config() const { return cfg_; }
  const Layout& layout() const { return layout_; }
  Layout& layout() { return layout_; }
  float* params() { return layout_.params(); }
  float* grads() { return layout_.grads(); }
  int64_t n_params() const { return layout_.n_params(); }
  const std::vector<ParamInfo>& param_table() const { return layout_.param_table(); }
  int valid_targets() const { return n_valid_; }
  const int32_t* last_inputs() const { return inputs_.data(); }   // the batch of the last forward
  const int32_t* last_targets() const { return targets_.data(); }
  // Matmul FLOPs of one forward+backward per token: 6·N_matmul + 12·L·T·d (attention products).
  double flops_per_token() const;

  // V-scale's C = d_model·d_head·init_std²·exp(θ) of one layer and head (V-scale on); θ itself is the
  // parameter "blocks.{l}.attn.v_scale_theta" (layout().block(l).v_scale_theta).
  float v_scale_c(int layer, int head) const;

  // The current optimizer step (0-based). The trainer calls this once at the start of every step, before
  // the step's first forward; the attention-temperature window reads it, and σReparam runs its one
  // power-iteration step per training step here. Evaluation forwards use the last step set.
  void set_step(int64_t step);
  int64_t step() const { return step_; }

  // Observer for transient values (model/taps.h); nullptr (the default) means off.
  void set_tap_observer(TapObserver* obs) { taps_ = obs; }

 private:
  void tap(Tap t, int layer, Pass p, ConstMatView v) {
    if (taps_ && taps_->wants(t, layer, p)) taps_->observe(t, layer, p, v);
  }
  void block_forward(int l);
  void block_backward(int l);
  void attention_core_forward(int l);
  void attention_core_backward(int l);
  float temperature_factor() const;  // 1/τ inside the temperature window, else 1

  ModelConfig cfg_;
  DnnlContext& ctx_;
  Layout layout_;
  LinearPlan qkv_plan_, o_plan_, in_plan_, down_plan_, head_plan_;
  AttentionPlan attn_plan_;
  RopeTable rope_;
  std::vector<int32_t> inputs_, targets_;  // copies of the last forward's batch (sized once)
  int n_valid_ = 0;
  double last_ce_ = 0.0, last_z_ = 0.0;
  int64_t step_ = 0;
  int64_t last_power_step_ = -1;  // σReparam: the last step whose power iteration ran
  float inv_tau_ = 1.0f;  // the temperature factor of the last forward
  TapObserver* taps_ = nullptr;
};

}  // namespace attnlab
