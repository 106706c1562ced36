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

enum class ParamInit : uint8_t {
  kNormal,    // N(0, init_std²)
  kOnes,      // gains
  kConstant,  // init_value
};

// One named parameter tensor (its checkpoint name, shape and place in the flat buffer).
struct ParamInfo {
  std::string name;            // e.g. "blocks.3.attn.w_q"
  std::vector<int64_t> shape;  // [rows, cols] for matrices, [n] for vectors
  int64_t offset = 0;          // in floats, into the flat parameter (and gradient) buffer
  int64_t size = 0;
  bool matrix = false;         // a 2-D weight matrix: gets weight decay (the core's matrices init N(0, init_std²),
                               // its vectors are gains, init 1); toggle tensors set their own
  ParamInit init = ParamInit::kOnes;
  float init_value = 0.0f;     // for ParamInit::kConstant
  bool trainable = true;       // false: state stored with the parameters (so checkpoints carry it) that no
                               // gradient ever reaches, e.g. a frozen V-scale θ; AdamW leaves it unchanged
  bool toggle = false;         // exists only because a toggle is on (model/TOGGLES.md); initialised from its
                               // own random stream, so the core weights are identical with and without it
};

struct BlockParams {
  VecView attn_norm_g;  // [d]
  MatView w_qkv;        // [3d, d] = w_q; w_k; w_v
  MatView w_o;          // [d, d]
  VecView mlp_norm_g;   // [d]   (mlp_norm_g, w_in, w_down: empty views for attention-only blocks, mlp: none)
  MatView w_in;         // SwiGLU: [2F, d] = w_gate; w_up.  GELU: [F, d] = w_up
  MatView w_down;       // [d, F]
  // Toggle parameters (empty views when the toggle is off; model/TOGGLES.md).
  VecView v_scale_theta;  // [H] V-scale θ per head (trainable only with v_scale: learned)
  VecView q_norm_g;       // [d_head] QK-norm gain of the queries (shared by all heads)
  VecView k_norm_g;       // [d_head] QK-norm gain of the keys
  VecView sink_logit;     // [H] learnable sink logit b_h
  MatView k_bias, v_bias; // [H, d_head] attention key / value bias (the extra key's k'_h and v'_h)
};

// σReparam bookkeeping of one weight matrix (model/sigma_reparam.h): Ŵ = (γ/σ)·W. For the fused weights
// each of w_q, w_k, w_v (and w_gate, w_up) is its own matrix: a row block of w_qkv (w_in).
struct SigmaView {
  MatView w;             // [rows, cols] the parameter (a view into the parameter buffer)
  MatView w_eff;         // Ŵ, what the linear layer multiplies with (a view into the effective-weight arena)
  MatView dw;            // ∂L/∂W (the gradient buffer)
  MatView dw_eff;        // ∂L/∂Ŵ (a row block of the shared scratch, see Layout::eff_grad())
  float* gamma = nullptr;   // [1] parameter "<name>.sn_gamma"
  float* dgamma = nullptr;
  float* u = nullptr;       // [cols] non-trainable parameter "<name>.sn_u"
  float* sigma = nullptr;   // [1] saved by the forward: σ = ‖W u‖
  float* v = nullptr;       // [rows] saved by the forward: W u / σ
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
  MatView resid_mid;  // [N, d]  x + attn_out (α·attn_out with skip: false)
  MatView norm2;      // [N, d]  RMSNorm(resid_mid): the MLP input
  float* rstd2;       // [N]
  MatView pre;        // [N, 2F] (SwiGLU gate|up) or [N, F] (GELU)
  MatView act;        // [N, F]
  MatView mlp_out;    // [N, d]  MLP branch output; the block output is resid_mid + mlp_out (α·mlp_out with
                      //         skip: false; resid_mid itself with mlp: none, when norm2, mlp_out stay 0 and
                      //         pre, act are [N, 0])
  // Toggle activations (empty / nullptr when the toggle is off).
  MatView vhat;       // [N, d]  V-scale learned/fixed: v̂ = φ(‖v‖²)·v, the values attention aggregates
  float* v_sqnorm = nullptr;  // [N, H]  V-scale (every mode): r = ‖v‖² per row and head
  MatView qk_pre;     // [N, 2d] QK-norm: q and k before the norm (the W_qkv output); qkv then holds the normed ones
  float* q_rstd = nullptr;    // [N, H]  QK-norm rstd of each query head (k_rstd = q_rstd + N·H)
  float* k_rstd = nullptr;    // [N, H]
  float* z0 = nullptr;        // [B, H, T] extra key (softmax+1, sink logit, k/v bias): its logit per row
  float* p0 = nullptr;        // [B, H, T] extra key: its probability per row (probs then sum to 1 − p0)
  // Post-norm (norm_position: post): norm1 aliases x (the attention input is x itself), resid_mid =
  // RMSNorm(sum1) with rstd1, norm2 aliases resid_mid, the block output is RMSNorm(sum2) with rstd2.
  MatView sum1;       // [N, d]  x + α·attn_out
  MatView sum2;       // [N, d]  resid_mid + α·mlp_out
};

