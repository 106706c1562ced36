// targets.h: the fuzz targets (tests/fuzz/README.md). Each takes arbitrary bytes and feeds them to one
// reader of user input; a reader may refuse them only with its documented error (ConfigError, IoError,
// ClaimError, DataError). Anything else — another exception, a crash, a sanitizer report, a hang — is a
// bug. The same functions run under libFuzzer (fuzz_main.cpp, `bash .ci/fuzz`) and replay the kept corpus
// and every past crash in the unit suite (test_fuzz_replay.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace attnlab::fuzz {

// Run configs: the bytes as a YAML file, and their first line as a --set override.
int config(const uint8_t* data, size_t size);
// Sweep files (base_config inline or a base path; grid, zip, range, seeds, max_points).
int sweep(const uint8_t* data, size_t size);
// Reproduction files (budgets and claims).
int repro(const uint8_t* data, size_t size);
// Safetensors files (checkpoints, flight records, grads), read from an in-memory file.
int safetensors(const uint8_t* data, size_t size);
// The claims reader: "CLAIMS YAML\n%%\nMETRICS JSONL" — the claims of a repro file, evaluated against the
// metrics text of one run.
int claims(const uint8_t* data, size_t size);

struct Target {
  const char* name;
  int (*run)(const uint8_t*, size_t);
};
const std::vector<Target>& targets();

}  // namespace attnlab::fuzz
