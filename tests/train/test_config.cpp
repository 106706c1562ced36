// test_config.cpp: YAML -> RunConfig. Defaults, a full file, the dump/parse round trip, --set overrides,
// and one check per error class that the message names the file, the key path, the line and the value.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "tests/support/fixtures.h"
#include "train/config/config.h"

namespace attnlab {
namespace {

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

using testing::TempDir;

// The ConfigError message thrown by f; fails the test if f does not throw one.
template <class F>
std::string config_error(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  FAIL("expected a ConfigError, but nothing was thrown");
  return "";
}

// The error from loading `text` as a file named bad.yaml; returns the message, *path gets the file path.
std::string file_error(const TempDir& dir, const std::string& text, std::string* path,
                       const std::vector<std::string>& overrides = {}) {
  *path = dir.write("bad.yaml", text);
  return config_error([&] { load_config(*path, overrides); });
}

void require_same(const RunConfig& a, const RunConfig& b) {
  CHECK(a.model.vocab == b.model.vocab);
  CHECK(a.model.d_model == b.model.d_model);
  CHECK(a.model.n_layer == b.model.n_layer);
  CHECK(a.model.n_head == b.model.n_head);
  CHECK(a.model.seq_len == b.model.seq_len);
  CHECK(a.model.mlp == b.model.mlp);
  CHECK(a.model.mlp_hidden == b.model.mlp_hidden);
  CHECK(a.model.pos == b.model.pos);
  CHECK(a.model.rope_base == b.model.rope_base);
  CHECK(a.model.tied_head == b.model.tied_head);
  CHECK(a.model.norm_eps == b.model.norm_eps);
  CHECK(a.model.init_std == b.model.init_std);
  CHECK(a.data.source == b.data.source);
  CHECK(a.data.path == b.data.path);
  CHECK(a.data.val_fraction == b.data.val_fraction);
  CHECK(a.data.bos == b.data.bos);
  CHECK(a.data.bos_id == b.data.bos_id);
  CHECK(a.data.bigram_branching == b.data.bigram_branching);
  CHECK(a.data.n_triggers == b.data.n_triggers);
  CHECK(a.data.copy_len == b.data.copy_len);
  CHECK(a.data.data_seed == b.data.data_seed);
  CHECK(a.optim.lr == b.optim.lr);
  CHECK(a.optim.beta1 == b.optim.beta1);
  CHECK(a.optim.beta2 == b.optim.beta2);
  CHECK(a.optim.eps == b.optim.eps);
  CHECK(a.optim.weight_decay == b.optim.weight_decay);
  CHECK(a.optim.decay_mode == b.optim.decay_mode);
  CHECK(a.optim.grad_clip == b.optim.grad_clip);
  CHECK(a.schedule.kind == b.schedule.kind);
  CHECK(a.schedule.warmup == b.schedule.warmup);
  CHECK(a.schedule.min_lr_frac == b.schedule.min_lr_frac);
  CHECK(a.train.batch == b.train.batch);
  CHECK(a.train.accum == b.train.accum);
  CHECK(a.train.steps == b.train.steps);
  CHECK(a.train.seed == b.train.seed);
  CHECK(a.train.threads == b.train.threads);
  CHECK(a.train.eval_every == b.train.eval_every);
  CHECK(a.train.eval_batches == b.train.eval_batches);
  CHECK(a.train.log_every == b.train.log_every);
  CHECK(a.train.checkpoint_every == b.train.checkpoint_every);
}

// Every key set to a non-default value; the expected values are checked literally below.
const char* kFullConfig = R"(# a full config
model:
  vocab: 300
  d_model: 96
  n_layer: 3
  n_head: 6
  seq_len: 48
  mlp: gelu
  mlp_hidden: 200
  pos: sinusoidal
  rope_base: 5000.5
  tied_head: true
  norm_eps: 1.0e-6
  init_std: 0.015
data:
  source: file
  path: "data/some file: #1.txt"
  val_fraction: 0.25
  bos: true
  bos_id: 299
  bigram_branching: 5
  n_triggers: 7
  copy_len: 9
  data_seed: 18446744073709551615
optim: {lr: 1e-3, beta1: 0.8, beta2: 0.99, eps: 1.0e-9, weight_decay: 0, decay_mode: independent, grad_clip: 0.5}
schedule:
  kind: linear
  warmup: 0
  min_lr_frac: 0.0
train:
  batch: 8
  accum: 2
  steps: 20000000000
  seed: 42
  threads: 2
  eval_every: 0
  eval_batches: 0
  log_every: 10
  checkpoint_every: 500
)";

TEST_CASE("config: an empty file gives the defaults", "[train][config]") {
  TempDir dir("config");
  const RunConfig defaults;
  for (const char* text : {"", "# only a comment\n", "model:\ntrain:\n"}) {
    INFO("file text: " << text);
    const RunConfig cfg = load_config(dir.write("empty.yaml", text));
    require_same(cfg, defaults);
  }
  // The documented defaults (configs/README.md).
  const RunConfig cfg = load_config(dir.write("empty.yaml", ""));
  CHECK(cfg.model.vocab == 256);
  CHECK(cfg.model.d_model == 64);
  CHECK(cfg.model.pos == PosEncoding::kRope);
  CHECK(cfg.model.mlp == MlpKind::kSwiGLU);
  CHECK(cfg.data.source == DataSource::kBigramBackcopy);
  CHECK(cfg.optim.lr == 3e-3f);
  CHECK(cfg.optim.decay_mode == DecayMode::kCoupled);
  CHECK(cfg.schedule.kind == ScheduleKind::kCosine);
  CHECK(cfg.train.steps == 1000);
  CHECK(cfg.train.seed == 1337u);
  CHECK_NOTHROW(validate(defaults));
}

TEST_CASE("config: a full file sets every key and round-trips through dump_config", "[train][config]") {
  TempDir dir("config");
  const RunConfig cfg = load_config(dir.write("full.yaml", kFullConfig));
  CHECK(cfg.model.vocab == 300);
  CHECK(cfg.model.d_model == 96);
  CHECK(cfg.model.n_layer == 3);
  CHECK(cfg.model.n_head == 6);
  CHECK(cfg.model.seq_len == 48);
  CHECK(cfg.model.mlp == MlpKind::kGELU);
  CHECK(cfg.model.mlp_hidden == 200);
  CHECK(cfg.model.pos == PosEncoding::kSinusoidal);
  CHECK(cfg.model.rope_base == 5000.5f);
  CHECK(cfg.model.tied_head);
  CHECK(cfg.model.norm_eps == 1.0e-6f);
  CHECK(cfg.model.init_std == 0.015f);
  CHECK(cfg.data.source == DataSource::kFile);
  CHECK(cfg.data.path == dir.file("data/some file: #1.txt"));  // relative to the config file's folder
  CHECK(cfg.data.val_fraction == 0.25);
  CHECK(cfg.data.bos);
  CHECK(cfg.data.bos_id == 299);
  CHECK(cfg.data.bigram_branching == 5);
  CHECK(cfg.data.n_triggers == 7);
  CHECK(cfg.data.copy_len == 9);
  CHECK(cfg.data.data_seed == UINT64_MAX);
  CHECK(cfg.optim.lr == 1e-3f);
  CHECK(cfg.optim.beta1 == 0.8f);
  CHECK(cfg.optim.beta2 == 0.99f);
  CHECK(cfg.optim.eps == 1.0e-9f);
  CHECK(cfg.optim.weight_decay == 0.0f);
  CHECK(cfg.optim.decay_mode == DecayMode::kIndependent);
  CHECK(cfg.optim.grad_clip == 0.5f);
  CHECK(cfg.schedule.kind == ScheduleKind::kLinear);
  CHECK(cfg.schedule.warmup == 0);
  CHECK(cfg.schedule.min_lr_frac == 0.0f);
  CHECK(cfg.train.batch == 8);
  CHECK(cfg.train.accum == 2);
  CHECK(cfg.train.steps == 20000000000LL);
  CHECK(cfg.train.seed == 42u);
  CHECK(cfg.train.threads == 2);
  CHECK(cfg.train.eval_every == 0);
  CHECK(cfg.train.eval_batches == 0);
  CHECK(cfg.train.log_every == 10);
  CHECK(cfg.train.checkpoint_every == 500);

  const std::string dumped = dump_config(cfg);
  INFO(dumped);
  const RunConfig back = parse_config(dumped, "dump.yaml");
  require_same(back, cfg);
  CHECK(dump_config(back) == dumped);
  // Enum values are written as names, not numbers.
  CHECK_THAT(dumped, Contains("mlp: gelu"));
  CHECK_THAT(dumped, Contains("pos: sinusoidal"));
  CHECK_THAT(dumped, Contains("source: file"));
  CHECK_THAT(dumped, Contains("decay_mode: independent"));
  CHECK_THAT(dumped, Contains("kind: linear"));
}

TEST_CASE("config: dump_config round-trips floats bit for bit and any path", "[train][config]") {
  std::mt19937 rng(7);
  auto uniform = [&](float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); };
  auto log_uniform = [&](float lo_exp, float hi_exp) { return std::pow(10.0f, uniform(lo_exp, hi_exp)); };
  const std::vector<std::string> paths = {"plain.txt",     "with \"quotes\" and \\backslash", "tab\tnew\nline",
                                          " leading space", "#not a comment: {x}",          "caf\xc3\xa9/\x01\x7f",
                                          "'single'",       "- dash",                       "null"};
  for (int iter = 0; iter < 200; ++iter) {
    RunConfig c;
    c.model.rope_base = log_uniform(0.1f, 6.0f);
    c.model.norm_eps = log_uniform(-40.0f, -1.0f);  // down into float denormals
    c.model.init_std = log_uniform(-4.0f, 0.0f);
    c.optim.lr = log_uniform(-7.0f, 0.0f);
    c.optim.beta1 = uniform(0.0f, 0.999f);
    c.optim.beta2 = uniform(0.0f, 0.9999f);
    c.optim.eps = log_uniform(-30.0f, -2.0f);
    c.optim.weight_decay = uniform(0.0f, 10.0f);
    c.optim.grad_clip = log_uniform(-3.0f, 30.0f);
    c.schedule.min_lr_frac = uniform(0.0f, 1.0f);
    c.data.val_fraction = std::uniform_real_distribution<double>(1e-9, 0.999999)(rng);
    c.data.source = DataSource::kFile;
    c.data.path = paths[static_cast<size_t>(iter) % paths.size()];
    c.train.seed = (static_cast<uint64_t>(rng()) << 32) | rng();
    c.train.steps = (static_cast<int64_t>(rng()) << 31) | 1;
    if (c.model.rope_base <= 1.0f) c.model.rope_base = 1.5f;
    if (c.optim.eps == 0.0f) c.optim.eps = 1e-30f;
    if (c.model.norm_eps == 0.0f) c.model.norm_eps = 1e-30f;
    REQUIRE_NOTHROW(validate(c));
    const std::string dumped = dump_config(c);
    INFO("iteration " << iter << "\n" << dumped);
    require_same(parse_config(dumped, "dump.yaml"), c);
  }
}

