// mlp.h: the MLP's element-wise non-linearities. The MLP's three (SwiGLU) or two (GELU) matmuls are
// LinearPlans composed in transformer.cpp; this file holds only what sits between them.
// pre is the first projection's output; act feeds the down projection. N rows, F hidden units.
#pragma once
#include "model/tensor.h"

namespace attnlab {

// SwiGLU: pre is [N, 2F] = [gate | up]; act[N, F] = silu(gate) ⊙ up, silu(z) = z·sigmoid(z).
void swiglu_forward(MatView act, ConstMatView pre);
void swiglu_backward(MatView dpre, ConstMatView dact, ConstMatView pre);  // dpre += ...

// GELU, tanh approximation (GPT-2; PyTorch approximate='tanh'): pre and act are [N, F].
void gelu_forward(MatView act, ConstMatView pre);
void gelu_backward(MatView dpre, ConstMatView dact, ConstMatView pre);  // dpre += ...

}  // namespace attnlab
