// process.cpp: the executable's own process: its real path, and the OpenMP threading environment.
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "experiments/cli/commands.h"

namespace attnlab::cli {

std::string self_exe(const char* argv0) {
  char self[4096] = {0};
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  return n > 0 ? std::string(self, size_t(n)) : std::string(argv0);
}

// libgomp reads its environment once, when it is loaded, so the threading defaults below can only take
// effect in a fresh image: set them (unless the user set them) and re-exec once. Idle OpenMP threads spin
// briefly (GOMP_SPINCOUNT=1000, a few microseconds) and then sleep. libgomp's default spins ~300× longer:
// when another process holds one of the cores, a spinning thread burns the core its partner needs and
// every barrier waits for a scheduler time slice. Measured here, preset A at 2 threads (tokens/s, idle /
// one core busy): default spin 215k / ~9k; GOMP_SPINCOUNT=1000 271k / 80k; passive 120k / 126k
// (README.md, "Benchmarks and threads"). OMP_WAIT_POLICY=passive is the choice for a crowded machine.
void apply_thread_defaults(char** argv) {
  if (std::getenv("ATTNLAB_THREAD_ENV")) return;
  setenv("ATTNLAB_THREAD_ENV", "1", 1);
  bool changed = false;
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT")) {
    setenv("GOMP_SPINCOUNT", "1000", 1);
    changed = true;
  }
  if (!std::getenv("OMP_PROC_BIND")) {
    setenv("OMP_PROC_BIND", "false", 1);
    changed = true;
  }
  if (changed) execv("/proc/self/exe", argv);  // on failure, carry on with the inherited settings
}

}  // namespace attnlab::cli
