// test_mpi.cpp: `mpirun -np 2 attnlab train|sweep` end to end, on loopback TCP only (no shared memory, no
// other interface): the data-parallel run against the single-process run it stands for, determinism,
// resume, metrics written once, a killed or hung rank, bad input, the distributed sweep and its Slurm form.
// Registered only when the build has the MPI plugin (CMake option ATTNLAB_MPI); label `mpi`.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/fixtures.h"

namespace fs = std::filesystem;
using namespace attnlab::testing;

namespace {

// Open MPI refuses to run as root without the flag; --oversubscribe: 2 ranks on a 2-core machine whatever
// it counts; loopback TCP for the data and the runtime.
std::string mpirun(int np) {
  return "mpirun --allow-run-as-root --oversubscribe --bind-to none -np " + std::to_string(np) +
         " --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo " + attnlab_binary();
}

std::string tiny(int steps, int batch = 4) {
  std::string y = tiny_run_yaml(steps);
  y = std::regex_replace(y, std::regex("batch: 4\n"), "batch: " + std::to_string(batch) + "\n");
  y = std::regex_replace(y, std::regex("threads: 2\n"), "threads: 1\n");
  return y;
}

// Every record of a metrics.jsonl without its timing fields (tokens_per_s, ms_per_step), as text.
std::vector<std::string> records(const std::string& metrics) {
  static const std::regex timing(",\"tokens_per_s\":[^,}]+|,\"ms_per_step\":[^,}]+");
  std::vector<std::string> out;
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);) out.push_back(std::regex_replace(line, timing, ""));
  return out;
}

// The numbers of a record, by key ("loss", "grad_norm", "ent_norm[3]", ...) for the tolerance checks.
std::map<std::string, double> numbers(const std::string& rec) {
  std::map<std::string, double> out;
  static const std::regex field("\"([a-z_0-9]+)\":(\\[[^\\]]*\\]|[-0-9.eE+]+)");
  for (std::sregex_iterator it(rec.begin(), rec.end(), field), end; it != end; ++it) {
    const std::string key = (*it)[1], val = (*it)[2];
    if (val[0] != '[') {
      out[key] = std::stod(val);
      continue;
    }
    std::istringstream in(val.substr(1, val.size() - 2));
    std::string x;
    for (int i = 0; std::getline(in, x, ','); ++i)
      if (!x.empty() && x != "null") out[key + "[" + std::to_string(i) + "]"] = std::stod(x);
  }
  return out;
}

// The pid of rank `rank` of a job whose command line contains `tag`, or -1.
pid_t rank_pid(const std::string& tag, int rank) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = read_file(e.path().string() + "/cmdline"), env = read_file(e.path().string() + "/environ");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    if (cmd.rfind(attnlab_binary(), 0) != 0 || cmd.find(tag) == std::string::npos) continue;
    if (env.find(std::string("OMPI_COMM_WORLD_RANK=") + std::to_string(rank) + '\0') != std::string::npos)
      return pid_t(std::stol(name));
  }
  return -1;
}

// The pid of rank `rank` of the job training in `run`, once it is training (metrics on disk and a few
// steps taken); -1 after 10 s without it.
pid_t training_rank(const std::string& run, int rank) {
  pid_t pid = -1;
  for (int i = 0; i < 200 && pid < 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (fs::exists(run + "/metrics.jsonl")) pid = rank_pid(run, rank);
  }
  if (pid > 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  return pid;
}

// A background job (a shell command): joined when the test ends, however it ends; kill_all stops the job's
// attnlab processes first if the test gave up on it.
class Job {
 public:
  Job(const std::string& cmd, std::string tag) : tag_(std::move(tag)), t_([cmd] { std::system(cmd.c_str()); }) {}
  ~Job() {
    if (!joined_) {
      for (int r = 0; r < 4; ++r)
        if (const pid_t p = rank_pid(tag_, r); p > 0) ::kill(p, SIGKILL);
      t_.join();
    }
  }
  void join() {
    t_.join();
    joined_ = true;
  }

 private:
  std::string tag_;
  std::thread t_;
  bool joined_ = false;
};

}  // namespace

