// `attnlab repro`, `attnlab sweep` and `attnlab report` as a user meets them: the tiny reproduction in
// tests/data/repro_tiny (claims that PASS, one that FAILS, one with a missing metric -> ERROR), bad input
// rejected before any run, Ctrl-C, and the report hand-off (to a stub report.py, so this test does not
// depend on matplotlib).
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <thread>

#include "tests/support/fixtures.h"

using namespace attnlab::testing;
namespace fs = std::filesystem;

namespace {

const std::string kFixture = std::string(ATTNLAB_SOURCE_DIR) + "/tests/data/repro_tiny";
const std::string kTiny = std::string(ATTNLAB_SOURCE_DIR) + "/configs/tiny.yaml";

// A stand-in source tree: two reproductions to list, and a report.py that records its arguments.
struct StubHome {
  TempDir dir{"repro-home"};
  StubHome() {
    fs::create_directories(dir.file("experiments/report"));
    fs::create_directories(dir.file("experiments/alpha"));
    fs::create_directories(dir.file("experiments/beta"));
    fs::create_directories(dir.file("experiments/not-a-repro"));
    dir.write("experiments/alpha/repro.yaml",
              "name: alpha\nphenomenon: \"a phenomenon\"\n"
              "sources: [\"Smith & Jones 2024, A long title that is not printed, \\u00a73\", \"a note without a year\",\n"
              "          \"Smith & Jones 2024, the same paper, \\u00a75\", \"shared/docs/metrics.md \\u00a71\"]\n"
              "sweep: sweep.yaml\nbudgets: {quick: [train.steps=2], full: [train.steps=4], test: [train.steps=1]}\n"
              "recorded: {quick: {wall: \"86 s\", verdict: \"12/13\", where: \"2 cores\"}}\n"
              "claims:\n  - {id: a, text: t, lhs: {metric: loss}, op: \"<\", rhs: 1}\n");
    dir.write("experiments/beta/repro.yaml", "name: beta\n");
    dir.write("experiments/report/report.py",
              "import os, sys\n"
              "with open(os.path.join(os.path.dirname(__file__), 'argv.txt'), 'a') as f:\n"
              "    f.write(' '.join(sys.argv[1:]) + '\\n')\n");
  }
  std::string env() const { return "ATTNLAB_HOME=" + dir.path() + " "; }
  std::string argv() const { return read_file(dir.file("experiments/report/argv.txt")); }
};

// The last value of `field` in a metrics.jsonl, as written.
std::string last_field(const std::string& metrics, const std::string& field) {
  const std::regex re("\"" + field + "\":([^,}]+)");
  std::string last;
  for (std::sregex_iterator it(metrics.begin(), metrics.end(), re), end; it != end; ++it) last = (*it)[1];
  return last;
}

std::string g4(const std::string& number) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", std::stod(number));
  return buf;
}

}  // namespace

