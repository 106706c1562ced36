// test_safetensors.cpp: round trip, byte layout, every corruption the reader must reject (made by editing
// the bytes of a good file), atomic writes, and a cross-check against an independent Python reader.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/fixtures.h"
#include "train/formats/safetensors.h"

namespace fs = std::filesystem;
using namespace attnlab;
using attnlab::testing::TempDir;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  REQUIRE(f.good());
}

uint64_t get_u64_le(const std::string& b, size_t at) {
  uint64_t v = 0;
  for (int k = 0; k < 8; ++k) v |= uint64_t(static_cast<unsigned char>(b[at + k])) << (8 * k);
  return v;
}

std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int k = 0; k < 8; ++k) s[k] = char((v >> (8 * k)) & 0xff);
  return s;
}

// The source data of the "good" file: several dtypes, a 0-d scalar, an empty tensor, and two 16-byte
// tensors next to each other (e, b) so their offsets can be swapped.
struct Fixture {
  std::vector<float> a{0.25f, -1.5f, 2.0f, 3.75f, -0.5f, 8.0f};  // F32 [2, 3]
  std::vector<float> e{1.0f, 2.5f, -3.0f, 4.25f};                 // F32 [4]
  std::vector<int32_t> b{-7, 0, 123456, -2147483647};             // I32 [4]
  std::vector<int64_t> c{-1234567890123ll};                       // I64 [] (0-d scalar)
  std::vector<uint64_t> d;                                        // U64 [0, 5] (empty)
  std::vector<uint64_t> u{1ull, 0xFFFFFFFFFFFFFFFFull, 42ull};    // U64 [3]

  std::vector<TensorOut> tensors() const {
    return {{"a", DType::kF32, {2, 3}, a.data()},        {"e", DType::kF32, {4}, e.data()},
            {"b", DType::kI32, {4}, b.data()},           {"c", DType::kI64, {}, c.data()},
            {"d", DType::kU64, {0, 5}, nullptr},         {"u", DType::kU64, {3}, u.data()}};
  }
  std::map<std::string, std::string> metadata() const {
    return {{"format", "attnlab"},
            {"quote\"key", "back\\slash \"quoted\" tab\there\nnewline \x01 ctrl"},
            {"unicode", "na\xC3\xAFve \xE2\x9C\x93 \xF0\x9F\x98\x80"}};  // naïve ✓ 😀 (BMP + astral)
  }
};

std::string bytes_of(const void* p, size_t n) { return std::string(static_cast<const char*>(p), n); }

// Replaces the first occurrence of `from` in the JSON header of `file` and rewrites the length prefix;
// the data section is kept byte for byte.
std::string edit_header(const std::string& file, const std::string& from, const std::string& to) {
  const uint64_t n = get_u64_le(file, 0);
  std::string header = file.substr(8, n);
  const size_t at = header.find(from);
  INFO("looking for " << from << " in " << header);
  REQUIRE(at != std::string::npos);
  header.replace(at, from.size(), to);
  return u64_le(header.size()) + header + file.substr(8 + n);
}

