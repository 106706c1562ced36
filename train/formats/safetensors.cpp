// safetensors.cpp: writer and strict reader of the safetensors format, with the small JSON subset it needs.
// The reader is schema-directed (it parses exactly the header shape it expects) rather than building a
// generic JSON tree, so memory stays a small multiple of the file size even for a hostile 100 MB header,
// and every error can say which tensor and which field is wrong.
#include "train/formats/safetensors.h"

#include "train/formats/files.h"

#include <fcntl.h>
#include <zlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

#include "train/formats/files.h"

namespace attnlab {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; tensors are written from host memory as is");

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // a real header is kilobytes; anything above is corrupt
constexpr int kMaxRank = 64;                         // no real tensor has more dims; bounds per-tensor memory

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kF32: return "F32";
    case DType::kI32: return "I32";
    case DType::kI64: return "I64";
    case DType::kU64: return "U64";
  }
  return "?";
}

int64_t itemsize(DType d) { return d == DType::kF32 || d == DType::kI32 ? 4 : 8; }

bool parse_dtype(const std::string& s, DType* d) {
  for (DType c : {DType::kF32, DType::kI32, DType::kI64, DType::kU64}) {
    if (s == dtype_name(c)) { *d = c; return true; }
  }
  return false;
}

// numel * itemsize with overflow and sign checks; false if the shape is invalid or the size overflows.
bool shape_bytes(const std::vector<int64_t>& shape, DType d, int64_t* bytes) {
  int64_t n = 1;
  for (int64_t dim : shape) {
    if (dim < 0 || __builtin_mul_overflow(n, dim, &n)) return false;
  }
  return !__builtin_mul_overflow(n, itemsize(d), bytes);
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::string errno_str(int err) { return std::strerror(err); }

// Appends `s` as a JSON string literal (quotes included). Non-ASCII UTF-8 passes through unchanged.
void append_json_string(std::string& out, const std::string& s) {
  static const char* kHex = "0123456789abcdef";
  out += '"';
  for (unsigned char c : s) {
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) { out += "\\u00"; out += kHex[c >> 4]; out += kHex[c & 15]; }
    else out += char(c);
  }
  out += '"';
}

// A name from a (possibly hostile) file, made printable and short for an error message.
std::string quote_name(const std::string& name) {
  std::string q;
  append_json_string(q, name.size() > 200 ? name.substr(0, 200) + "..." : name);
  q.front() = q.back() = '\'';
  return q;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// ---------------------------------------------------------------------------------------------------
// Reader side.

struct ParsedTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  int64_t begin = 0, end = 0;
};

// Cursor over the header text; every error names the path and the byte offset in the header.
class HeaderParser {
 public:
  HeaderParser(const std::string& path, const std::string& text)
      : path_(path), s_(text), i_(0) {}

