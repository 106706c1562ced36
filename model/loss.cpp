#include "model/loss.h"

#include <cmath>

#include "model/fast_exp.h"

namespace attnlab {

int count_valid_targets(const int32_t* targets, int n) {
  int valid = 0;
  for (int i = 0; i < n; ++i) valid += targets[i] >= 0 ? 1 : 0;
  return valid;
}

namespace {
bool targets_in_range(const int32_t* targets, int n, int vocab) {
  for (int i = 0; i < n; ++i)
    if (targets[i] < -1 || targets[i] >= vocab) return false;
  return true;
}
}  // namespace

double cross_entropy_forward(LossSaved s, ConstMatView logits, const int32_t* targets) {
  ATTNLAB_CHECK(s.lse != nullptr && s.row_loss != nullptr, "cross_entropy_forward: saved slices missing");
  ATTNLAB_CHECK(logits.cols > 0, "cross_entropy_forward: empty vocabulary");
  ATTNLAB_CHECK(targets != nullptr || logits.rows == 0, "cross_entropy_forward: targets missing");
  ATTNLAB_CHECK(targets_in_range(targets, logits.rows, logits.cols),
                "cross_entropy_forward: target out of [-1, V)");
  const int N = logits.rows, V = logits.cols;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const float* l = logits.row(n);
    float m = l[0];
#pragma omp simd reduction(max : m)
    for (int v = 0; v < V; ++v) m = l[v] > m ? l[v] : m;
    double sum = 0.0;  // double: V terms (8192+) in one sum
#pragma omp simd reduction(+ : sum)
    for (int v = 0; v < V; ++v) sum += double(fast_exp(l[v] - m));  // arguments <= 0: no overflow
    const double log_sum = std::log(sum);
    s.lse[n] = float(double(m) + log_sum);  // kept for every row, ignored ones too (metrics)
    const int t = targets[n];
    // (m − l[t]) + log Σ rather than lse − l[t]: no cancellation between two large numbers.
    s.row_loss[n] = t >= 0 ? float(double(m - l[t]) + log_sum) : 0.0f;
  }
  // Row order, in double, after the parallel loop: the mean does not depend on the thread count.
  double total = 0.0;
  int valid = 0;
  for (int n = 0; n < N; ++n) {
    if (targets[n] < 0) continue;
    total += double(s.row_loss[n]);
    ++valid;
  }
  return valid > 0 ? total / valid : 0.0;
}

void cross_entropy_backward(MatView dlogits, ConstMatView logits, const int32_t* targets, LossSaved s,
                            float scale) {
  ATTNLAB_CHECK(same_shape(dlogits, logits), "cross_entropy_backward: dlogits and logits shapes differ");
  ATTNLAB_CHECK(s.lse != nullptr, "cross_entropy_backward: saved.lse missing");
  ATTNLAB_CHECK(targets != nullptr || logits.rows == 0, "cross_entropy_backward: targets missing");
  ATTNLAB_CHECK(targets_in_range(targets, logits.rows, logits.cols),
                "cross_entropy_backward: target out of [-1, V)");
  const int N = logits.rows, V = logits.cols;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const int t = targets[n];
    if (t < 0) continue;
    const float* l = logits.row(n);
    float* dl = dlogits.row(n);
    const float lse = s.lse[n];
    // One += per element (the one-hot folded in), so two calls give exactly twice one call.
#pragma omp simd
    for (int v = 0; v < V; ++v) {
      const float onehot = v == t ? 1.0f : 0.0f;
      dl[v] += scale * (fast_exp(l[v] - lse) - onehot);
    }
  }
}

double z_loss_forward(LossSaved s, const int32_t* targets, int n, float coeff) {
  ATTNLAB_CHECK(s.lse != nullptr && (targets != nullptr || n == 0), "z_loss_forward: inputs missing");
  double total = 0.0;  // row order, in double: independent of the thread count
  int valid = 0;
  for (int i = 0; i < n; ++i) {
    if (targets[i] < 0) continue;
    total += double(s.lse[i]) * double(s.lse[i]);
    ++valid;
  }
  return valid > 0 ? double(coeff) * total / valid : 0.0;
}

void z_loss_backward(MatView dlogits, ConstMatView logits, const int32_t* targets, LossSaved s, float scale) {
  ATTNLAB_CHECK(same_shape(dlogits, logits) && s.lse != nullptr, "z_loss_backward: shapes");
  ATTNLAB_CHECK(targets != nullptr || logits.rows == 0, "z_loss_backward: targets missing");
  const int N = logits.rows, V = logits.cols;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    if (targets[n] < 0) continue;
    const float* l = logits.row(n);
    float* dl = dlogits.row(n);
    const float lse = s.lse[n];
    const float c = scale * 2.0f * lse;
#pragma omp simd
    for (int v = 0; v < V; ++v) dl[v] += c * fast_exp(l[v] - lse);
  }
}

}  // namespace attnlab