TEST_CASE("config: dump_config lists the overrides in a trailing comment block", "[train][config]") {
  const std::vector<std::string> ov = {"model.n_head=8", "optim.lr=1e-2"};
  const RunConfig cfg = parse_config("", "x.yaml", ov);
  const std::string dumped = dump_config(cfg, ov);
  const size_t a = dumped.find("--set model.n_head=8"), b = dumped.find("--set optim.lr=1e-2");
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  CHECK(a < b);
  CHECK(dumped.rfind("train:") < a);  // after the YAML body
  // The block is comments: the dump still parses to the same config.
  require_same(parse_config(dumped, "dump.yaml"), cfg);
}

TEST_CASE("config: --set overrides apply after the file, in order", "[train][config]") {
  TempDir dir("config");
  const std::string path = dir.write("run.yaml", "model:\n  n_head: 8\n  d_model: 64\noptim:\n  lr: 0.5\n");
  const RunConfig cfg = load_config(path, {"model.n_head=2", "model.n_head=4", "optim.lr=1", "model.pos=none",
                                           "data.source=copy", "model.tied_head=true", "data.path=\"\"", "train.seed=7"});
  CHECK(cfg.model.n_head == 4);    // the last --set wins over earlier ones and over the file
  CHECK(cfg.model.d_model == 64);  // untouched file value
  CHECK(cfg.optim.lr == 1.0f);     // an int is accepted for a float
  CHECK(cfg.model.pos == PosEncoding::kNone);
  CHECK(cfg.data.source == DataSource::kCopy);
  CHECK(cfg.model.tied_head);
  CHECK(cfg.train.seed == 7u);

  // Validation sees the overridden values and says which --set made them.
  const std::string msg = config_error([&] { load_config(path, {"model.n_head=3"}); });
  CHECK_THAT(msg, Contains("model.d_model=64 is not divisible by model.n_head=3"));
  CHECK_THAT(msg, Contains("--set model.n_head=3"));
}

