// test_recall_stats.cpp: the dependency metrics on hand-built batches with known answers: distance
// buckets, accuracy of perfect / uniform / wrong logits, ties, attention to the source on a hand-made
// attention map, the sink-token offset, and what emit_recall writes.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "instrument/recall_stats.h"

using namespace attnlab;

TEST_CASE("distance_bucket is floor(log2 d)", "[instrument][recall]") {
  CHECK(distance_bucket(1) == 0);
  CHECK(distance_bucket(2) == 1);
  CHECK(distance_bucket(3) == 1);
  CHECK(distance_bucket(4) == 2);
  CHECK(distance_bucket(7) == 2);
  CHECK(distance_bucket(8) == 3);
  CHECK(distance_bucket(127) == 6);
  CHECK(distance_bucket(128) == 7);
  CHECK(distance_bucket(255) == 7);
  CHECK(distance_bucket(1 << 20) == kRecallBuckets - 1);
}

namespace {

// B = 2 rows of T = 6; dependencies: row 0 t=3 <- p=1 (d 2), t=5 <- p=0 (d 5); row 1 t=4 <- p=3 (d 1).
struct Fixture {
  int B = 2, T = 6, V = 5;
  std::vector<int32_t> targets{1, 2, 3, 4, 0, 2, 3, 3, 1, 0, 4, 2};
  std::vector<int32_t> source{-1, -1, -1, 1, -1, 0, -1, -1, -1, -1, 3, -1};
  // logits [B*T, V] that put `margin` on column `col[n]` of every row.
  std::vector<float> logits(const std::vector<int>& col, float margin) const {
    std::vector<float> l(size_t(B * T * V), 0.0f);
    for (int n = 0; n < B * T; ++n)
      if (col[size_t(n)] >= 0) l[size_t(n * V + col[size_t(n)])] = margin;
    return l;
  }
};

}  // namespace

TEST_CASE("recall_accuracy: perfect logits score 1, uniform 0, wrong 0, and a tie is wrong", "[instrument][recall]") {
  Fixture f;
  std::vector<int> perfect(f.targets.begin(), f.targets.end());
  RecallTally t(1);
  recall_accuracy(&t, f.logits(perfect, 3.0f).data(), f.V, f.targets.data(), f.source.data(), f.B, f.T, 0);
  CHECK(t.count[1] == 1.0);  // d 2
  CHECK(t.count[2] == 1.0);  // d 5
  CHECK(t.count[0] == 1.0);  // d 1
  CHECK(t.correct[0] == 1.0);
  CHECK(t.correct[1] == 1.0);
  CHECK(t.correct[2] == 1.0);

  t.reset();
  CHECK(t.count[1] == 0.0);
  std::vector<int> none(size_t(f.B * f.T), -1);  // all logits 0: every row a tie
  recall_accuracy(&t, f.logits(none, 0.0f).data(), f.V, f.targets.data(), f.source.data(), f.B, f.T, 0);
  CHECK(t.count[0] + t.count[1] + t.count[2] == 3.0);
  CHECK(t.correct[0] + t.correct[1] + t.correct[2] == 0.0);

  t.reset();
  std::vector<int> wrong = perfect;
  for (int& c : wrong) c = (c + 1) % f.V;
  recall_accuracy(&t, f.logits(wrong, 3.0f).data(), f.V, f.targets.data(), f.source.data(), f.B, f.T, 0);
  CHECK(t.correct[0] + t.correct[1] + t.correct[2] == 0.0);

  // Only row 0 t=3 right: bucket 1 is 1/1, the others 0.
  t.reset();
  std::vector<int> one = wrong;
  one[3] = f.targets[3];
  recall_accuracy(&t, f.logits(one, 3.0f).data(), f.V, f.targets.data(), f.source.data(), f.B, f.T, 0);
  CHECK(t.correct[1] == 1.0);
  CHECK(t.correct[0] + t.correct[2] == 0.0);
}

TEST_CASE("recall_attention: max over heads of P[t, p] on a hand-made map, with the sink offset",
          "[instrument][recall]") {
  Fixture f;
  const int H = 2;
  for (int offset : {0, 1}) {
    const int Tc = f.T + offset;
    std::vector<float> P(size_t(f.B * H * Tc * Tc), 0.0f);
    auto at = [&](int b, int h, int i, int j) -> float& {
      return P[size_t(((b * H + h) * Tc + i + offset) * Tc + j + offset)];
    };
    at(0, 0, 3, 1) = 0.2f;
    at(0, 1, 3, 1) = 0.9f;  // the max over heads
    at(0, 0, 5, 0) = 0.5f;
    at(0, 1, 5, 1) = 1.0f;  // not the source: ignored
    at(1, 1, 4, 3) = 0.25f;
    RecallTally t(2);
    recall_attention(&t, 1, P.data(), H, f.source.data(), f.B, f.T, offset);
    CHECK(t.attn[1 * kRecallBuckets + 1] == Approx(0.9));
    CHECK(t.attn[1 * kRecallBuckets + 2] == Approx(0.5));
    CHECK(t.attn[1 * kRecallBuckets + 0] == Approx(0.25));
    CHECK(t.attn[0 * kRecallBuckets + 1] == 0.0);  // layer 0 untouched
  }
}

TEST_CASE("emit_recall: per bucket and pooled, only buckets with targets", "[instrument][recall]") {
  RecallTally t(2);
  t.count[1] = 4;
  t.correct[1] = 3;
  t.count[3] = 1;
  t.correct[3] = 0;
  t.attn[0 * kRecallBuckets + 1] = 2.0;
  t.attn[1 * kRecallBuckets + 3] = 0.5;
  MemoryOut out;
  emit_recall(t, kRecallExtNames, out);
  CHECK(out.get("recall_acc_ext", -1, -1, 1) == Approx(0.75));
  CHECK(out.get("recall_acc_ext", -1, -1, 3) == Approx(0.0));
  CHECK(out.get("recall_acc_ext", -1, -1, -1) == Approx(0.6));
  CHECK(out.get("recall_count_ext", -1, -1, 1) == 4.0);
  CHECK(out.get("recall_count_ext", -1, -1, -1) == 5.0);
  CHECK(out.get("recall_attn_ext", 0, -1, 1) == Approx(0.5));
  CHECK(out.get("recall_attn_ext", 1, -1, 3) == Approx(0.5));
  CHECK(out.get("recall_attn_ext", 0, -1, -1) == Approx(0.4));
  CHECK(std::isnan(out.get("recall_acc_ext", -1, -1, 2)));  // empty bucket: not emitted
  MemoryOut none;
  emit_recall(RecallTally(2), kRecallNames, none);
  CHECK(none.entries.empty());
}
