// provenance.h: what built this binary, recorded in run.json, in every checkpoint's metadata and printed by
// `attnlab --version`. The commit and the dirty flag are taken on every build (train/formats/
// build_info.cmake), the oneDNN version from the library loaded at run time.
#pragma once
#include <map>
#include <string>

namespace attnlab {

struct BuildInfo {
  std::string commit;      // short hash of HEAD, "unknown" outside a git checkout
  int dirty = -1;          // 1: uncommitted changes (or untracked files) at build time; 0: clean; -1: unknown
  std::string build_type;  // CMAKE_BUILD_TYPE
  std::string compiler;    // id and version
  std::string flags;       // the C++ compile flags and options
  std::string onednn;      // "2.6.3 (commit ...)", from dnnl_version()
};

BuildInfo build_info();
// `attnlab --version`: one "what: value" line each.
std::string version_text();
// The same as string key/values for safetensors metadata ("build.commit", "build.dirty", ...).
std::map<std::string, std::string> build_metadata();

}  // namespace attnlab
