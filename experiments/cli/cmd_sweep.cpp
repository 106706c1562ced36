// cmd_sweep.cpp: `attnlab sweep SWEEP.yaml` -> load_sweep and run_sweep (experiments/engine/sweep.h).
#include <memory>
#include <string>
#include <vector>

#include "experiments/cli/commands.h"
#include "experiments/engine/sweep.h"

namespace attnlab::cli {

void add_sweep(CLI::App& root, const Context& ctx, Runners& run) {
  struct Options {
    std::string path;
    std::vector<std::string> extra;
    attnlab::SweepOptions sweep;
  };
  auto o = std::make_shared<Options>();
  o->sweep.exe = ctx.self;
  CLI::App* app = root.add_subcommand("sweep", "Run the grid of a sweep file, one child process per point");
  add_value(app, "SWEEP", &o->path, "the sweep file (YAML)")->type_name("SWEEP.yaml");
  add_value(app, "--out", &o->sweep.out_dir, "the sweep directory (default: the sweep's default_dir)")->type_name("DIR");
  add_count(app, "--jobs", &o->sweep.jobs, "runs at a time (0: cores / threads)");
  add_count(app, "--threads", &o->sweep.threads, "threads per run (0: the config's train.threads, else 1)");
  add_repeated(app, "--set", &o->extra, "override a key of every run (repeatable)")->type_name("KEY=VALUE");
  app->add_flag("--dry-run", o->sweep.dry_run, "print the plan, run nothing");
  run[app] = [o] {
    if (o->path.empty()) throw UsageError("sweep: SWEEP.yaml is required");
    return attnlab::run_sweep(attnlab::load_sweep(o->path, o->extra), o->sweep).exit_code;
  };
}

}  // namespace attnlab::cli