TEST_CASE("repro: runs the sweep, prints and writes the verdict, exits 1 on a FAIL or ERROR", "[e2e][repro]") {
  StubHome home;
  TempDir dir("repro");
  const std::string out = dir.file("out");
  const std::string cmd = home.env() + attnlab_binary() + " repro " + kFixture + " --budget test --out " + out;
  const auto r = run_command(cmd);
  INFO(r.output);
  REQUIRE(r.exit_code == 1);
  // The table, one row per claim, with the verdicts the fixture was written to produce.
  for (const char* row : {"| loss-falls |", "| higher-lr-learns-faster |", "| logits-grow-with-lr |",
                          "| impossible-loss |", "| missing-metric |"})
    REQUIRE(r.output.find(row) != std::string::npos);
  REQUIRE(std::regex_search(r.output, std::regex(R"(\| loss-falls \|[^\n]*\| PASS \|)")));
  REQUIRE(std::regex_search(r.output, std::regex(R"(\| higher-lr-learns-faster \|[^\n]*\| PASS \|)")));
  REQUIRE(std::regex_search(r.output, std::regex(R"(\| logits-grow-with-lr \|[^\n]*\| >= 2 × [^|]* \|[^\n]*\| PASS \|)")));
  REQUIRE(std::regex_search(r.output, std::regex(R"(\| impossible-loss \|[^\n]*\| < 0.01 \|[^\n]*\| FAIL \|)")));
  REQUIRE(std::regex_search(r.output, std::regex(R"(\| missing-metric \|[^\n]*\| ERROR \|)")));
  // The ERROR names the run directory, the metric and the selector.
  REQUIRE(r.output.find("metric 'no_such_metric' is missing from " + out + "/lr=0.001/metrics.jsonl") != std::string::npos);
  REQUIRE(r.output.find("layer 0, head -1") != std::string::npos);

  // The measured value is the run's own last val_loss (read here independently of the evaluator).
  const std::string val = last_field(read_file(out + "/lr=0.01/metrics.jsonl"), "val_loss");
  REQUIRE(!val.empty());
  REQUIRE(std::regex_search(r.output, std::regex("\\| higher-lr-learns-faster \\|[^\\n]*\\| " + g4(val) + " \\| PASS \\|")));

  // Files: the verdict, the sweep summary, the runs at the budget's length; the report was handed the sweep.
  const std::string md = read_file(out + "/verdict.md");
  REQUIRE(md.find("| claim | text | expected | measured | verdict |") != std::string::npos);
  REQUIRE(md.find("budget `test`") != std::string::npos);
  const std::string js = read_file(out + "/verdict.json");
  REQUIRE(js.find("\"passed\":false") != std::string::npos);
  REQUIRE(js.find("\"budget\":\"test\"") != std::string::npos);
  REQUIRE(std::regex_search(js, std::regex(R"("wall_s":[0-9.]+)")));  // this invocation trained both runs
  REQUIRE(js.find("\"runs\":2,\"runs_trained\":2") != std::string::npos);
  REQUIRE(std::regex_search(js, std::regex(R"("id":"impossible-loss"[^\n]*"verdict":"FAIL")")));
  REQUIRE(std::regex_search(js, std::regex(R"("id":"missing-metric"[^\n]*"verdict":"ERROR")")));
  REQUIRE(fs::exists(out + "/summary.md"));
  REQUIRE(fs::exists(out + "/lr=0.01/ckpt/step_00000020.safetensors"));
  REQUIRE(home.argv() == out + " --out " + out + "/report\n");

  // Again: nothing is rerun, the verdict is the same.
  const auto again = run_command(cmd + " --no-report");
  INFO(again.output);
  REQUIRE(again.exit_code == 1);
  REQUIRE(again.output.find("2 finished, 0 stopped early, 0 to run") != std::string::npos);
  REQUIRE(again.output.find(" start ") == std::string::npos);
  REQUIRE(read_file(out + "/verdict.json").find("\"passed\":false") != std::string::npos);
  REQUIRE(home.argv() == out + " --out " + out + "/report\n");  // --no-report: not called again
}

