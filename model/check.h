// check.h: ATTNLAB_CHECK(cond, msg) guards invariants at function entry. It stays on in release builds and
// aborts with file:line, because a broken invariant in library code is a bug, not an input error.
// Input errors (config, files) are exceptions thrown at the I/O boundary instead; see train/config/config.h.
#pragma once
#include <cstdio>
#include <cstdlib>

#define ATTNLAB_CHECK(cond, msg)                                                             \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "attnlab: invariant failed at %s:%d: %s (%s)\n", __FILE__, __LINE__, \
                   (msg), #cond);                                                            \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)
