// cmd_sweep.cpp: `attnlab sweep SWEEP.yaml` -> load_sweep and run_sweep (experiments/engine/sweep.h).
#include <cstdio>
#include <cstdlib>
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
  add_count(app, "--jobs", &o->sweep.jobs, "runs at a time (0: cores / threads; under mpirun 1 per rank)");
  add_count(app, "--threads", &o->sweep.threads, "threads per run (0: the config's train.threads, else 1)");
  add_repeated(app, "--set", &o->extra, "override a key of every run (repeatable)")->type_name("KEY=VALUE");
  app->add_flag("--dry-run", o->sweep.dry_run, "print the plan, run nothing");
  app->add_option_function<std::string>("--point", [o](const std::string& v) {
        char* end = nullptr;
        const long long x = std::strtoll(v.c_str(), &end, 10);
        if (v.empty() || *end != '\0' || x < 0 || x > 100000000)
          throw UsageError("sweep: --point expects a point index >= 0, got '" + v + "'");
        o->sweep.point = x;
      }, "run only point I (0-based, the --dry-run order): one task of a Slurm array")->type_name("I");
  add_value(app, "--emit", &o->emit, "write DIR/sweep.slurm (a Slurm job array, one task per point) instead of running")
      ->type_name("slurm");
  run[app] = [o, &ctx] {
    if (o->path.empty()) throw UsageError("sweep: SWEEP.yaml is required");
    if (!o->emit.empty() && o->emit != "slurm") throw UsageError("sweep: --emit knows 'slurm', got '" + o->emit + "'");
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