TEST_CASE("repro: exit 0 when every claim passes; bad names, budgets and claims fail before any run", "[e2e][repro]") {
  StubHome home;
  TempDir dir("repro-bad");
  // A copy of the fixture keeping only the claims that pass.
  fs::create_directories(dir.file("ok"));
  std::string repro = read_file(kFixture + "/repro.yaml");
  repro = repro.substr(0, repro.find("  - id: impossible-loss"));
  dir.write("ok/repro.yaml", repro);
  dir.write("ok/sweep.yaml", "base: " + kTiny + "\nset: [train.eval_every=10]\ngrid:\n  optim.lr: [1.0e-3, 1.0e-2]\n");
  const auto ok = run_command(home.env() + attnlab_binary() + " repro " + dir.file("ok") + " --out " + dir.file("ok-out") +
                              " --no-report");
  INFO(ok.output);
  REQUIRE(ok.exit_code == 0);
  REQUIRE(ok.output.find("3 of 3 claims pass") != std::string::npos);
  REQUIRE(read_file(dir.file("ok-out/verdict.json")).find("\"passed\":true") != std::string::npos);
  // The default budget is the first one listed.
  REQUIRE(fs::exists(dir.file("ok-out/lr=0.01/ckpt/step_00000020.safetensors")));

  const auto unknown = run_command(home.env() + attnlab_binary() + " repro gamma");
  INFO(unknown.output);
  REQUIRE(unknown.exit_code == 2);
  REQUIRE(unknown.output.find("unknown reproduction 'gamma'") != std::string::npos);
  REQUIRE(unknown.output.find("alpha, beta") != std::string::npos);
  // --list: phenomenon, short sources, the recorded figures per budget, the last local verdict (read from
  // runs/repro/NAME/BUDGET/verdict.json under the working directory), and a repro.yaml that does not parse.
  fs::create_directories(dir.file("runs/repro/alpha/full"));
  dir.write("runs/repro/alpha/full/verdict.json",
            "{\"date\":\"2026-12-04 10:00:00\",\"wall_s\":61.2,\"runs\":2,\"runs_trained\":2,"
            "\"claims\":[{\"verdict\":\"PASS\"},{\"verdict\":\"FAIL\"}]}\n");
  const auto list = run_command("cd " + dir.path() + " && " + home.env() + attnlab_binary() + " repro --list");
  INFO(list.output);
  REQUIRE(list.exit_code == 0);
  REQUIRE(list.output.find("alpha\n  phenomenon: a phenomenon\n"
                           "  sources:    Smith & Jones 2024; a note without a year\n"
                           "  quick:     12/13 claims pass, 86 s (2 cores)\n"
                           "  full:      not recorded; last run here: 1/2, 61 s (2026-12-04 10:00:00)\n"
                           "  run:        attnlab repro alpha [--budget quick|full|test]\n") != std::string::npos);
  REQUIRE(list.output.find("beta\n  ERROR: ") != std::string::npos);
  REQUIRE(list.output.find("no sweep") != std::string::npos);
  // A recorded figure must name a budget that exists and give PASSED/TOTAL.
  for (const std::string& bad : {std::string("recorded: {huge: {wall: 1 s, verdict: 1/2}}"),
                                 std::string("recorded: {quick: {wall: 1 s, verdict: 3/2}}"),
                                 std::string("recorded: {quick: {wall: 1 s, verdict: most}}"),
                                 std::string("recorded: {quick: {verdict: 1/2}}")}) {
    fs::create_directories(dir.file("rec"));
    dir.write("rec/repro.yaml", "sweep: sweep.yaml\nbudgets: {quick: [train.steps=2]}\n" + bad +
                                    "\nclaims:\n  - {id: a, text: t, lhs: {metric: loss}, op: \"<\", rhs: 1}\n");
    dir.write("rec/sweep.yaml", read_file(dir.file("ok/sweep.yaml")));
    const auto r = run_command(home.env() + attnlab_binary() + " repro " + dir.file("rec") + " --out " + dir.file("rec-out"));
    INFO(bad << "\n" << r.output);
    REQUIRE(r.exit_code == 2);
    REQUIRE(r.output.find("repro.yaml") != std::string::npos);
    REQUIRE(r.output.find("recorded.") != std::string::npos);
    REQUIRE_FALSE(fs::exists(dir.file("rec-out")));
  }

  const auto budget = run_command(home.env() + attnlab_binary() + " repro " + kFixture + " --budget huge --out " +
                                  dir.file("b-out"));
  INFO(budget.output);
  REQUIRE(budget.exit_code == 2);
  REQUIRE(budget.output.find("unknown budget 'huge' (budgets: test, longer)") != std::string::npos);
  REQUIRE_FALSE(fs::exists(dir.file("b-out")));

  // A claim whose run selector matches no grid point, and one that matches both.
  fs::create_directories(dir.file("bad"));
  dir.write("bad/sweep.yaml", read_file(dir.file("ok/sweep.yaml")));
  dir.write("bad/repro.yaml",
            "sweep: sweep.yaml\nclaims:\n"
            "  - {id: a, text: t, lhs: {run: {optim.lr: 0.5}, metric: loss}, op: \"<\", rhs: 1}\n"
            "  - {id: b, text: t, lhs: {run: {train.seed: 11}, metric: loss}, op: \"<\", rhs: 1}\n");
  const auto bad = run_command(home.env() + attnlab_binary() + " repro " + dir.file("bad") + " --out " + dir.file("bad-out"));
  INFO(bad.output);
  REQUIRE(bad.exit_code == 2);
  REQUIRE(bad.output.find("claim error") != std::string::npos);
  REQUIRE(bad.output.find("{optim.lr: 0.5} matches no run") != std::string::npos);
  REQUIRE(bad.output.find("{train.seed: 11} matches 2 runs") != std::string::npos);
  REQUIRE_FALSE(fs::exists(dir.file("bad-out")));

  // A malformed claim is reported with its line.
  dir.write("bad/repro.yaml", "sweep: sweep.yaml\nclaims:\n  - {id: a, text: t, lhs: {metric: loss}, op: \"=>\", rhs: 1}\n");
  const auto op = run_command(home.env() + attnlab_binary() + " repro " + dir.file("bad"));
  INFO(op.output);
  REQUIRE(op.exit_code == 2);
  REQUIRE(op.output.find("repro.yaml:3:") != std::string::npos);
  REQUIRE(op.output.find("expected one of >=, >, <=, <") != std::string::npos);
}

