// rope.h: rotary position embedding on q and k, in place.
// Pairs are interleaved: within each head, channels (2i, 2i+1) rotate by angle t · base^(-2i/d_head),
// where t = n % T is the position of row n. qk is a view of the q and k blocks of the fused qkv buffer:
// [N, 2·H·d_head] (q heads then k heads), possibly strided.
#pragma once
#include <vector>

#include "model/tensor.h"

namespace attnlab {

struct RopeTable {
  int T = 0, d_head = 0;
  std::vector<float> cos, sin;  // [T, d_head/2]
};
RopeTable make_rope_table(int T, int d_head, float base);

// Rotates every head of qk in place (forward: R(t)·x).
void rope_forward(MatView qk, const RopeTable& table, int n_heads_total);
// Applies the transpose rotation R(t)^T to the gradient in place: d(pre-rope) = R^T d(post-rope).
void rope_backward(MatView dqk, const RopeTable& table, int n_heads_total);

}  // namespace attnlab
