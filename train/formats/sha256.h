// sha256.h: SHA-256 (FIPS 180-4), for recording which bytes a run trained on (run.json) and for checking
// a prepared corpus against the digest it was published with. Not on any hot path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace attnlab {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  std::string hex_digest();  // finishes the hash: 64 lowercase hex digits; the object is then spent

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;  // bytes hashed
};

std::string sha256_hex(const void* data, size_t n);

}  // namespace attnlab
