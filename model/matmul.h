// matmul.h: every matrix product in attnlab goes through a Gemm, a oneDNN matmul primitive built once
// (at plan construction, where all shapes are fixed) and executed many times on caller-owned memory.
//
//   C[b0,b1] = alpha * A[b0,b1] · B[b0,b1]   (+ C[b0,b1] when accumulate: the oneDNN sum post-op)
//
// A is logically [M, K], B is [K, N], C is [M, N], batched over up to two batch dims. Every operand is
// described by explicit strides in floats {batch0, batch1, row, col}, so transposes and column blocks
// of wider buffers (q/k/v inside a fused qkv buffer, one head's slice) are strides, never copies, and
// never format_tag::any (which brings reorders). gemm_reference is the naive double-accumulating
// reference the tests compare against.
#pragma once
#include <cstdint>
#include <memory>

#include "model/dnnl_context.h"
#include "model/tensor.h"

namespace attnlab {

struct GemmDesc {
  int64_t batch0 = 1, batch1 = 1;
  int64_t M = 0, N = 0, K = 0;
  int64_t sa[4] = {0, 0, 0, 0};  // strides of A (logical [M,K]) for {batch0, batch1, m, k}
  int64_t sb[4] = {0, 0, 0, 0};  // strides of B (logical [K,N]) for {batch0, batch1, k, n}
  int64_t sc[4] = {0, 0, 0, 0};  // strides of C ([M,N]) for {batch0, batch1, m, n}
  float alpha = 1.0f;
  bool accumulate = false;       // C += alpha*A·B instead of C = alpha*A·B
};

// Plain 2-D descriptors with leading dimensions (row strides). trans_a: A is stored as [K, M] with row
// stride lda, and op(A) = A^T; likewise trans_b with B stored [N, K].
GemmDesc gemm_desc_2d(int64_t M, int64_t N, int64_t K, bool trans_a, int64_t lda, bool trans_b,
                      int64_t ldb, int64_t ldc, float alpha = 1.0f, bool accumulate = false);

class Gemm {
 public:
  Gemm();  // an empty Gemm (valid() is false); defined in matmul.cpp, where Impl is complete
  Gemm(DnnlContext& ctx, const GemmDesc& d);  // creates the primitive; throws nothing, checks shapes
  ~Gemm();
  Gemm(Gemm&&) noexcept;
  Gemm& operator=(Gemm&&) noexcept;
  void run(const float* a, const float* b, float* c);  // executes on the context's stream and waits
  const GemmDesc& desc() const { return d_; }
  bool valid() const { return impl_ != nullptr; }
  const char* impl_name() const;  // oneDNN implementation string, for benches and tests

 private:
  struct Impl;
  GemmDesc d_;
  std::unique_ptr<Impl> impl_;
};

void gemm_reference(const GemmDesc& d, const float* a, const float* b, float* c);

// A linear layer y[N,out] = x[N,in] · W^T with W stored [out, in] (PyTorch's layout, so checkpoint
// tensors match nn.Linear.weight). The three products are planned once for fixed N and row strides.
struct LinearPlan {
  int64_t n = 0, in = 0, out = 0;
  int64_t ldx = 0, ldy = 0;  // row strides of x/dx and y/dy
  Gemm fwd;                  // y  = x · W^T
  Gemm bwd_data;             // dx += dy · W
  Gemm bwd_weight;           // dW += dy^T · x
};
LinearPlan make_linear_plan(DnnlContext& ctx, int64_t n, int64_t in, int64_t out, int64_t ldx,
                            int64_t ldy);
void linear_forward(LinearPlan& plan, MatView y, ConstMatView x, ConstMatView w);
// Accumulates into dx and dw. dx may be a null view (rows == 0) to skip the data gradient.
void linear_backward(LinearPlan& plan, MatView dx, MatView dw, ConstMatView dy, ConstMatView x,
                     ConstMatView w);

}  // namespace attnlab
