// step_stats.h: cheap every-step statistics over the flat parameter / gradient buffers and the logits
// (instrument/docs/step.md): per-tensor gradient norm, RMS and tiny-gradient fraction (metrics.md §1.8),
// per-tensor update-to-weight ratio and update RMS (§1.9), output-logit and log-partition statistics (§1.11).
// The trainer calls these around the optimizer update; they take flat buffers, not a ProbeView.
//
// Per-tensor values are emitted with layer = block index (−1 for tensors outside the blocks) and
// head = the tensor's SLOT, a fixed index by role that does not depend on the MLP kind or on tying:
//   in a block (layer l):  0 attn_norm.g  1 attn.w_q  2 attn.w_k  3 attn.w_v  4 attn.w_o
//                          5 mlp_norm.g   6 mlp.w_gate (SwiGLU only)  7 mlp.w_up  8 mlp.w_down
//   model-wide (layer −1): 0 tok_emb  1 final_norm.g  2 lm_head (absent when tied to tok_emb)
// A tensor the scheme does not know gets slot kFirstUnlistedSlot + its order among the unlisted tensors of
// its block (or of the model-wide group). Aggregates: head −1 at layer l is the whole block l; layer −1,
// head −1 is the whole model (every parameter).
//
// Every function here allocates nothing and is bitwise identical for any thread count: each tensor is cut
// into chunks that depend only on its size, chunk sums are double, and chunks are combined in order.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "instrument/metric.h"
#include "model/layout.h"

namespace attnlab {

enum BlockSlot : int {
  kSlotAttnNorm = 0, kSlotWq = 1, kSlotWk = 2, kSlotWv = 3, kSlotWo = 4,
  kSlotMlpNorm = 5, kSlotWgate = 6, kSlotWup = 7, kSlotWdown = 8,
};
enum ModelSlot : int { kSlotTokEmb = 0, kSlotFinalNorm = 1, kSlotLmHead = 2 };
inline constexpr int kFirstUnlistedSlot = 16;
inline constexpr double kTinyGrad = 1e-8;  // AdamW's default ε (Wortsman et al. §3.4)

// Where a parameter name ("blocks.3.attn.w_k", "tok_emb", ...) goes: its layer (−1 outside the blocks)
// and its slot, or slot −1 if the name is not one of the listed ones.
struct ParamSlot {
  int layer = -1;
  int slot = -1;
};
ParamSlot param_slot(std::string_view name);
// The role name of a listed slot ("attn.w_q", "tok_emb", ...), or "" for an unlisted one.
const char* slot_name(int layer, int slot);
// The (layer, slot) of every tensor of `table`, in table order, unlisted tensors numbered as the metrics
// number them: what run.json's "params" records so that readers map a (layer, head) back to a name.
std::vector<ParamSlot> param_slots(const std::vector<ParamInfo>& table);

// Σ g² and #{|g| < kTinyGrad} of one tensor.
struct GradSums {
  double sq = 0.0;
  int64_t tiny = 0;
};
GradSums grad_sums(const float* g, int64_t n);
// Σ (after − before)² and Σ before² of one tensor.
struct UpdateSums {
  double d2 = 0.0, w2 = 0.0;
};
UpdateSums update_sums(const float* before, const float* after, int64_t n);

// Per tensor, block and model: grad_norm_p = ‖g‖₂, grad_rms_p = ‖g‖₂/√numel, grad_tiny_frac.
// `grads` is the flat gradient buffer laid out by `table` (blocks in increasing order, as
// build_param_table writes them).
void param_grad_metrics(const std::vector<ParamInfo>& table, const float* grads, MetricOut& out);
// Per tensor, block and model: upd_ratio = ‖W_after − W_before‖/‖W_before‖, upd_rms = RMS(W_after − W_before),
// where W_after − W_before is the update actually applied (Adam step, weight decay, everything).
void update_metrics(const std::vector<ParamInfo>& table, const float* params_before, const float* params_after,
                    MetricOut& out);
// Over the N = B·T rows of the last forward (ignored-target rows included): logit_absmax = max|y|,
// logit_min = min y, logit_mean, logz_mean = mean lse, logz2_mean = mean lse².
void logit_metrics(const Layout& layout, MetricOut& out);

}  // namespace attnlab
