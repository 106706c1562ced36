// loss.h: fused softmax + cross-entropy over the vocabulary.
// logits and dlogits are [N, V]; targets is [N] with -1 meaning "ignored" (for example a BOS position's
// prediction when it is excluded); saved.lse is [N] (logsumexp per row, kept for backward and metrics).
#pragma once
#include <cstdint>

#include "model/tensor.h"

namespace attnlab {

struct LossSaved {
  float* lse = nullptr;       // [N] logsumexp of each logits row
  float* row_loss = nullptr;  // [N] per-token loss (0 for ignored rows)
};

// Returns the mean loss over rows with target >= 0 (0 if none), summed in double in row order so the
// result does not depend on the thread count.
double cross_entropy_forward(LossSaved s, ConstMatView logits, const int32_t* targets);
// dlogits[n] += scale · (softmax(logits[n]) − onehot(targets[n])) for rows with target >= 0.
// For the mean loss of a forward call, scale = 1 / (number of valid rows).
void cross_entropy_backward(MatView dlogits, ConstMatView logits, const int32_t* targets, LossSaved s,
                            float scale);
// Number of rows with target >= 0.
int count_valid_targets(const int32_t* targets, int n);

// z-loss (Chowdhery et al. 2022 "PaLM" §5; Wortsman et al. 2023 §3.1.2): coeff · mean over rows with
// target >= 0 of lse², lse = log Σ_v exp(logits) as saved by cross_entropy_forward (0 if no valid row).
double z_loss_forward(LossSaved s, const int32_t* targets, int n, float coeff);
// dlogits[n] += scale · 2·lse[n]·softmax(logits[n]) for rows with target >= 0. For the mean of a forward
// call, scale = coeff / (number of valid rows).
void z_loss_backward(MatView dlogits, ConstMatView logits, const int32_t* targets, LossSaved s, float scale);

}  // namespace attnlab