TEST_CASE("sweep: bad sweep files exit 2 before any run starts", "[e2e][sweep]") {
  TempDir dir("sweep-bad");
  const std::string head = "base: " + kTiny + "\n";
  struct Case {
    const char* body;
    const char* expect;
  };
  const Case cases[] = {
      {"grid:\n  optim.lr: [1.0e-3]\n  model.n_haed: [2, 4]\n", "did you mean 'model.n_head'"},
      {"grid:\n  optim.lr: [1.0e-3, 1.0e-2]\n  model.n_layer: []\n", "empty axis"},
      {"zip:\n  optim.lr: [1.0e-3, 1.0e-2]\n  train.seed: [1, 2, 3]\n", "equal lengths"},
      {"grid:\n  optim.lr: [1.0e-3, fast]\n", "optim.lr"},
  };
  for (const Case& c : cases) {
    const std::string file = dir.write("s.yaml", head + c.body);
    const auto r = run_command(attnlab_binary() + " sweep " + file + " --out " + dir.file("out"));
    INFO(c.body);
    INFO(r.output);
    REQUIRE(r.exit_code == 2);
    REQUIRE(r.output.find(c.expect) != std::string::npos);
    REQUIRE(r.output.find("s.yaml:") != std::string::npos);
    REQUIRE_FALSE(fs::exists(dir.file("out")));  // nothing ran, nothing was created
  }
  const auto missing = run_command(attnlab_binary() + " sweep " + dir.file("nope.yaml"));
  REQUIRE(missing.exit_code == 2);
  REQUIRE(missing.output.find("nope.yaml") != std::string::npos);
}

TEST_CASE("sweep: Ctrl-C stops every run with a checkpoint; the next call resumes them", "[e2e][sweep]") {
  TempDir dir("sweep-int");
  const std::string file = dir.write(
      "s.yaml", "base: " + kTiny + "\nset: [train.steps=1000000, train.checkpoint_every=50, instrument.enabled=false, "
                "train.eval_every=0]\ngrid:\n  optim.lr: [1.0e-3, 1.0e-2]\n");
  const std::string out = dir.file("out");
  const std::string log = dir.file("log.txt");
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    freopen(log.c_str(), "w", stderr);
    const std::string bin = attnlab_binary();
    execl(bin.c_str(), bin.c_str(), "sweep", file.c_str(), "--out", out.c_str(), "--jobs", "2", "--threads", "1",
          (char*)nullptr);
    _exit(127);
  }
  // Wait until both runs have written a checkpoint, then interrupt the sweep (only the sweep process).
  const auto t0 = std::chrono::steady_clock::now();
  auto has_ckpt = [&](const char* run) { return fs::exists(out + "/" + run + "/ckpt/step_00000050.safetensors"); };
  while (!(has_ckpt("lr=0.001") && has_ckpt("lr=0.01")) &&
         std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(has_ckpt("lr=0.001"));
  REQUIRE(has_ckpt("lr=0.01"));
  kill(pid, SIGINT);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  INFO(read_file(log));
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 130);
  for (const char* run : {"lr=0.001", "lr=0.01"}) {
    const std::string events = read_file(out + "/" + run + "/events.jsonl");
    INFO(events);
    REQUIRE(events.find("\"kind\":\"interrupted\"") != std::string::npos);
  }
  REQUIRE(read_file(out + "/summary.csv").find("incomplete") != std::string::npos);
  const auto plan = run_command(attnlab_binary() + " sweep " + file + " --out " + out + " --dry-run");
  INFO(plan.output);
  REQUIRE(plan.exit_code == 0);
  REQUIRE(plan.output.find("train --resume " + out + "/lr=0.001") != std::string::npos);
  REQUIRE(plan.output.find("train --resume " + out + "/lr=0.01") != std::string::npos);
}

TEST_CASE("report: hands its arguments to report.py, with clear errors when it cannot", "[e2e][report]") {
  StubHome home;
  const auto ok = run_command(home.env() + attnlab_binary() + " report runs/a runs/b --out /tmp/x");
  INFO(ok.output);
  REQUIRE(ok.exit_code == 0);
  REQUIRE(home.argv() == "runs/a runs/b --out /tmp/x\n");

  const auto no_python = run_command(home.env() + "ATTNLAB_PYTHON=/nonexistent/python3 " + attnlab_binary() + " report x");
  INFO(no_python.output);
  REQUIRE(no_python.exit_code == 2);
  REQUIRE(no_python.output.find("/nonexistent/python3") != std::string::npos);

  fs::remove(home.dir.file("experiments/report/report.py"));
  const auto no_script = run_command(home.env() + attnlab_binary() + " report x");
  INFO(no_script.output);
  REQUIRE(no_script.exit_code == 2);
  REQUIRE(no_script.output.find("experiments/report/report.py is missing") != std::string::npos);
}