TEST_CASE("config: unknown keys name file, line, key path and a suggestion", "[train][config]") {
  TempDir dir("config");
  std::string path;
  SECTION("unknown top-level key") {
    const std::string msg = file_error(dir, "# run\nmodel:\n  d_model: 64\noptimizer:\n  lr: 1e-3\n", &path);
    CHECK_THAT(msg, Contains(path + ":4:"));
    CHECK_THAT(msg, Contains("'optimizer'"));
    CHECK_THAT(msg, Contains("did you mean 'optim'?"));
  }
  SECTION("a key written at top level instead of in its section") {
    const std::string msg = file_error(dir, "model: {}\nlr: 0.1\n", &path);
    CHECK_THAT(msg, Contains(path + ":2:"));
    CHECK_THAT(msg, Contains("'optim.lr'"));
  }
  SECTION("unknown nested key with a suggestion") {
    const std::string msg = file_error(dir, "model:\n  d_model: 64\n  n_heads: 4\n", &path);
    CHECK_THAT(msg, Contains(path + ":3:"));
    CHECK_THAT(msg, Contains("model.n_heads"));
    CHECK_THAT(msg, Contains("did you mean 'n_head'?"));
  }
  SECTION("a transposition and a prefix are suggested too") {
    CHECK_THAT(file_error(dir, "optim:\n  wieght_decay: 0.1\n", &path), Contains("did you mean 'weight_decay'?"));
    CHECK_THAT(file_error(dir, "train:\n  checkpoint: 5\n", &path), Contains("did you mean 'checkpoint_every' or 'keep_checkpoints'?"));
  }
  SECTION("a key of another section") {
    const std::string msg = file_error(dir, "model:\n  seed: 3\n", &path);
    CHECK_THAT(msg, Contains("model.seed"));
    CHECK_THAT(msg, Contains("'train.seed'"));
  }
  SECTION("no close key: the valid keys are listed") {
    const std::string msg = file_error(dir, "model:\n  colour: red\n", &path);
    CHECK_THAT(msg, Contains(path + ":2:"));
    CHECK_THAT(msg, Contains("model.colour"));
    CHECK_THAT(msg, Contains("n_head"));
    CHECK_THAT(msg, Contains("init_std"));
  }
  SECTION("duplicate key") {
    const std::string msg = file_error(dir, "model:\n  n_head: 4\n  d_model: 64\n  n_head: 8\n", &path);
    CHECK_THAT(msg, Contains(path + ":4:"));
    CHECK_THAT(msg, Contains("model.n_head"));
    CHECK_THAT(msg, Contains("duplicate"));
    CHECK_THAT(msg, Contains("line 2"));
  }
}

