// cmd_bench.cpp: `attnlab bench` -> run_bench (experiments/bench/bench.h).
#include <memory>
#include <string>
#include <vector>

#include "experiments/bench/bench.h"
#include "experiments/cli/commands.h"

namespace attnlab::cli {

void add_bench(CLI::App& root, const Context& ctx, Runners& run) {
  auto c = std::make_shared<attnlab::BenchCommand>();
  c->self_exe = ctx.self;
  CLI::App* app = root.add_subcommand("bench", "Time training steps: the presets, or CONFIG.yaml");
  add_value(app, "CONFIG", &c->config_path, "time this config instead of the presets")->type_name("CONFIG.yaml");
  add_list(app, "--preset", &c->presets, "the benchmark presets (README.md, \"Benchmarks and threads\")");
  add_int_list(app, "--threads", &c->threads, "thread counts to time");
  add_list(app, "--instrument", &c->instrument, "instrumentation modes: off, default, all");
  add_count(app, "--warmup", &c->warmup, "untimed steps per cell");
  add_count(app, "--steps", &c->steps, "timed steps per repeat (0: the preset's, about 1-2 s)");
  add_count(app, "--repeats", &c->repeats, "timed repeats per cell");
  add_repeated(app, "--set", &c->overrides, "override a config key (repeatable)")->type_name("KEY=VALUE");
  app->add_flag("--json", c->json, "one JSON line per cell, the cell run in this process");
  add_int_list(app, "--ranks", &c->ranks, "MPI rank counts to time (R > 1: the cell under mpirun -np R)");
  app->add_flag("--mpi-tcp", c->mpi_tcp, "ranks talk over loopback TCP instead of shared memory");
  run[app] = [c, &ctx] {
    c->comm = ctx.comm;
    if (c->comm && c->comm->size() > 1 && !c->json)
      throw UsageError("bench: under mpirun only a --json cell runs; attnlab bench --ranks 1,2 starts mpirun itself");
    for (const auto& p : c->presets) attnlab::bench_preset(p);  // unknown names fail before any work
    for (const auto& m : c->instrument)
      if (m != "off" && m != "default" && m != "all")
        throw UsageError("bench: --instrument takes off, default or all, got '" + m + "'");
    return attnlab::run_bench(*c);
  };
}

}  // namespace attnlab::cli
