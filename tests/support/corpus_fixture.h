// corpus_fixture.h: a small prose corpus for tests, built from tests/data/gutenberg_excerpt (three book
// openings) with the same prepare_corpus the real `attnlab data get` uses, so no test needs the network.
#pragma once
#include <string>

#include "train/corpus.h"

namespace attnlab::testing {

inline std::string gutenberg_excerpt_dir() { return std::string(ATTNLAB_SOURCE_DIR) + "/tests/data/gutenberg_excerpt"; }

// Writes DIR/gutenberg.{txt,index} (the three excerpts) and DIR/alice.{txt,index} (Alice's excerpt).
inline void make_fixture_corpus(const std::string& dir) {
  prepare_corpus(gutenberg_excerpt_dir(), dir, "gutenberg", {"austen-emma", "carroll-alice", "melville-moby_dick"},
                 "test fixture");
  prepare_corpus(gutenberg_excerpt_dir(), dir, "alice", {"carroll-alice"}, "test fixture");
}

}  // namespace attnlab::testing
