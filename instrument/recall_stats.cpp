#include "instrument/recall_stats.h"

#include <algorithm>

#include "model/check.h"

namespace attnlab {

int distance_bucket(int d) {
  ATTNLAB_CHECK(d >= 1, "distance_bucket: distance must be >= 1");
  int k = 0;
  while ((d >> 1) > 0 && k < kRecallBuckets - 1) {
    d >>= 1;
    ++k;
  }
  return k;
}

RecallTally::RecallTally(int layers)
    : n_layer(layers),
      count(kRecallBuckets, 0.0),
      correct(kRecallBuckets, 0.0),
      attn(size_t(std::max(layers, 0)) * kRecallBuckets, 0.0) {}

void RecallTally::reset() {
  std::fill(count.begin(), count.end(), 0.0);
  std::fill(correct.begin(), correct.end(), 0.0);
  std::fill(attn.begin(), attn.end(), 0.0);
}

void recall_accuracy(RecallTally* tally, const float* logits, int V, const int32_t* targets, const int32_t* source,
                     int B, int T, int offset) {
  ATTNLAB_CHECK(tally && logits && targets && source && V >= 1 && offset >= 0, "recall_accuracy arguments");
  const int Tc = T + offset;
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < T; ++t) {
      const int32_t p = source[size_t(b) * T + t], y = targets[size_t(b) * T + t];
      if (p < 0 || y < 0) continue;
      ATTNLAB_CHECK(p < t && y < V, "recall_accuracy: source must precede its target, target < vocab");
      const float* row = logits + (size_t(b) * Tc + size_t(t + offset)) * size_t(V);
      bool best = true;  // logit[y] strictly above every other logit
      for (int v = 0; v < V && best; ++v) best = v == y || row[v] < row[y];
      const int k = distance_bucket(t - p);
      tally->count[size_t(k)] += 1.0;
      tally->correct[size_t(k)] += best ? 1.0 : 0.0;
    }
  }
}

void recall_attention(RecallTally* tally, int layer, const float* probs, int H, const int32_t* source, int B,
                      int T, int offset) {
  ATTNLAB_CHECK(tally && probs && source && H >= 1 && layer >= 0 && layer < tally->n_layer && offset >= 0,
                "recall_attention arguments");
  const size_t Tc = size_t(T + offset);
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < T; ++t) {
      const int32_t p = source[size_t(b) * T + t];
      if (p < 0) continue;
      ATTNLAB_CHECK(p < t, "recall_attention: source must precede its target");
      float m = 0.0f;
      for (int h = 0; h < H; ++h) {
        const float* P = probs + ((size_t(b) * H + h) * Tc + size_t(t + offset)) * Tc;
        m = std::max(m, P[size_t(p + offset)]);
      }
      tally->attn[size_t(layer) * kRecallBuckets + size_t(distance_bucket(t - p))] += m;
    }
  }
}

void emit_recall(const RecallTally& tally, const RecallNames& names, MetricOut& out) {
  double n = 0.0, c = 0.0;
  for (int k = 0; k < kRecallBuckets; ++k) {
    const double nk = tally.count[size_t(k)];
    if (nk == 0.0) continue;
    n += nk;
    c += tally.correct[size_t(k)];
    out.emit(names.count, -1, -1, k, nk);
    out.emit(names.acc, -1, -1, k, tally.correct[size_t(k)] / nk);
    for (int l = 0; l < tally.n_layer; ++l)
      out.emit(names.attn, l, -1, k, tally.attn[size_t(l) * kRecallBuckets + size_t(k)] / nk);
  }
  if (n == 0.0) return;
  out.emit(names.count, -1, -1, -1, n);
  out.emit(names.acc, -1, -1, -1, c / n);
  for (int l = 0; l < tally.n_layer; ++l) {
    double a = 0.0;
    for (int k = 0; k < kRecallBuckets; ++k) a += tally.attn[size_t(l) * kRecallBuckets + size_t(k)];
    out.emit(names.attn, l, -1, -1, a / n);
  }
}

}  // namespace attnlab