TEST_CASE("the attnlab executable itself does not link MPI (the plugin does)", "[mpi]") {
  const CommandResult exe = run_command("ldd " + attnlab_binary());
  REQUIRE(exe.exit_code == 0);
  CHECK(exe.output.find("libmpi") == std::string::npos);
  const std::string plugin = (fs::path(attnlab_binary()).parent_path() / "libattnlab_mpi.so").string();
  const CommandResult so = run_command("ldd " + plugin);
  REQUIRE(so.exit_code == 0);
  CHECK(so.output.find("libmpi") != std::string::npos);
}

TEST_CASE("mpirun -np 2 with batch B is the single process with batch B/2, accum 2: loss at step 1 bitwise, "
          "then to float reassociation", "[mpi]") {
  TempDir d("mpi-eq");
  const std::string cfg = d.write("c.yaml", tiny(12, 8));
  const CommandResult one = run_command(attnlab_binary() + " train " + cfg + " --out " + d.file("one") +
                                        " --set train.batch=4 --set train.accum=2 --quiet");
  REQUIRE(one.exit_code == 0);
  const CommandResult two = run_command(mpirun(2) + " train " + cfg + " --out " + d.file("two") + " --quiet");
  INFO(two.output);
  REQUIRE(two.exit_code == 0);
  const auto a = records(read_file(d.file("one/metrics.jsonl"))), b = records(read_file(d.file("two/metrics.jsonl")));
  // Rank 0 alone writes: the same records, once each (a second writer would duplicate or interleave lines).
  REQUIRE(a.size() == b.size());
  REQUIRE(train_losses(read_file(d.file("two/metrics.jsonl"))).size() == 12);
  const auto la = train_losses(read_file(d.file("one/metrics.jsonl")));
  const auto lb = train_losses(read_file(d.file("two/metrics.jsonl")));
  CHECK(la[0] == lb[0]);  // step 1: same parameters, same micro-batches, losses summed in the same order
  double worst = 0.0;
  std::string worst_at;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto x = numbers(a[i]), y = numbers(b[i]);
    REQUIRE(x.size() == y.size());  // the same fields: instrumentation ran once, on rank 0, as in one process
    for (const auto& [k, v] : x) {
      REQUIRE(y.count(k));
      const double rel = std::abs(v - y.at(k)) / std::max(std::abs(v), 1e-3);
      if (rel > worst) worst = rel, worst_at = "record " + std::to_string(i) + " " + k;
    }
  }
  INFO("worst relative difference " << worst << " at " << worst_at);
  // The gradients are summed over the ranks instead of accumulated in one buffer: float reassociation,
  // ~1e-9 relative per step here, growing slowly through 12 steps of training (measured 1e-7).
  CHECK(worst < 1e-5);
  // The run directory records the split: config.yaml is the user's (batch 8), the checkpoint says 2 ranks.
  CHECK(read_file(d.file("two/config.yaml")).find("batch: 8") != std::string::npos);
}

TEST_CASE("mpirun -np 2 is bitwise reproducible, and resumes bitwise; resuming on another rank count is refused",
          "[mpi]") {
  TempDir d("mpi-det");
  const std::string cfg = d.write("c.yaml", tiny(12));
  for (const char* r : {"a", "b"})
    REQUIRE(run_command(mpirun(2) + " train " + cfg + " --out " + d.file(r) + " --quiet").exit_code == 0);
  CHECK(records(read_file(d.file("a/metrics.jsonl"))) == records(read_file(d.file("b/metrics.jsonl"))));
  // 6 steps, then resume to 12 under mpirun.
  REQUIRE(run_command(mpirun(2) + " train " + cfg + " --out " + d.file("c") + " --set train.steps=6 --quiet").exit_code == 0);
  const CommandResult res = run_command(mpirun(2) + " train --resume " + d.file("c") + " --set train.steps=12 --quiet");
  INFO(res.output);
  REQUIRE(res.exit_code == 0);
  CHECK(train_losses(read_file(d.file("c/metrics.jsonl"))) == train_losses(read_file(d.file("a/metrics.jsonl"))));
  const CommandResult single = run_command(attnlab_binary() + " train --resume " + d.file("c") + " --set train.steps=15");
  CHECK(single.exit_code == 2);
  CHECK(single.output.find("written by a run on 2 MPI ranks") != std::string::npos);
  CHECK(single.output.find("mpirun -np 2") != std::string::npos);
}

