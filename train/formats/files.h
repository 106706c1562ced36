// files.h: reading the files a user names (configs, data, checkpoints, sweep and repro files, metrics)
// without the ways that go wrong quietly: a FIFO or a device that blocks forever or never ends, text that
// is not UTF-8. Errors come back as text for the caller to wrap in its own error type.
#pragma once
#include <cstdint>
#include <string>

namespace attnlab {

// Opens `path` for reading only if it is a regular file: opened O_NONBLOCK (a FIFO does not block the
// open), fstat-checked, then switched back to blocking. Returns the descriptor (close it), or -1 with
// *error saying what it is instead ("is a FIFO", "is a character device", ...) or why it failed.
int open_regular_file(const std::string& path, std::string* error);

// The whole regular file, read up to the size fstat reported when it was opened (a file growing meanwhile
// is cut there; /dev/zero and FIFOs are refused before any read) and refused above `max_bytes`. Returns
// false with *error set.
bool read_regular_file(const std::string& path, std::string* out, std::string* error,
                       uint64_t max_bytes = uint64_t(1) << 40);

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. Returns the offset of the first
// bad byte, or std::string::npos.
size_t find_invalid_utf8(const std::string& s);

}  // namespace attnlab
