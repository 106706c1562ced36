// libFuzzer entry point for one target, chosen at compile time (-DATTNLAB_FUZZ_TARGET=config, ...).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return attnlab::fuzz::ATTNLAB_FUZZ_TARGET(data, size);
}
