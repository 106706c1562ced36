// Faults at any instant: training and sweeps killed with SIGKILL at random points (inside checkpoint writes
// too) resume bitwise identically and lose at most one checkpoint interval; a write that fails (a full disk,
// simulated by a file-size limit) stops the run with a clear error and leaves the last checkpoint intact.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "model/rng.h"
#include "train/config/config.h"
#include "train/formats/run_files.h"
#include "train/formats/safetensors.h"
#include "tests/support/fixtures.h"

using namespace attnlab;
using namespace attnlab::testing;
namespace fs = std::filesystem;

namespace {

// Starts attnlab with `args` (stdout and stderr to `log`), returns the pid.
pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);  // its own group: a kill reaches a sweep's children only through the sweep itself
    FILE* f = std::freopen(log.c_str(), "a", stdout);
    if (f) dup2(fileno(stdout), 2);
    std::vector<char*> argv;
    std::string bin = attnlab_binary();
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Waits up to `ms`; returns true (and the exit status) if the process ended by itself.
bool wait_for(pid_t pid, int ms, int* status) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (waitpid(pid, status, WNOHANG) == pid) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

int64_t last_train_step(const std::string& metrics) {
  static const std::regex re("\\{\"step\":([0-9]+),\"kind\":\"train\"");
  int64_t last = 0;
  for (std::sregex_iterator it(metrics.begin(), metrics.end(), re), end; it != end; ++it)
    last = std::stoll((*it)[1].str());
  return last;
}