TEST_CASE("config: type mismatches name the expected type and the value", "[train][config]") {
  TempDir dir("config");
  std::string path;
  struct Case {
    const char* yaml;  // the bad key is always on line 2
    const char* key_path;
    const char* expected;
    const char* shown;  // how the offending value appears in the message
  };
  const Case cases[] = {
      {"model:\n  n_head: four\n", "model.n_head", "expected an integer", "'four'"},
      {"model:\n  n_layer: 2.5\n", "model.n_layer", "expected an integer", "'2.5'"},
      {"train:\n  steps: 1e5\n", "train.steps", "expected an integer", "'1e5'"},
      {"model:\n  n_head: \"4\"\n", "model.n_head", "expected an integer", "quoted string \"4\""},
      {"model:\n  seq_len: [1, 2]\n", "model.seq_len", "expected an integer", "a list"},
      {"model:\n  seq_len: {a: 1}\n", "model.seq_len", "expected an integer", "a map"},
      {"model:\n  seq_len:\n", "model.seq_len", "expected an integer", "empty value"},
      {"model:\n  vocab: 3000000000\n", "model.vocab", "out of range", "'3000000000'"},
      {"model:\n  vocab: -2147483649\n", "model.vocab", "out of range", "'-2147483649'"},
      {"train:\n  seed: -5\n", "train.seed", "expected a non-negative integer", "'-5'"},
      {"data:\n  data_seed: 18446744073709551616\n", "data.data_seed", "out of range", "'18446744073709551616'"},
      {"model:\n  tied_head: yes\n", "model.tied_head", "expected true or false", "'yes'"},
      {"model:\n  tied_head: 1\n", "model.tied_head", "expected true or false", "'1'"},
      {"optim:\n  lr: fast\n", "optim.lr", "expected a number", "'fast'"},
      {"optim:\n  lr: .inf\n", "optim.lr", "finite", "'.inf'"},
      {"optim:\n  lr: 1e60\n", "optim.lr", "out of range", "'1e60'"},
      {"optim:\n  lr: [0.1]\n", "optim.lr", "expected a number", "a list"},
      {"data:\n  path: {a: b}\n", "data.path", "expected a string", "a map"},
      {"data:\n  path:\n", "data.path", "expected a string", "empty value"},
      {"model:\n  pos: [rope]\n", "model.pos", "none, sinusoidal, rope", "a list"},
  };
  for (const Case& c : cases) {
    INFO(c.yaml);
    const std::string msg = file_error(dir, c.yaml, &path);
    CHECK_THAT(msg, Contains(path + ":2:"));
    CHECK_THAT(msg, Contains(c.key_path));
    CHECK_THAT(msg, Contains(c.expected));
    CHECK_THAT(msg, Contains(c.shown));
  }
  SECTION("a section that is not a map") {
    const std::string msg = file_error(dir, "train: {}\nmodel: 5\n", &path);
    CHECK_THAT(msg, Contains(path + ":2:"));
    CHECK_THAT(msg, Contains("model"));
    CHECK_THAT(msg, Contains("expected a map"));
  }
  SECTION("a top level that is not a map") {
    const std::string msg = file_error(dir, "- model\n- train\n", &path);
    CHECK_THAT(msg, Contains(path + ":1:"));
    CHECK_THAT(msg, Contains("top level must be a map"));
  }
  SECTION("the accepted spellings") {
    const RunConfig c = parse_config(
        "model: {tied_head: True, rope_base: 100, n_head: +2, init_std: .5}\noptim: {lr: 2.5E-3}\n", "ok.yaml");
    CHECK(c.model.tied_head);
    CHECK(c.model.rope_base == 100.0f);
    CHECK(c.model.n_head == 2);
    CHECK(c.model.init_std == 0.5f);
    CHECK(c.optim.lr == 2.5e-3f);
    // (A vocabulary of 2^31 - 1 no longer fits in memory; the largest int still parses as one.)
    CHECK(parse_config("train: {steps: 2147483647}\n", "ok.yaml").train.steps == INT32_MAX);
  }
}