  void parse(std::vector<ParsedTensor>* tensors, std::map<std::string, std::string>* metadata) {
    bool seen_metadata = false;
    std::map<std::string, size_t> seen;  // name -> index in *tensors
    skip_ws();
    expect('{', "the header must be a JSON object");
    skip_ws();
    if (!eat('}')) {
      for (;;) {
        skip_ws();
        const std::string key = read_string("a tensor name");
        skip_ws();
        expect(':', "':' after a key");
        skip_ws();
        if (key == "__metadata__") {
          if (seen_metadata) fail("duplicate __metadata__ entry");
          seen_metadata = true;
          parse_metadata(metadata);
        } else {
          if (!seen.emplace(key, tensors->size()).second) fail("duplicate tensor name " + quote_name(key));
          tensors->push_back(parse_tensor(key));
        }
        skip_ws();
        if (eat('}')) break;
        expect(',', "',' or '}' after a header entry");
      }
    }
    skip_ws();
    if (i_ != s_.size()) fail_at("trailing characters after the JSON header object");
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const { throw IoError(path_ + ": " + msg); }
  [[noreturn]] void fail_at(const std::string& msg) const {
    throw IoError(path_ + ": invalid JSON header at byte " + std::to_string(i_) + ": " + msg);
  }

  // What is at the cursor, for "expected X, found Y" messages.
  std::string found() const {
    if (i_ >= s_.size()) return "the end of the header";
    const char c = s_[i_];
    if (c == '{') return "an object";
    if (c == '[') return "an array";
    if (c == '"') return "a string";
    if (c == '-' || (c >= '0' && c <= '9')) return "a number";
    if (c == 't' || c == 'f') return "a boolean";
    if (c == 'n') return "null";
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "a control character";
    return std::string("'") + c + "'";
  }

  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  bool eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) { ++i_; return true; }
    return false;
  }
  void expect(char c, const char* what) {
    if (!eat(c)) fail_at(std::string("expected ") + what + ", found " + found());
  }

  uint32_t read_hex4() {
    if (i_ + 4 > s_.size()) fail_at("truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
      else fail_at("bad hex digit in \\u escape");
    }
    return v;
  }

  std::string read_string(const char* what) {
    if (i_ >= s_.size() || s_[i_] != '"') fail_at(std::string("expected ") + what + " (a string), found " + found());
    ++i_;
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) fail_at("unterminated string");
      const unsigned char c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return out;
      if (c < 0x20) fail_at("unescaped control character in a string");
      if (c != '\\') { out += char(c); continue; }
      if (i_ >= s_.size()) fail_at("unterminated string");
      const char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = read_hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail_at("unpaired low surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (i_ + 2 > s_.size() || s_[i_] != '\\' || s_[i_ + 1] != 'u') fail_at("unpaired high surrogate in \\u escape");
            i_ += 2;
            const uint32_t lo = read_hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail_at("unpaired high surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: fail_at(std::string("invalid escape '\\") + e + "' in a string");
      }
    }
  }

  // A JSON integer (no fraction, no exponent) that fits int64.
  int64_t read_int(const std::string& context) {
    const size_t start = i_;
    const bool neg = eat('-');
    if (i_ >= s_.size() || s_[i_] < '0' || s_[i_] > '9') {
      i_ = start;
      fail_at(context + ": expected an integer, found " + found());
    }
    if (s_[i_] == '0' && i_ + 1 < s_.size() && s_[i_ + 1] >= '0' && s_[i_ + 1] <= '9') fail_at(context + ": leading zero in a number");
    // Accumulate as a negative number so INT64_MIN is representable; reject overflow.
    int64_t v = 0;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
      const int d = s_[i_++] - '0';
      if (__builtin_mul_overflow(v, int64_t(10), &v) || __builtin_sub_overflow(v, int64_t(d), &v)) {
        fail_at(context + ": integer out of range");
      }
    }
    if (i_ < s_.size() && (s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E')) {
      fail_at(context + ": expected an integer, found a non-integer number");
    }
    if (!neg) {
      if (v == std::numeric_limits<int64_t>::min()) fail_at(context + ": integer out of range");
      v = -v;
    }
    return v;
  }

  // [int, int, ...] with at most max_len elements.
  std::vector<int64_t> read_int_array(const std::string& context, size_t max_len) {
    std::vector<int64_t> v;
    if (!eat('[')) fail_at(context + ": expected an array of integers, found " + found());
    skip_ws();
    if (eat(']')) return v;
    for (;;) {
      skip_ws();
      if (v.size() == max_len) fail_at(context + ": more than " + std::to_string(max_len) + " elements");
      v.push_back(read_int(context));
      skip_ws();
      if (eat(']')) return v;
      expect(',', "',' or ']' in an array");
    }
  }

  void parse_metadata(std::map<std::string, std::string>* metadata) {
    if (!eat('{')) fail_at("__metadata__: expected an object of strings, found " + found());
    skip_ws();
    if (eat('}')) return;
    for (;;) {
      skip_ws();
      std::string key = read_string("a metadata key");
      skip_ws();
      expect(':', "':' after a key");
      skip_ws();
      std::string value = read_string(("__metadata__ " + quote_name(key) + ": a value").c_str());
      if (!metadata->emplace(key, std::move(value)).second) fail("__metadata__: duplicate key " + quote_name(key));
      skip_ws();
      if (eat('}')) return;
      expect(',', "',' or '}' in __metadata__");
    }
  }

  ParsedTensor parse_tensor(const std::string& name) {
    const std::string ctx = "tensor " + quote_name(name);
    ParsedTensor t;
    t.name = name;
    bool have_dtype = false, have_shape = false, have_offsets = false;
    if (!eat('{')) fail_at(ctx + ": expected an object {dtype, shape, data_offsets}, found " + found());
    skip_ws();
    if (!eat('}')) {
      for (;;) {
        skip_ws();
        const std::string key = read_string("a field name");
        skip_ws();
        expect(':', "':' after a key");
        skip_ws();
        if (key == "dtype") {
          if (have_dtype) fail(ctx + ": duplicate field \"dtype\"");
          have_dtype = true;
          const std::string d = read_string((ctx + ": dtype").c_str());
          if (!parse_dtype(d, &t.dtype)) fail(ctx + ": unknown dtype " + quote_name(d) + " (supported: F32, I32, I64, U64)");
        } else if (key == "shape") {
          if (have_shape) fail(ctx + ": duplicate field \"shape\"");
          have_shape = true;
          t.shape = read_int_array(ctx + ": shape", kMaxRank);
          for (int64_t d : t.shape) {
            if (d < 0) fail(ctx + ": negative dimension in shape " + shape_str(t.shape));
          }
        } else if (key == "data_offsets") {
          if (have_offsets) fail(ctx + ": duplicate field \"data_offsets\"");
          have_offsets = true;
          const std::vector<int64_t> o = read_int_array(ctx + ": data_offsets", 2);
          if (o.size() != 2) fail(ctx + ": data_offsets must have 2 elements [begin, end], has " + std::to_string(o.size()));
          t.begin = o[0];
          t.end = o[1];
          if (t.begin < 0 || t.end < t.begin) {
            fail(ctx + ": data_offsets " + shape_str(o) + " are not 0 <= begin <= end");
          }
        } else {
          fail(ctx + ": unknown field " + quote_name(key));
        }
        skip_ws();
        if (eat('}')) break;
        expect(',', "',' or '}' in a tensor entry");
      }
    }
    if (!have_dtype) fail(ctx + ": missing \"dtype\"");
    if (!have_shape) fail(ctx + ": missing \"shape\"");
    if (!have_offsets) fail(ctx + ": missing \"data_offsets\"");
    return t;
  }

  const std::string& path_;
  const std::string& s_;
  size_t i_;
};

