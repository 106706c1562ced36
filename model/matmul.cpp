// matmul.cpp: Gemm over a oneDNN matmul primitive, the naive reference, and the linear layer.
#include "model/matmul.h"

#include <cstdio>

namespace attnlab {

namespace {

using dnnl::memory;

// Strides of a dimension of extent 1 are never used to address memory, but oneDNN still validates
// them; give such a dimension the dense stride of what lies inside it so a caller's 0 is harmless.
memory::desc strided_md(const GemmDesc& d, int64_t rows, int64_t cols, const int64_t s[4]) {
  const bool batched = d.batch0 > 1 || d.batch1 > 1;
  const int64_t rs = rows > 1 ? s[2] : cols * s[3];
  const int64_t cs = cols > 1 ? s[3] : 1;
  if (!batched) return memory::desc({rows, cols}, memory::data_type::f32, {rs, cs});
  const int64_t inner = rows * cols;
  const int64_t b1s = d.batch1 > 1 ? s[1] : inner;
  const int64_t b0s = d.batch0 > 1 ? s[0] : inner * d.batch1;
  return memory::desc({d.batch0, d.batch1, rows, cols}, memory::data_type::f32, {b0s, b1s, rs, cs});
}

}  // namespace

// Everything run() touches is made here once: the primitive, one memory object per operand (re-pointed
// at run time, never re-created), the user-mode scratchpad and the C argument array. run() therefore
// allocates nothing on our side; it calls the C API directly because the C++ execute() builds a
// std::vector of arguments on every call.
struct Gemm::Impl {
  DnnlContext* ctx = nullptr;
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
  memory src, wei, dst, scratch;
  dnnl_exec_arg_t args[4] = {};
  int nargs = 0;
};

Gemm::Gemm(DnnlContext& ctx, const GemmDesc& d) : d_(d), impl_(std::make_unique<Impl>()) {
  ATTNLAB_CHECK(d.M > 0 && d.N > 0 && d.K > 0 && d.batch0 > 0 && d.batch1 > 0, "Gemm: empty shape");
  for (int i = 0; i < 4; ++i)
    ATTNLAB_CHECK(d.sa[i] >= 0 && d.sb[i] >= 0 && d.sc[i] >= 0, "Gemm: negative stride");
  const memory::desc a_md = strided_md(d, d.M, d.K, d.sa);
  const memory::desc b_md = strided_md(d, d.K, d.N, d.sb);
  const memory::desc c_md = strided_md(d, d.M, d.N, d.sc);

  dnnl::primitive_attr attr;
  // User scratchpad, allocated once below: in library mode oneDNN either shares one hidden global
  // buffer or (when built for concurrent execution) allocates on every execute. Per-Gemm buffers
  // are small (brgemm: ≤ 3.4 MB for d = 512; the strided attention Gemms need none) and plans are
  // shared across layers.
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (d.alpha != 1.0f) attr.set_output_scales(0, {d.alpha});  // oneDNN 2.x: scales apply before post-ops
  if (d.accumulate) {
    dnnl::post_ops po;
    po.append_sum(1.0f);  // C = alpha·A·B + C
    attr.set_post_ops(po);
  }

  Impl& im = *impl_;
  im.ctx = &ctx;
  try {
    im.pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, c_md), attr, ctx.engine());
    im.prim = dnnl::matmul(im.pd);
  } catch (const dnnl::error& e) {
    // Shapes and strides are fixed by the plan, so a descriptor oneDNN rejects is a bug, not an input.
    std::fprintf(stderr, "attnlab: oneDNN rejected a matmul (M=%lld N=%lld K=%lld batch %lldx%lld): %s\n",
                 (long long)d.M, (long long)d.N, (long long)d.K, (long long)d.batch0,
                 (long long)d.batch1, e.what());
    ATTNLAB_CHECK(false, "Gemm: primitive creation failed");
  }
  im.src = memory(a_md, ctx.engine(), DNNL_MEMORY_NONE);
  im.wei = memory(b_md, ctx.engine(), DNNL_MEMORY_NONE);
  im.dst = memory(c_md, ctx.engine(), DNNL_MEMORY_NONE);
  im.args[0] = {DNNL_ARG_SRC, im.src.get()};
  im.args[1] = {DNNL_ARG_WEIGHTS, im.wei.get()};
  im.args[2] = {DNNL_ARG_DST, im.dst.get()};
  im.nargs = 3;
  const memory::desc sp_md = im.pd.scratchpad_desc();
  if (sp_md.get_size() > 0) {
    im.scratch = memory(sp_md, ctx.engine());  // owned by the memory object, allocated once
    im.args[im.nargs++] = {DNNL_ARG_SCRATCHPAD, im.scratch.get()};
  }
}

Gemm::Gemm() = default;
Gemm::~Gemm() = default;
Gemm::Gemm(Gemm&&) noexcept = default;
Gemm& Gemm::operator=(Gemm&&) noexcept = default;