TEST_CASE("config: unknown enum values list the allowed values", "[train][config]") {
  TempDir dir("config");
  std::string path;
  struct Case {
    const char* yaml;
    const char* key_path;
    const char* bad;
    const char* allowed;
  };
  const Case cases[] = {
      {"model:\n  pos: rotary\n", "model.pos", "'rotary'", "none, sinusoidal, rope"},
      {"model:\n  mlp: relu\n", "model.mlp", "'relu'", "swiglu, gelu"},
      {"data:\n  source: text\n", "data.source", "'text'", "file, bigram_backcopy, copy, uniform"},
      {"optim:\n  decay_mode: decoupled\n", "optim.decay_mode", "'decoupled'", "coupled, independent"},
      {"schedule:\n  kind: cos\n", "schedule.kind", "'cos'", "cosine, constant, linear"},
      {"instrument:\n  flight_contents: all\n", "instrument.flight_contents", "'all'", "diagnosis, everything"},
  };
  for (const Case& c : cases) {
    INFO(c.yaml);
    const std::string msg = file_error(dir, c.yaml, &path);
    CHECK_THAT(msg, Contains(path + ":2:"));
    CHECK_THAT(msg, Contains(c.key_path));
    CHECK_THAT(msg, Contains(c.bad));
    CHECK_THAT(msg, Contains(c.allowed));
  }
  CHECK_THAT(file_error(dir, "model:\n  pos: RoPE\n", &path), Contains("did you mean 'rope'?"));
}

TEST_CASE("config: YAML syntax errors, missing files and several documents", "[train][config]") {
  TempDir dir("config");
  std::string path;
  SECTION("syntax error with line and column") {
    const std::string msg = file_error(dir, "model:\n  d_model: 64\n  n_head: 4: 5\n", &path);
    CHECK_THAT(msg, Contains(path + ":3:12:"));
    CHECK_THAT(msg, Contains("YAML syntax error"));
  }
  SECTION("a tab in the indentation") {
    const std::string msg = file_error(dir, "model:\n  d_model: 64\n\tn_head: 4\n", &path);
    CHECK_THAT(msg, Contains(path + ":3:"));
    CHECK_THAT(msg, Contains("YAML syntax error"));
  }
  SECTION("missing file") {
    const std::string missing = dir.file("does_not_exist.yaml");
    const std::string msg = config_error([&] { load_config(missing); });
    CHECK_THAT(msg, Contains(missing));
    CHECK_THAT(msg, Contains("no such file"));
  }
  SECTION("a directory instead of a file") {
    const std::string msg = config_error([&] { load_config(dir.file("")); });
    CHECK_THAT(msg, Contains("directory"));
  }
  SECTION("two YAML documents") {
    const std::string msg = file_error(dir, "model: {}\n---\ntrain: {}\n", &path);
    CHECK_THAT(msg, Contains(path));
    CHECK_THAT(msg, Contains("several YAML documents"));
  }
}