// Reads exactly n bytes at offset off; false if the file ends first. Throws on a read error.
bool pread_exact(int fd, void* buf, size_t n, uint64_t off, const std::string& path) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, n, off_t(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw IoError(path + ": read failed: " + errno_str(errno));
    }
    if (r == 0) return false;
    p += r;
    n -= size_t(r);
    off += uint64_t(r);
  }
  return true;
}

struct Fd {
  int fd = -1;
  ~Fd() { if (fd >= 0) ::close(fd); }
};

// ---------------------------------------------------------------------------------------------------
// Writer side.

// Writes all n bytes; returns 0 or the errno of the failure.
int write_all(int fd, const void* buf, size_t n) {
  const auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min(n, size_t(1) << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += w;
    n -= size_t(w);
  }
  return 0;
}

// Writes length prefix, header and tensor bytes to the open fd, fsyncs and closes it (always closed on
// return). Returns 0 or the errno of the failing step, whose name goes to *op.
int write_and_close(int fd, const std::string& header, const std::vector<TensorOut>& tensors,
                    const std::vector<int64_t>& nbytes, const char** op) {
  uint8_t len[8];
  for (int k = 0; k < 8; ++k) len[k] = uint8_t(uint64_t(header.size()) >> (8 * k));
  *op = "write";
  int err = write_all(fd, len, 8);
  if (!err) err = write_all(fd, header.data(), header.size());
  for (size_t i = 0; i < tensors.size() && !err; ++i) err = write_all(fd, tensors[i].data, size_t(nbytes[i]));
  if (!err) {
    *op = "fsync";
    if (::fsync(fd) != 0) err = errno;
  }
  if (err) {
    ::close(fd);
    return err;
  }
  *op = "close";
  return ::close(fd) == 0 ? 0 : errno;
}

}  // namespace

