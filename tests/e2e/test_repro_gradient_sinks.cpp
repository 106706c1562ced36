// `attnlab repro gradient-sinks` end to end on the real reproduction (experiments/gradient-sinks) with its
// `test` budget (12 runs of 40 steps at 2 layers, batch 4): every claim is evaluated per seed (PASS or FAIL,
// never ERROR: every selector finds its run and its metric at every seed), the verdict files are written, and
// the exit code agrees with the verdicts. The runs read the fixture corpus through $ATTNLAB_DATA.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>

#include "tests/support/corpus_fixture.h"
#include "tests/support/fixtures.h"

using namespace attnlab::testing;
namespace fs = std::filesystem;

TEST_CASE("repro gradient-sinks runs end to end with per-seed claims", "[e2e][repro][slow]") {
  TempDir dir("repro-gs");
  make_fixture_corpus(dir.file("corpora"));
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run_command("ATTNLAB_DATA=" + dir.file("corpora") + " " + attnlab_binary() +
                             " repro gradient-sinks --budget test --no-report --out " + dir.file("out"));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(r.output);
  REQUIRE((r.exit_code == 0 || r.exit_code == 1));
  const std::string verdict = read_file(dir.file("out") + "/verdict.json");
  REQUIRE_FALSE(verdict.empty());
  for (const char* id : {"sink-forms", "no-sink-without-bos", "rgs-above-init", "rgs-above-nobos", "vscale-keeps-sink",
                         "vscale-flattens-rgs", "vscale-rgs-cut-median", "vscale-cuts-hout", "vscale-cuts-rmlp",
                         "bwd-flattens-rgs", "bwd-val-loss"}) {
    INFO(id);
    REQUIRE(verdict.find(std::string("\"") + id + "\"") != std::string::npos);
  }
  REQUIRE(verdict.find("ERROR") == std::string::npos);
  REQUIRE(r.output.find("of 3 pass (train.seed 0: ") != std::string::npos);  // per-seed verdicts are printed
  REQUIRE(verdict.find("\"points\":[{\"value\":\"0\"") != std::string::npos);
  const bool any_fail = verdict.find("\"FAIL\"") != std::string::npos;
  REQUIRE(r.exit_code == (any_fail ? 1 : 0));
  for (const char* run : {"seed=0,v_scale=off,bos=true", "seed=2,v_scale=learned,bos=true",
                          "seed=1,v_scale=backward_only,bos=true", "seed=2,v_scale=off,bos=false"})
    REQUIRE(fs::exists(dir.file("out") + "/" + run + "/summary.md"));
  WARN("repro gradient-sinks --budget test took " << secs << " s");
  CHECK(secs < 60.0);
}