TEST_CASE("config: validation names key paths, values and lines", "[train][config]") {
  TempDir dir("config");
  std::string path;
  SECTION("d_model not divisible by n_head") {
    const std::string msg = file_error(dir, "model:\n  d_model: 100\n  n_head: 3\n", &path);
    CHECK_THAT(msg, Contains(path + ":2"));
    CHECK_THAT(msg, Contains("model.d_model=100 is not divisible by model.n_head=3"));
    CHECK_THAT(msg, Contains("model.n_head: line 3"));
  }
  SECTION("odd d_head with rope") {
    const std::string msg = file_error(dir, "model:\n  d_model: 96\n  n_head: 32\n  pos: rope\n", &path);
    CHECK_THAT(msg, Contains(path));
    CHECK_THAT(msg, Contains("model.pos=rope"));
    CHECK_THAT(msg, Contains("even d_head"));
    CHECK_THAT(msg, Contains("model.d_model=96"));
    CHECK_THAT(msg, Contains("model.n_head=32"));
    // Without RoPE an odd head dimension is fine.
    CHECK(parse_config("model: {d_model: 96, n_head: 32, pos: none}\n", "ok.yaml").model.d_head() == 3);
  }
  SECTION("sinusoidal needs an even d_model") {
    const std::string msg = file_error(dir, "model:\n  pos: sinusoidal\n  d_model: 63\n  n_head: 1\n", &path);
    CHECK_THAT(msg, Contains("model.pos=sinusoidal"));
    CHECK_THAT(msg, Contains("model.d_model=63"));
  }
  SECTION("file source without a path") {
    const std::string msg = file_error(dir, "data:\n  source: file\n", &path);
    CHECK_THAT(msg, Contains(path + ":2"));
    CHECK_THAT(msg, Contains("data.source=file needs data.path"));
  }
  SECTION("a path without the file source") {
    const std::string msg = file_error(dir, "data:\n  path: x.txt\n", &path);
    CHECK_THAT(msg, Contains("data.path"));
    CHECK_THAT(msg, Contains("data.source=bigram_backcopy"));
  }
  SECTION("file source with a vocabulary smaller than the bytes") {
    const std::string msg = file_error(dir, "model: {vocab: 100}\ndata: {source: file, path: x}\n", &path);
    CHECK_THAT(msg, Contains("model.vocab=100"));
    CHECK_THAT(msg, Contains(">= 256"));
  }
  SECTION("BOS colliding with a byte value") {
    const std::string msg = file_error(dir, "data:\n  source: file\n  path: x.txt\n  bos: true\n", &path);
    CHECK_THAT(msg, Contains(path + ":4"));
    CHECK_THAT(msg, Contains("data.bos=true"));
    CHECK_THAT(msg, Contains("255"));
    CHECK_THAT(msg, Contains("collides"));
    CHECK_THAT(msg, Contains("model.vocab >= 257"));
    // An explicit id below 256 collides as well.
    CHECK_THAT(file_error(dir, "model: {vocab: 300}\ndata: {source: file, path: x, bos: true, bos_id: 65}\n", &path),
               Contains("data.bos_id=65"));
    // With 257 tokens the default BOS id (vocab - 1 = 256) is past the bytes.
    const RunConfig ok = parse_config("model: {vocab: 257}\ndata: {source: file, path: x, bos: true}\n", "ok.yaml");
    CHECK(ok.data.bos_id == -1);
  }
  SECTION("BOS id outside the vocabulary") {
    const std::string msg = file_error(dir, "data: {bos: true, bos_id: 256}\n", &path);
    CHECK_THAT(msg, Contains("data.bos_id=256"));
    CHECK_THAT(msg, Contains("model.vocab=256"));
  }
  SECTION("every problem is reported at once") {
    const std::string msg = file_error(dir, "optim: {lr: 0}\ntrain: {batch: 0}\n", &path);
    CHECK_THAT(msg, Contains("optim.lr=0.0 must be > 0"));
    CHECK_THAT(msg, Contains("train.batch=0 must be >= 1"));
    CHECK_THAT(msg, Contains(path + ":2"));
  }
  SECTION("validate() on a struct built in code names the keys without a line") {
    RunConfig c;
    c.model.d_model = 100;
    c.model.n_head = 3;
    const std::string msg = config_error([&] { validate(c); });
    CHECK_THAT(msg, Contains("model.d_model=100 is not divisible by model.n_head=3"));
    CHECK(msg.find("line") == std::string::npos);
  }
}

TEST_CASE("config: each range rule rejects its boundary and accepts the valid side", "[train][config]") {
  struct Case {
    std::vector<std::string> set;
    const char* key;  // the key path the message must name
  };
  const std::vector<Case> bad = {
      {{"model.vocab=1"}, "model.vocab"},
      {{"instrument.flight_seqs=0"}, "instrument.flight_seqs"},
      {{"model.d_model=0"}, "model.d_model"},
      {{"model.n_layer=0"}, "model.n_layer"},
      {{"model.n_head=0"}, "model.n_head"},
      {{"model.seq_len=1"}, "model.seq_len"},
      {{"model.mlp_hidden=-1"}, "model.mlp_hidden"},
      {{"model.norm_eps=0"}, "model.norm_eps"},
      {{"model.init_std=-0.02"}, "model.init_std"},
      {{"model.rope_base=1"}, "model.rope_base"},
      {{"optim.lr=0"}, "optim.lr"},
      {{"optim.beta1=1"}, "optim.beta1"},
      {{"optim.beta2=-0.1"}, "optim.beta2"},
      {{"optim.eps=0"}, "optim.eps"},
      {{"optim.weight_decay=-0.1"}, "optim.weight_decay"},
      {{"optim.grad_clip=-1"}, "optim.grad_clip"},
      {{"schedule.min_lr_frac=1.5"}, "schedule.min_lr_frac"},
      {{"schedule.min_lr_frac=-0.1"}, "schedule.min_lr_frac"},
      {{"schedule.warmup=-1"}, "schedule.warmup"},
      {{"data.val_fraction=0"}, "data.val_fraction"},
      {{"data.val_fraction=1"}, "data.val_fraction"},
      {{"data.bos_id=-2"}, "data.bos_id"},
      {{"data.bigram_branching=256"}, "data.bigram_branching"},
      {{"data.bigram_branching=0"}, "data.bigram_branching"},
      {{"data.n_triggers=128"}, "data.n_triggers"},
      {{"data.n_triggers=0"}, "data.n_triggers"},
      {{"data.source=copy", "data.copy_len=64"}, "data.copy_len"},
      {{"data.copy_len=-1"}, "data.copy_len"},
      {{"train.batch=0"}, "train.batch"},
      {{"train.accum=0"}, "train.accum"},
      {{"train.steps=0"}, "train.steps"},
      {{"train.threads=-1"}, "train.threads"},
      {{"train.eval_every=-1"}, "train.eval_every"},
      {{"train.eval_batches=0"}, "train.eval_batches"},
      {{"train.log_every=0"}, "train.log_every"},
      {{"train.checkpoint_every=-1"}, "train.checkpoint_every"},
      {{"train.accum=65537"}, "train.accum"},
      {{"train.eval_batches=65537"}, "train.eval_batches"},
      {{"instrument.warn_spike_z=1e75"}, "instrument.warn_spike_z"},
      {{"instrument.warn_logit=1e39"}, "instrument.warn_logit"},
      {{"instrument.warn_tok_cos=1e75"}, "instrument.warn_tok_cos"},
      {{"instrument.warn_tok_cos=1.01"}, "instrument.warn_tok_cos"},
      {{"instrument.warn_entropy=1.5"}, "instrument.warn_entropy"},
      {{"instrument.warn_sink=2"}, "instrument.warn_sink"},
      {{"train.batch=1073741824", "model.seq_len=2"}, "train.batch"},
  };
  for (const Case& c : bad) {
    INFO("--set " << c.set.back());
    const std::string msg = config_error([&] { parse_config("", "v.yaml", c.set); });
    CHECK_THAT(msg, Contains(c.key));
    CHECK_THAT(msg, Contains("--set " + c.set.back()));
  }
  const std::vector<std::vector<std::string>> good = {
      {"optim.beta1=0", "optim.beta2=0.999999"},
      {"optim.weight_decay=0", "optim.grad_clip=0"},
      {"schedule.min_lr_frac=0"},
      {"schedule.min_lr_frac=1", "schedule.warmup=0"},
      {"data.bigram_branching=255", "data.n_triggers=127"},
      {"data.source=copy", "data.copy_len=63"},
      {"data.source=uniform", "model.vocab=2", "model.d_model=2", "model.n_head=1"},
      {"train.eval_every=0", "train.eval_batches=0", "train.threads=0", "train.checkpoint_every=0"},
      {"model.rope_base=1.5", "model.mlp_hidden=1"},
      {"data.bos=true", "data.bos_id=0"},
      {"model.seq_len=2", "train.accum=65536", "train.eval_batches=65536"},
      {"instrument.warn_tok_cos=1", "instrument.warn_entropy=1", "instrument.warn_sink=1",
       "instrument.warn_spike_z=3.0e38"},
  };
  for (const auto& set : good) {
    INFO("--set " << set.front());
    CHECK_NOTHROW(parse_config("", "v.yaml", set));
  }
}

