// transformer.h: the decoder-only pre-norm transformer. Owns the Layout (parameters, gradients,
// activations: all allocated at construction) and the oneDNN plans; forward and backward are short lists
// of layer calls in the same order, forward and reversed. A training step allocates nothing.
//
//   x0 = tok_emb[tokens] (+ sinusoidal PE)
//   per block: x += W_o·Attn(RoPE(W_qkv·RMSNorm(x)));  x += W_down·MLP(W_in·RMSNorm(x))
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

  // inputs and targets are [B, T] row-major. Returns the mean loss over targets >= 0 and keeps every
  // activation for backward and for observers.
  double forward(const int32_t* inputs, const int32_t* targets);
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

  // Observer for transient values (model/taps.h); nullptr (the default) means off.
  void set_tap_observer(TapObserver* obs) { taps_ = obs; }

 private:
  void tap(Tap t, int layer, Pass p, ConstMatView v) {
    if (taps_ && taps_->wants(t, layer, p)) taps_->observe(t, layer, p, v);
  }
  void block_forward(int l);
  void block_backward(int l);

  ModelConfig cfg_;
  DnnlContext& ctx_;
  Layout layout_;
  LinearPlan qkv_plan_, o_plan_, in_plan_, down_plan_, head_plan_;
  AttentionPlan attn_plan_;
  RopeTable rope_;
  std::vector<int32_t> inputs_, targets_;  // copies of the last forward's batch (sized once)
  int n_valid_ = 0;
  TapObserver* taps_ = nullptr;
};

}  // namespace attnlab
