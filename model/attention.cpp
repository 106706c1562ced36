// attention.cpp: causal softmax attention over the fused qkv buffer; see attention.h for the math.
#include "model/attention.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "model/exp_nonpos.h"

namespace attnlab {

namespace {

// Strides {b, h, row, col} of one head's [T, d_head] block (q, k or v) inside qkv [B·T, 3d], as a
// logical [T, d_head] operand (rows = positions) or transposed [d_head, T].
struct HeadStrides {
  int64_t b, h, row, col;
};

void set(int64_t dst[4], HeadStrides s) {
  dst[0] = s.b;
  dst[1] = s.h;
  dst[2] = s.row;
  dst[3] = s.col;
}

// Row kernels of the causal softmax. Row i has n = i + 1 live entries. They are processed in whole
// 16-float vectors up to m = n rounded up (lanes j ≥ n masked), with one partial accumulator per lane
// and a fixed tree at the end: no per-row scalar remainder, and no reliance on `omp simd reduction`,
// which GCC lowers to a stack array summed with 16 serial adds per row (that dominated short rows).
// Only when T is not a multiple of 16 does the last partial vector of long rows run scalar.
// The arithmetic order is fixed by T alone, so results do not depend on the thread count.
constexpr int kLanes = 16;

// Entries of a row covered by whole vectors: n rounded up to kLanes, but never past the last whole
// vector inside the row (the rounded-up lanes are read, so they must exist).
inline int vector_end(int n, int T) {
  return std::min((n + kLanes - 1) / kLanes * kLanes, T / kLanes * kLanes);
}

template <typename V>
inline V lane_sum(V* a) {
  for (int w = kLanes / 2; w >= 1; w /= 2)
#pragma omp simd
    for (int l = 0; l < w; ++l) a[l] += a[l + w];
  return a[0];
}

// x[0, n) ← softmax(x[0, n)); x[n, T) ← 0 exactly.
inline void softmax_row(float* x, int n, int T) {
  const int m = vector_end(n, T);
  constexpr float kLowest = -std::numeric_limits<float>::max();
  float lmax[kLanes];
  for (int l = 0; l < kLanes; ++l) lmax[l] = kLowest;
  for (int j = 0; j < m; j += kLanes)
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      const float v = j + l < n ? x[j + l] : kLowest;
      lmax[l] = lmax[l] > v ? lmax[l] : v;
    }
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) lmax[l] = std::max(lmax[l], lmax[l + w]);
  float mx = lmax[0];
  for (int j = m; j < n; ++j) mx = std::max(mx, x[j]);

  double lsum[kLanes] = {};  // double: no drift for long rows
  for (int j = 0; j < m; j += kLanes)
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      // Mask by multiplying: a select here makes GCC move exp into a branch and give up vectorising.
      const float e = exp_nonpos(x[j + l] - mx) * float(j + l < n);
      x[j + l] = e;
      lsum[l] += double(e);
    }
  double sum = lane_sum(lsum);
  for (int j = m; j < n; ++j) {
    x[j] = exp_nonpos(x[j] - mx);
    sum += double(x[j]);
  }
  const float inv = 1.0f / float(sum);
  const int end = std::max(m, n);
#pragma omp simd
  for (int j = 0; j < end; ++j) x[j] *= inv;
  for (int j = end; j < T; ++j) x[j] = 0.0f;  // masked: exact zeros, so P V and Pᵀ dY ignore them
}

// g[0, n) ← p ⊙ (g − Σ_{j<n} g⊙p); g[n, T) ← 0 exactly (whatever dP held there).
inline void softmax_backward_row(float* g, const float* p, int n, int T) {
  const int m = vector_end(n, T);
  double ldot[kLanes] = {};
  for (int j = 0; j < m; j += kLanes)
#pragma omp simd
    for (int l = 0; l < kLanes; ++l)
      ldot[l] += j + l < n ? double(g[j + l]) * double(p[j + l]) : 0.0;
  double dot = lane_sum(ldot);
  for (int j = m; j < n; ++j) dot += double(g[j]) * double(p[j]);
  const float c = float(dot);
  for (int j = 0; j < m; j += kLanes)
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) g[j + l] = j + l < n ? p[j + l] * (g[j + l] - c) : 0.0f;
  for (int j = m; j < n; ++j) g[j] = p[j] * (g[j] - c);
  for (int j = std::max(m, n); j < T; ++j) g[j] = 0.0f;
}