TEST_CASE("config: --set errors go through the same reader", "[train][config]") {
  TempDir dir("config");
  const std::string path = dir.write("run.yaml", "model:\n  n_head: 4\n");
  auto set_error = [&](const std::string& ov) { return config_error([&] { load_config(path, {ov}); }); };
  SECTION("type error") {
    const std::string msg = set_error("model.n_head=abc");
    CHECK_THAT(msg, Contains("--set model.n_head=abc"));
    CHECK_THAT(msg, Contains("expected an integer"));
    CHECK_THAT(msg, Contains("'abc'"));
    CHECK_THAT(set_error("model.n_head=2.5"), Contains("expected an integer"));
    CHECK_THAT(set_error("model.tied_head=on"), Contains("expected true or false"));
    CHECK_THAT(set_error("model.pos=rotary"), Contains("none, sinusoidal, rope"));
    CHECK_THAT(set_error("model.n_head=[4"), Contains("--set model.n_head=[4"));
  }
  SECTION("unknown key") {
    const std::string msg = set_error("model.n_heads=4");
    CHECK_THAT(msg, Contains("--set model.n_heads=4"));
    CHECK_THAT(msg, Contains("did you mean 'model.n_head'?"));
  }
  SECTION("malformed overrides") {
    CHECK_THAT(set_error("model.n_head"), Contains("section.key=value"));
    CHECK_THAT(set_error("=4"), Contains("section.key=value"));
    CHECK_THAT(set_error("model.=4"), Contains("--set model.=4"));
    CHECK_THAT(set_error(".n_head=4"), Contains("--set .n_head=4"));
    CHECK_THAT(set_error("model.n_head.x=4"), Contains("--set model.n_head.x=4"));
    CHECK_THAT(set_error("model=4"), Contains("--set model=4"));
    const std::string msg = set_error("foo.bar=1");
    CHECK_THAT(msg, Contains("unknown section 'foo'"));
    CHECK_THAT(msg, Contains("model, data, optim, schedule, train"));
    CHECK_THAT(set_error("modle.n_head=4"), Contains("did you mean 'model'?"));
  }
}

