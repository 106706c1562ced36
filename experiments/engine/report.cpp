// report.cpp: the hand-off to experiments/report/report.py (Python), and finding the source tree it lives in.
#include "experiments/engine/report.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "train/formats/safetensors.h"

#ifndef ATTNLAB_SOURCE_DIR
#define ATTNLAB_SOURCE_DIR ""
#endif

namespace fs = std::filesystem;

namespace attnlab {

namespace {

std::string self_dir() {
  char buf[4096] = {0};
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? fs::path(std::string(buf, size_t(n))).parent_path().string() : "";
}

int wait_child(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return 1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

}  // namespace

std::string attnlab_home() {
  if (const char* env = std::getenv("ATTNLAB_HOME"); env != nullptr && *env != '\0') {
    if (!fs::is_directory(fs::path(env) / "experiments"))
      throw IoError(std::string("ATTNLAB_HOME=") + env + " has no experiments/ directory (it should be the attnlab source tree)");
    return env;
  }
  std::vector<std::string> tried;
  for (const std::string& c : {std::string(ATTNLAB_SOURCE_DIR), self_dir().empty() ? std::string() : self_dir() + "/.."}) {
    if (c.empty()) continue;
    if (fs::is_directory(fs::path(c) / "experiments")) return fs::path(c).lexically_normal().string();
    tried.push_back(c);
  }
  std::string msg = "cannot find the attnlab source tree (tried";
  for (const auto& t : tried) msg += " " + t;
  throw IoError(msg + "); set ATTNLAB_HOME to it");
}

std::vector<std::string> report_command(const std::vector<std::string>& args) {
  // The report recomputes attention maps with this binary's `grads` (the run's real first batch).
  if (!std::getenv("ATTNLAB_BIN")) {
    char self[4096] = {0};
    const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) setenv("ATTNLAB_BIN", std::string(self, size_t(n)).c_str(), 1);
  }
  const char* env_py = std::getenv("ATTNLAB_PYTHON");
  const std::string python = env_py != nullptr && *env_py != '\0' ? env_py : "/usr/bin/python3";
  if (access(python.c_str(), X_OK) != 0)
    throw IoError("attnlab report needs " + python + " (install it: apt-get install python3 python3-matplotlib; or "
                  "set ATTNLAB_PYTHON to a python3)");
  const std::string home = attnlab_home();
  const std::string script = (fs::path(home) / "experiments" / "report" / "report.py").string();
  if (!fs::is_regular_file(script))
    throw IoError("attnlab report: the report script " + script + " is missing (set ATTNLAB_HOME to the attnlab "
                  "source tree)");
  std::vector<std::string> cmd = {python, script};
  cmd.insert(cmd.end(), args.begin(), args.end());
  return cmd;
}

void exec_report(const std::vector<std::string>& args) {
  const auto cmd = report_command(args);
  std::vector<char*> argv;
  for (const auto& a : cmd) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::fflush(nullptr);
  execv(argv[0], argv.data());
  throw IoError("cannot run " + cmd[0] + ": " + std::strerror(errno));
}

int run_report(const std::vector<std::string>& args) {
  const auto cmd = report_command(args);
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw IoError(std::string("cannot start the report: ") + std::strerror(errno));
  if (pid == 0) {
    std::vector<char*> argv;
    for (const auto& a : cmd) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    std::fprintf(stderr, "attnlab: cannot run %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  return wait_child(pid);
}

}  // namespace attnlab
