// layout.h: where every parameter, activation and activation gradient lives. Sizes come from
// (ModelConfig, B); the per-layer slices are computed once here so forward and backward are short lists
// of calls without pointer arithmetic (llm.c's readability without its repetition).
//
// Parameters live in one flat buffer in the order of param_table(); gradients use the same layout in a
// second buffer, so AdamW, clipping and checkpoints are loops over flat memory. Adjacent tensors that
// one matmul consumes together are stored together: w_q, w_k, w_v form the [3d, d] fused qkv weight,
// and w_gate, w_up the [2F, d] fused SwiGLU input weight.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/arena.h"
#include "model/model_config.h"
#include "model/tensor.h"

namespace attnlab {

// One named parameter tensor (its checkpoint name, shape and place in the flat buffer).
struct ParamInfo {
  std::string name;            // e.g. "blocks.3.attn.w_q"
  std::vector<int64_t> shape;  // [rows, cols] for matrices, [n] for vectors
  int64_t offset = 0;          // in floats, into the flat parameter (and gradient) buffer
  int64_t size = 0;
  bool matrix = false;         // 2-D: gets weight decay and N(0, init_std²) init; vectors are gains (init 1)
};

struct BlockParams {
  VecView attn_norm_g;  // [d]
  MatView w_qkv;        // [3d, d] = w_q; w_k; w_v
  MatView w_o;          // [d, d]
  VecView mlp_norm_g;   // [d]
  MatView w_in;         // SwiGLU: [2F, d] = w_gate; w_up.  GELU: [F, d] = w_up
  MatView w_down;       // [d, F]
};

// Activations of one block, all [N, ·] with N = B·T rows, kept for backward and for instrumentation.
struct BlockActs {
  MatView x;          // [N, d]  block input (the residual stream entering the block)
  MatView norm1;      // [N, d]  RMSNorm(x): the attention input
  float* rstd1;       // [N]
  MatView qkv;        // [N, 3d] q, k (after RoPE), v
  float* probs;       // [B, H, T, T] attention probabilities
  MatView att;        // [N, d]  heads' outputs concatenated (before W_o)
  MatView attn_out;   // [N, d]  attention branch output (after W_o)
  MatView resid_mid;  // [N, d]  x + attn_out
  MatView norm2;      // [N, d]  RMSNorm(resid_mid): the MLP input
  float* rstd2;       // [N]
  MatView pre;        // [N, 2F] (SwiGLU gate|up) or [N, F] (GELU)
  MatView act;        // [N, F]
  MatView mlp_out;    // [N, d]  MLP branch output; the block output is resid_mid + mlp_out
};

// Activation gradients of one block that stay addressable after backward (for instrumentation).
// With h = x (block input), h½ = resid_mid, h' = block output (gradient-sinks.md §2.2 notation):
// attention branch g1 = dresid_mid, g2 = dnorm1, g3 = dx − dresid_mid; MLP branch g1 = dx of the next
// block, g2 = dnorm2, g3 = dresid_mid − dx(next).
struct BlockGrads {
  MatView dx;          // [N, d]  ∂L/∂x: the residual-stream gradient at the block input
  MatView dnorm1;      // [N, d]  ∂L/∂RMSNorm(x): the post-norm attention input (gradient-sink site)
  MatView dqkv;        // [N, 3d] ∂L/∂q, ∂L/∂k (pre-RoPE), ∂L/∂v
  MatView dresid_mid;  // [N, d]  ∂L/∂(x + attn_out)
  MatView dnorm2;      // [N, d]  ∂L/∂RMSNorm(resid_mid): the post-norm MLP input
};

// Scratch gradients shared by all layers (overwritten layer by layer during backward).
struct ScratchGrads {
  float* dprobs;        // [B, H, T, T]
  MatView datt;         // [N, d]
  MatView dpre;         // [N, 2F] or [N, F]
  MatView dact;         // [N, F]
  MatView dnormf;       // [N, d]
  MatView dlogits;      // [N, V]
};

struct HeadActs {
  MatView x;        // [N, d] final residual stream (output of the last block)
  MatView normf;    // [N, d]
  float* rstdf;     // [N]
  MatView logits;   // [N, V]
  float* lse;       // [N]
  float* row_loss;  // [N]
  MatView pos;      // [T, d] sinusoidal table (empty unless pos == sinusoidal)
};

struct HeadParams {
  MatView tok_emb;       // [V, d]
  VecView final_norm_g;  // [d]
  MatView lm_head;       // [V, d]; aliases tok_emb when tied
};

// Builds the parameter table for a config (names, shapes, offsets); the total is the flat size.
std::vector<ParamInfo> build_param_table(const ModelConfig& cfg, int64_t* total);

class Layout {
 public:
  Layout(const ModelConfig& cfg, int batch);
  Layout(const Layout&) = delete;
  Layout& operator=(const Layout&) = delete;

  const std::vector<ParamInfo>& param_table() const { return params_table_; }
  int64_t n_params() const { return n_params_; }
  float* params() { return params_.data(); }
  float* grads() { return grads_.data(); }
  const float* params() const { return params_.data(); }
  const float* grads() const { return grads_.data(); }

  const BlockParams& block(int l) const { return block_params_[l]; }
  const BlockParams& block_grad(int l) const { return block_dparams_[l]; }
  const HeadParams& head() const { return head_params_; }
  const HeadParams& head_grad() const { return head_dparams_; }
  const BlockActs& acts(int l) const { return acts_[l]; }
  const BlockGrads& act_grads(int l) const { return act_grads_[l]; }  // l in [0, n_layer]; only dx at n_layer
  const HeadActs& head_acts() const { return head_acts_; }
  const ScratchGrads& scratch() const { return scratch_; }
  int64_t activation_floats() const { return acts_arena_.size(); }

  int B, T, N, d, H, dh, F, V, L;

 private:
  std::vector<ParamInfo> params_table_;
  int64_t n_params_ = 0;
  Arena params_, grads_, acts_arena_;
  std::vector<BlockParams> block_params_, block_dparams_;
  HeadParams head_params_, head_dparams_;
  std::vector<BlockActs> acts_;
  std::vector<BlockGrads> act_grads_;
  HeadActs head_acts_;
  ScratchGrads scratch_;
};

}  // namespace attnlab
