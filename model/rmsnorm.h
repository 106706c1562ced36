// rmsnorm.h: y = g ⊙ x · rstd, rstd = 1/sqrt(mean_c(x²) + eps), per row.
// x, y, dx, dy are [N, C] row-major (N = B·T); g and dg are [C]; saved.rstd is [N].
// Backward accumulates (+=) into dx and dg and never writes x, g or the saved state.
#pragma once
#include "model/tensor.h"

namespace attnlab {

struct RmsNormSaved {
  float* rstd = nullptr;  // [N]: an arena slice, not owned
};

void rmsnorm_forward(MatView y, RmsNormSaved s, ConstMatView x, ConstVecView g, float eps);
void rmsnorm_backward(MatView dx, VecView dg, ConstMatView dy, ConstMatView x, ConstVecView g,
                      RmsNormSaved s);

}  // namespace attnlab
