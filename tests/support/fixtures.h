// fixtures.h: shared test helpers for runs: a tiny RunConfig, temporary directories, running the attnlab binary,
// reading what a run wrote. (Tiny models and batches: tests/support/tiny_model.h.)
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "train/config/config.h"

namespace attnlab::testing {

inline RunConfig tiny_run_config() {
  RunConfig c;
  c.model.vocab = 32;
  c.model.d_model = 32;
  c.model.n_layer = 2;
  c.model.n_head = 4;
  c.model.seq_len = 16;
  c.model.mlp_hidden = 64;
  c.data.source = DataSource::kBigramBackcopy;
  c.optim.lr = 3e-3f;
  c.schedule.warmup = 5;
  c.train.batch = 4;
  c.train.steps = 20;
  c.train.eval_every = 10;
  c.train.eval_batches = 2;
  c.train.seed = 11;
  c.train.threads = 2;
  return c;
}

// tiny_run_config() as a config file's text: `steps` steps, checkpoint and evaluation every 3.
inline std::string tiny_run_yaml(int steps) {
  RunConfig c = tiny_run_config();
  c.train.steps = steps;
  c.train.checkpoint_every = 3;
  c.train.eval_every = 3;
  return dump_config(c);
}

// A fresh, empty directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("attnlab-test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string path() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(file(name)) << text;
    return file(name);
  }
  std::vector<std::string> listing() const {  // the names in the directory, sorted
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command line and captures its output and exit status.
inline CommandResult run_command(const std::string& cmd) {
  CommandResult r;
  std::FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), p)) r.output += buf;
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

inline std::string attnlab_binary() { return ATTNLAB_BINARY; }

inline std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The "loss" values of the train records of a metrics.jsonl, as written (exact text).
inline std::vector<std::string> train_losses(const std::string& metrics) {
  std::vector<std::string> out;
  static const std::regex re("\"kind\":\"train\",\"loss\":([^,]+),");
  for (std::sregex_iterator it(metrics.begin(), metrics.end(), re), end; it != end; ++it) out.push_back((*it)[1]);
  return out;
}

}  // namespace attnlab::testing