bool has_temporary(const std::string& run) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(run) / "ckpt", ec))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("train killed with SIGKILL at random instants resumes bitwise identically, losing at most one interval",
          "[e2e][faults]") {
  TempDir dir("faults-train");
  RunConfig c = tiny_run_config();
  c.model.d_model = 64, c.model.mlp_hidden = 128, c.model.seq_len = 32;  // steps of a few ms
  c.train.steps = 600;
  c.train.checkpoint_every = 4;
  c.train.keep_checkpoints = 2;  // pruning under kills too
  c.train.log_every = 1;
  c.train.eval_every = 25;
  const std::string cfg = dir.write("run.yaml", dump_config(c));
  const std::string ref = dir.file("ref");
  REQUIRE(run_command(attnlab_binary() + " train " + cfg + " --quiet --out " + ref).exit_code == 0);
  const auto want = train_losses(read_file(ref + "/metrics.jsonl"));
  REQUIRE(want.size() == 600);

  const std::string run = dir.file("run"), log = dir.file("log.txt");
  Rng rng(2026);
  int kills = 0, in_write = 0, restarts = 0, resumes = 0;
  // Up to 60 kills (on a loaded machine an attempt may get little done), then one last attempt runs to the end.
  for (int attempt = 0; attempt <= 60; ++attempt) {
    const bool last = attempt == 60;
    const bool fresh = !fs::exists(run + "/config.yaml") || list_checkpoints(run).empty();
    if (fresh) {
      fs::remove_all(run);
      ++restarts;
    } else {
      ++resumes;
    }
    const pid_t pid = fresh ? spawn({"train", cfg, "--quiet", "--out", run}, log)
                            : spawn({"train", "--resume", run, "--quiet"}, log);
    int status = 0;
    if (wait_for(pid, last ? 600000 : 30 + int(rng.below(250)), &status)) {
      INFO(read_file(log));
      REQUIRE(WIFEXITED(status));
      REQUIRE(WEXITSTATUS(status) == 0);
      break;  // finished
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    ++kills;
    in_write += has_temporary(run) ? 1 : 0;
    // At most one checkpoint interval of logged steps is beyond the newest checkpoint.
    const auto cks = list_checkpoints(run);
    if (!cks.empty()) {
      INFO("kill " << kills);
      CHECK(last_train_step(read_file(run + "/metrics.jsonl")) - cks.front().first <= c.train.checkpoint_every);
      CHECK(int(cks.size()) <= c.train.keep_checkpoints + 1);  // + the one being written when killed
    }
  }
  INFO(kills << " kills (" << in_write << " inside a checkpoint write), " << resumes << " resumes, " << restarts
             << " fresh starts");
  REQUIRE(kills >= 20);
  REQUIRE(train_losses(read_file(run + "/metrics.jsonl")) == want);  // every step bit for bit
  WARN("kill -9 harness: " << kills << " kills, " << in_write << " inside a checkpoint write, " << resumes
                           << " resumes, all bitwise equal to the uninterrupted run");
}

TEST_CASE("a sweep killed with SIGKILL resumes every point to the same result", "[e2e][faults]") {
  TempDir dir("faults-sweep");
  RunConfig c = tiny_run_config();
  c.model.d_model = 64, c.model.mlp_hidden = 128, c.model.seq_len = 32;
  c.train.steps = 600;
  c.train.checkpoint_every = 10;
  c.train.log_every = 1;
  const std::string base = dir.write("base.yaml", dump_config(c));
  const std::string sweep = dir.write("s.yaml", "base: " + base + "\ngrid: {optim.lr: [0.001, 0.003, 0.01]}\n");
  const std::string ref = dir.file("ref"), out = dir.file("out"), log = dir.file("log.txt");
  REQUIRE(run_command(attnlab_binary() + " sweep " + sweep + " --out " + ref + " --jobs 2 --threads 1").exit_code == 0);
  Rng rng(7);
  int kills = 0;
  // Three kills, then one attempt that runs to the end.
  for (int attempt = 0; attempt <= 3; ++attempt) {
    const pid_t pid = spawn({"sweep", sweep, "--out", out, "--jobs", "2", "--threads", "1"}, log);
    int status = 0;
    if (wait_for(pid, attempt == 3 ? 600000 : 300 + int(rng.below(700)), &status)) {
      INFO(read_file(log));
      REQUIRE(WIFEXITED(status));
      REQUIRE(WEXITSTATUS(status) == 0);
      break;
    }
    kill(pid, SIGKILL);  // the runs get SIGTERM from the kernel (parent death) and checkpoint
    waitpid(pid, &status, 0);
    ++kills;
    // The orphaned runs (same process group) finish their checkpoint and exit; a restart while one still
    // runs would be refused by its run lock.
    for (int i = 0; i < 12000 && kill(-pid, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    REQUIRE(kill(-pid, 0) != 0);  // every run of the killed sweep has exited
  }
  REQUIRE(kills >= 2);  // a fast machine may finish before the third
  for (const char* name : {"lr=0.001", "lr=0.003", "lr=0.01"}) {
    INFO(name);
    REQUIRE(train_losses(read_file(out + "/" + name + "/metrics.jsonl")) ==
            train_losses(read_file(ref + "/" + name + "/metrics.jsonl")));
  }
  WARN("sweep kill harness: " << kills << " kills, every point resumed to the uninterrupted result");
}

TEST_CASE("a write that fails (disk full) stops the run with a clear error; the last checkpoint stays intact",
          "[e2e][faults]") {
  TempDir dir("faults-full");
  RunConfig c = tiny_run_config();
  c.model.vocab = 256, c.model.d_model = 64, c.model.mlp_hidden = 256;  // checkpoints of ~1 MB
  c.train.steps = 8;
  c.train.checkpoint_every = 2;
  c.instrument.enabled = false;  // small metrics: the checkpoint is the file that hits the limit
  const std::string cfg = dir.write("run.yaml", dump_config(c));
  const std::string ref = dir.file("ref"), run = dir.file("run");
  REQUIRE(run_command(attnlab_binary() + " train " + cfg + " --quiet --out " + ref).exit_code == 0);
  REQUIRE(run_command(attnlab_binary() + " train " + cfg + " --quiet --set train.steps=4 --out " + run).exit_code == 0);
  const auto ck = fs::file_size(run + "/ckpt/step_00000004.safetensors");
  REQUIRE(ck > 600 * 1024);
  // Files may not grow past 512 KB (ulimit -f counts 1 KB blocks in bash): the step-6 checkpoint fails.
  const auto r = run_command("bash -c 'ulimit -f 512; exec " + attnlab_binary() + " train --resume " + run +
                             " --quiet --set train.steps=8'");
  INFO(r.output);
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.output, Catch::Matchers::Contains("step_00000006.safetensors"));
  CHECK_THAT(r.output, Catch::Matchers::Contains("File too large"));
  CHECK(!has_temporary(run));  // the partial file was removed
  CHECK(list_checkpoints(run).front().first == 4);
  REQUIRE_NOTHROW(SafetensorsFile(run + "/ckpt/step_00000004.safetensors"));  // intact, checksums and all
  // With room again, the run continues from step 4 to the same losses as the uninterrupted run.
  const auto again = run_command(attnlab_binary() + " train --resume " + run + " --quiet --set train.steps=8");
  INFO(again.output);
  REQUIRE(again.exit_code == 0);
  CHECK(train_losses(read_file(run + "/metrics.jsonl")) == train_losses(read_file(ref + "/metrics.jsonl")));
  // A real full disk where the machine allows mounting one (root, not in a restricted container): a 3 MB
  // tmpfs holds one ~1 MB checkpoint and the next one's temporary, not a third.
  const std::string mnt = dir.file("tmpfs");
  fs::create_directories(mnt);
  if (run_command("mount -t tmpfs -o size=3m tmpfs " + mnt).exit_code == 0) {
    struct Unmount {
      std::string at;
      ~Unmount() { run_command("umount " + at); }
    } unmount{mnt};
    const auto full = run_command(attnlab_binary() + " train " + cfg + " --quiet --out " + mnt + "/run");
    INFO(full.output);
    CHECK(full.exit_code == 2);
    CHECK_THAT(full.output, Catch::Matchers::Contains("No space left on device"));
    CHECK(!has_temporary(mnt + "/run"));
    const auto cks = list_checkpoints(mnt + "/run");
    REQUIRE(!cks.empty());
    CHECK_NOTHROW(SafetensorsFile(cks.front().second));
  } else {
    WARN("cannot mount a tmpfs here: the real full-disk case was skipped (the file-size-limit cases above ran)");
  }
  // A metrics file that cannot grow is an error too, never a silently missing line.
  const std::string run2 = dir.file("run2");
  const auto m = run_command("bash -c 'ulimit -f 1; exec " + attnlab_binary() + " train " + cfg +
                             " --quiet --set train.log_every=1 --set train.steps=200 --out " + run2 + "'");
  INFO(m.output);
  CHECK(m.exit_code != 0);
  CHECK_THAT(m.output, Catch::Matchers::Contains("write failed"));
}
