// test_data.cpp: datasets are pure functions of (seed, split, index); the shift relation and BOS layout
// hold for every source; each synthetic task has the statistical structure it promises; the file source
// samples windows from the right region and reports unusable files clearly.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "model/rng.h"
#include "tests/support/fixtures.h"
#include "train/data.h"

namespace fs = std::filesystem;
using namespace attnlab;
using attnlab::testing::TempDir;

namespace {

struct Batch {
  int B = 0, T = 0;
  std::vector<int32_t> inputs, targets;
  const int32_t* in_row(int b) const { return inputs.data() + size_t(b) * T; }
  const int32_t* tg_row(int b) const { return targets.data() + size_t(b) * T; }
  bool operator==(const Batch& o) const { return inputs == o.inputs && targets == o.targets; }
};

Batch get(const Dataset& ds, Split split, uint64_t index, int B, int T) {
  Batch b;
  b.B = B;
  b.T = T;
  b.inputs.assign(size_t(B) * T, -7);  // sentinel: every slot must be overwritten
  b.targets.assign(size_t(B) * T, -7);
  ds.fill(split, index, B, b.inputs.data(), b.targets.data());
  return b;
}

// The row's content tokens: with BOS, the T targets; without, the T inputs plus the last target.
std::vector<int32_t> content(const Batch& b, int row, bool bos) {
  std::vector<int32_t> c;
  if (bos) {
    c.assign(b.tg_row(row), b.tg_row(row) + b.T);
  } else {
    c.assign(b.in_row(row), b.in_row(row) + b.T);
    c.push_back(b.tg_row(row)[b.T - 1]);
  }
  return c;
}

ModelConfig model_cfg(int vocab, int T) {
  ModelConfig m;
  m.vocab = vocab;
  m.seq_len = T;
  return m;
}

// Triggers as printed by describe(): "... triggers [a, b, c] ...".
std::vector<int> parse_triggers(const std::string& desc) {
  const size_t open = desc.find("triggers [");
  REQUIRE(open != std::string::npos);
  const size_t close = desc.find(']', open);
  std::string list = desc.substr(open + 10, close - open - 10);
  std::replace(list.begin(), list.end(), ',', ' ');
  std::istringstream is(list);
  std::vector<int> t;
  for (int x; is >> x;) t.push_back(x);
  return t;
}

std::string random_bytes(size_t n, uint64_t seed, int max_byte = 255) {
  Rng rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = char(rng.below(uint64_t(max_byte) + 1));
  return s;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  REQUIRE(f.good());
}

std::string error_of(const DataConfig& d, const ModelConfig& m) {
  try {
    make_dataset(d, m, 1);
  } catch (const DataError& e) {
    return e.what();
  }
  FAIL("make_dataset did not throw");
  return "";
}

}  // namespace

