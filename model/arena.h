// arena.h: one 64-byte-aligned float allocation carved into named slices at construction.
// Usage: reserve() every slice (returns an offset), then allocate() once, then view(offset).
// Non-copyable and non-movable so that views into it can never dangle through a move.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/tensor.h"

namespace attnlab {

class Arena {
 public:
  Arena() = default;
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  Arena(Arena&&) = delete;
  Arena& operator=(Arena&&) = delete;

  // Reserves n floats (rounded up to a 64-byte multiple) and returns the slice's offset. Before allocate().
  int64_t reserve(int64_t n);
  // Allocates the reserved total once and fills it with `fill`.
  void allocate(float fill = 0.0f);
  float* data() { return data_; }
  const float* data() const { return data_; }
  int64_t size() const { return size_; }  // floats, including alignment padding
  float* at(int64_t offset) { return data_ + offset; }
  const float* at(int64_t offset) const { return data_ + offset; }
  void fill(float v);

 private:
  float* data_ = nullptr;
  int64_t size_ = 0;
};

}  // namespace attnlab
