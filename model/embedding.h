// embedding.h: token embedding and the fixed sinusoidal position table.
// tokens is [N] (N = B·T, row n holds position n % T); wte and dwte are [V, C]; x and dx are [N, C].
#pragma once
#include <cstdint>

#include "model/tensor.h"

namespace attnlab {

// x[n] = wte[tokens[n]]  (overwrites x). Every token id must be in [0, V).
void embedding_forward(MatView x, const int32_t* tokens, ConstMatView wte);
// dwte[tokens[n]] += dx[n]. Deterministic for any thread count (threads own disjoint columns).
void embedding_backward(MatView dwte, ConstMatView dx, const int32_t* tokens);

// Fills pe [T, C]: pe[t, 2i] = sin(t / 10000^(2i/C)), pe[t, 2i+1] = cos(t / 10000^(2i/C)).
void sinusoidal_table(MatView pe);
// x[n] += pe[n % T] where T = pe.rows. Its backward is the identity on dx (nothing to do), and it has
// no parameters; sinusoidal_backward exists so the pairing is explicit and gradchecked.
void sinusoidal_forward(MatView x, ConstMatView pe);
void sinusoidal_backward(MatView dx, ConstMatView dy);  // dx += dy

}  // namespace attnlab
