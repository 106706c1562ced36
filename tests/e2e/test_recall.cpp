// test_recall.cpp: train.recall_eval end to end. Passive (a run with the dependency metrics, at the
// training window and beyond it, has bitwise the losses and parameters of one without); the copied
// parameters score what the training model scores; the evaluation beyond the training length sees the
// longer distances; the CLI writes the metrics at step 0 and at every evaluation.
#include <catch2/catch.hpp>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "instrument/recall_stats.h"
#include "train/recall_eval.h"
#include "train/trainer.h"
#include "tests/support/fixtures.h"

using namespace attnlab;
using namespace attnlab::testing;

namespace {

RunConfig recall_run_config() {
  RunConfig c = tiny_run_config();
  c.data.source = DataSource::kRecall;
  c.data.recall_keys = 6;
  c.data.recall_pairs = 2;
  c.train.recall_eval = true;
  c.train.recall_eval_len = 40;
  return c;
}

struct RunResult {
  std::vector<double> losses;
  std::vector<float> params;
  MemorySink sink;
};

void run(const RunConfig& cfg, int steps, bool with_recall, RunResult* r) {
  DnnlContext ctx;
  const auto data = make_dataset(cfg.data, cfg.model, cfg.train.seed);
  Trainer t(cfg, ctx, *data);
  std::unique_ptr<RecallEval> at_T, beyond;
  if (with_recall) {
    at_T = std::make_unique<RecallEval>(cfg, cfg.model.seq_len, ctx);
    beyond = std::make_unique<RecallEval>(cfg, cfg.train.recall_eval_len, ctx);
    at_T->run(t.model(), 0, r->sink);
  }
  for (int i = 0; i < steps; ++i) {
    const StepStats s = t.step();
    r->losses.push_back(s.loss);
    if (i % 3 == 2) {
      t.evaluate();
      if (at_T) at_T->run(t.model(), s.step + 1, r->sink);
      if (beyond) beyond->run(t.model(), s.step + 1, r->sink);
    }
  }
  r->params.assign(t.model().params(), t.model().params() + t.model().n_params());
}

}  // namespace

TEST_CASE("recall_eval is passive: losses and parameters bitwise equal with it on", "[e2e][recall]") {
  for (PosEncoding pos : {PosEncoding::kRope, PosEncoding::kSinusoidal, PosEncoding::kNone}) {
    RunConfig cfg = recall_run_config();
    cfg.model.pos = pos;
    RunResult on, off;
    run(cfg, 9, true, &on);
    run(cfg, 9, false, &off);
    REQUIRE(on.losses == off.losses);
    REQUIRE(std::memcmp(on.params.data(), off.params.data(), on.params.size() * sizeof(float)) == 0);
    std::set<std::string> names;
    for (const MetricRecord& m : on.sink.records) names.insert(m.name);
    for (const char* n : {"recall_acc", "recall_attn", "recall_count", "recall_acc_ext", "recall_attn_ext",
                          "recall_count_ext"}) {
      INFO(n);
      REQUIRE(names.count(n) == 1);
    }
  }
}

TEST_CASE("recall_eval scores the trained parameters: equal to a direct measurement on the training model",
          "[e2e][recall]") {
  RunConfig cfg = recall_run_config();
  cfg.train.eval_batches = 1;
  DnnlContext ctx;
  const auto data = make_dataset(cfg.data, cfg.model, cfg.train.seed);
  Trainer t(cfg, ctx, *data);
  for (int i = 0; i < 5; ++i) t.step();
  // Direct: the training model's own forward on validation batch 0.
  const int B = cfg.train.batch, T = cfg.model.seq_len;
  std::vector<int32_t> in(size_t(B) * T), tg(in.size()), src(in.size());
  data->fill_dependencies(Split::kVal, 0, B, in.data(), tg.data(), src.data());
  t.model().forward(in.data(), tg.data());
  RecallTally direct(cfg.model.n_layer);
  recall_accuracy(&direct, t.model().layout().head_acts().logits.p, cfg.model.vocab, tg.data(), src.data(), B, T, 0);
  for (int l = 0; l < cfg.model.n_layer; ++l)
    recall_attention(&direct, l, t.model().layout().acts(l).probs, cfg.model.n_head, src.data(), B, T, 0);
  RecallEval ev(cfg, T, ctx);
  MemoryOut out;
  ev.measure(t.model(), out);
  CHECK(ev.tally().count == direct.count);
  CHECK(ev.tally().correct == direct.correct);
  CHECK(ev.tally().attn == direct.attn);
  CHECK(out.has("recall_acc"));
  CHECK_FALSE(out.has("recall_acc_ext"));
  // Measuring twice gives the same (nothing carried over).
  MemoryOut again;
  ev.measure(t.model(), again);
  CHECK(ev.tally().attn == direct.attn);

  // Beyond the training length: distances the training rows cannot hold (T = 16: at most 14, bucket 3).
  RecallEval longer(cfg, cfg.train.recall_eval_len, ctx);
  MemoryOut ext;
  longer.measure(t.model(), ext);
  double beyond = 0.0;
  for (int k = 4; k < kRecallBuckets; ++k) beyond += longer.tally().count[size_t(k)];
  CHECK(beyond > 0.0);
  for (int k = 4; k < kRecallBuckets; ++k) CHECK(ev.tally().count[size_t(k)] == 0.0);
  CHECK(ext.has("recall_acc_ext"));
}

TEST_CASE("attnlab train with train.recall_eval writes the metrics at step 0 and at every evaluation",
          "[e2e][recall]") {
  TempDir dir("recall");
  RunConfig c = recall_run_config();
  c.train.steps = 6;
  c.train.eval_every = 3;
  const std::string cfg = dir.write("recall.yaml", dump_config(c));
  const auto r = run_command(attnlab_binary() + " train " + cfg + " --out " + dir.file("run") + " --quiet");
  REQUIRE(r.exit_code == 0);
  const std::string m = read_file(dir.file("run/metrics.jsonl"));
  for (const char* step : {"0", "3", "6"}) {
    INFO(step);
    CHECK(m.find(std::string("{\"step\":") + step + ",\"kind\":\"probe\",\"metric\":\"recall_acc\",\"layer\":-1,\"head\":-1,\"index\":-1") != std::string::npos);
    CHECK(m.find(std::string("{\"step\":") + step + ",\"kind\":\"probe\",\"metric\":\"recall_acc_ext\"") != std::string::npos);
  }
  CHECK(m.find("\"metric\":\"recall_attn_ext\",\"layer\":1") != std::string::npos);
}
