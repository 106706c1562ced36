// cmd_repro.cpp: `attnlab repro NAME` and `attnlab repro --list` -> run_repro, list_repros
// (experiments/engine/repro.h).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "experiments/cli/commands.h"
#include "experiments/engine/report.h"
#include "experiments/engine/repro.h"

namespace attnlab::cli {

void add_repro(CLI::App& root, const Context& ctx, Runners& run) {
  struct Options {
    attnlab::ReproCommand repro;
    bool list = false;
  };
  auto o = std::make_shared<Options>();
  o->repro.exe = ctx.self;
  CLI::App* app = root.add_subcommand("repro", "Reproduce a finding: its sweep, its claims' verdict and its report");
  add_value(app, "NAME", &o->repro.name, "a reproduction under experiments/, or its directory")->type_name("NAME|DIR");
  add_value(app, "--budget", &o->repro.budget, "quick or full (default: the first budget in repro.yaml)")
      ->type_name("BUDGET");
  add_value(app, "--out", &o->repro.out_dir, "the output directory (default: runs/repro/<name>/<budget>)")
      ->type_name("DIR");
  add_count(app, "--jobs", &o->repro.jobs, "runs at a time (0: cores / threads)");
  add_count(app, "--threads", &o->repro.threads, "threads per run (0: the config's)");
  app->add_flag_callback("--no-report", [o] { o->repro.report = false; }, "skip the HTML report after the claims");
  app->add_flag("--list", o->list, "list the reproductions");
  run[app] = [o] {
    if (o->list) {
      std::fputs(attnlab::list_repros_table(attnlab::attnlab_home()).c_str(), stdout);
      return 0;
    }
    if (o->repro.name.empty()) throw UsageError("repro: NAME is required (attnlab repro --list shows them)");
    return attnlab::run_repro(o->repro);
  };
}

}  // namespace attnlab::cli
