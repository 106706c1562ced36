#include "model/mlp.h"

#include "model/fast_exp.h"

namespace attnlab {

void swiglu_forward(MatView act, ConstMatView pre) {
  ATTNLAB_CHECK(pre.rows == act.rows && pre.cols == 2 * act.cols,
                "swiglu_forward: pre must be [N, 2F], act [N, F]");
  const int F = act.cols;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < act.rows; ++n) {
    const float* gate = pre.row(n);
    const float* up = gate + F;
    float* a = act.row(n);
#pragma omp simd
    for (int f = 0; f < F; ++f) a[f] = gate[f] * fast_sigmoid(gate[f]) * up[f];
  }
}

void swiglu_backward(MatView dpre, ConstMatView dact, ConstMatView pre) {
  ATTNLAB_CHECK(pre.rows == dact.rows && pre.cols == 2 * dact.cols,
                "swiglu_backward: pre must be [N, 2F], dact [N, F]");
  ATTNLAB_CHECK(same_shape(dpre, pre), "swiglu_backward: dpre and pre shapes differ");
  const int F = dact.cols;
  // silu'(z) = σ(z)·(1 + z·(1 − σ(z))).
#pragma omp parallel for schedule(static)
  for (int n = 0; n < dact.rows; ++n) {
    const float* gate = pre.row(n);
    const float* up = gate + F;
    const float* da = dact.row(n);
    float* dgate = dpre.row(n);
    float* dup = dgate + F;
#pragma omp simd
    for (int f = 0; f < F; ++f) {
      const float z = gate[f], sg = fast_sigmoid(z);
      dgate[f] += da[f] * up[f] * (sg * (1.0f + z * (1.0f - sg)));
      dup[f] += da[f] * (z * sg);
    }
  }
}

namespace {
constexpr float kGeluK = 0.7978845608028654f;  // sqrt(2/π)
constexpr float kGeluC = 0.044715f;
}  // namespace

// GELU_tanh(x) = 0.5·x·(1 + tanh(u)), u = k·(x + c·x³). Since 0.5·(1 + tanh(u)) = σ(2u) exactly, we
// evaluate x·σ(2u): one exp, and no 1 + tanh cancellation for negative x.
void gelu_forward(MatView act, ConstMatView pre) {
  ATTNLAB_CHECK(same_shape(act, pre), "gelu_forward: act and pre shapes differ");
  const int F = act.cols;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < act.rows; ++n) {
    const float* x = pre.row(n);
    float* a = act.row(n);
#pragma omp simd
    for (int f = 0; f < F; ++f) {
      const float x2 = x[f] * x[f];
      const float u = kGeluK * (x[f] + kGeluC * x2 * x[f]);
      a[f] = x[f] * fast_sigmoid(2.0f * u);
    }
  }
}

void gelu_backward(MatView dpre, ConstMatView dact, ConstMatView pre) {
  ATTNLAB_CHECK(same_shape(dact, pre) && same_shape(dpre, pre),
                "gelu_backward: dpre, dact, pre shapes differ");
  const int F = pre.cols;
  // With s = σ(2u): d/dx [x·s] = s + x·2s(1 − s)·k·(1 + 3c·x²)   (1 − tanh² = 4s(1 − s)).
#pragma omp parallel for schedule(static)
  for (int n = 0; n < pre.rows; ++n) {
    const float* x = pre.row(n);
    const float* da = dact.row(n);
    float* dx = dpre.row(n);
#pragma omp simd
    for (int f = 0; f < F; ++f) {
      const float x2 = x[f] * x[f];
      const float u = kGeluK * (x[f] + kGeluC * x2 * x[f]);
      const float s = fast_sigmoid(2.0f * u);
      const float du_dx = kGeluK * (1.0f + 3.0f * kGeluC * x2);
      dx[f] += da[f] * (s + x[f] * (2.0f * s * (1.0f - s)) * du_dx);
    }
  }
}

}  // namespace attnlab
