// grad_clip.h: global gradient norm and clipping over the flat gradient buffer.
#pragma once
#include <cstdint>

namespace attnlab {

// ‖g‖₂ accumulated in double over fixed 4096-element blocks summed in block order, so the result is
// bitwise identical for any thread count. Non-finite gradients give a non-finite norm. `scratch` holds
// grad_norm_scratch_size(n) doubles, allocated once by the caller (the step allocates nothing).
int64_t grad_norm_scratch_size(int64_t n);
double global_grad_norm(const float* g, int64_t n, double* scratch);
// Scales g by max_norm / norm when norm > max_norm (and max_norm > 0). Returns whether it scaled.
bool clip_grads(float* g, int64_t n, double norm, double max_norm);

}  // namespace attnlab
