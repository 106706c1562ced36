// attention_variants.cpp: see attention_variants.h for the math. These rows are plain loops (the core
// softmax in attention.cpp carries the hand-vectorised version); each row is computed the same way for
// any thread count.
#include "model/attention_variants.h"

#include <algorithm>
#include <cmath>

#include "model/exp_nonpos.h"
#include "model/fast_exp.h"

namespace attnlab {

namespace {

int64_t rows_of(const AttentionPlan& p) { return int64_t(p.B) * p.H * p.T; }  // (b, h, i) rows

// Row n of qkv / out for batch b, position i.
inline int64_t token_row(const AttentionPlan& p, int b, int i) { return int64_t(b) * p.T + i; }

void check_bias(const AttentionPlan& p, ConstMatView m, const char* what) {
  ATTNLAB_CHECK(m.rows == p.H && m.cols == p.d_head, what);
}

}  // namespace

void attention_scale_scores(AttentionPlan& plan, float* scores, float factor) {
  ATTNLAB_CHECK(scores != nullptr, "attention_scale_scores: scores missing");
  const int64_t n = rows_of(plan) * plan.T;
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) scores[i] *= factor;
}

void attention_softmax_extra_forward(AttentionPlan& plan, AttentionSaved s, ExtraKeySaved e, const float* z0) {
  ATTNLAB_CHECK(s.probs != nullptr && e.p0 != nullptr && z0 != nullptr, "attention_softmax_extra_forward buffers");
  const int T = plan.T;
  const int64_t R = rows_of(plan);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < R; ++r) {
    const int i = int(r % T), n = i + 1;
    float* x = s.probs + r * T;
    float mx = z0[r];
    for (int j = 0; j < n; ++j) mx = std::max(mx, x[j]);
    const float e0 = exp_nonpos(z0[r] - mx);
    double sum = double(e0);
    for (int j = 0; j < n; ++j) {
      x[j] = exp_nonpos(x[j] - mx);
      sum += double(x[j]);
    }
    const float inv = float(1.0 / sum);
    for (int j = 0; j < n; ++j) x[j] *= inv;
    for (int j = n; j < T; ++j) x[j] = 0.0f;
    e.p0[r] = e0 * inv;
  }
}

void attention_softmax_extra_backward(AttentionPlan& plan, float* dprobs, float* dz0, AttentionSaved s,
                                      ExtraKeySaved e) {
  ATTNLAB_CHECK(s.probs != nullptr && e.p0 != nullptr && dprobs != nullptr && dz0 != nullptr && dprobs != s.probs,
                "attention_softmax_extra_backward buffers");
  const int T = plan.T;
  const int64_t R = rows_of(plan);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < R; ++r) {
    const int n = int(r % T) + 1;
    float* g = dprobs + r * T;
    const float* p = s.probs + r * T;
    double dot = double(dz0[r]) * double(e.p0[r]);
    for (int j = 0; j < n; ++j) dot += double(g[j]) * double(p[j]);
    const float c = float(dot);
    for (int j = 0; j < n; ++j) g[j] = p[j] * (g[j] - c);
    for (int j = n; j < T; ++j) g[j] = 0.0f;
    dz0[r] = e.p0[r] * (dz0[r] - c);
  }
}

void attention_sink_logits(AttentionPlan& plan, float* z0, ConstVecView b) {
  ATTNLAB_CHECK(z0 != nullptr && (b.n == 0 || b.n == plan.H), "attention_sink_logits: b must be [H] or empty");
  const int T = plan.T, H = plan.H;
  const int64_t R = rows_of(plan);
  for (int64_t r = 0; r < R; ++r) z0[r] = b.n == 0 ? 0.0f : b[(r / T) % H];
}

void attention_sink_logits_backward(AttentionPlan& plan, VecView db, const float* dz0) {
  ATTNLAB_CHECK(db.n == plan.H && dz0 != nullptr, "attention_sink_logits_backward: db must be [H]");
  const int T = plan.T, H = plan.H, B = plan.B;
  for (int h = 0; h < H; ++h) {  // (b, i) order: deterministic
    double acc = 0.0;
    for (int b = 0; b < B; ++b)
      for (int i = 0; i < T; ++i) acc += double(dz0[(int64_t(b) * H + h) * T + i]);
    db[h] += float(acc);
  }
}

void attention_kv_bias_logits(AttentionPlan& plan, float* z0, ConstMatView qkv, ConstMatView k_bias, float factor) {
  check_bias(plan, k_bias, "attention_kv_bias_logits: k_bias must be [H, d_head]");
  ATTNLAB_CHECK(z0 != nullptr && qkv.rows == plan.B * plan.T && qkv.cols == 3 * plan.H * plan.d_head,
                "attention_kv_bias_logits shapes");
  const int T = plan.T, H = plan.H, dh = plan.d_head;
  const int64_t R = rows_of(plan);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < R; ++r) {
    const int i = int(r % T), h = int((r / T) % H), b = int(r / (int64_t(T) * H));
    const float* q = qkv.row(int(token_row(plan, b, i))) + h * dh;
    const float* k = k_bias.row(h);
    double dot = 0.0;
    for (int e = 0; e < dh; ++e) dot += double(q[e]) * double(k[e]);
    z0[r] = float(dot) * factor;
  }
}