TEST_CASE("mpirun: bad input fails every rank before any step, with rank 0's message", "[mpi]") {
  TempDir d("mpi-bad");
  const std::string cfg = d.write("c.yaml", tiny(6, 4));
  const CommandResult odd = run_command(mpirun(2) + " train " + cfg + " --out " + d.file("r") + " --set train.batch=5");
  CHECK(odd.exit_code == 2);
  CHECK(odd.output.find("train.batch=5 cannot be split over 2 MPI ranks") != std::string::npos);
  CHECK(!fs::exists(d.file("r/metrics.jsonl")));
  const CommandResult key = run_command(mpirun(2) + " train " + cfg + " --out " + d.file("r2") + " --set model.d_modl=8");
  CHECK(key.exit_code == 2);
  CHECK(key.output.find("did you mean 'model.d_model'") != std::string::npos);
  const CommandResult other = run_command(mpirun(2) + " config " + cfg);
  CHECK(other.exit_code == 2);
  CHECK(other.output.find("under mpirun only 'train' and 'sweep' run") != std::string::npos);
}

TEST_CASE("mpirun: a rank killed mid-run ends the job within seconds, naming the rank", "[mpi]") {
  TempDir d("mpi-kill");
  const std::string cfg = d.write("c.yaml", tiny(1000000));
  const std::string out = d.file("out.txt"), run = d.file("run");
  Job job(mpirun(2) + " train " + cfg + " --out " + run + " --quiet > " + out + " 2>&1; echo exit=$? >> " + out, run);
  const pid_t victim = training_rank(run, 1);
  REQUIRE(victim > 0);
  const auto t0 = std::chrono::steady_clock::now();
  ::kill(victim, SIGKILL);
  job.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string text = read_file(out);
  INFO(text);
  CHECK(secs < 15.0);
  CHECK(text.find("exit=0") == std::string::npos);
  CHECK(text.find("rank 1") != std::string::npos);
}

TEST_CASE("mpirun: a rank that stops answering is caught by the watchdog (ATTNLAB_MPI_TIMEOUT)", "[mpi]") {
  TempDir d("mpi-hang");
  const std::string cfg = d.write("c.yaml", tiny(1000000));
  const std::string out = d.file("out.txt"), run = d.file("run");
  Job job("ATTNLAB_MPI_TIMEOUT=2 " + mpirun(2) + " train " + cfg + " --out " + run + " --quiet > " + out +
              " 2>&1; echo exit=$? >> " + out, run);
  const pid_t victim = training_rank(run, 1);
  REQUIRE(victim > 0);
  const auto t0 = std::chrono::steady_clock::now();
  ::kill(victim, SIGSTOP);  // alive but silent: mpirun cannot tell, only a timeout can
  job.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string text = read_file(out);
  INFO(text);
  CHECK(secs < 20.0);
  CHECK(text.find("exit=0") == std::string::npos);
  CHECK(text.find("rank 0 of 2: waited") != std::string::npos);
  CHECK(text.find("ATTNLAB_MPI_TIMEOUT=2") != std::string::npos);
}

