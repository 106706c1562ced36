// Replays every kept fuzz input — the corpus libFuzzer grew (tests/fuzz/corpus/<target>/) and every input
// that once crashed or hung a reader (tests/fuzz/crashes/<target>/) — through its target: a reader may only
// refuse them with its documented error, so any other exception fails here and a crash fails the run.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/fuzz/targets.h"

namespace fs = std::filesystem;

TEST_CASE("every kept fuzz input and past crash is refused cleanly or read", "[fuzz]") {
  const fs::path root = fs::path(ATTNLAB_SOURCE_DIR) / "tests" / "fuzz";
  int total = 0;
  for (const auto& t : attnlab::fuzz::targets()) {
    int n = 0;
    for (const char* kind : {"corpus", "crashes"}) {
      const fs::path dir = root / kind / t.name;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(dir, ec)) {
        if (!e.is_regular_file()) continue;
        std::ifstream in(e.path(), std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        const std::string bytes = ss.str();
        INFO(t.name << ": " << e.path().string());
        REQUIRE_NOTHROW(t.run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
        ++n;
      }
    }
    INFO(t.name);
    CHECK(n > 0);  // every target has at least its seeds
    total += n;
  }
  CHECK(total >= 5);
}
