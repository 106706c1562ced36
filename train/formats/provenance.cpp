#include "train/formats/provenance.h"

#include <dnnl.h>

#include "attnlab_build_info.h"  // generated in the build tree by train/formats/build_info.cmake

namespace attnlab {

namespace {
const char* dirty_text(int d) { return d == 1 ? "true" : d == 0 ? "false" : "unknown"; }
}  // namespace

BuildInfo build_info() {
  BuildInfo b;
  b.commit = ATTNLAB_BUILD_COMMIT;
  b.dirty = ATTNLAB_BUILD_DIRTY;
  b.build_type = ATTNLAB_BUILD_TYPE;
  b.compiler = ATTNLAB_BUILD_COMPILER;
  b.flags = ATTNLAB_BUILD_FLAGS;
  const dnnl_version_t* v = dnnl_version();
  b.onednn = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
             " (commit " + (v->hash ? v->hash : "unknown") + ")";
  return b;
}

std::string version_text() {
  const BuildInfo b = build_info();
  return "attnlab " + b.commit + (b.dirty == 1 ? "-dirty" : "") + "\ncommit:     " + b.commit + "\ndirty:      " +
         dirty_text(b.dirty) + "\nbuild type: " + b.build_type + "\ncompiler:   " + b.compiler +
         "\nflags:      " + b.flags + "\noneDNN:     " + b.onednn;
}

std::map<std::string, std::string> build_metadata() {
  const BuildInfo b = build_info();
  return {{"build.commit", b.commit},         {"build.dirty", dirty_text(b.dirty)}, {"build.type", b.build_type},
          {"build.compiler", b.compiler},     {"build.flags", b.flags},             {"build.onednn", b.onednn}};
}

}  // namespace attnlab
