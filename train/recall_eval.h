// recall_eval.h: the dependency metrics of train.recall_eval (instrument/docs/recall.md): on the
// validation batches 0..eval_batches-1, the argmax accuracy at the targets that copy an earlier token and
// the attention from the query to that token, by distance bucket (instrument/recall_stats.h).
//
// It owns a model of its own window (seq_len, or train.recall_eval_len for the evaluation beyond the
// training length: the parameters do not depend on T; RoPE and sinusoidal tables are computed for the
// longer window) and copies the trained parameters into it before each evaluation, so it never touches
// the training model's buffers: passive by construction (tests/e2e/test_recall.cpp checks it bitwise).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "instrument/recall_stats.h"
#include "instrument/sink.h"
#include "model/dnnl_context.h"
#include "model/transformer.h"
#include "train/config/config.h"
#include "train/data.h"

namespace attnlab {

class RecallEval {
 public:
  // `seq_len`: the window of the evaluated rows (cfg.model.seq_len or cfg.train.recall_eval_len); the
  // metrics are recall_* at the training window and recall_*_ext at any other. Throws DataError when the
  // data cannot make rows of that length.
  RecallEval(const RunConfig& cfg, int seq_len, DnnlContext& ctx);
  // Evaluates `trained`'s parameters and writes the metrics at `step` (kind probe) into `sink`.
  void run(const Transformer& trained, int64_t step, MetricSink& sink);
  // The same, into a MetricOut (tests).
  void measure(const Transformer& trained, MetricOut& out);
  const RecallTally& tally() const { return tally_; }

 private:
  RunConfig cfg_;
  std::unique_ptr<Dataset> data_;
  Transformer model_;
  RecallNames names_;
  RecallTally tally_;
  MemoryOut out_;  // run(): what measure() emits, before it goes to the sink
  std::vector<int32_t> inputs_, targets_, source_;
};

}  // namespace attnlab