int64_t TensorIn::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated on read: non-negative, no overflow
  return n;
}

namespace {

// CRC-32 (zlib's, the IEEE polynomial: Python's zlib.crc32 gives the same) as 8 lowercase hex digits.
std::string crc32_hex(const void* data, int64_t n) {
  uLong c = crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(data);
  while (n > 0) {  // zlib takes uInt lengths
    const uInt chunk = uInt(std::min<int64_t>(n, int64_t(1) << 30));
    c = crc32(c, p, chunk);
    p += chunk;
    n -= chunk;
  }
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%08lx", static_cast<unsigned long>(c & 0xffffffffUL));
  return buf;
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorOut>& tensors,
                       const std::map<std::string, std::string>& user_metadata) {
  auto fail = [&](const std::string& msg) -> IoError { return IoError(path + ": " + msg); };

  // Every tensor's CRC-32 goes into the metadata as crc32.<name> (kChecksumPrefix), replacing any the
  // caller passed: readers verify each tensor against it.
  std::map<std::string, std::string> metadata;
  for (const auto& [k, v] : user_metadata)
    if (k.rfind(kChecksumPrefix, 0) != 0) metadata.emplace(k, v);
  for (const TensorOut& t : tensors) {
    int64_t nb = 0;
    if (shape_bytes(t.shape, t.dtype, &nb) && (nb == 0 || t.data != nullptr))
      metadata[kChecksumPrefix + t.name] = crc32_hex(t.data, nb);
  }

  // Validate the request and build the header before touching the file system.
  std::vector<int64_t> nbytes(tensors.size());
  std::map<std::string, int> names;
  std::string header = "{";
  if (!metadata.empty()) {
    append_json_string(header, "__metadata__");
    header += ":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      if (find_invalid_utf8(k) != std::string::npos || find_invalid_utf8(v) != std::string::npos) {
        throw fail("metadata entry " + quote_name(k) + " is not valid UTF-8");
      }
      if (!first) header += ',';
      first = false;
      append_json_string(header, k);
      header += ':';
      append_json_string(header, v);
    }
    header += '}';
  }
  int64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorOut& t = tensors[i];
    const std::string ctx = "tensor " + quote_name(t.name);
    if (t.name == "__metadata__") throw fail("'__metadata__' is reserved and cannot name a tensor");
    if (find_invalid_utf8(t.name) != std::string::npos) throw fail(ctx + ": name is not valid UTF-8");
    if (!names.emplace(t.name, 0).second) throw fail("duplicate tensor name " + quote_name(t.name));
    if (!shape_bytes(t.shape, t.dtype, &nbytes[i])) throw fail(ctx + ": invalid shape " + shape_str(t.shape));
    if (nbytes[i] > 0 && t.data == nullptr) throw fail(ctx + ": data is null");
    if (header.size() > 1) header += ',';
    append_json_string(header, t.name);
    header += ":{\"dtype\":\"";
    header += dtype_name(t.dtype);
    header += "\",\"shape\":[";
    for (size_t k = 0; k < t.shape.size(); ++k) {
      if (k) header += ",";
      header += std::to_string(t.shape[k]);
    }
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + nbytes[i]) + "]}";
    offset += nbytes[i];
  }
  header += '}';
  // Pad with spaces so the data section starts 8-byte aligned (8 + N ≡ 0 mod 8), as the reference
  // implementation does; readers may then map the data in place.
  header.append((8 - header.size() % 8) % 8, ' ');
  if (header.size() > kMaxHeaderBytes) throw fail("header of " + std::to_string(header.size()) + " bytes is too large");

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw fail("open of temporary file '" + tmp + "' failed: " + errno_str(errno));
  const char* op = "";
  int err = write_and_close(fd, header, tensors, nbytes, &op);
  if (!err && ::rename(tmp.c_str(), path.c_str()) != 0) {
    op = "rename";
    err = errno;
  }
  if (err) {
    ::unlink(tmp.c_str());
    throw fail(std::string(op) + " of temporary file '" + tmp + "' failed: " + errno_str(err));
  }
  // Make the rename itself durable. Some file systems cannot fsync a directory (EINVAL); that is not
  // an error we can do anything about.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) throw fail("open of directory '" + dir.string() + "' for fsync failed: " + errno_str(errno));
  const int rc = ::fsync(dfd);
  err = errno;
  ::close(dfd);
  if (rc != 0 && err != EINVAL) throw fail("fsync of directory '" + dir.string() + "' failed: " + errno_str(err));
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  auto fail = [&](const std::string& msg) -> IoError { return IoError(path + ": " + msg); };
  Fd f;
  std::string why;
  f.fd = open_regular_file(path, &why);  // a FIFO or device is refused without blocking
  if (f.fd < 0) throw fail("cannot open: " + why);
  struct stat st;
  if (::fstat(f.fd, &st) != 0) throw fail("cannot stat: " + errno_str(errno));
  const uint64_t file_size = uint64_t(st.st_size);

  if (file_size < 8) {
    throw fail("truncated: " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");
  }
  uint8_t len[8];
  if (!pread_exact(f.fd, len, 8, 0, path)) throw fail("truncated while reading the header length");
  uint64_t n = 0;
  for (int k = 0; k < 8; ++k) n |= uint64_t(len[k]) << (8 * k);
  if (n > kMaxHeaderBytes) {
    throw fail("header length " + std::to_string(n) + " is absurd (more than 100 MB); not a safetensors file?");
  }
  if (n > file_size - 8) {
    throw fail("truncated: header length " + std::to_string(n) + " exceeds the " +
               std::to_string(file_size - 8) + " bytes after the length prefix");
  }
  std::string text(size_t(n), '\0');
  if (!pread_exact(f.fd, text.data(), size_t(n), 8, path)) throw fail("truncated while reading the header");
  const size_t bad = find_invalid_utf8(text);
  if (bad != std::string::npos) throw fail("header is not valid UTF-8 (byte " + std::to_string(bad) + ")");

  std::vector<ParsedTensor> parsed;
  HeaderParser(path, text).parse(&parsed, &metadata_);

  // Each tensor on its own: dtype × shape gives the byte count, which the offsets must match, inside
  // the data section.
  const uint64_t data_start = 8 + n;
  const int64_t data_size = int64_t(file_size - data_start);
  for (const ParsedTensor& t : parsed) {
    const std::string ctx = "tensor " + quote_name(t.name);
    const std::string offs = "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "]";
    int64_t bytes = 0;
    if (!shape_bytes(t.shape, t.dtype, &bytes)) {
      throw fail(ctx + ": shape " + shape_str(t.shape) + " overflows 64-bit byte counts");
    }
    if (t.end - t.begin != bytes) {
      throw fail(ctx + ": " + offs + " do not match dtype " + dtype_name(t.dtype) + " \u00d7 shape " +
                 shape_str(t.shape) + " (" + std::to_string(bytes) + " bytes)");
    }
    if (t.end > data_size) {
      throw fail(ctx + ": " + offs + " exceed the data section (" + std::to_string(data_size) +
                 " bytes); truncated file?");
    }
  }
  // Together: stored in header order, contiguous from 0, covering the data section exactly. The writer
  // (ours and the reference one) lays tensors out this way, so anything else is corruption.
  int64_t pos = 0;
  for (size_t i = 0; i < parsed.size(); ++i) {
    const ParsedTensor& t = parsed[i];
    const std::string ctx = "tensor " + quote_name(t.name);
    const std::string offs = "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "]";
    if (t.begin < pos) {
      const ParsedTensor& prev = parsed[i - 1];
      const bool disjoint = t.end <= prev.begin && t.begin != t.end;
      throw fail(ctx + ": " + offs + (disjoint ? " are out of order: they come before" : " overlap") +
                 " tensor " + quote_name(prev.name) + " [" + std::to_string(prev.begin) + ", " +
                 std::to_string(prev.end) + "], which precedes it in the header");
    }
    if (t.begin > pos) {
      for (size_t j = i + 1; j < parsed.size(); ++j) {
        const ParsedTensor& later = parsed[j];
        if (later.begin < t.begin && later.begin != later.end) {
          throw fail(ctx + ": " + offs + " are out of order: tensor " + quote_name(later.name) + " [" +
                     std::to_string(later.begin) + ", " + std::to_string(later.end) +
                     "], later in the header, is stored before it");
        }
      }
      throw fail(ctx + ": " + offs + " leave a gap of " + std::to_string(t.begin - pos) +
                 " unused bytes before it (expected begin " + std::to_string(pos) + ")");
    }
    pos = t.end;
  }
  if (pos != data_size) {
    throw fail("trailing garbage: " + std::to_string(data_size - pos) +
               " bytes after the last tensor in the data section (" + std::to_string(data_size) + " bytes)");
  }

  // Checksums (crc32.<name> metadata): none at all is a file from before them or from another writer
  // (accepted, checksummed() false); otherwise every tensor must have one, every one a tensor.
  std::map<std::string, std::string> sums;
  for (auto it = metadata_.begin(); it != metadata_.end();) {
    if (it->first.rfind(kChecksumPrefix, 0) == 0) {
      sums.emplace(it->first.substr(kChecksumPrefix.size()), it->second);
      it = metadata_.erase(it);
    } else {
      ++it;
    }
  }
  checksummed_ = !sums.empty();
  if (checksummed_) {
    for (const ParsedTensor& t : parsed)
      if (!sums.count(t.name)) throw fail("tensor " + quote_name(t.name) + " has no checksum (metadata crc32." + t.name + ")");
    for (const auto& entry : sums) {
      const std::string& name = entry.first;
      const bool known = std::any_of(parsed.begin(), parsed.end(), [&](const ParsedTensor& t) { return t.name == name; });
      if (!known) throw fail("a checksum names tensor " + quote_name(name) + ", which the file does not hold");
    }
  }

  // Only now, with every size checked against the file, allocate and read.
  for (ParsedTensor& t : parsed) {
    TensorIn in;
    in.dtype = t.dtype;
    in.shape = std::move(t.shape);
    in.bytes.resize(size_t(t.end - t.begin));
    if (!pread_exact(f.fd, in.bytes.data(), in.bytes.size(), data_start + uint64_t(t.begin), path)) {
      throw fail("truncated while reading tensor " + quote_name(t.name) + " (the file shrank?)");
    }
    if (checksummed_) {
      const std::string got = crc32_hex(in.bytes.data(), int64_t(in.bytes.size())), want = sums[t.name];
      if (got != want)
        throw fail("tensor " + quote_name(t.name) + " fails its checksum (CRC-32 stored " + want + ", computed " + got +
                   "): the data is corrupt");
    }
    tensors_.emplace(t.name, std::move(in));
  }
}

bool SafetensorsFile::has(const std::string& name) const { return tensors_.count(name) != 0; }

const TensorIn& SafetensorsFile::tensor(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) throw IoError(path_ + ": no tensor " + quote_name(name));
  return it->second;
}

}  // namespace attnlab
