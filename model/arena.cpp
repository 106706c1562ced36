#include "model/arena.h"

#include <cstdlib>
#include <cstring>

namespace attnlab {

Arena::~Arena() { std::free(data_); }

int64_t Arena::reserve(int64_t n) {
  ATTNLAB_CHECK(data_ == nullptr, "Arena::reserve after allocate");
  ATTNLAB_CHECK(n >= 0, "Arena::reserve negative size");
  const int64_t off = size_;
  size_ += (n + 15) / 16 * 16;  // 16 floats = 64 bytes keeps every slice cache-line aligned
  return off;
}

void Arena::allocate(float fill_value) {
  ATTNLAB_CHECK(data_ == nullptr, "Arena::allocate twice");
  const size_t bytes = size_t(size_ > 0 ? size_ : 16) * sizeof(float);
  data_ = static_cast<float*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
  ATTNLAB_CHECK(data_ != nullptr, "Arena::allocate out of memory");
  fill(fill_value);
}

void Arena::fill(float v) {
  if (v == 0.0f) {
    std::memset(data_, 0, size_t(size_) * sizeof(float));
  } else {
    for (int64_t i = 0; i < size_; ++i) data_[i] = v;
  }
}

}  // namespace attnlab