TEST_CASE("repro: claims over seeds in YAML (over, require, over_reduce, div/absdiff, across), and their errors",
          "[e2e][repro]") {
  StubHome home;
  TempDir dir("repro-seeds");
  dir.write("sweep.yaml", "base: " + kTiny + "\nset: [train.steps=12, train.eval_every=6]\nseeds: [1, 2, 3]\n"
                          "grid:\n  optim.lr: [1.0e-3, 1.0e-2]\n");
  dir.write("repro.yaml",
            "sweep: sweep.yaml\nclaims:\n"
            "  - id: paired\n    text: t\n    over: train.seed\n    require: all\n"
            "    lhs: {run: {optim.lr: 0.01}, metric: val_loss}\n    op: \"<\"\n"
            "    rhs: {run: {optim.lr: 0.001}, metric: val_loss}\n"
            "  - id: ratio\n    text: t\n    over: {train.seed: [1, 3]}\n    require: 1\n"
            "    lhs: {div: [{run: {optim.lr: 0.001}, metric: val_loss}, {run: {optim.lr: 0.01}, metric: val_loss}]}\n"
            "    op: \">\"\n    rhs: 1\n"
            "  - id: median\n    text: t\n    over: train.seed\n    over_reduce: median\n"
            "    lhs: {absdiff: [{run: {optim.lr: 0.001}, metric: val_loss}, {run: {optim.lr: 0.01}, metric: val_loss}]}\n"
            "    op: \">=\"\n    rhs: 0\n"
            "  - id: best\n    text: t\n"
            "    lhs: {run: {train.seed: 1}, metric: val_loss, across: min}\n    op: \"<\"\n"
            "    rhs: {run: {train.seed: 1}, metric: val_loss, across: sensitivity, plus: 100}\n");
  const auto r = run_command(home.env() + attnlab_binary() + " repro " + dir.path() + " --out " + dir.file("out") + " --no-report");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("3 of 3 pass (train.seed 1: ") != std::string::npos);
  CHECK(r.output.find("in at least 1 of the 2 values of train.seed") != std::string::npos);
  CHECK(r.output.find("median over train.seed of [") != std::string::npos);
  CHECK(r.output.find("min over 2 runs = ") != std::string::npos);
  const std::string js = read_file(dir.file("out/verdict.json"));
  CHECK(js.find("\"points\":[{\"value\":\"1\"") != std::string::npos);

  auto bad = [&](const std::string& claim_yaml) {
    dir.write("repro.yaml", "sweep: sweep.yaml\nclaims:\n" + claim_yaml);
    const auto b = run_command(home.env() + attnlab_binary() + " repro " + dir.path() + " --out " + dir.file("bad-out"));
    INFO(b.output);
    CHECK(b.exit_code == 2);
    CHECK_FALSE(fs::exists(dir.file("bad-out")));
    return b.output;
  };
  const std::string sel = "{run: {optim.lr: 0.01}, metric: val_loss}";
  CHECK(bad("  - {id: a, text: t, require: all, lhs: " + sel + ", op: \"<\", rhs: 1}\n").find("require: only meaningful with over") != std::string::npos);
  CHECK(bad("  - {id: a, text: t, over: train.seed, require: all, over_reduce: median, lhs: " + sel + ", op: \"<\", rhs: 1}\n")
            .find("not both") != std::string::npos);
  CHECK(bad("  - {id: a, text: t, over: seed, lhs: " + sel + ", op: \"<\", rhs: 1}\n").find("not a config key") != std::string::npos);
  CHECK(bad("  - {id: a, text: t, over: train.seed, require: 4, lhs: " + sel + ", op: \"<\", rhs: 1}\n")
            .find("require: 4 is not between 1 and the 3 values") != std::string::npos);
  CHECK(bad("  - {id: a, text: t, over: train.seed, require: all, lhs: " + sel + ", op: \"<\", rhs: 1}\n"
            "  - {id: b, text: t, over: {train.seed: [1, 9]}, lhs: " + sel + ", op: \"<\", rhs: 1}\n")
            .find("{optim.lr: 0.01, train.seed: 9} matches no run") != std::string::npos);
  CHECK(bad("  - {id: a, text: t, lhs: {div: [" + sel + "]}, op: \"<\", rhs: 1}\n").find("a list of two sides") != std::string::npos);
  CHECK(bad("  - {id: a, text: t, lhs: {run: {optim.lr: 0.01}, metric: val_loss, across: most}, op: \"<\", rhs: 1}\n")
            .find("expected max, min, mean, median or sensitivity") != std::string::npos);
  CHECK(bad("  - {id: a, text: t, lhs: " + sel + ", op: \"<\", rhs: 1}\n").find("matches 3 runs") != std::string::npos);
}