TEST_CASE("config: YAML tags and extra documents are refused, in files and in --set", "[train][config]") {
  TempDir dir("config");
  std::string path;
  for (const char* text : {"train:\n  steps: !!float 3\n", "train:\n  steps: !custom 3\n", "model: !!map {vocab: 32}\n",
                           "data:\n  source: !!python/name:os.system\n"}) {
    INFO(text);
    const std::string msg = file_error(dir, text, &path);
    CHECK_THAT(msg, Contains("bad.yaml:"));
    CHECK_THAT(msg, Contains("YAML tag"));
    CHECK_THAT(msg, Contains("not supported"));
  }
  // A string tag is a string, as quotes are.
  CHECK(load_config(dir.write("ok.yaml", "data:\n  path: !!str 123\n  source: file\nmodel: {vocab: 256}\n")).data.path
            .find("123") != std::string::npos);
  const std::string tag = config_error([&] { parse_config("", "v.yaml", {"train.steps=!!float 1"}); });
  CHECK_THAT(tag, Contains("--set train.steps=!!float 1"));
  CHECK_THAT(tag, Contains("YAML tag '!!float'"));
  const std::string docs = config_error([&] { parse_config("", "v.yaml", {"train.steps=2\n---\n3"}); });
  CHECK_THAT(docs, Contains("train.steps"));
  CHECK_THAT(docs, Contains("several YAML documents"));
  // An alias bomb: 9 levels of 10 references each would expand to 10^9 nodes.
  std::string bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 9; ++i) {
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) bomb += (j ? ", *a" : "*a") + std::to_string(i - 1);
    bomb += "]\n";
  }
  const std::string b = file_error(dir, bomb, &path);
  CHECK_THAT(b, Contains("alias"));
}

TEST_CASE("config: input on which yaml-cpp's LoadAll never returns is a syntax error, at once", "[train][config]") {
  // Found by fuzzing (tests/fuzz/crashes/config/): a lone ',' at the top level made YAML::LoadAll yield
  // empty documents forever; the file, a --set value and a sweep file all hung.
  TempDir dir("config");
  std::string path;
  for (const char* text : {",", ",\n", "# a comment\n,"}) {
    INFO(text);
    CHECK_THAT(file_error(dir, text, &path), Contains("YAML syntax error"));
  }
  CHECK_THAT(config_error([&] { parse_config("", "v.yaml", {"train.steps=,"}); }), Contains("train.steps"));
}

TEST_CASE("config: strings must be UTF-8 (they are written into run.json and checkpoints)", "[train][config]") {
  const std::string msg = config_error([&] { parse_config("", "v.yaml", {"data.path=/tmp/\xff\xfe.txt"}); });
  CHECK_THAT(msg, Contains("data.path"));
  CHECK_THAT(msg, Contains("not valid UTF-8"));
  CHECK_NOTHROW(parse_config("", "v.yaml", {"data.path=/tmp/\xc3\xa9t\xc3\xa9.txt", "data.source=file", "model.vocab=256"}));
}

TEST_CASE("config: sizes that cannot fit are refused before anything is allocated, naming the keys",
          "[train][config]") {
  const std::string mem = config_error([&] { parse_config("", "v.yaml", {"model.d_model=1048576", "model.n_head=1"}); });
  CHECK_THAT(mem, Contains("does not fit in memory"));
  CHECK_THAT(mem, Contains("TiB"));
  CHECK_THAT(mem, Contains("model.d_model=1048576"));
  CHECK_THAT(mem, Contains("--set model.d_model=1048576"));
  const std::string layers = config_error([&] { parse_config("", "v.yaml", {"model.n_layer=2147483647"}); });
  CHECK_THAT(layers, Contains("does not fit in memory"));
  CHECK_THAT(layers, Contains("model.n_layer=2147483647"));
  const std::string rows = config_error([&] { parse_config("", "v.yaml", {"train.batch=2147483647"}); });
  CHECK_THAT(rows, Contains("train.batch=2147483647"));
  CHECK_THAT(rows, Contains("row count limit"));
  const std::string sink = config_error([&] {
    parse_config("", "v.yaml", {"train.batch=33554432", "model.seq_len=64", "model.sink_token=true"});
  });
  CHECK_THAT(sink, Contains("model.sink_token=true"));
  // The default model is nowhere near.
  CHECK_NOTHROW(parse_config("", "v.yaml"));
}

TEST_CASE("config: a huge misspelled value costs no more than a short one", "[train][config]") {
  TempDir dir("config");
  std::string path;
  const std::string huge(4 << 20, 'y');
  const auto t0 = std::chrono::steady_clock::now();
  const std::string msg = file_error(dir, "data: {source: bigram_backcop" + huge + "}\n", &path);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK_THAT(msg, Contains("unknown value"));
  CHECK(msg.size() < 1000);  // the value is cut in the message
  CHECK(s < 5.0);            // was quadratic in the value's length (16 s and bad_alloc at 50 MB)
  // A file far larger than any config is refused unread.
  const std::string big = dir.write("big.yaml", std::string((16 << 20) + 1, '#'));
  CHECK_THAT(config_error([&] { load_config(big); }), Contains("more than the"));
}

TEST_CASE("config: a FIFO or a device is refused without blocking", "[train][config]") {
  TempDir dir("config");
  const std::string fifo = dir.file("cfg.fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THAT(config_error([&] { load_config(fifo); }), Contains("FIFO"));  // hung forever before
  CHECK_THAT(config_error([&] { load_config("/dev/zero"); }), Contains("character device"));
  CHECK_THAT(config_error([&] { load_config(dir.path()); }), Contains("directory"));
}

}  // namespace
}  // namespace attnlab