void check_qkv(const AttentionPlan& p, ConstMatView qkv) {
  const int d = p.H * p.d_head;
  ATTNLAB_CHECK(qkv.rows == p.B * p.T && qkv.cols == 3 * d && qkv.dense(), "attention qkv shape");
}

void check_out(const AttentionPlan& p, ConstMatView out, const char* what) {
  const int d = p.H * p.d_head;
  ATTNLAB_CHECK(out.rows == p.B * p.T && out.cols == d && out.dense(), what);
}

// The Gemm for a value operand: the fused plan for the v block of qkv (row stride 3d), the dense plan for
// a separate [N, d] buffer (row stride d).
Gemm& value_gemm(const AttentionPlan& p, ConstMatView v, Gemm& fused, Gemm& dense) {
  const int d = p.H * p.d_head;
  ATTNLAB_CHECK(v.rows == p.B * p.T && v.cols == d, "attention value operand shape");
  if (v.stride == 3 * d) return fused;
  ATTNLAB_CHECK(v.stride == d && dense.valid(), "attention: dense values need a plan made with dense_v");
  return dense;
}

}  // namespace

AttentionPlan make_attention_plan(DnnlContext& ctx, int B, int T, int H, int d_head, bool dense_v) {
  ATTNLAB_CHECK(B > 0 && T > 0 && H > 0 && d_head > 0, "make_attention_plan shapes");
  AttentionPlan p;
  p.B = B;
  p.T = T;
  p.H = H;
  p.d_head = d_head;
  p.scale = 1.0f / std::sqrt(float(d_head));

  const int64_t d = int64_t(H) * d_head, ld_qkv = 3 * d, TT = int64_t(T) * T;
  // q/k/v of head h: rows are positions (stride 3d), columns features; (b, h) batches.
  const HeadStrides head{T * ld_qkv, d_head, ld_qkv, 1};
  const HeadStrides head_t{T * ld_qkv, d_head, 1, ld_qkv};  // the same block, transposed
  const HeadStrides outh{T * d, d_head, d, 1};             // out / dout [N, d]
  const HeadStrides probs{H * TT, TT, T, 1};               // probs / dprobs [B, H, T, T]
  const HeadStrides probs_t{H * TT, TT, 1, T};

  auto desc = [&](int64_t M, int64_t N, int64_t K, HeadStrides a, HeadStrides b, HeadStrides c,
                  float alpha, bool accumulate) {
    GemmDesc g;
    g.batch0 = B;
    g.batch1 = H;
    g.M = M;
    g.N = N;
    g.K = K;
    set(g.sa, a);
    set(g.sb, b);
    set(g.sc, c);
    g.alpha = alpha;
    g.accumulate = accumulate;
    return g;
  };
  p.scores = Gemm(ctx, desc(T, T, d_head, head, head_t, probs, p.scale, false));  // scale·Q Kᵀ
  p.values = Gemm(ctx, desc(T, d_head, T, probs, head, outh, 1.0f, false));       // P V
  p.dprobs = Gemm(ctx, desc(T, T, d_head, outh, head_t, probs, 1.0f, false));     // dY Vᵀ
  p.dv = Gemm(ctx, desc(T, d_head, T, probs_t, outh, head, 1.0f, true));          // += Pᵀ dY
  p.dq = Gemm(ctx, desc(T, d_head, T, probs, head, head, p.scale, true));         // += scale·dS K
  p.dk = Gemm(ctx, desc(T, d_head, T, probs_t, head, head, p.scale, true));       // += scale·dSᵀ Q
  if (dense_v) {
    const HeadStrides vd{T * d, d_head, d, 1}, vd_t{T * d, d_head, 1, d};  // dense [N, d] values
    p.values_dense = Gemm(ctx, desc(T, d_head, T, probs, vd, outh, 1.0f, false));
    p.dprobs_dense = Gemm(ctx, desc(T, T, d_head, outh, vd_t, probs, 1.0f, false));
    p.dv_dense = Gemm(ctx, desc(T, d_head, T, probs_t, outh, vd, 1.0f, true));
  }
  return p;
}

void attention_scores_forward(AttentionPlan& plan, AttentionSaved s, ConstMatView qkv) {
  check_qkv(plan, qkv);
  ATTNLAB_CHECK(s.probs != nullptr, "attention_scores_forward probs");
  const int d = plan.H * plan.d_head;
  plan.scores.run(qkv.p, qkv.p + d, s.probs);
}