TEST_CASE("mpirun sweep: every point runs once over the ranks, a rerun skips them, a cut run is resumed", "[mpi]") {
  TempDir d("mpi-sweep");
  d.write("base.yaml", tiny(6));
  const std::string sw = d.write("s.yaml", "base: base.yaml\ngrid: {optim.lr: [1.0e-3, 3.0e-3]}\nseeds: [1, 2]\n");
  const std::string dir = d.file("out");
  const CommandResult first = run_command(mpirun(2) + " sweep " + sw + " --out " + dir);
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  const std::vector<std::string> names = {"lr=0.001,seed=1", "lr=0.001,seed=2", "lr=0.003,seed=1", "lr=0.003,seed=2"};
  std::map<std::string, int> starts;
  static const std::regex start_re("start  (\\S+) \\(\\d+/4\\) on rank (\\d)");
  std::set<std::string> ranks_used;
  for (std::sregex_iterator it(first.output.begin(), first.output.end(), start_re), end; it != end; ++it) {
    starts[(*it)[1]]++;
    ranks_used.insert((*it)[2]);
  }
  for (const auto& n : names) {
    CHECK(starts[n] == 1);
    CHECK(fs::exists(dir + "/" + n + "/summary.md"));
    CHECK(train_losses(read_file(dir + "/" + n + "/metrics.jsonl")).size() == 6);  // one writer per run
  }
  CHECK(ranks_used == std::set<std::string>{"0", "1"});  // both ranks took work
  CHECK(first.output.find("4 of 4 runs finished (4 now)") != std::string::npos);
  CHECK(fs::exists(dir + "/summary.md"));
  // A finished sweep: nothing runs again.
  const CommandResult again = run_command(mpirun(2) + " sweep " + sw + " --out " + dir);
  CHECK(again.exit_code == 0);
  CHECK(again.output.find("4 finished, 0 stopped early, 0 to run") != std::string::npos);
  // One run cut short (its final checkpoint and summary gone): resumed, on whichever rank asks first.
  const std::string cut = dir + "/" + names[2];
  fs::remove(cut + "/ckpt/step_00000006.safetensors");
  fs::remove(cut + "/summary.md");
  const CommandResult resumed = run_command(mpirun(2) + " sweep " + sw + " --out " + dir);
  INFO(resumed.output);
  CHECK(resumed.exit_code == 0);
  CHECK(resumed.output.find("1 to run (1 to resume)") != std::string::npos);
  CHECK(resumed.output.find("4 of 4 runs finished (1 now)") != std::string::npos);
}

TEST_CASE("mpirun sweep: a failing point is reported as in one process and the sweep exits 1", "[mpi]") {
  TempDir d("mpi-sweep-fail");
  d.write("base.yaml", tiny(6));
  // lr 1e6 diverges: the run stops itself (non-finite loss) and is reported FAILED, not retried.
  const std::string sw = d.write("s.yaml", "base: base.yaml\ngrid: {optim.lr: [1.0e-3, 1.0e+6]}\nset: [optim.grad_clip=0]\n");
  const CommandResult r = run_command(mpirun(2) + " sweep " + sw + " --out " + d.file("out"));
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("FAILED lr=1e+06") != std::string::npos);
  CHECK(r.output.find("done   lr=0.001") != std::string::npos);
}

TEST_CASE("sweep --emit slurm writes a job array whose task i runs point i with the sweep's names", "[mpi][slurm]") {
  TempDir d("slurm");
  d.write("base.yaml", tiny(4));
  const std::string sw = d.write("s.yaml", "base: base.yaml\nseeds: [1, 2, 3]\n");
  const std::string dir = d.file("out");
  const CommandResult emit = run_command(attnlab_binary() + " sweep " + sw + " --out " + dir + " --emit slurm --set train.steps=3");
  INFO(emit.output);
  REQUIRE(emit.exit_code == 0);
  const std::string script = read_file(dir + "/sweep.slurm");
  CHECK(script.find("#SBATCH --array=0-2") != std::string::npos);
  CHECK(script.find("# 1  seed=2") != std::string::npos);
  CHECK(script.find("--set 'train.steps=3'") != std::string::npos);
  CHECK(!fs::exists(dir + "/seed=1"));  // emitting runs nothing
  // What Slurm would do for task 1 (bash ignores the #SBATCH lines).
  const CommandResult task = run_command("SLURM_ARRAY_TASK_ID=1 bash " + dir + "/sweep.slurm");
  INFO(task.output);
  REQUIRE(task.exit_code == 0);
  CHECK(fs::exists(dir + "/seed=2/summary.md"));
  CHECK(train_losses(read_file(dir + "/seed=2/metrics.jsonl")).size() == 3);
  CHECK(!fs::exists(dir + "/seed=1"));
  CHECK(!fs::exists(dir + "/summary.md"));  // the array's tasks leave the summary to a whole-sweep run
  // Outside an array task the script refuses; a point out of range is a clear error.
  CHECK(run_command("bash " + dir + "/sweep.slurm").exit_code != 0);
  const CommandResult bad = run_command(attnlab_binary() + " sweep " + sw + " --out " + dir + " --point 3");
  CHECK(bad.exit_code == 2);
  CHECK(bad.output.find("--point 3: ") != std::string::npos);
  CHECK(bad.output.find("has 3 points (0..2)") != std::string::npos);
}
