// main.cpp: the attnlab command line. The only place that catches input errors and turns them into
// exit codes: 0 success, 1 the run failed (for example a non-finite loss), 2 bad input, 130 interrupted.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "experiments/bench/bench.h"
#include "experiments/bench/grads.h"
#include "experiments/engine/repro.h"
#include "experiments/engine/sweep.h"
#include "train/config/config.h"
#include "train/data.h"
#include "train/formats/safetensors.h"
#include "train/run.h"

namespace {

const char* kUsage =
    "usage:\n"
    "  attnlab train CONFIG.yaml [--set key.path=value ...] [--out RUN_DIR] [--quiet]\n"
    "  attnlab train --resume RUN_DIR [--set train.steps=N ...]\n"
    "  attnlab grads CONFIG.yaml --out GRADS.safetensors [--checkpoint CKPT] [--batch BATCH] [--set ...]\n"
    "  attnlab bench [--preset A,B,C,D] [--threads 1,2] [--instrument off,default,all] [--warmup N]\n"
    "                [--steps N] [--repeats N] [--json]\n"
    "  attnlab bench CONFIG.yaml [--set ...] [--threads ...]\n"
    "  attnlab config CONFIG.yaml [--set ...]      print the resolved config\n"
    "  attnlab sweep SWEEP.yaml [--out DIR] [--jobs N] [--threads N] [--set key=value ...] [--dry-run]\n"
    "  attnlab repro NAME|DIR [--budget quick|full] [--out DIR] [--jobs N] [--threads N] [--no-report]\n"
    "  attnlab repro --list                        the reproductions under experiments/\n"
    "  attnlab report RUN_OR_SWEEP... [--out DIR]  HTML page and figures (experiments/report/report.py)\n"
    "See README.md for the config keys, the run directory and the metrics schema.\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A small argv walker: flags with values, repeated --set, positional arguments.
struct Args {
  std::vector<std::string> v;
  size_t i = 0;
  bool done() const { return i >= v.size(); }
  std::string next_value(const std::string& flag) {
    if (i + 1 >= v.size()) throw UsageError(flag + " needs a value");
    ++i;
    return v[i];
  }
};

std::vector<int> parse_int_list(const std::string& flag, const std::string& s) {
  std::vector<int> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    const std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    char* end = nullptr;
    const long x = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || x <= 0 || x > 1024)
      throw UsageError(flag + " expects positive integers separated by commas, got '" + s + "'");
    out.push_back(int(x));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

int cmd_train(Args& a, const std::vector<std::string>& argv) {
  attnlab::TrainCommand c;
  c.argv = argv;
  for (; !a.done(); ++a.i) {
    const std::string& s = a.v[a.i];
    if (s == "--set") c.overrides.push_back(a.next_value(s));
    else if (s == "--out") c.out_dir = a.next_value(s);
    else if (s == "--resume") c.resume_dir = a.next_value(s);
    else if (s == "--quiet") c.quiet = true;
    else if (!s.empty() && s[0] == '-') throw UsageError("train: unknown option " + s);
    else if (c.config_path.empty()) c.config_path = s;
    else throw UsageError("train: unexpected argument " + s);
  }
  if (c.config_path.empty() && c.resume_dir.empty()) throw UsageError("train: CONFIG.yaml or --resume RUN_DIR is required");
  if (!c.config_path.empty() && !c.resume_dir.empty())
    throw UsageError("train: give either CONFIG.yaml or --resume RUN_DIR (a resumed run uses its own config.yaml)");
  if (!c.resume_dir.empty() && !c.out_dir.empty()) throw UsageError("train: --out cannot be combined with --resume");
  return attnlab::run_train(c);
}

int cmd_grads(Args& a) {
  attnlab::GradsCommand c;
  for (; !a.done(); ++a.i) {
    const std::string& s = a.v[a.i];
    if (s == "--set") c.overrides.push_back(a.next_value(s));
    else if (s == "--out") c.out = a.next_value(s);
    else if (s == "--checkpoint") c.checkpoint = a.next_value(s);
    else if (s == "--batch") c.batch = a.next_value(s);
    else if (!s.empty() && s[0] == '-') throw UsageError("grads: unknown option " + s);
    else if (c.config_path.empty()) c.config_path = s;
    else throw UsageError("grads: unexpected argument " + s);
  }
  if (c.config_path.empty()) throw UsageError("grads: CONFIG.yaml is required");
  if (c.out.empty()) throw UsageError("grads: --out GRADS.safetensors is required");
  return attnlab::run_grads(c);
}

int cmd_bench(Args& a, const std::string& self) {
  attnlab::BenchCommand c;
  c.self_exe = self;
  for (; !a.done(); ++a.i) {
    const std::string& s = a.v[a.i];
    if (s == "--preset") c.presets = split_list(a.next_value(s));
    else if (s == "--threads") c.threads = parse_int_list(s, a.next_value(s));
    else if (s == "--warmup") c.warmup = parse_int_list(s, a.next_value(s)).at(0);
    else if (s == "--steps") c.steps = parse_int_list(s, a.next_value(s)).at(0);
    else if (s == "--repeats") c.repeats = parse_int_list(s, a.next_value(s)).at(0);
    else if (s == "--set") c.overrides.push_back(a.next_value(s));
    else if (s == "--instrument") c.instrument = split_list(a.next_value(s));
    else if (s == "--json") c.json = true;
    else if (!s.empty() && s[0] == '-') throw UsageError("bench: unknown option " + s);
    else if (c.config_path.empty()) c.config_path = s;
    else throw UsageError("bench: unexpected argument " + s);
  }
  for (const auto& p : c.presets) attnlab::bench_preset(p);  // unknown names fail before any work
  for (const auto& m : c.instrument)
    if (m != "off" && m != "default" && m != "all")
      throw UsageError("bench: --instrument takes off, default or all, got '" + m + "'");
  return attnlab::run_bench(c);
}

int cmd_config(Args& a) {
  std::string path;
  std::vector<std::string> overrides;
  for (; !a.done(); ++a.i) {
    const std::string& s = a.v[a.i];
    if (s == "--set") overrides.push_back(a.next_value(s));
    else if (!s.empty() && s[0] == '-') throw UsageError("config: unknown option " + s);
    else path = s;
  }
  if (path.empty()) throw UsageError("config: CONFIG.yaml is required");
  std::fputs(attnlab::dump_config(attnlab::load_config(path, overrides), overrides).c_str(), stdout);
  return 0;
}

int cmd_sweep(Args& a, const std::string& self) {
  std::string path;
  std::vector<std::string> extra;
  attnlab::SweepOptions o;
  o.exe = self;
  for (; !a.done(); ++a.i) {
    const std::string& s = a.v[a.i];
    if (s == "--out") o.out_dir = a.next_value(s);
    else if (s == "--jobs") o.jobs = parse_int_list(s, a.next_value(s)).at(0);
    else if (s == "--threads") o.threads = parse_int_list(s, a.next_value(s)).at(0);
    else if (s == "--set") extra.push_back(a.next_value(s));
    else if (s == "--dry-run") o.dry_run = true;
    else if (!s.empty() && s[0] == '-') throw UsageError("sweep: unknown option " + s);
    else if (path.empty()) path = s;
    else throw UsageError("sweep: unexpected argument " + s);
  }
  if (path.empty()) throw UsageError("sweep: SWEEP.yaml is required");
  return attnlab::run_sweep(attnlab::load_sweep(path, extra), o).exit_code;
}

int cmd_repro(Args& a, const std::string& self) {
  attnlab::ReproCommand c;
  c.exe = self;
  bool list = false;
  for (; !a.done(); ++a.i) {
    const std::string& s = a.v[a.i];
    if (s == "--budget") c.budget = a.next_value(s);
    else if (s == "--out") c.out_dir = a.next_value(s);
    else if (s == "--jobs") c.jobs = parse_int_list(s, a.next_value(s)).at(0);
    else if (s == "--threads") c.threads = parse_int_list(s, a.next_value(s)).at(0);
    else if (s == "--no-report") c.report = false;
    else if (s == "--list") list = true;
    else if (!s.empty() && s[0] == '-') throw UsageError("repro: unknown option " + s);
    else if (c.name.empty()) c.name = s;
    else throw UsageError("repro: unexpected argument " + s);
  }
  if (list) {
    for (const auto& n : attnlab::list_repros(attnlab::attnlab_home())) std::printf("%s\n", n.c_str());
    return 0;
  }
  if (c.name.empty()) throw UsageError("repro: NAME is required (attnlab repro --list shows them)");
  return attnlab::run_repro(c);
}

// The real path of this executable: children started through it must not depend on argv[0] or the cwd.
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

}  // namespace