void attention_softmax_forward(AttentionPlan& plan, AttentionSaved s) {
  ATTNLAB_CHECK(s.probs != nullptr, "attention_softmax_forward probs");
  const int T = plan.T, BH = plan.B * plan.H;
  float* probs = s.probs;
  // Every row is independent and computed the same way whatever the thread count.
#pragma omp parallel for collapse(2) schedule(static)
  for (int bh = 0; bh < BH; ++bh)
    for (int i = 0; i < T; ++i)
      softmax_row(probs + (int64_t(bh) * T + i) * T, i + 1, T);  // causal: query i sees keys j ≤ i
}

void attention_values_forward(AttentionPlan& plan, MatView out, AttentionSaved s, ConstMatView qkv) {
  check_qkv(plan, qkv);
  const int d = plan.H * plan.d_head;
  attention_values_forward_v(plan, out, s, qkv.col_block(2 * d, d));
}

void attention_values_forward_v(AttentionPlan& plan, MatView out, AttentionSaved s, ConstMatView v) {
  check_out(plan, out, "attention_values_forward out shape");
  ATTNLAB_CHECK(s.probs != nullptr, "attention_values_forward probs");
  value_gemm(plan, v, plan.values, plan.values_dense).run(s.probs, v.p, out.p);
}

void attention_forward(AttentionPlan& plan, MatView out, AttentionSaved s, ConstMatView qkv) {
  attention_scores_forward(plan, s, qkv);
  attention_softmax_forward(plan, s);
  attention_values_forward(plan, out, s, qkv);
}

void attention_backward(AttentionPlan& plan, MatView dqkv, float* dprobs, ConstMatView dout,
                        ConstMatView qkv, AttentionSaved s) {
  check_qkv(plan, qkv);
  check_qkv(plan, dqkv);
  ATTNLAB_CHECK(dqkv.p != qkv.p, "attention_backward: dqkv must not alias qkv");
  const int d = plan.H * plan.d_head;
  attention_values_backward(plan, dprobs, dqkv.col_block(2 * d, d), dout, qkv.col_block(2 * d, d), s);
  attention_softmax_backward(plan, dprobs, s);
  attention_scores_backward(plan, dqkv, dprobs, qkv);
}

void attention_values_backward(AttentionPlan& plan, float* dprobs, MatView dv, ConstMatView dout, ConstMatView v,
                               AttentionSaved s) {
  check_out(plan, dout, "attention_backward dout shape");
  ATTNLAB_CHECK(s.probs != nullptr && dprobs != nullptr, "attention_backward buffers");
  ATTNLAB_CHECK(dprobs != s.probs, "attention_backward: dprobs must not alias the saved probs");
  ATTNLAB_CHECK(dv.p != v.p, "attention_backward: dv must not alias v");
  value_gemm(plan, v, plan.dprobs, plan.dprobs_dense).run(dout.p, v.p, dprobs);  // dP = dY Vᵀ (full T×T)
  value_gemm(plan, dv, plan.dv, plan.dv_dense).run(s.probs, dout.p, dv.p);        // dV += Pᵀ dY
}

void attention_softmax_backward(AttentionPlan& plan, float* dprobs, AttentionSaved s) {
  ATTNLAB_CHECK(s.probs != nullptr && dprobs != nullptr && dprobs != s.probs, "attention_softmax_backward buffers");
  // dS = P ⊙ (dP − Σ_j dP⊙P), over the causal part only; exact zeros above the diagonal, whatever dP
  // holds there.
  const int T = plan.T, BH = plan.B * plan.H;
  const float* probs = s.probs;
#pragma omp parallel for collapse(2) schedule(static)
  for (int bh = 0; bh < BH; ++bh)
    for (int i = 0; i < T; ++i) {
      const int64_t off = (int64_t(bh) * T + i) * T;
      softmax_backward_row(dprobs + off, probs + off, i + 1, T);
    }
}

void attention_scores_backward(AttentionPlan& plan, MatView dqkv, const float* dscores, ConstMatView qkv) {
  check_qkv(plan, qkv);
  check_qkv(plan, dqkv);
  ATTNLAB_CHECK(dqkv.p != qkv.p && dscores != nullptr, "attention_scores_backward buffers");
  const int d = plan.H * plan.d_head;
  plan.dq.run(dscores, qkv.p + d, dqkv.p);  // dQ += scale · dS K
  plan.dk.run(dscores, qkv.p, dqkv.p + d);  // dK += scale · dSᵀ Q
}

}  // namespace attnlab