// Expects SafetensorsFile(path) to throw an IoError whose message names the path and contains `what`.
void require_rejects(const std::string& path, const std::string& what) {
  try {
    SafetensorsFile f(path);
    FAIL("no error; expected one mentioning \"" << what << "\"");
  } catch (const IoError& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    REQUIRE(msg.find(path) != std::string::npos);
    REQUIRE(msg.find(what) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("safetensors round trip keeps dtypes, shapes, bytes and metadata", "[train][safetensors]") {
  TempDir tmp("safetensors");
  Fixture fx;
  const std::string path = tmp.file("rt.safetensors");
  write_safetensors(path, fx.tensors(), fx.metadata());
  SafetensorsFile f(path);

  REQUIRE(f.path() == path);
  REQUIRE(f.metadata() == fx.metadata());
  REQUIRE(f.tensors().size() == 6);
  for (const TensorOut& t : fx.tensors()) {
    INFO("tensor " << t.name);
    REQUIRE(f.has(t.name));
    const TensorIn& in = f.tensor(t.name);
    REQUIRE(in.dtype == t.dtype);
    REQUIRE(in.shape == t.shape);
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    REQUIRE(in.numel() == numel);
    const size_t item = t.dtype == DType::kF32 || t.dtype == DType::kI32 ? 4 : 8;
    REQUIRE(in.bytes.size() == size_t(numel) * item);
    if (numel > 0) REQUIRE(std::memcmp(in.bytes.data(), t.data, in.bytes.size()) == 0);
  }
  REQUIRE(f.tensor("c").shape.empty());
  REQUIRE(f.tensor("c").numel() == 1);
  REQUIRE(f.tensor("d").numel() == 0);
  REQUIRE_FALSE(f.has("zz"));
  REQUIRE_THROWS_AS(f.tensor("zz"), IoError);
}

TEST_CASE("safetensors names with quotes, backslashes and unicode survive; empty file is valid",
          "[train][safetensors]") {
  TempDir tmp("safetensors");
  const std::string path = tmp.file("names.safetensors");
  const float x = 3.5f;
  const std::string odd = "blocks.0.\"attn\"\\w_q \xE2\x9C\x93 \xF0\x9F\x98\x80 \x7f";
  write_safetensors(path, {{odd, DType::kF32, {1}, &x}}, {});
  SafetensorsFile f(path);
  REQUIRE(f.has(odd));
  REQUIRE(f.metadata().empty());
  REQUIRE(f.tensor(odd).bytes == std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(&x),
                                                      reinterpret_cast<const uint8_t*>(&x) + 4));

  const std::string empty = tmp.file("empty.safetensors");
  write_safetensors(empty, {}, {});
  SafetensorsFile g(empty);
  REQUIRE(g.tensors().empty());
}

TEST_CASE("safetensors byte layout: length prefix, 8-byte aligned data, entries, contiguous data",
          "[train][safetensors]") {
  TempDir tmp("safetensors");
  Fixture fx;
  const std::string path = tmp.file("layout.safetensors");
  write_safetensors(path, fx.tensors(), fx.metadata());
  const std::string file = read_file(path);

  REQUIRE(file.size() >= 8);
  const uint64_t n = get_u64_le(file, 0);
  REQUIRE(8 + n <= file.size());
  REQUIRE((8 + n) % 8 == 0);
  const std::string header = file.substr(8, n);
  // JSON object first, then only padding spaces.
  const size_t close = header.find_last_of('}');
  REQUIRE(header.front() == '{');
  REQUIRE(header.find_first_not_of(' ', close + 1) == std::string::npos);
  // Offsets follow the given order: a [0,24), e [24,40), b [40,56), c [56,64), d [64,64), u [64,88).
  REQUIRE(header.find("\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}") != std::string::npos);
  REQUIRE(header.find("\"e\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[24,40]}") != std::string::npos);
  REQUIRE(header.find("\"c\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[56,64]}") != std::string::npos);
  REQUIRE(header.find("\"d\":{\"dtype\":\"U64\",\"shape\":[0,5],\"data_offsets\":[64,64]}") != std::string::npos);
  REQUIRE(header.find("\"__metadata__\":{") != std::string::npos);
  REQUIRE(header.find("\"quote\\\"key\":") != std::string::npos);            // escaped quote
  REQUIRE(header.find("back\\\\slash") != std::string::npos);                 // escaped backslash
  REQUIRE(header.find("\\u0001") != std::string::npos);                       // control char as \u0001
  REQUIRE(header.find("\xF0\x9F\x98\x80") != std::string::npos);              // UTF-8 kept as is

  const std::string expected_data = bytes_of(fx.a.data(), 24) + bytes_of(fx.e.data(), 16) +
                                    bytes_of(fx.b.data(), 16) + bytes_of(fx.c.data(), 8) +
                                    bytes_of(fx.u.data(), 24);
  REQUIRE(file.substr(8 + n) == expected_data);
}

TEST_CASE("safetensors reader accepts what other writers may legally produce", "[train][safetensors]") {
  TempDir tmp("safetensors");
  Fixture fx;
  const std::string path = tmp.file("good.safetensors");
  write_safetensors(path, fx.tensors(), fx.metadata());
  const std::string good = read_file(path);
  const std::string edited = tmp.file("edited.safetensors");

  // Whitespace between tokens, \u escapes (incl. a surrogate pair) and "\/" in strings, no padding.
  std::string s = edit_header(good, "\"a\":{\"dtype\":\"F32\",", " \"\\u0061\" :\n{ \"dtype\" : \"F32\" ,\t");
  s = edit_header(s, "\"format\":\"attnlab\"", "\"format\":\"attn\\/lab \\ud83d\\ude00\"");
  write_file(edited, s);
  SafetensorsFile f(edited);
  REQUIRE(f.has("a"));
  REQUIRE(f.metadata().at("format") == "attn/lab \xF0\x9F\x98\x80");
  REQUIRE(f.tensor("a").bytes.size() == 24);
}

TEST_CASE("safetensors reader rejects corrupt files with a message naming the problem",
          "[train][safetensors]") {
  TempDir tmp("safetensors");
  Fixture fx;
  const std::string path = tmp.file("good.safetensors");
  write_safetensors(path, fx.tensors(), fx.metadata());
  const std::string good = read_file(path);
  const uint64_t n = get_u64_le(good, 0);
  const std::string bad = tmp.file("checkpoint.safetensors");

  SECTION("shorter than the length prefix") {
    write_file(bad, good.substr(0, 5));
    require_rejects(bad, "shorter than the 8-byte header length");
    write_file(bad, "");
    require_rejects(bad, "truncated");
  }
  SECTION("header length beyond the file") {
    write_file(bad, u64_le(n + 1000) + good.substr(8));
    require_rejects(bad, "header length " + std::to_string(n + 1000) + " exceeds");
    write_file(bad, good.substr(0, 8 + n / 2));
    require_rejects(bad, "exceeds");
  }
  SECTION("absurd header length") {
    write_file(bad, u64_le(1ull << 40) + good.substr(8));
    require_rejects(bad, "absurd");
    write_file(bad, u64_le(~0ull) + good.substr(8));
    require_rejects(bad, "absurd");
  }
  SECTION("invalid JSON") {
    write_file(bad, edit_header(good, "{", "["));
    require_rejects(bad, "invalid JSON header at byte 0");
    write_file(bad, edit_header(good, "\"a\":", "\"a\" "));
    require_rejects(bad, "expected ':'");
    write_file(bad, edit_header(good, "\"format\"", "\"form\\qat\""));
    require_rejects(bad, "invalid escape");
    write_file(bad, edit_header(good, "\"format\"", "\"\\ud800x\""));
    require_rejects(bad, "surrogate");
    write_file(bad, edit_header(good, "\"format\"", "\"\\u12\""));
    require_rejects(bad, "hex digit");
    write_file(bad, edit_header(good, "\"format\"", "\"a\x01\""));
    require_rejects(bad, "control character");
    write_file(bad, edit_header(good, "\"format\"", "\"\xC3\x28\""));
    require_rejects(bad, "not valid UTF-8");
    write_file(bad, edit_header(good, "\"format\":\"attnlab\"", "\"format\":7"));
    require_rejects(bad, "found a number");
    const std::string header = good.substr(8, n);
    const size_t close = header.find_last_of('}');
    write_file(bad, u64_le(close) + header.substr(0, close) + good.substr(8 + n));  // drop the final '}'
    require_rejects(bad, "invalid JSON");
    write_file(bad, u64_le(n + 2) + header + "{}" + good.substr(8 + n));
    require_rejects(bad, "trailing characters after the JSON header");
  }
  SECTION("unknown dtype") {
    write_file(bad, edit_header(good, "\"F32\"", "\"F16\""));
    require_rejects(bad, "tensor 'a': unknown dtype 'F16'");
  }
  SECTION("malformed fields") {
    write_file(bad, edit_header(good, "\"shape\":[2,3]", "\"shape\":[2.0,3]"));
    require_rejects(bad, "non-integer");
    write_file(bad, edit_header(good, "\"shape\":[2,3]", "\"shape\":[2,99999999999999999999]"));
    require_rejects(bad, "out of range");
    write_file(bad, edit_header(good, "\"shape\":[2,3]", "\"shape\":[2,3],\"extra\":1"));
    require_rejects(bad, "tensor 'a': unknown field 'extra'");
    write_file(bad, edit_header(good, "\"shape\":[2,3],", ""));
    require_rejects(bad, "tensor 'a': missing \"shape\"");
    write_file(bad, edit_header(good, "\"data_offsets\":[0,24]", "\"data_offsets\":[0,24,24]"));
    require_rejects(bad, "more than 2 elements");
    write_file(bad, edit_header(good, "\"data_offsets\":[0,24]", "\"data_offsets\":[24,0]"));
    require_rejects(bad, "not 0 <= begin <= end");
    write_file(bad, edit_header(good, "\"shape\":[2,3]", "\"shape\":[4294967296,4294967296]"));
    require_rejects(bad, "overflows");
  }
  SECTION("shape and offsets disagree") {
    write_file(bad, edit_header(good, "\"shape\":[2,3]", "\"shape\":[2,4]"));
    require_rejects(bad, "tensor 'a': data_offsets [0, 24] do not match dtype F32 \u00d7 shape [2, 4] (32 bytes)");
  }
  SECTION("offsets outside the data section") {
    write_file(bad, good.substr(0, good.size() - 4));  // truncated data
    require_rejects(bad, "tensor 'u': data_offsets [64, 88] exceed the data section (84 bytes)");
  }
  SECTION("overlapping tensors") {
    write_file(bad, edit_header(good, "\"data_offsets\":[40,56]", "\"data_offsets\":[32,48]"));
    require_rejects(bad, "tensor 'b': data_offsets [32, 48] overlap tensor 'e'");
  }
  SECTION("out-of-order tensors") {
    std::string s = edit_header(good, "\"data_offsets\":[24,40]", "\"data_offsets\":[X]");
    s = edit_header(s, "\"data_offsets\":[40,56]", "\"data_offsets\":[24,40]");
    s = edit_header(s, "\"data_offsets\":[X]", "\"data_offsets\":[40,56]");
    write_file(bad, s);
    require_rejects(bad, "tensor 'e': data_offsets [40, 56] are out of order: tensor 'b' [24, 40]");
  }
  SECTION("gap between tensors") {
    // b and c: shrink b by one I32 so 4 bytes before c are unused.
    write_file(bad, edit_header(good, "\"shape\":[4],\"data_offsets\":[40,56]", "\"shape\":[3],\"data_offsets\":[40,52]"));
    require_rejects(bad, "tensor 'c': data_offsets [56, 64] leave a gap of 4 unused bytes");
  }
  SECTION("negative dimension") {
    write_file(bad, edit_header(good, "\"shape\":[2,3]", "\"shape\":[-2,-3]"));
    require_rejects(bad, "tensor 'a': negative dimension");
  }
  SECTION("duplicate names") {
    write_file(bad, edit_header(good, "\"e\":{", "\"a\":{"));
    require_rejects(bad, "duplicate tensor name 'a'");
    write_file(bad, edit_header(good, "\"dtype\":\"F32\",", "\"dtype\":\"F32\",\"dtype\":\"F32\","));
    require_rejects(bad, "duplicate field \"dtype\"");
    write_file(bad, edit_header(good, "\"format\"", "\"unicode\""));
    require_rejects(bad, "__metadata__: duplicate key 'unicode'");
  }
  SECTION("trailing garbage after the data") {
    write_file(bad, good + std::string(8, 'x'));
    require_rejects(bad, "trailing garbage: 8 bytes");
  }
  SECTION("not a file") {
    require_rejects(tmp.file("missing.safetensors"), "cannot open");
    require_rejects(tmp.path(), "cannot open: is a directory");
    const std::string fifo = tmp.file("pipe.safetensors");
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    require_rejects(fifo, "cannot open: is a FIFO");  // refused without blocking (was: open hung)
    require_rejects("/dev/zero", "is a character device");
  }
}

TEST_CASE("safetensors reader never crashes on truncated or bit-flipped files", "[train][safetensors]") {
  TempDir tmp("safetensors");
  Fixture fx;
  const std::string path = tmp.file("good.safetensors");
  write_safetensors(path, fx.tensors(), fx.metadata());
  const std::string good = read_file(path);
  const std::string bad = tmp.file("bad.safetensors");

  for (size_t len = 0; len < good.size(); ++len) {  // every proper prefix is an error
    write_file(bad, good.substr(0, len));
    INFO("prefix of " << len << " bytes");
    REQUIRE_THROWS_AS(SafetensorsFile(bad), IoError);
  }
  const uint64_t n = get_u64_le(good, 0);
  int rejected = 0;
  for (size_t i = 0; i < 8 + n; ++i) {  // flips in the length and the header: IoError or a clean read
    for (unsigned char mask : {0x01, 0x20, 0x80}) {
      std::string s = good;
      s[i] = char(s[i] ^ mask);
      write_file(bad, s);
      try {
        SafetensorsFile f(bad);
      } catch (const IoError&) {
        ++rejected;
      }
    }
  }
  REQUIRE(rejected > int(n));  // most flips must be caught
}

TEST_CASE("safetensors: every tensor is checksummed; any flipped data byte is refused naming the tensor",
          "[train][safetensors]") {
  TempDir tmp("safetensors");
  Fixture fx;
  const std::string path = tmp.file("good.safetensors");
  write_safetensors(path, fx.tensors(), fx.metadata());
  REQUIRE(SafetensorsFile(path).checksummed());
  const std::string good = read_file(path);
  const uint64_t n = get_u64_le(good, 0);
  const std::string bad = tmp.file("bad.safetensors");
  // Every byte of the data section, one bit at a time: each flip is caught and names its tensor (was:
  // accepted silently; a one-byte change in a checkpoint trained on from corrupted weights).
  const std::vector<std::pair<std::string, int64_t>> layout = {{"a", 24}, {"e", 16}, {"b", 16}, {"c", 8}, {"d", 0}, {"u", 24}};
  int64_t at = int64_t(8 + n);
  int flips = 0;
  for (const auto& [name, bytes] : layout) {
    for (int64_t k = 0; k < bytes; ++k, ++at) {
      for (unsigned char mask : {0x01, 0x80}) {
        std::string s = good;
        s[size_t(at)] = char(s[size_t(at)] ^ mask);
        write_file(bad, s);
        INFO("byte " << at << " of tensor " << name);
        require_rejects(bad, "tensor '" + name + "' fails its checksum");
        ++flips;
      }
    }
  }
  REQUIRE(at == int64_t(good.size()));
  REQUIRE(flips == 2 * 88);
  // A checksum that names no tensor, or a tensor without one, is refused too; a file with none at all
  // (another writer) is read unverified.
  write_file(bad, edit_header(good, "\"crc32.u\"", "\"crc32.z\""));
  require_rejects(bad, "tensor 'u' has no checksum");
  std::string none = good;
  for (const char* t : {"a", "e", "b", "c", "d", "u"}) {
    const std::string key = std::string("\"crc32.") + t + "\":\"";
    const uint64_t hn = get_u64_le(none, 0);
    const std::string h = none.substr(8, hn);
    const size_t p = h.find(key);
    REQUIRE(p != std::string::npos);
    const size_t end = h.find('"', p + key.size()) + 1;
    const std::string entry = h.substr(p, end - p);
    none = edit_header(none, (h[end] == ',' ? entry + "," : "," + entry), "");
  }
  write_file(bad, none);
  SafetensorsFile plain(bad);
  REQUIRE(!plain.checksummed());
  REQUIRE(plain.metadata() == fx.metadata());
}

TEST_CASE("safetensors writes are atomic", "[train][safetensors]") {
  TempDir tmp("safetensors");
  Fixture fx;

  SECTION("a write into a missing directory fails and leaves nothing behind") {
    const std::string path = tmp.file("no_such_dir/ckpt.safetensors");
    try {
      write_safetensors(path, fx.tensors(), fx.metadata());
      FAIL("no error");
    } catch (const IoError& e) {
      const std::string msg = e.what();
      INFO(msg);
      REQUIRE(msg.find(path) != std::string::npos);
      REQUIRE(msg.find("open") != std::string::npos);
      REQUIRE(msg.find(std::strerror(ENOENT)) != std::string::npos);
    }
    REQUIRE(tmp.listing().empty());
  }
  SECTION("a failed rename removes the temporary file") {
    const std::string path = tmp.file("is_a_dir");
    fs::create_directories(fs::path(path) / "child");  // rename of a file over a non-empty dir fails
    REQUIRE_THROWS_AS(write_safetensors(path, fx.tensors(), fx.metadata()), IoError);
    REQUIRE(tmp.listing() == std::vector<std::string>{"is_a_dir"});
  }
  SECTION("writing over an existing file replaces it") {
    const std::string path = tmp.file("ckpt.safetensors");
    write_safetensors(path, fx.tensors(), fx.metadata());
    const int32_t v[2] = {5, 6};
    write_safetensors(path, {{"only", DType::kI32, {2}, v}}, {{"k", "v2"}});
    SafetensorsFile f(path);
    REQUIRE(f.tensors().size() == 1);
    REQUIRE(f.has("only"));
    REQUIRE(f.metadata() == std::map<std::string, std::string>{{"k", "v2"}});
    REQUIRE(tmp.listing() == std::vector<std::string>{"ckpt.safetensors"});
  }
  SECTION("invalid requests are refused before any file is created") {
    const std::string path = tmp.file("x.safetensors");
    const float x[4] = {};
    REQUIRE_THROWS_AS(write_safetensors(path, {{"a", DType::kF32, {1}, x}, {"a", DType::kF32, {1}, x}}, {}), IoError);
    REQUIRE_THROWS_AS(write_safetensors(path, {{"__metadata__", DType::kF32, {1}, x}}, {}), IoError);
    REQUIRE_THROWS_AS(write_safetensors(path, {{"a", DType::kF32, {-1}, x}}, {}), IoError);
    REQUIRE_THROWS_AS(write_safetensors(path, {{"a", DType::kF32, {2}, nullptr}}, {}), IoError);
    REQUIRE_THROWS_AS(write_safetensors(path, {{"bad\xFF", DType::kF32, {1}, x}}, {}), IoError);
    REQUIRE_THROWS_AS(write_safetensors(path, {}, {{"k", "\xC0\x80"}}), IoError);  // overlong NUL
    REQUIRE(tmp.listing().empty());
  }
}

namespace {

// A python3 that has numpy, or "" (the PATH one may be a pyenv shim without it).
std::string python_with_numpy() {
  for (const char* py : {"python3", "/usr/bin/python3"}) {
    const std::string cmd = std::string(py) + " -c \"import numpy\" >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return py;
  }
  return "";
}

std::string hex(const std::string& s) {
  static const char* k = "0123456789abcdef";
  std::string h;
  for (unsigned char c : s) { h += k[c >> 4]; h += k[c & 15]; }
  return h.empty() ? "-" : h;
}

}  // namespace

TEST_CASE("safetensors files parse with an independent Python (struct + json + numpy) reader",
          "[train][safetensors][python]") {
  const std::string py = python_with_numpy();
  if (py.empty()) {
    WARN("python3 with numpy not found; skipping the cross-check");
    return;
  }
  TempDir tmp("safetensors");
  Fixture fx;
  const std::string path = tmp.file("py.safetensors");
  write_safetensors(path, fx.tensors(), fx.metadata());

  // The reader the Python ecosystem would write by hand; checksum = sum_i (i+1) * v[i] in row-major order,
  // and each tensor's crc32.<name> metadata checked with the standard library's zlib.crc32.
  const std::string script = R"PY(
import json, struct, sys, zlib
import numpy as np
raw = open(sys.argv[1], 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
header = json.loads(raw[8:8 + n].decode('utf-8'))
data = raw[8 + n:]
print('align', (8 + n) % 8)
h = lambda s: s.encode('utf-8').hex() or '-'
meta = header.pop('__metadata__', {})
crcs = {k[len('crc32.'):]: v for k, v in meta.items() if k.startswith('crc32.')}
for k, v in sorted(meta.items()):
    if not k.startswith('crc32.'):
        print('meta', h(k), h(v))
types = {'F32': '<f4', 'I32': '<i4', 'I64': '<i8', 'U64': '<u8'}
for name, t in header.items():
    b, e = t['data_offsets']
    a = np.frombuffer(data[b:e], dtype=types[t['dtype']]).reshape(t['shape'])
    flat = a.reshape(-1)
    if t['dtype'] == 'F32':
        cs = repr(float(sum((i + 1) * float(x) for i, x in enumerate(flat))))
    else:
        cs = str(sum((i + 1) * int(x) for i, x in enumerate(flat)))
    crc = 'crc-ok' if crcs.get(name) == '%08x' % (zlib.crc32(data[b:e]) & 0xffffffff) else 'crc-bad'
    print('tensor', h(name), t['dtype'], 'x'.join(map(str, a.shape)) or '-', crc, cs)
)PY";
  const std::string script_path = tmp.file("check.py");
  write_file(script_path, script);
  const std::string cmd = py + " " + script_path + " " + path + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe)) out += buf;
  REQUIRE(::pclose(pipe) == 0);
  INFO("python said:\n" << out);

  // Expected lines, computed here from the source arrays (not from our reader).
  std::ostringstream want;
  want << "align 0\n";
  for (const auto& [k, v] : fx.metadata()) want << "meta " << hex(k) << " " << hex(v) << "\n";
  auto shape_str = [](const std::vector<int64_t>& s) {
    std::string r;
    for (size_t i = 0; i < s.size(); ++i) {
      if (i) r += "x";
      r += std::to_string(s[i]);
    }
    return r.empty() ? std::string("-") : r;
  };
  auto int_sum = [](const auto& v) {  // exact for the fixture's values (Python ints are unbounded)
    __int128 s = 0;
    for (size_t i = 0; i < v.size(); ++i) s += __int128(i + 1) * __int128(v[i]);
    std::string r;
    const bool neg = s < 0;
    unsigned __int128 m = neg ? -(unsigned __int128)(s) : (unsigned __int128)(s);
    do { r.insert(r.begin(), char('0' + int(m % 10))); m /= 10; } while (m);
    return neg ? "-" + r : r;
  };
  auto float_sum = [](const std::vector<float>& v) {  // fixture values are dyadic: the sum is exact
    double s = 0;
    for (size_t i = 0; i < v.size(); ++i) s += double(i + 1) * v[i];
    return s;
  };
  std::vector<std::pair<std::string, std::string>> sums = {
      {"a", ""}, {"e", ""}, {"b", int_sum(fx.b)}, {"c", int_sum(fx.c)}, {"d", "0"}, {"u", int_sum(fx.u)}};
  std::map<std::string, double> fsums = {{"a", float_sum(fx.a)}, {"e", float_sum(fx.e)}};
  const auto ts = fx.tensors();
  std::istringstream got(out);
  std::string line;
  std::getline(got, line);
  REQUIRE(line == "align 0");
  for (size_t i = 0; i < fx.metadata().size(); ++i) {
    std::getline(got, line);
    REQUIRE(line.rfind("meta ", 0) == 0);
  }
  for (size_t i = 0; i < ts.size(); ++i) {
    std::getline(got, line);
    const char* dt = ts[i].dtype == DType::kF32 ? "F32" : ts[i].dtype == DType::kI32 ? "I32"
                   : ts[i].dtype == DType::kI64 ? "I64" : "U64";
    const std::string prefix = "tensor " + hex(ts[i].name) + " " + dt + " " + shape_str(ts[i].shape) + " crc-ok ";
    INFO("line: " << line << "\nexpected prefix: " << prefix);
    REQUIRE(line.rfind(prefix, 0) == 0);
    const std::string cs = line.substr(prefix.size());
    if (ts[i].dtype == DType::kF32) {
      REQUIRE(std::strtod(cs.c_str(), nullptr) == Approx(fsums[ts[i].name]).epsilon(1e-12));
    } else {
      REQUIRE(cs == sums[i].second);
    }
  }
  // The metadata lines, exactly (sorted by key on both sides).
  std::string want_all = want.str();
  REQUIRE(out.substr(0, want_all.size()) == want_all);
}