void Gemm::run(const float* a, const float* b, float* c) {
  ATTNLAB_CHECK(impl_ != nullptr, "Gemm::run on an unplanned Gemm");
  ATTNLAB_CHECK(a != nullptr && b != nullptr && c != nullptr, "Gemm::run null operand");
  Impl& im = *impl_;
  // oneDNN only reads src and weights; the const_casts are for its void* handle API.
  ATTNLAB_CHECK(dnnl_memory_set_data_handle_v2(im.src.get(), const_cast<float*>(a), nullptr) ==
                    dnnl_success, "Gemm: set src handle");
  ATTNLAB_CHECK(dnnl_memory_set_data_handle_v2(im.wei.get(), const_cast<float*>(b), nullptr) ==
                    dnnl_success, "Gemm: set weights handle");
  ATTNLAB_CHECK(dnnl_memory_set_data_handle_v2(im.dst.get(), c, nullptr) == dnnl_success,
                "Gemm: set dst handle");
  ATTNLAB_CHECK(dnnl_primitive_execute(im.prim.get(), im.ctx->stream().get(), im.nargs, im.args) ==
                    dnnl_success, "Gemm: execute");
  im.ctx->stream().wait();
}

const char* Gemm::impl_name() const { return impl_ ? impl_->pd.impl_info_str() : "(none)"; }

GemmDesc gemm_desc_2d(int64_t M, int64_t N, int64_t K, bool trans_a, int64_t lda, bool trans_b,
                      int64_t ldb, int64_t ldc, float alpha, bool accumulate) {
  GemmDesc d;
  d.M = M;
  d.N = N;
  d.K = K;
  // op(A)[m,k] lives at m*lda + k, or at k*lda + m when A is stored transposed ([K, M]).
  d.sa[2] = trans_a ? 1 : lda;
  d.sa[3] = trans_a ? lda : 1;
  d.sb[2] = trans_b ? 1 : ldb;
  d.sb[3] = trans_b ? ldb : 1;
  d.sc[2] = ldc;
  d.sc[3] = 1;
  d.alpha = alpha;
  d.accumulate = accumulate;
  return d;
}

void gemm_reference(const GemmDesc& d, const float* a, const float* b, float* c) {
  for (int64_t b0 = 0; b0 < d.batch0; ++b0)
    for (int64_t b1 = 0; b1 < d.batch1; ++b1) {
      const float* ab = a + b0 * d.sa[0] + b1 * d.sa[1];
      const float* bb = b + b0 * d.sb[0] + b1 * d.sb[1];
      float* cb = c + b0 * d.sc[0] + b1 * d.sc[1];
      for (int64_t m = 0; m < d.M; ++m)
        for (int64_t n = 0; n < d.N; ++n) {
          double acc = 0.0;
          for (int64_t k = 0; k < d.K; ++k)
            acc += double(ab[m * d.sa[2] + k * d.sa[3]]) * double(bb[k * d.sb[2] + n * d.sb[3]]);
          float& out = cb[m * d.sc[2] + n * d.sc[3]];
          out = float(double(d.alpha) * acc + (d.accumulate ? double(out) : 0.0));
        }
    }
}

LinearPlan make_linear_plan(DnnlContext& ctx, int64_t n, int64_t in, int64_t out, int64_t ldx,
                            int64_t ldy) {
  ATTNLAB_CHECK(n > 0 && in > 0 && out > 0 && ldx >= in && ldy >= out, "make_linear_plan shapes");
  LinearPlan p;
  p.n = n;
  p.in = in;
  p.out = out;
  p.ldx = ldx;
  p.ldy = ldy;
  // W is [out, in] dense (row stride in).
  p.fwd = Gemm(ctx, gemm_desc_2d(n, out, in, false, ldx, true, in, ldy));                // x · Wᵀ
  p.bwd_data = Gemm(ctx, gemm_desc_2d(n, in, out, false, ldy, false, in, ldx, 1.0f, true));  // dy · W
  p.bwd_weight = Gemm(ctx, gemm_desc_2d(out, in, n, true, ldy, false, ldx, in, 1.0f, true));  // dyᵀ · x
  return p;
}

void linear_forward(LinearPlan& plan, MatView y, ConstMatView x, ConstMatView w) {
  ATTNLAB_CHECK(x.rows == plan.n && x.cols == plan.in && x.stride == plan.ldx, "linear_forward x");
  ATTNLAB_CHECK(y.rows == plan.n && y.cols == plan.out && y.stride == plan.ldy, "linear_forward y");
  ATTNLAB_CHECK(w.rows == plan.out && w.cols == plan.in && w.dense(), "linear_forward w");
  plan.fwd.run(x.p, w.p, y.p);
}

void linear_backward(LinearPlan& plan, MatView dx, MatView dw, ConstMatView dy, ConstMatView x,
                     ConstMatView w) {
  ATTNLAB_CHECK(dy.rows == plan.n && dy.cols == plan.out && dy.stride == plan.ldy, "linear_backward dy");
  ATTNLAB_CHECK(x.rows == plan.n && x.cols == plan.in && x.stride == plan.ldx, "linear_backward x");
  ATTNLAB_CHECK(w.rows == plan.out && w.cols == plan.in && w.dense(), "linear_backward w");
  ATTNLAB_CHECK(dw.rows == plan.out && dw.cols == plan.in && dw.dense(), "linear_backward dw");
  if (dx.rows != 0) {
    ATTNLAB_CHECK(dx.rows == plan.n && dx.cols == plan.in && dx.stride == plan.ldx, "linear_backward dx");
    plan.bwd_data.run(dy.p, w.p, dx.p);
  }
  plan.bwd_weight.run(dy.p, x.p, dw.p);
}

}  // namespace attnlab
