// test_recall_data.cpp: the recall source and the dependency labels of every synthetic source. Labels are
// checked against the tokens (the labelled source token is what the target copies, at the promised
// distance); fill_dependencies writes bitwise the batch fill writes; bad recall keys are errors that name
// the key and the value, in the config reader and in make_dataset.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "train/config/config.h"
#include "train/data.h"

using namespace attnlab;
using Catch::Matchers::Contains;

namespace {

struct Labelled {
  int B = 0, T = 0;
  std::vector<int32_t> in, tg, src;
  int32_t at(const std::vector<int32_t>& v, int b, int t) const { return v[size_t(b) * T + t]; }
};

Labelled labelled(const Dataset& ds, Split split, uint64_t index, int B, int T) {
  Labelled l;
  l.B = B;
  l.T = T;
  l.in.assign(size_t(B) * T, -7);
  l.tg.assign(size_t(B) * T, -7);
  l.src.assign(size_t(B) * T, -7);
  ds.fill_dependencies(split, index, B, l.in.data(), l.tg.data(), l.src.data());
  return l;
}

ModelConfig model_cfg(int vocab, int T) {
  ModelConfig m;
  m.vocab = vocab;
  m.seq_len = T;
  return m;
}

DataConfig recall_cfg(bool bos) {
  DataConfig d;
  d.source = DataSource::kRecall;
  d.bos = bos;
  d.recall_keys = 8;
  d.recall_pairs = 4;
  return d;
}

std::string config_error(const std::string& yaml) {
  try {
    parse_config(yaml, "bad.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  FAIL("expected a ConfigError for: " + yaml);
  return "";
}

std::string data_error(const DataConfig& d, const ModelConfig& m) {
  try {
    make_dataset(d, m, 1);
  } catch (const DataError& e) {
    return e.what();
  }
  FAIL("expected a DataError");
  return "";
}

// Every labelled target of `l` copies the input `distance` positions back; returns how many there are.
int check_links(const Labelled& l, int B, int T, int distance) {
  int deps = 0;
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      const int p = l.at(l.src, b, t);
      if (p < 0) continue;
      ++deps;
      CHECK(t - p == distance);
      CHECK(l.at(l.tg, b, t) == l.at(l.in, b, p));
    }
  return deps;
}

}  // namespace

TEST_CASE("recall: labels point at the value after the key's first occurrence, at the drawn distance",
          "[train][data][recall]") {
  for (bool bos : {false, true}) {
    const int T = 64, B = 16, V = 40;
    DataConfig d = recall_cfg(bos);
    d.recall_min_dist = 3;
    d.recall_max_dist = 50;
    const auto ds = make_dataset(d, model_cfg(V, T), 5);
    REQUIRE(ds->has_dependencies());
    const int bos_id = V - 1;
    auto is_key = [&](int32_t tok) { return tok >= 0 && tok < d.recall_keys; };  // BOS is the last id
    int deps = 0;
    std::map<int, int> by_distance;
    for (uint64_t index : {0u, 1u, 2u}) {
      const Labelled l = labelled(*ds, Split::kTrain, index, B, T);
      for (int b = 0; b < B; ++b) {
        int keys_in_row = 0;
        for (int t = 0; t < T; ++t) {
          keys_in_row += is_key(l.at(l.in, b, t)) ? 1 : 0;
          const int p = l.at(l.src, b, t);
          REQUIRE(p >= -1);
          if (p < 0) continue;
          ++deps;
          const int dist = t - p;
          ++by_distance[dist];
          REQUIRE(dist >= d.recall_min_dist);
          REQUIRE(dist <= d.recall_max_dist);
          CHECK(l.at(l.tg, b, t) == l.at(l.in, b, p));       // the target copies the source token
          CHECK(is_key(l.at(l.in, b, t)));                   // the query is a key ...
          CHECK(l.at(l.in, b, p - 1) == l.at(l.in, b, t));   // ... whose first occurrence precedes the source
          CHECK_FALSE(is_key(l.at(l.tg, b, t)));             // the answer is a value
          if (bos) CHECK(l.at(l.in, b, p) != bos_id);
          int occurrences = 0;  // the key occurs exactly twice among the inputs
          for (int i = 0; i < T; ++i) occurrences += l.at(l.in, b, i) == l.at(l.in, b, t) ? 1 : 0;
          CHECK(occurrences == 2);
        }
        CHECK(keys_in_row <= 2 * d.recall_pairs);
      }
    }
    // Nearly every pair is planted, and the distances spread over the range (uniform: mean ~ 26.5).
    CHECK(deps >= int(0.95 * 3 * B * d.recall_pairs));
    double mean = 0.0;
    for (auto& [dist, n] : by_distance) mean += double(dist) * n;
    mean /= deps;
    CHECK(mean > 20.0);
    CHECK(mean < 33.0);
    CHECK(by_distance.begin()->first <= 6);
    CHECK(by_distance.rbegin()->first >= 45);
  }
}

TEST_CASE("recall: fill_dependencies fills bitwise the batch fill fills; batches are pure functions",
          "[train][data][recall]") {
  const auto ds = make_dataset(recall_cfg(false), model_cfg(32, 48), 9);
  const int B = 8, T = 48;
  std::vector<int32_t> in(size_t(B) * T), tg(in.size());
  ds->fill(Split::kVal, 3, B, in.data(), tg.data());
  const Labelled l = labelled(*ds, Split::kVal, 3, B, T);
  CHECK(l.in == in);
  CHECK(l.tg == tg);
  CHECK(labelled(*ds, Split::kVal, 3, B, T).src == l.src);
  CHECK(labelled(*ds, Split::kVal, 4, B, T).in != l.in);
  CHECK(labelled(*ds, Split::kTrain, 3, B, T).in != l.in);
  for (int t = 0; t + 1 < T; ++t) CHECK(in[size_t(t) + 1] == tg[size_t(t)]);  // the shift relation
}

TEST_CASE("recall: recall_queries_only keeps the tokens and takes every non-query target out of the loss",
          "[train][data][recall]") {
  for (bool bos : {false, true}) {
    DataConfig d = recall_cfg(bos);
    const auto all = make_dataset(d, model_cfg(32, 48), 3);
    d.recall_queries_only = true;
    const auto only = make_dataset(d, model_cfg(32, 48), 3);
    const Labelled a = labelled(*all, Split::kTrain, 7, 8, 48), q = labelled(*only, Split::kTrain, 7, 8, 48);
    CHECK(q.in == a.in);
    CHECK(q.src == a.src);
    int kept = 0;
    for (size_t i = 0; i < q.tg.size(); ++i) {
      if (a.src[i] >= 0) {
        CHECK(q.tg[i] == a.tg[i]);  // a query: in the loss, same target
        ++kept;
      } else {
        CHECK(q.tg[i] == -1);
      }
    }
    CHECK(kept > 8 * 3);
  }
  CHECK_THAT(config_error("data: {source: copy, recall_queries_only: true}\n"),
             Contains("data.recall_queries_only is only read when data.source=recall, but data.source=copy"));
  CHECK_THAT(config_error("data: {source: corpus, recall_keys: 8}\n"),
             Contains("data.recall_keys is only read when data.source=recall"));
  CHECK_THAT(config_error("data: {source: copy, recall_max_dist: 20}\n"),
             Contains("data.recall_max_dist is only read when data.source=recall"));
}

TEST_CASE("dependency labels of copy and bigram_backcopy; none for uniform", "[train][data][recall]") {
  const int T = 32, B = 6;
  {
    DataConfig d;
    d.source = DataSource::kCopy;
    d.copy_len = 10;
    for (bool bos : {false, true}) {
      d.bos = bos;
      const auto ds = make_dataset(d, model_cfg(20, T), 2);
      REQUIRE(ds->has_dependencies());
      const Labelled l = labelled(*ds, Split::kTrain, 0, B, T);
      // The query at t predicts c[t+1], a copy of the token 10 content positions back.
      const int deps = check_links(l, B, T, 9);
      // Content positions 10 .. n-1 copy (n = T + 1 without BOS, T with).
      CHECK(deps == B * (T - 10 + (bos ? 0 : 1)));
    }
  }
  {
    DataConfig d;
    d.source = DataSource::kBigramBackcopy;
    const auto ds = make_dataset(d, model_cfg(20, T), 2);
    const Labelled l = labelled(*ds, Split::kTrain, 0, B, T);
    CHECK(check_links(l, B, T, 1) > 0);  // the token after the trigger copies the one before it
  }
  {
    DataConfig d;
    d.source = DataSource::kUniform;
    const auto ds = make_dataset(d, model_cfg(20, T), 2);
    CHECK_FALSE(ds->has_dependencies());
    const Labelled l = labelled(*ds, Split::kTrain, 0, B, T);
    for (int32_t p : l.src) REQUIRE(p == -1);
  }
}

TEST_CASE("recall: bad keys are errors naming the key and the value", "[train][data][recall][config]") {
  CHECK_THAT(config_error("data: {source: recall, recall_keys: 0}\n"), Contains("data.recall_keys=0"));
  CHECK_THAT(config_error("model: {vocab: 10}\ndata: {source: recall, recall_keys: 9, recall_pairs: 2}\n"),
             Contains("data.recall_keys=9 must be in [1, 8]"));
  CHECK_THAT(config_error("data: {source: recall, recall_keys: 4, recall_pairs: 5}\n"),
             Contains("data.recall_pairs=5"));
  CHECK_THAT(config_error("data: {source: recall, recall_min_dist: 0}\n"), Contains("data.recall_min_dist=0"));
  CHECK_THAT(config_error("model: {seq_len: 32}\ndata: {source: recall, recall_max_dist: 40}\n"),
             Contains("data.recall_max_dist=40"));
  CHECK_THAT(config_error("data: {source: recall, recall_min_dist: 10, recall_max_dist: 5}\n"),
             Contains("data.recall_max_dist=5"));
  CHECK_THAT(config_error("data: {source: uniform}\ntrain: {recall_eval: true}\n"),
             Contains("train.recall_eval=true needs"));
  CHECK_THAT(config_error("model: {seq_len: 32}\ndata: {source: recall}\ntrain: {recall_eval: true, recall_eval_len: 32}\n"),
             Contains("train.recall_eval_len=32"));
  CHECK_THAT(config_error("data: {source: recall}\ntrain: {recall_eval_len: 128}\n"),
             Contains("only used with train.recall_eval=true"));
  CHECK_THAT(config_error("data: {source: recall}\ntrain: {recall_eval: true, eval_every: 0}\n"),
             Contains("train.eval_every=0"));
  const RunConfig ok = parse_config(
      "model: {seq_len: 64}\ndata: {source: recall, recall_keys: 12, recall_pairs: 3, recall_min_dist: 4, "
      "recall_max_dist: 40}\ntrain: {recall_eval: true, recall_eval_len: 128}\n",
      "ok.yaml");
  CHECK(ok.data.source == DataSource::kRecall);
  CHECK(ok.data.recall_keys == 12);
  CHECK(ok.data.recall_pairs == 3);
  CHECK(ok.data.recall_min_dist == 4);
  CHECK(ok.data.recall_max_dist == 40);
  CHECK(ok.train.recall_eval);
  CHECK(ok.train.recall_eval_len == 128);
  const RunConfig back = parse_config(dump_config(ok), "dump.yaml");
  CHECK(back.data.recall_max_dist == 40);
  CHECK(back.train.recall_eval_len == 128);

  // make_dataset checks the same (for callers that skip the config reader), naming the key.
  DataConfig d = recall_cfg(false);
  d.recall_pairs = 9;
  CHECK_THAT(data_error(d, model_cfg(32, 32)), Contains("data.recall_pairs 9"));
  d = recall_cfg(false);
  d.recall_min_dist = 40;
  CHECK_THAT(data_error(d, model_cfg(32, 32)), Contains("data.recall_min_dist 40"));
}
