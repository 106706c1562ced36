// cmd_sweep.cpp: `attnlab sweep SWEEP.yaml` -> load_sweep and run_sweep (experiments/engine/sweep.h).
#include <cstdio>
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
    std::string emit;
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
  app->add_option("--point", o->sweep.point, "run only point I (0-based, in the order of --dry-run): a Slurm array task")
      ->type_name("I")
      ->check(CLI::Range(int64_t(0), int64_t(100000000)));
  add_value(app, "--emit", &o->emit, "write a job script instead of running: slurm (DIR/sweep.slurm, a job array)")
      ->type_name("slurm")
      ->check(CLI::IsMember({"slurm"}));
  run[app] = [o, &ctx] {
    if (o->path.empty()) throw UsageError("sweep: SWEEP.yaml is required");
    if (!o->emit.empty() && (o->sweep.point >= 0 || o->sweep.dry_run))
      throw UsageError("sweep: --emit cannot be combined with --point or --dry-run");
    if (ctx.comm && ctx.comm->size() > 1 && (o->sweep.point >= 0 || !o->emit.empty()))
      throw UsageError("sweep: --point and --emit run in one process, not under mpirun");
    const attnlab::Sweep sw = attnlab::load_sweep(o->path, o->extra);
    if (!o->emit.empty()) {
      o->sweep.sweep_file = o->path;
      o->sweep.extra = o->extra;
      std::fprintf(stderr, "%s\n", attnlab::emit_slurm(sw, o->sweep).c_str());
      return 0;
    }
    o->sweep.comm = ctx.comm;
    return attnlab::run_sweep(sw, o->sweep).exit_code;
  };
}

}  // namespace attnlab::cli
