// Sweep files: expansion (grid, zip, seeds, range), naming, errors before anything runs, run-directory
// states, the summary table, and running a small sweep through the attnlab binary (failures, resume,
// skipping finished runs).
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <regex>

#include "experiments/engine/claims.h"
#include "experiments/engine/sweep.h"
#include "tests/support/fixtures.h"
#include "train/formats/run_files.h"
#include "train/formats/safetensors.h"

using namespace attnlab;
using namespace attnlab::testing;
namespace fs = std::filesystem;

namespace {

const std::string kTiny = std::string(ATTNLAB_SOURCE_DIR) + "/configs/tiny.yaml";

Sweep parse(const std::string& body, const std::vector<std::string>& extra = {}) {
  return parse_sweep("base: " + kTiny + "\n" + body, "s.yaml", "/nonexistent", extra);
}

std::vector<std::string> names(const Sweep& s) {
  std::vector<std::string> out;
  for (const auto& p : s.points) out.push_back(p.name);
  return out;
}

// The error message of parsing `body`, or "" if it parses.
std::string error_of(const std::string& body) {
  try {
    parse(body);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("sweep: a grid is the cartesian product, first axis slowest, with readable names", "[train][sweep]") {
  const Sweep s = parse("set: [train.steps=7]\ngrid:\n  optim.lr: [1.0e-3, 1.0e-2]\n  model.n_layer: [1, 2, 3]\n");
  REQUIRE(s.axis_keys == std::vector<std::string>{"optim.lr", "model.n_layer"});
  REQUIRE(names(s) == std::vector<std::string>{"lr=0.001,n_layer=1", "lr=0.001,n_layer=2", "lr=0.001,n_layer=3",
                                               "lr=0.01,n_layer=1", "lr=0.01,n_layer=2", "lr=0.01,n_layer=3"});
  const SweepPoint& p = s.points[4];
  REQUIRE(p.config.optim.lr == 0.01f);
  REQUIRE(p.config.model.n_layer == 2);
  REQUIRE(p.config.train.steps == 7);
  REQUIRE(p.config.model.d_model == 32);  // from the base (tiny.yaml)
  REQUIRE(p.overrides == std::vector<std::string>{"train.steps=7", "optim.lr=1.0e-2", "model.n_layer=2"});
  REQUIRE(p.axes == std::vector<std::pair<std::string, std::string>>{{"optim.lr", "0.01"}, {"model.n_layer", "2"}});
  REQUIRE(s.default_dir == "runs/sweeps/s");
}

TEST_CASE("sweep: zip advances together, seeds and range add axes", "[train][sweep]") {
  const Sweep z = parse("zip:\n  optim.lr: [0.1, 0.2, 0.3]\n  schedule.warmup: [0, 5, 10]\nseeds: [1, 2]\n");
  REQUIRE(z.points.size() == 6);
  REQUIRE(names(z)[0] == "lr=0.1,warmup=0,seed=1");
  REQUIRE(names(z)[3] == "lr=0.2,warmup=5,seed=2");
  REQUIRE(z.points[3].config.schedule.warmup == 5);
  REQUIRE(z.points[3].config.train.seed == 2u);
  REQUIRE(z.points[5].config.optim.lr == 0.3f);

  const Sweep r = parse("range:\n  optim.weight_decay: {start: 0.0, stop: 0.5, num: 3}\n"
                        "  optim.lr: {start: 1.0e-3, stop: 1.0e-1, num: 3, log: true}\n"
                        "  schedule.warmup: {start: 0, stop: 10, num: 2}\n");
  REQUIRE(r.points.size() == 18);
  REQUIRE(names(r)[0] == "weight_decay=0,lr=0.001,warmup=0");
  REQUIRE(names(r)[17] == "weight_decay=0.5,lr=0.1,warmup=10");
  REQUIRE(r.points[6].config.optim.weight_decay == 0.25f);
  REQUIRE(r.points[2].config.optim.lr == Approx(0.01f));
  REQUIRE(r.points[1].config.schedule.warmup == 10);  // an int range stays an int for an int key

  // A list of zip groups, and no axes at all.
  const Sweep zz = parse("zip:\n  - {optim.lr: [0.1, 0.2], optim.beta1: [0.8, 0.9]}\n  - {model.n_layer: [1, 2]}\n");
  REQUIRE(names(zz) == std::vector<std::string>{"lr=0.1,beta1=0.8,n_layer=1", "lr=0.1,beta1=0.8,n_layer=2",
                                                "lr=0.2,beta1=0.9,n_layer=1", "lr=0.2,beta1=0.9,n_layer=2"});
  const Sweep none = parse("set: {train.steps: 3}\n");
  REQUIRE(names(none) == std::vector<std::string>{"base"});
  REQUIRE(none.points[0].config.train.steps == 3);
}

TEST_CASE("sweep: run names", "[train][sweep]") {
  // The section is kept when the last part of the key is ambiguous; odd characters become '_'.
  REQUIRE(run_name({{"model.eps", "1e-05"}, {"optim.eps", "1e-08"}, {"data.path", "a/b c"}},
                   {"model.eps", "optim.eps", "data.path"}) == "model.eps=1e-05,optim.eps=1e-08,path=a_b_c");
  REQUIRE(run_name({}, {}) == "base");
  const std::string long_value(300, 'x');
  const std::string n1 = run_name({{"data.path", long_value + "1"}}, {"data.path"});
  const std::string n2 = run_name({{"data.path", long_value + "2"}}, {"data.path"});
  REQUIRE(n1.size() <= 200);
  REQUIRE(n1 != n2);
  // Values are canonical: 1.0e-2 and 0.01 name the same run, and the sweep refuses the duplicate.
  const std::string dup = error_of("grid:\n  optim.lr: [1.0e-2, 0.01]\n");
  INFO(dup);
  REQUIRE(dup.find("same name lr=0.01") != std::string::npos);
  // Booleans and strings: a quoted value stays a string for the config reader.
  const Sweep b = parse("grid:\n  model.tied_head: [True, false]\n  data.source: [copy, \"uniform\"]\n");
  REQUIRE(names(b)[0] == "tied_head=true,source=copy");
  REQUIRE(b.points[3].config.data.source == DataSource::kUniform);
}

TEST_CASE("sweep: bad files fail with the key and the place, before any run", "[train][sweep]") {
  struct Case {
    const char* body;
    std::vector<const char*> expect;
  };
  const Case cases[] = {
      {"grid:\n  optim.lrr: [0.1]\n", {"optim.lrr", "did you mean", "s.yaml:3"}},
      {"grid:\n  optim.lr: []\n", {"s.yaml:3:3", "grid.optim.lr", "empty axis"}},
      {"zip:\n  optim.lr: [0.1, 0.2]\n  schedule.warmup: [1, 2, 3]\n", {"equal lengths", "2 values", "3 values"}},
      {"grid:\n  train.steps: [10, 2.5]\n", {"s.yaml:3:21", "train.steps", "2.5"}},
      {"grid:\n  optim.lr: [\"0.1\"]\n", {"optim.lr", "s.yaml:3:14"}},  // quoted: a string, not a float
      {"grid:\n  model.n_head: [3]\n", {"model.n_head", "d_model"}},     // validate() per point
      {"grd:\n  optim.lr: [0.1]\n", {"unknown sweep key 'grd'"}},
      {"grid:\n  optim.lr: [[0.1]]\n", {"values must be scalars"}},
      {"set: [optim.lr=0.1]\ngrid:\n  optim.lr: [0.2]\n", {"also an axis"}},
      {"grid:\n  train.seed: [1]\nseeds: [1, 2]\n", {"train.seed is an axis twice"}},
      {"grid:\n  train.threads: [1, 2]\n", {"--threads"}},
      {"range:\n  optim.lr: {start: 0.0, stop: 1.0, num: 0}\n", {"empty axis"}},
      {"range:\n  optim.lr: {start: 0.0, stop: 1.0, num: 3, log: true}\n", {"start > 0"}},
      {"range:\n  optim.lr: {start: 0.1, stop: 1.0, count: 3}\n", {"unknown field 'count'"}},
      {"grid: [1, 2]\n", {"grid: expected a map"}},
  };
  for (const Case& c : cases) {
    const std::string msg = error_of(c.body);
    INFO(c.body);
    INFO(msg);
    REQUIRE(!msg.empty());
    for (const char* e : c.expect) CHECK(msg.find(e) != std::string::npos);
  }
  // No base, two bases, a missing base file.
  REQUIRE_THROWS_WITH(parse_sweep("grid: {optim.lr: [0.1]}\n", "s.yaml", "."), Catch::Contains("no base config"));
  REQUIRE_THROWS_WITH(parse_sweep("base: a.yaml\nbase_config: {}\n", "s.yaml", "."), Catch::Contains("exactly one"));
  REQUIRE_THROWS_WITH(parse_sweep("base: missing.yaml\n", "s.yaml", "/tmp"), Catch::Contains("/tmp/missing.yaml"));
  // --set on the command line must not fight an axis either.
  REQUIRE_THROWS_WITH(parse("grid:\n  optim.lr: [0.1]\n", {"optim.lr=0.2"}), Catch::Contains("also an axis"));
  // An inline base.
  const Sweep in = parse_sweep("base_config:\n  model: {n_layer: 3, d_model: 16, n_head: 2}\ngrid: {optim.lr: [0.1]}\n",
                               "s.yaml", ".");
  REQUIRE(in.points[0].config.model.n_layer == 3);
  REQUIRE(in.points[0].config.model.d_model == 16);
}

TEST_CASE("sweep: run-directory states", "[train][sweep]") {
  TempDir dir("sweep-state");
  RunConfig cfg = tiny_run_config();
  cfg.train.steps = 8;
  std::string detail;
  const std::string run = dir.file("r");
  REQUIRE(run_state(run, cfg, &detail) == RunState::kMissing);
  fs::create_directories(run);
  REQUIRE(run_state(run, cfg, &detail) == RunState::kMissing);  // empty
  dir.write("r/stderr.log", "boom\n");
  REQUIRE(run_state(run, cfg, &detail) == RunState::kStale);  // no checkpoint

  RunConfig other_threads = cfg;
  other_threads.train.threads = 7;  // threads per run do not make another run
  dir.write("r/config.yaml", dump_config(other_threads));
  fs::create_directories(run + "/ckpt");
  dir.write("r/ckpt/step_00000004.safetensors", "");
  REQUIRE(run_state(run, cfg, &detail) == RunState::kResumable);
  REQUIRE(detail.find("step 4 of 8") != std::string::npos);
  dir.write("r/ckpt/step_00000008.safetensors", "");
  REQUIRE(run_state(run, cfg, &detail) == RunState::kResumable);  // no summary.md yet
  dir.write("r/summary.md", "# Run summary\n");
  REQUIRE(run_state(run, cfg, &detail) == RunState::kFinished);

  fs::remove(run + "/ckpt/step_00000008.safetensors");
  dir.write("r/events.jsonl", "{\"step\":5,\"kind\":\"nonfinite\",\"layer\":-1,\"head\":-1,\"metric\":\"loss\","
                              "\"value\":\"nan\",\"threshold\":0,\"message\":\"non-finite loss\"}\n");
  REQUIRE(run_state(run, cfg, &detail) == RunState::kStopped);
  REQUIRE(detail == "non-finite loss at step 5");

  RunConfig changed = cfg;
  changed.optim.lr = 0.5f;
  try {
    run_state(run, changed, &detail);
    FAIL("no error");
  } catch (const ConfigError& e) {
    INFO(e.what());
    REQUIRE(std::string(e.what()).find("optim.lr") != std::string::npos);
  }
}

TEST_CASE("sweep: the summary holds each run's axes, final losses and headline metrics", "[train][sweep]") {
  TempDir dir("sweep-summary");
  const Sweep s = parse("set: [train.steps=3]\ngrid:\n  optim.lr: [0.1, 0.2]\n");
  fs::create_directories(dir.file("lr=0.1"));
  auto probe = [](int step, const char* m, int layer, int head, const char* v) {
    return "{\"step\":" + std::to_string(step) + ",\"kind\":\"probe\",\"metric\":\"" + m + "\",\"layer\":" +
           std::to_string(layer) + ",\"head\":" + std::to_string(head) + ",\"index\":-1,\"value\":" + v + "}\n";
  };
  dir.write("lr=0.1/metrics.jsonl",
            "{\"step\":3,\"kind\":\"train\",\"loss\":2.5,\"lr\":0.1,\"grad_norm\":1,\"clipped\":false,\"tokens_per_s\":1,\"ms_per_step\":1}\n"
            "{\"step\":3,\"kind\":\"eval\",\"val_loss\":2.75}\n" +
                probe(1, "zabsmax", 0, 0, "99") + probe(3, "zabsmax", 0, 0, "4") + probe(3, "zabsmax", 1, 2, "6") +
                probe(3, "ent_norm", 0, 1, "0.5") + probe(3, "ent_norm", 1, 3, "0.25") + probe(3, "rgs_sum", 0, -1, "2") +
                probe(3, "rgs_sum", 1, -1, "7") + probe(3, "tok_cos", 1, -1, "0.125"));
  write_sweep_summary(s, dir.path());
  const std::string csv = read_file(dir.file("summary.csv"));
  INFO(csv);
  REQUIRE(csv.find("name,optim.lr,status,steps,train_loss,val_loss,probe_step,zabsmax_max,ent_norm_min,alpha0_max,"
                   "rgs_sum_mid,mass_ratio_max,tok_cos_max\n") == 0);
  // tiny.yaml has 2 layers, so the middle layer is 1; alpha0 and mass_ratio were not recorded.
  // lr=0.1 has files but no checkpoint ("failed"); lr=0.2 has no directory ("not run").
  REQUIRE(csv.find("\nlr=0.1,0.1,failed,3,2.5,2.75,3,6,0.25,,7,,0.125\n") != std::string::npos);
  REQUIRE(csv.find("\nlr=0.2,0.2,not run,,,,,,,,,,\n") != std::string::npos);
  const std::string md = read_file(dir.file("summary.md"));
  REQUIRE(md.find("| lr=0.1 | 0.1 | failed | 3 | 2.5 | 2.75 | 3 | 6 | 0.25 | – | 7 | – | 0.125 |") != std::string::npos);
  REQUIRE(read_file(dir.file("sweep.json")).find("\"axes\":[\"optim.lr\"]") != std::string::npos);
}

TEST_CASE("sweep: runs in parallel, reports a failed run, resumes and skips", "[train][sweep][e2e]") {
  TempDir dir("sweep-run");
  // Two healthy runs and one that diverges at once (LR 1e4 without clipping gives a non-finite loss).
  const std::string text = "base: " + kTiny + "\nset: [train.steps=8, train.checkpoint_every=4, train.eval_every=4]\n"
                           "zip:\n  optim.lr: [1.0e-3, 1.0e-2, 1.0e+4]\n  optim.grad_clip: [1.0, 1.0, 0.0]\n";
  const std::string file = dir.write("s.yaml", text);
  const Sweep s = load_sweep(file);
  REQUIRE(names(s) == std::vector<std::string>{"lr=0.001,grad_clip=1", "lr=0.01,grad_clip=1", "lr=10000,grad_clip=0"});
  SweepOptions o;
  o.exe = attnlab_binary();
  o.out_dir = dir.file("out");
  o.jobs = 2;
  o.threads = 1;

  const SweepResult r1 = run_sweep(s, o);
  REQUIRE(r1.exit_code == 1);  // one run failed
  REQUIRE(r1.runs[0].state == RunState::kFinished);
  REQUIRE(r1.runs[1].state == RunState::kFinished);
  REQUIRE(r1.runs[2].state == RunState::kStopped);
  REQUIRE(r1.runs[2].failed);
  REQUIRE(r1.runs[2].exit_code == 1);
  const std::string err = read_file(dir.file("out/lr=10000,grad_clip=0/stderr.log"));
  INFO(err);
  REQUIRE(err.find("non-finite") != std::string::npos);
  for (const char* f : {"summary.csv", "summary.md", "configs/lr=0.001,grad_clip=1.yaml", "logs/lr=0.01,grad_clip=1.log"})
    REQUIRE(fs::exists(dir.file("out/") + f));
  REQUIRE(read_file(dir.file("out/summary.csv")).find("\"lr=0.01,grad_clip=1\",0.01,1,finished,8,") != std::string::npos);
  // The child ran the resolved config with its thread count.
  const RunConfig ran = load_config(dir.file("out/lr=0.01,grad_clip=1/config.yaml"));
  REQUIRE(ran.optim.lr == 0.01f);
  REQUIRE(ran.train.threads == 1);

  // Again: nothing runs (finished runs are skipped; a run that stopped itself is final).
  const SweepResult r2 = run_sweep(s, o);
  for (const auto& run : r2.runs) REQUIRE_FALSE(run.ran);
  REQUIRE(r2.exit_code == 1);

  // Cut the second run back to its step-4 checkpoint (as after a crash) and break the first completely:
  // the second is resumed and ends bitwise where it did; the first is moved to .failed/ and rerun.
  const std::string second = dir.file("out/lr=0.01,grad_clip=1");
  const auto losses = train_losses(read_file(second + "/metrics.jsonl"));
  REQUIRE(losses.size() == 8);
  fs::remove(second + "/ckpt/step_00000008.safetensors");
  fs::remove(second + "/summary.md");
  const std::string first = dir.file("out/lr=0.001,grad_clip=1");
  fs::remove_all(first + "/ckpt");
  const SweepResult r3 = run_sweep(s, o);
  REQUIRE(r3.runs[0].ran);
  REQUIRE(r3.runs[1].ran);
  REQUIRE_FALSE(r3.runs[2].ran);
  REQUIRE(r3.runs[0].state == RunState::kFinished);
  REQUIRE(r3.runs[1].state == RunState::kFinished);
  REQUIRE(train_losses(read_file(second + "/metrics.jsonl")) == losses);
  REQUIRE(read_file(second + "/events.jsonl").find("\"kind\":\"resume\"") != std::string::npos);
  REQUIRE(fs::is_directory(dir.file("out/.failed")));
  REQUIRE(!fs::is_empty(dir.file("out/.failed")));

  // The same directory with a changed sweep is refused before anything starts.
  const Sweep changed = load_sweep(file, {"optim.weight_decay=0.3"});
  REQUIRE_THROWS_WITH(run_sweep(changed, o), Catch::Contains("optim.weight_decay"));

  // A dry run lists the commands and runs nothing.
  o.out_dir = dir.file("dry");
  o.dry_run = true;
  const SweepResult d = run_sweep(s, o);
  for (const auto& run : d.runs) REQUIRE_FALSE(run.ran);
  REQUIRE_FALSE(fs::exists(dir.file("dry")));
}

TEST_CASE("sweep: a grid larger than max_points is refused with its size before it is expanded", "[train][sweep]") {
  std::string lr = "[", wd = "[";
  for (int i = 0; i < 101; ++i) lr += (i ? ", " : "") + std::to_string(1e-4 * (i + 1));
  for (int i = 0; i < 100; ++i) wd += (i ? ", " : "") + std::to_string(1e-3 * i);
  const std::string grid = "grid:\n  optim.lr: " + lr + "]\n  optim.weight_decay: " + wd + "]\n";
  const auto t0 = std::chrono::steady_clock::now();
  const std::string msg = error_of(grid + "seeds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n");
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 2.0);  // nothing expanded
  CHECK_THAT(msg, Catch::Matchers::Contains("101000 points (101 × 100 × 10)"));
  CHECK_THAT(msg, Catch::Matchers::Contains("max_points = 10000 (the default"));
  // The limit is the sweep file's to raise or lower.
  CHECK_THAT(error_of("max_points: 5\ngrid: {optim.lr: [0.001, 0.01, 0.1], model.qk_norm: [false, true]}\n"),
             Catch::Matchers::Contains("6 points (3 × 2), more than max_points = 5"));
  CHECK(parse("max_points: 6\ngrid: {optim.lr: [0.001, 0.01, 0.1], model.qk_norm: [false, true]}\n").points.size() == 6);
  CHECK_THAT(error_of("max_points: 0\n"), Catch::Matchers::Contains("max_points: expected a whole number >= 1"));
  // One document, no tags, as in configs.
  CHECK_THAT(error_of("grid: {optim.lr: [0.01]}\n---\nseeds: [1]\n"), Catch::Matchers::Contains("several YAML documents"));
  CHECK_THAT(error_of("grid: {optim.lr: !!float [0.01]}\n"), Catch::Matchers::Contains("YAML tag"));
}