void attention_kv_bias_logits_backward(AttentionPlan& plan, MatView dqkv, MatView dk_bias, const float* dz0,
                                       ConstMatView qkv, ConstMatView k_bias, float factor) {
  check_bias(plan, k_bias, "attention_kv_bias_logits_backward: k_bias must be [H, d_head]");
  check_bias(plan, dk_bias, "attention_kv_bias_logits_backward: dk_bias must be [H, d_head]");
  ATTNLAB_CHECK(dz0 != nullptr && same_shape(dqkv, qkv) && dqkv.p != qkv.p, "attention_kv_bias_logits_backward");
  const int T = plan.T, H = plan.H, dh = plan.d_head, B = plan.B;
  // dq: rows are independent.
#pragma omp parallel for schedule(static)
  for (int n = 0; n < B * T; ++n) {
    const int b = n / T, i = n % T;
    for (int h = 0; h < H; ++h) {
      const float g = factor * dz0[(int64_t(b) * H + h) * T + i];
      float* dq = dqkv.row(n) + h * dh;
      const float* k = k_bias.row(h);
      for (int e = 0; e < dh; ++e) dq[e] += g * k[e];
    }
  }
  // dk': per head, a reduction over (b, i) in order.
#pragma omp parallel for schedule(static)
  for (int h = 0; h < H; ++h) {
    for (int e = 0; e < dh; ++e) {
      double acc = 0.0;
      for (int b = 0; b < B; ++b)
        for (int i = 0; i < T; ++i)
          acc += double(dz0[(int64_t(b) * H + h) * T + i]) * double(qkv.row(b * T + i)[h * dh + e]);
      dk_bias.row(h)[e] += factor * float(acc);
    }
  }
}

void attention_kv_bias_values_forward(AttentionPlan& plan, MatView out, ExtraKeySaved e, ConstMatView v_bias) {
  check_bias(plan, v_bias, "attention_kv_bias_values_forward: v_bias must be [H, d_head]");
  ATTNLAB_CHECK(e.p0 != nullptr && out.rows == plan.B * plan.T && out.cols == plan.H * plan.d_head,
                "attention_kv_bias_values_forward shapes");
  const int T = plan.T, H = plan.H, dh = plan.d_head;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < out.rows; ++n) {
    const int b = n / T, i = n % T;
    for (int h = 0; h < H; ++h) {
      const float p0 = e.p0[(int64_t(b) * H + h) * T + i];
      float* y = out.row(n) + h * dh;
      const float* v = v_bias.row(h);
      for (int k = 0; k < dh; ++k) y[k] += p0 * v[k];
    }
  }
}

void attention_kv_bias_values_backward(AttentionPlan& plan, float* dp0, MatView dv_bias, ConstMatView dout,
                                       ConstMatView v_bias, ExtraKeySaved e) {
  check_bias(plan, v_bias, "attention_kv_bias_values_backward: v_bias must be [H, d_head]");
  check_bias(plan, dv_bias, "attention_kv_bias_values_backward: dv_bias must be [H, d_head]");
  ATTNLAB_CHECK(dp0 != nullptr && e.p0 != nullptr && dout.rows == plan.B * plan.T, "attention_kv_bias_values_backward");
  const int T = plan.T, H = plan.H, dh = plan.d_head, B = plan.B;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < B * T; ++n) {
    const int b = n / T, i = n % T;
    for (int h = 0; h < H; ++h) {
      const float* dy = dout.row(n) + h * dh;
      const float* v = v_bias.row(h);
      double dot = 0.0;
      for (int k = 0; k < dh; ++k) dot += double(dy[k]) * double(v[k]);
      dp0[(int64_t(b) * H + h) * T + i] = float(dot);
    }
  }
#pragma omp parallel for schedule(static)
  for (int h = 0; h < H; ++h) {
    for (int k = 0; k < dh; ++k) {
      double acc = 0.0;
      for (int b = 0; b < B; ++b)
        for (int i = 0; i < T; ++i)
          acc += double(e.p0[(int64_t(b) * H + h) * T + i]) * double(dout.row(b * T + i)[h * dh + k]);
      dv_bias.row(h)[k] += float(acc);
    }
  }
}

void attention_sigmoid_forward(AttentionPlan& plan, AttentionSaved s, bool length_bias) {
  ATTNLAB_CHECK(s.probs != nullptr, "attention_sigmoid_forward probs");
  const int T = plan.T;
  const int64_t R = rows_of(plan);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < R; ++r) {
    const int n = int(r % T) + 1;
    const float beta = length_bias ? -std::log(float(n)) : 0.0f;
    float* x = s.probs + r * T;
#pragma omp simd
    for (int j = 0; j < n; ++j) x[j] = fast_sigmoid(x[j] + beta);
    for (int j = n; j < T; ++j) x[j] = 0.0f;
  }
}

void attention_sigmoid_backward(AttentionPlan& plan, float* dprobs, AttentionSaved s) {
  ATTNLAB_CHECK(s.probs != nullptr && dprobs != nullptr && dprobs != s.probs, "attention_sigmoid_backward buffers");
  const int T = plan.T;
  const int64_t R = rows_of(plan);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < R; ++r) {
    const int n = int(r % T) + 1;
    float* g = dprobs + r * T;
    const float* p = s.probs + r * T;
#pragma omp simd
    for (int j = 0; j < n; ++j) g[j] = g[j] * p[j] * (1.0f - p[j]);
    for (int j = n; j < T; ++j) g[j] = 0.0f;
  }
}

}  // namespace attnlab
