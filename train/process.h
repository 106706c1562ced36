// process.h: running a child program without a shell (argv as given: no quoting, no word splitting), for
// the commands that start helpers: `attnlab data get` (npm, tar) and `attnlab bench` (itself, per cell).
#pragma once
#include <string>
#include <vector>

namespace attnlab {

struct ProcessResult {
  int exit_code = -1;  // the child's exit code; 128 + N when killed by signal N; -1 when it could not start
  std::string output;  // stdout and stderr, interleaved
};

// Runs argv[0] (looked up on PATH) in `cwd` ("" = here), stdin from /dev/null, collecting its output.
// A program that cannot be executed exits 127 with "cannot run ARGV0: reason" as its output.
ProcessResult run_process(const std::vector<std::string>& args, const std::string& cwd = "");

}  // namespace attnlab
