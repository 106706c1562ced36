// cmd_train.cpp: `attnlab train CONFIG.yaml` and `attnlab train --resume RUN_DIR` -> run_train (train/run.h).
#include <memory>
#include <string>
#include <vector>

#include "experiments/cli/commands.h"
#include "train/run.h"

namespace attnlab::cli {

void add_train(CLI::App& root, const Context& ctx, Runners& run) {
  auto c = std::make_shared<attnlab::TrainCommand>();
  c->argv = ctx.argv;
  CLI::App* app = root.add_subcommand("train", "Train a model; writes a run directory (README.md, \"Run directory\")");
  add_value(app, "CONFIG", &c->config_path, "the run config (YAML)")->type_name("CONFIG.yaml");
  add_repeated(app, "--set", &c->overrides, "override a config key, e.g. --set optim.lr=1e-3 (repeatable)")
      ->type_name("KEY=VALUE");
  add_value(app, "--out", &c->out_dir, "the new run directory (default: runs/<config name>-<time>)")->type_name("RUN_DIR");
  add_value(app, "--resume", &c->resume_dir, "continue the run in RUN_DIR from its newest checkpoint")
      ->type_name("RUN_DIR");
  app->add_flag("--quiet", c->quiet, "no per-step progress lines");
  run[app] = [c, &ctx] {
    if (c->config_path.empty() && c->resume_dir.empty()) throw UsageError("train: CONFIG.yaml or --resume RUN_DIR is required");
    if (!c->config_path.empty() && !c->resume_dir.empty())
      throw UsageError("train: give either CONFIG.yaml or --resume RUN_DIR (a resumed run uses its own config.yaml)");
    if (!c->resume_dir.empty() && !c->out_dir.empty()) throw UsageError("train: --out cannot be combined with --resume");
    return attnlab::run_train(*c, ctx.comm);
  };
}

}  // namespace attnlab::cli