int main(int argc, char** argv) {
  apply_thread_defaults(argv);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string verb = args[0];
  Args a{std::vector<std::string>(args.begin() + 1, args.end())};
  try {
    if (verb == "train") return cmd_train(a, std::vector<std::string>(argv, argv + argc));
    if (verb == "grads") return cmd_grads(a);
    // The real path: "/proc/self/exe" inside popen's shell is the shell.
    if (verb == "bench") return cmd_bench(a, self_exe(argv[0]));
    if (verb == "config") return cmd_config(a);
    if (verb == "sweep") return cmd_sweep(a, self_exe(argv[0]));
    if (verb == "repro") return cmd_repro(a, self_exe(argv[0]));
    if (verb == "report") attnlab::exec_report(a.v);  // replaces this process
    throw UsageError("unknown command '" + verb + "'");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "attnlab: %s\n%s", e.what(), kUsage);
    return 2;
  } catch (const attnlab::ConfigError& e) {
    std::fprintf(stderr, "attnlab: config error: %s\n", e.what());
    return 2;
  } catch (const attnlab::ClaimError& e) {
    std::fprintf(stderr, "attnlab: claim error: %s\n", e.what());
    return 2;
  } catch (const attnlab::DataError& e) {
    std::fprintf(stderr, "attnlab: data error: %s\n", e.what());
    return 2;
  } catch (const attnlab::IoError& e) {
    std::fprintf(stderr, "attnlab: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attnlab: error: %s\n", e.what());
    return 1;
  }
}
