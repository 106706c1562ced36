#include "train/recall_eval.h"

#include <cstring>

#include "model/check.h"

namespace attnlab {
namespace {

ModelConfig with_seq_len(ModelConfig m, int T) {
  m.seq_len = T;
  return m;
}

}  // namespace

RecallEval::RecallEval(const RunConfig& cfg, int seq_len, DnnlContext& ctx)
    : cfg_(cfg),
      data_(make_dataset(cfg.data, with_seq_len(cfg.model, seq_len), cfg.train.seed)),
      model_(with_seq_len(cfg.model, seq_len), cfg.train.batch, ctx),
      names_(seq_len == cfg.model.seq_len ? kRecallNames : kRecallExtNames),
      tally_(cfg.model.n_layer) {
  const size_t n = size_t(cfg.train.batch) * size_t(seq_len);
  inputs_.assign(n, 0);
  targets_.assign(n, 0);
  source_.assign(n, -1);
  cfg_.model.seq_len = seq_len;
}

void RecallEval::measure(const Transformer& trained, MetricOut& out) {
  ATTNLAB_CHECK(trained.n_params() == model_.n_params(), "RecallEval: parameter count differs from the trained model");
  // set_step first: σReparam's power step (if any) then acts on the stale copy, which the copy overwrites.
  model_.set_step(trained.step());
  std::memcpy(model_.params(), trained.layout().params(), size_t(model_.n_params()) * sizeof(float));
  tally_.reset();
  const ModelConfig& m = cfg_.model;
  const int B = cfg_.train.batch, T = m.seq_len, offset = m.sink_token ? 1 : 0;
  for (int i = 0; i < cfg_.train.eval_batches; ++i) {
    data_->fill_dependencies(Split::kVal, uint64_t(i), B, inputs_.data(), targets_.data(), source_.data());
    model_.forward(inputs_.data(), targets_.data());
    const Layout& y = model_.layout();
    ATTNLAB_CHECK(y.head_acts().logits.stride == m.vocab, "RecallEval: logits must be dense [N, V]");
    recall_accuracy(&tally_, y.head_acts().logits.p, m.vocab, targets_.data(), source_.data(), B, T, offset);
    for (int l = 0; l < m.n_layer; ++l)
      recall_attention(&tally_, l, y.acts(l).probs, m.n_head, source_.data(), B, T, offset);
  }
  emit_recall(tally_, names_, out);
}

void RecallEval::run(const Transformer& trained, int64_t step, MetricSink& sink) {
  out_.clear();
  measure(trained, out_);
  write_metrics(sink, step, MetricKind::kProbe, out_);
}

}  // namespace attnlab
