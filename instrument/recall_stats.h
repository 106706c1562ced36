// recall_stats.h: how well a model uses a dependency at a known distance. The data say which earlier
// input each target copies (Dataset::fill_dependencies: source[b, t] = p, or -1); these pure functions
// score the model's argmax prediction at those targets and the attention from the query position t to the
// source position p, bucketed by the distance d = t - p (instrument/docs/recall.md).
//
// Buckets are powers of two: bucket k = floor(log2 d) holds d in [2^k, 2^(k+1)): 0 = {1}, 1 = {2, 3},
// 2 = 4..7, 3 = 8..15, ..., 7 = 128..255.
#pragma once
#include <cstdint>
#include <vector>

#include "instrument/metric.h"

namespace attnlab {

constexpr int kRecallBuckets = 16;  // distances up to 65535
int distance_bucket(int d);         // floor(log2 d) for d >= 1 (clamped to the last bucket)

// Sums over every scored target of a set of batches. Allocated once (per layer); reset() between uses.
struct RecallTally {
  explicit RecallTally(int n_layer);
  void reset();
  int n_layer;
  std::vector<double> count;    // [kRecallBuckets] targets with a dependency
  std::vector<double> correct;  // [kRecallBuckets] of which the argmax is the target (strictly: a tie is wrong)
  std::vector<double> attn;     // [n_layer, kRecallBuckets] sum of max over heads of P[t, p]
};

// logits: [B * Tc, V] row-major, the row of data position t of sequence b at b * Tc + t + offset (offset 1
// with a sink token at position 0, Tc = T + offset); targets and source: [B, T].
void recall_accuracy(RecallTally* tally, const float* logits, int V, const int32_t* targets, const int32_t* source,
                     int B, int T, int offset);
// probs: one layer's attention probabilities [B, H, Tc, Tc] (query row, key column). Adds, per dependency,
// max_h P_h[t + offset, p + offset] to tally->attn[layer].
void recall_attention(RecallTally* tally, int layer, const float* probs, int H, const int32_t* source, int B,
                      int T, int offset);

struct RecallNames {
  const char* acc;    // fraction correct per bucket (index = bucket) and over all buckets (index -1)
  const char* attn;   // mean max-over-heads attention to the source, per layer and bucket (and index -1)
  const char* count;  // targets per bucket (index -1: all)
};
constexpr RecallNames kRecallNames{"recall_acc", "recall_attn", "recall_count"};
constexpr RecallNames kRecallExtNames{"recall_acc_ext", "recall_attn_ext", "recall_count_ext"};

// Emits the tally: only buckets with at least one target; layer -1 for acc and count.
void emit_recall(const RecallTally& tally, const RecallNames& names, MetricOut& out);

}  // namespace attnlab
