// `attnlab repro gradient-flow` end to end on the real reproduction (experiments/gradient-flow), with its
// `test` budget (24 steps per run): every claim is evaluated (PASS or FAIL, never ERROR: the per-layer
// gradient metrics, rho_grad and the events.<kind> counts exist for every run), the verdict files are
// written, and the exit code agrees with the verdicts. The runs read a small fixture corpus
// (tests/support/corpus_fixture.h) through $ATTNLAB_DATA, so no network is needed.
#include <catch2/catch.hpp>

#include <filesystem>

#include "tests/support/corpus_fixture.h"
#include "tests/support/fixtures.h"

using namespace attnlab::testing;
namespace fs = std::filesystem;

TEST_CASE("repro gradient-flow runs end to end; every claim, the event counts included, is evaluated",
          "[e2e][repro][slow]") {
  TempDir dir("repro-gf");
  make_fixture_corpus(dir.file("corpora"));
  const auto r = run_command("ATTNLAB_DATA=" + dir.file("corpora") + " " + attnlab_binary() +
                             " repro gradient-flow --budget test --jobs 2 --out " + dir.file("out"));
  INFO(r.output);
  REQUIRE((r.exit_code == 0 || r.exit_code == 1));
  const std::string verdict = read_file(dir.file("out") + "/verdict.json");
  REQUIRE_FALSE(verdict.empty());
  for (const char* id : {"pre-balanced-at-init", "post-vanishes-at-init", "warn-vanishing-post",
                         "no-explosion-warning-pre", "post-worse-loss"}) {
    INFO(id);
    REQUIRE(verdict.find(std::string("\"") + id + "\"") != std::string::npos);
    REQUIRE(r.output.find(id) != std::string::npos);
  }
  REQUIRE(verdict.find("ERROR") == std::string::npos);
  const bool any_fail = verdict.find("\"FAIL\"") != std::string::npos;
  REQUIRE(r.exit_code == (any_fail ? 1 : 0));
  REQUIRE(fs::exists(dir.file("out") + "/verdict.md"));
  // 24 steps: no streak can last the 100-step window, so no depth warning fired on any run.
  for (const auto& e : fs::directory_iterator(dir.file("out"))) {
    if (!fs::exists(e.path() / "events.jsonl")) continue;
    INFO(e.path());
    REQUIRE(read_file((e.path() / "events.jsonl").string()).find("grad_depth_ratio_params") == std::string::npos);
  }
}
