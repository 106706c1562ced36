// `attnlab repro logit-growth` end to end on the real reproduction (experiments/logit-growth), with its
// `test` budget (150 steps per run): every claim is evaluated (PASS or FAIL, never ERROR), the verdict
// files and the report are written, and the exit code agrees with the verdicts. The runs read a small
// fixture corpus (tests/support/corpus_fixture.h) through $ATTNLAB_DATA, so no network is needed.
#include <catch2/catch.hpp>

#include <filesystem>
#include <regex>

#include "tests/support/corpus_fixture.h"
#include "tests/support/fixtures.h"

using namespace attnlab::testing;
namespace fs = std::filesystem;

TEST_CASE("repro logit-growth runs end to end and prints its verdict table", "[e2e][repro][slow]") {
  TempDir dir("repro-lg");
  make_fixture_corpus(dir.file("corpora"));
  const auto r = run_command("ATTNLAB_DATA=" + dir.file("corpora") + " " + attnlab_binary() + " repro logit-growth --budget test --out " + dir.file("out"));
  INFO(r.output);
  REQUIRE((r.exit_code == 0 || r.exit_code == 1));
  const std::string verdict = read_file(dir.file("out") + "/verdict.json");
  REQUIRE_FALSE(verdict.empty());
  for (const char* id : {"logit-growth", "qknorm-bounded", "entropy-collapse", "high-lr-degrades"}) {
    INFO(id);
    REQUIRE(verdict.find(std::string("\"") + id + "\"") != std::string::npos);
    REQUIRE(r.output.find(id) != std::string::npos);  // the table is printed
  }
  REQUIRE(verdict.find("ERROR") == std::string::npos);
  const bool any_fail = verdict.find("\"FAIL\"") != std::string::npos;
  REQUIRE(r.exit_code == (any_fail ? 1 : 0));
  REQUIRE(fs::exists(dir.file("out") + "/verdict.md"));
  REQUIRE(fs::exists(dir.file("out") + "/summary.csv"));
  REQUIRE(fs::exists(dir.file("out") + "/report/index.html"));
}