TEST_CASE("every source: pure function of (seed, split, index), shift relation, BOS layout, range",
          "[train][data]") {
  TempDir tmp("data");
  const std::string path = tmp.file("corpus.bin");
  write_file(path, random_bytes(4000, 99, 254));  // no byte 255, so vocab 256 + BOS 255 is valid too

  for (DataSource src : {DataSource::kBigramBackcopy, DataSource::kCopy, DataSource::kUniform, DataSource::kFile}) {
    for (bool bos : {false, true}) {
      DataConfig d;
      d.source = src;
      d.bos = bos;
      d.path = path;
      const int T = 16, B = 8, vocab = src == DataSource::kFile ? 256 : 40;
      const ModelConfig m = model_cfg(vocab, T);
      const auto ds = make_dataset(d, m, 1234);
      const auto same = make_dataset(d, m, 1234);
      const auto other_seed = make_dataset(d, m, 1235);
      INFO(ds->describe());
      const int32_t bos_id = vocab - 1;

      const Batch b0 = get(*ds, Split::kTrain, 0, B, T);
      REQUIRE(get(*ds, Split::kTrain, 0, B, T) == b0);      // no consumed state
      REQUIRE(get(*same, Split::kTrain, 0, B, T) == b0);    // independent of the instance
      REQUIRE_FALSE(get(*ds, Split::kTrain, 1, B, T) == b0);
      REQUIRE_FALSE(get(*ds, Split::kVal, 0, B, T) == b0);
      REQUIRE_FALSE(get(*other_seed, Split::kTrain, 0, B, T) == b0);
      // A smaller batch is a prefix of a larger one: rows do not depend on B.
      const Batch small = get(*ds, Split::kTrain, 0, 3, T);
      REQUIRE(std::equal(small.inputs.begin(), small.inputs.end(), b0.inputs.begin()));

      for (Split split : {Split::kTrain, Split::kVal}) {
        for (uint64_t index : {0ull, 7ull, 123456789ull}) {
          const Batch b = get(*ds, split, index, B, T);
          for (int r = 0; r < B; ++r) {
            const int32_t* in = b.in_row(r);
            const int32_t* tg = b.tg_row(r);
            for (int t = 0; t < T; ++t) {
              INFO("row " << r << " t " << t);
              REQUIRE(in[t] >= 0);
              REQUIRE(in[t] < vocab);
              REQUIRE(tg[t] >= 0);
              REQUIRE(tg[t] < vocab);
              if (t + 1 < T) REQUIRE(tg[t] == in[t + 1]);
              if (bos && t == 0) REQUIRE(in[t] == bos_id);
              if (src != DataSource::kFile && (!bos || t > 0)) REQUIRE(in[t] != (bos ? bos_id : -1));
              if (src != DataSource::kFile && bos) REQUIRE(tg[t] != bos_id);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("bigram_backcopy: copies after triggers, sparse bigram successors elsewhere", "[train][data]") {
  for (bool bos : {false, true}) {
    DataConfig d;
    d.source = DataSource::kBigramBackcopy;
    d.bos = bos;
    d.bigram_branching = 3;
    d.n_triggers = 3;
    d.data_seed = 77;
    const int vocab = 24, T = 32, B = 16;
    const auto ds = make_dataset(d, model_cfg(vocab, T), 5);
    INFO(ds->describe());
    const std::vector<int> trig = parse_triggers(ds->describe());
    REQUIRE(trig.size() == 3);
    const std::set<int> triggers(trig.begin(), trig.end());
    REQUIRE(triggers.size() == 3);
    for (int t : triggers) {
      REQUIRE(t >= 0);
      REQUIRE(t < vocab);
      if (bos) REQUIRE(t != vocab - 1);
    }

    std::map<int, std::set<int>> successors;  // non-copy transitions
    std::map<int, int> visits;
    std::map<int, bool> always_copies;        // every time token x is at position >= 1, next == before
    std::map<int, int> mid_visits;            // occurrences at position >= 1 (where a copy is possible)
    int copies = 0;
    for (uint64_t index = 0; index < 40; ++index) {
      const Batch b = get(*ds, Split::kTrain, index, B, T);
      for (int r = 0; r < B; ++r) {
        const std::vector<int32_t> c = content(b, r, bos);
        for (size_t i = 1; i < c.size(); ++i) {
          const int prev = c[i - 1];
          if (i >= 2) {
            const bool copied = c[i] == c[i - 2];
            always_copies.emplace(prev, true).first->second &= copied;
            ++mid_visits[prev];
          }
          if (triggers.count(prev) && i >= 2) {
            INFO("row " << r << " position " << i);
            REQUIRE(c[i] == c[i - 2]);
            ++copies;
          } else {
            successors[prev].insert(c[i]);
            ++visits[prev];
          }
        }
      }
    }
    REQUIRE(copies > 100);  // the triggers actually occur mid-sequence
    for (const auto& [tok, succ] : successors) {
      INFO("token " << tok << " seen " << visits[tok] << " times");
      REQUIRE(int(succ.size()) <= d.bigram_branching);
      if (!triggers.count(tok) && visits[tok] >= 200) REQUIRE(int(succ.size()) == d.bigram_branching);
    }
    // Tokens that behave like triggers are exactly the announced triggers.
    std::set<int> copy_like;
    for (const auto& [tok, yes] : always_copies) {
      if (yes && mid_visits[tok] >= 20) copy_like.insert(tok);  // rare tokens could copy by chance
    }
    for (int t : triggers) REQUIRE(mid_visits[t] >= 20);
    REQUIRE(copy_like == triggers);

    // data_seed fixes the structure; the batch seed only changes the samples.
    const auto same_structure = make_dataset(d, model_cfg(vocab, T), 6);
    REQUIRE(same_structure->describe() == ds->describe());
    REQUIRE_FALSE(get(*same_structure, Split::kTrain, 0, B, T) == get(*ds, Split::kTrain, 0, B, T));
  }
  // data_seed 0 follows the seed argument.
  DataConfig d;
  d.source = DataSource::kBigramBackcopy;
  d.n_triggers = 5;
  const ModelConfig m = model_cfg(256, 16);
  REQUIRE(make_dataset(d, m, 1)->describe() == make_dataset(d, m, 1)->describe());
  REQUIRE(make_dataset(d, m, 1)->describe() != make_dataset(d, m, 2)->describe());
}

TEST_CASE("copy: the segment repeats, so later tokens equal the ones copy_len earlier", "[train][data]") {
  for (int copy_len : {0, 5}) {
    for (bool bos : {false, true}) {
      DataConfig d;
      d.source = DataSource::kCopy;
      d.copy_len = copy_len;
      d.bos = bos;
      const int T = 20, B = 8, vocab = 50;
      const int L = copy_len > 0 ? copy_len : T / 2;
      const auto ds = make_dataset(d, model_cfg(vocab, T), 3);
      INFO(ds->describe());
      const Batch b = get(*ds, Split::kVal, 4, B, T);
      int distinct_segments = 0;
      std::set<std::vector<int32_t>> segments;
      for (int r = 0; r < B; ++r) {
        const std::vector<int32_t> c = content(b, r, bos);
        for (size_t i = size_t(L); i < c.size(); ++i) REQUIRE(c[i] == c[i - size_t(L)]);
        segments.insert(std::vector<int32_t>(c.begin(), c.begin() + L));
        distinct_segments = int(segments.size());
      }
      REQUIRE(distinct_segments == B);  // segments are random, not a fixed pattern
    }
  }
}

TEST_CASE("uniform: tokens cover the content range with the right mean", "[train][data]") {
  for (bool bos : {false, true}) {
    DataConfig d;
    d.source = DataSource::kUniform;
    d.bos = bos;
    const int vocab = 256, T = 64, B = 32;
    const int K = vocab - (bos ? 1 : 0);
    const auto ds = make_dataset(d, model_cfg(vocab, T), 11);
    double sum = 0;
    int64_t n = 0;
    std::vector<int64_t> counts(size_t(vocab), 0);
    for (uint64_t index = 0; index < 8; ++index) {
      const Batch b = get(*ds, Split::kTrain, index, B, T);
      for (int r = 0; r < B; ++r) {
        for (int32_t tok : content(b, r, bos)) {
          sum += tok;
          ++n;
          ++counts[size_t(tok)];
        }
      }
    }
    // ~16k samples: standard error of the mean ≈ 74 / 128 ≈ 0.6.
    REQUIRE(sum / double(n) == Approx((K - 1) / 2.0).margin(3.0));
    for (int k = 0; k < K; ++k) REQUIRE(counts[size_t(k)] > 0);
    if (bos) REQUIRE(counts[size_t(vocab - 1)] == 0);
  }
}

TEST_CASE("synthetic tasks with an explicit BOS id skip that id", "[train][data]") {
  DataConfig d;
  d.source = DataSource::kUniform;
  d.bos = true;
  d.bos_id = 0;
  const int vocab = 8, T = 32, B = 16;
  const auto ds = make_dataset(d, model_cfg(vocab, T), 1);
  const Batch b = get(*ds, Split::kTrain, 0, B, T);
  std::set<int32_t> seen;
  for (int r = 0; r < B; ++r) {
    REQUIRE(b.in_row(r)[0] == 0);
    for (int32_t tok : content(b, r, true)) seen.insert(tok);
  }
  REQUIRE(seen == std::set<int32_t>{1, 2, 3, 4, 5, 6, 7});
}

TEST_CASE("file source: windows come from their own region", "[train][data]") {
  TempDir tmp("data");
  const std::string path = tmp.file("corpus.bin");
  const std::string bytes = random_bytes(3000, 42);
  write_file(path, bytes);
  const size_t n_val = 600;  // floor(0.2 * 3000)
  const std::string train_region = bytes.substr(0, bytes.size() - n_val);
  const std::string val_region = bytes.substr(bytes.size() - n_val);

  for (bool bos : {false, true}) {
    DataConfig d;
    d.source = DataSource::kFile;
    d.path = path;
    d.val_fraction = 0.2;
    d.bos = bos;
    const int T = 32, B = 64;
    const auto ds = make_dataset(d, model_cfg(bos ? 257 : 256, T), 8);
    INFO(ds->describe());
    REQUIRE(ds->describe().find(path) != std::string::npos);
    for (Split split : {Split::kTrain, Split::kVal}) {
      const std::string& region = split == Split::kTrain ? train_region : val_region;
      size_t lo = region.size(), hi = 0;
      for (uint64_t index = 0; index < 20; ++index) {
        const Batch b = get(*ds, split, index, B, T);
        for (int r = 0; r < B; ++r) {
          if (bos) REQUIRE(b.in_row(r)[0] == 256);
          const std::vector<int32_t> c = content(b, r, bos);
          std::string window(c.size(), '\0');
          for (size_t i = 0; i < c.size(); ++i) window[i] = char(uint8_t(c[i]));
          const size_t at = region.find(window);
          INFO("split " << int(split) << " index " << index << " row " << r);
          REQUIRE(at != std::string::npos);  // fully inside the region: never straddles the boundary
          lo = std::min(lo, at);
          hi = std::max(hi, at);
        }
      }
      // Offsets spread over the whole region.
      const size_t last = region.size() - (bos ? T : T + 1);
      REQUIRE(lo < last / 10);
      REQUIRE(hi > last - last / 10);
    }
  }
}

TEST_CASE("file source errors name the file and the problem", "[train][data]") {
  TempDir tmp("data");
  DataConfig d;
  d.source = DataSource::kFile;
  d.val_fraction = 0.1;
  const ModelConfig m = model_cfg(256, 32);

  SECTION("missing file") {
    d.path = tmp.file("nope.bin");
    const std::string msg = error_of(d, m);
    INFO(msg);
    REQUIRE(msg.find(d.path) != std::string::npos);
    REQUIRE(msg.find(std::strerror(ENOENT)) != std::string::npos);
  }
  SECTION("a directory") {
    d.path = tmp.path();
    const std::string msg = error_of(d, m);
    INFO(msg);
    REQUIRE(msg.find(d.path) != std::string::npos);
  }
  SECTION("too short for one window per split") {
    d.path = tmp.file("short.bin");
    write_file(d.path, random_bytes(100, 1));
    // The smallest size whose val part floor(0.1 * S) and train part both hold T + 1 = 33 bytes.
    size_t need = 1;
    while (!(size_t(0.1 * double(need)) >= 33 && need - size_t(0.1 * double(need)) >= 33)) ++need;
    const std::string msg = error_of(d, m);
    INFO(msg);
    REQUIRE(msg.find(d.path) != std::string::npos);
    REQUIRE(msg.find("seq_len 32") != std::string::npos);
    REQUIRE(msg.find("val_fraction 0.1") != std::string::npos);
    REQUIRE(msg.find("at least " + std::to_string(need) + " bytes") != std::string::npos);
    write_file(d.path, random_bytes(need, 1));
    REQUIRE_NOTHROW(make_dataset(d, m, 1));
    write_file(d.path, random_bytes(need - 1, 1));
    REQUIRE_THROWS_AS(make_dataset(d, m, 1), DataError);
  }
  SECTION("bytes outside the vocabulary, or equal to the BOS id") {
    d.path = tmp.file("bytes.bin");
    std::string bytes = random_bytes(1000, 2, 99);
    bytes[500] = char(200);
    write_file(d.path, bytes);
    const std::string msg = error_of(d, model_cfg(100, 32));
    INFO(msg);
    REQUIRE(msg.find("byte 200 at offset 500") != std::string::npos);
    d.bos = true;  // vocab 256: BOS 255 collides with byte values
    bytes[500] = char(255);
    write_file(d.path, bytes);
    REQUIRE(error_of(d, m).find("BOS id 255") != std::string::npos);
  }
}

TEST_CASE("invalid task parameters are DataErrors", "[train][data]") {
  const ModelConfig m = model_cfg(16, 8);
  DataConfig d;
  d.source = DataSource::kBigramBackcopy;
  d.bigram_branching = 17;
  REQUIRE(error_of(d, m).find("bigram_branching") != std::string::npos);
  d.bigram_branching = 4;
  d.n_triggers = -1;
  REQUIRE(error_of(d, m).find("n_triggers") != std::string::npos);
  d = DataConfig{};
  d.source = DataSource::kCopy;
  d.copy_len = 9;
  REQUIRE(error_of(d, m).find("copy_len") != std::string::npos);
  d = DataConfig{};
  d.bos = true;
  d.bos_id = 16;
  REQUIRE(error_of(d, m).find("bos_id") != std::string::npos);
}
