// safetensors.h: reading and writing the safetensors format (the format the PyTorch/NumPy world reads):
//   8-byte little-endian header length N, N bytes of JSON header, then the raw tensor bytes.
// Header: {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//          "__metadata__": {"key": "value", ...}} with offsets relative to the byte after the header.
// Writes are atomic (temp file in the same directory, fsync, rename), so a crash never leaves a
// half-written checkpoint under the final name.
#pragma once
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnlab {

class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class DType : uint8_t { kF32, kI32, kI64, kU64 };

struct TensorOut {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // shape-product elements of dtype, little-endian (host order on x86)
};

// Per-tensor integrity: every file written carries, for each tensor NAME, the metadata entry
// "crc32.NAME" = its data's CRC-32 (zlib / IEEE polynomial, 8 lowercase hex digits), and SafetensorsFile
// refuses a tensor whose bytes do not match, naming the file and the tensor.
inline const std::string kChecksumPrefix = "crc32.";

// Throws IoError naming the path and the failing operation. Metadata keys starting with kChecksumPrefix
// are replaced by the computed checksums.
void write_safetensors(const std::string& path, const std::vector<TensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata);

struct TensorIn {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // raw little-endian data
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Reads and validates the whole file: header length within the file, well-formed JSON, known dtypes,
  // offsets in order, inside the data section, matching dtype × shape, no overlaps. Throws IoError
  // naming the path and the first problem found ("truncated", "tensor 'x': offsets ... exceed ...").
  explicit SafetensorsFile(const std::string& path);
  bool has(const std::string& name) const;
  const TensorIn& tensor(const std::string& name) const;  // throws IoError if absent
  const std::map<std::string, TensorIn>& tensors() const { return tensors_; }
  // The metadata without the checksum entries (crc32.<name>), which the constructor has verified.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Whether the file carried per-tensor checksums (every file attnlab writes does; a file from another
  // writer or from before them does not, and is read unverified).
  bool checksummed() const { return checksummed_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::map<std::string, TensorIn> tensors_;
  std::map<std::string, std::string> metadata_;
  bool checksummed_ = false;
};

}  // namespace attnlab