// Activation gradients of one block that stay addressable after backward (for instrumentation).
// With h = x (block input), h½ = resid_mid, h' = block output (gradient-sinks.md §2.2 notation):
// attention branch g1 = dresid_mid, g2 = dnorm1, g3 = dx − dresid_mid; MLP branch g1 = dx of the next
// block, g2 = dnorm2, g3 = dresid_mid − dx(next).
struct BlockGrads {
  MatView dx;          // [N, d]  ∂L/∂x: the residual-stream gradient at the block input
  MatView dnorm1;      // [N, d]  ∂L/∂RMSNorm(x): the post-norm attention input (gradient-sink site)
  MatView dqkv;        // [N, 3d] ∂L/∂q, ∂L/∂k (pre-RoPE; with QK-norm pre-norm too: W_qkv's output), ∂L/∂v
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
  MatView dvhat;        // [N, d] V-scale: ∂L/∂v̂ (empty when off)
  MatView dqk;          // [N, 2d] QK-norm: ∂L/∂(q, k before the norm) before it is copied into dqkv
  float* dz0 = nullptr; // [B, H, T] extra key: ∂L/∂p0, then ∂L/∂z0
  MatView dsum;         // [N, d] post-norm: ∂L/∂(x + α·f(x)) before the norm
  MatView dbranch;      // [N, d] α·(residual gradient): what a branch receives when α != 1; embed_scale's √d·dx0
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
  VecView sink_token;    // [d] sink token (empty when off): the input vector at position 0
};

// Builds the parameter table for a config (names, shapes, offsets); the total is the flat size.
std::vector<ParamInfo> build_param_table(const ModelConfig& cfg, int64_t* total);

// What a Layout of `cfg` at `batch` would allocate, in floats, computed in double so that absurd sizes
// cannot overflow: parameters (the same count again for gradients), activations (every saved tensor and
// the backward scratch: activation_floats()) and σReparam's effective-weight arena. An estimate within a
// few percent (small per-toggle vectors are left out); the config check uses it to refuse what cannot fit
// before anything is allocated.
struct LayoutEstimate {
  double params = 0.0, activations = 0.0, sigma = 0.0;
};
LayoutEstimate estimate_layout(const ModelConfig& cfg, int batch);

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
  // σReparam: the effective weights of block l (matrices in σReparam's arena, everything else the
  // parameters); without σReparam simply block(l). The linear layers always multiply with these.
  const BlockParams& block_eff(int l) const { return sigma_ ? block_eff_[l] : block_params_[l]; }
  const std::vector<SigmaView>& sigma_views(int l) const { return sigma_ ? sigma_views_[l] : no_sigma_; }  // empty when off
  const BlockParams& eff_grad() const { return eff_grad_; }  // shared ∂L/∂Ŵ scratch (one block's matrices)
  float* sigma_tmp() const { return sigma_tmp_; }           // [max rows] power-iteration scratch
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
  bool sigma_ = false;
  Arena eff_;  // σReparam: effective weights of every block, the ∂L/∂Ŵ scratch and sigma_tmp
  std::vector<BlockParams> block_eff_;
  std::vector<std::vector<SigmaView>> sigma_views_;
  std::vector<SigmaView> no_sigma_;
  BlockParams eff_grad_;
  float* sigma_tmp_ = nullptr;
};

}  // namespace attnlab
