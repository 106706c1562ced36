// cmd_grads.cpp: `attnlab grads CONFIG.yaml --out GRADS.safetensors` -> run_grads (experiments/bench/grads.h).
#include <memory>
#include <string>
#include <vector>

#include "experiments/bench/grads.h"
#include "experiments/cli/commands.h"

namespace attnlab::cli {

void add_grads(CLI::App& root, const Context&, Runners& run) {
  auto c = std::make_shared<attnlab::GradsCommand>();
  CLI::App* app = root.add_subcommand("grads", "Write the loss, every gradient, the parameters and the batch of one step");
  add_value(app, "CONFIG", &c->config_path, "the run config (YAML)")->type_name("CONFIG.yaml");
  add_value(app, "--out", &c->out, "the output file (required)")->type_name("GRADS.safetensors");
  add_value(app, "--checkpoint", &c->checkpoint, "parameters from this checkpoint (default: the seeded init)")
      ->type_name("CKPT");
  add_value(app, "--batch", &c->batch, "inputs/targets from this safetensors file (default: training batch 0)")
      ->type_name("BATCH");
  add_repeated(app, "--set", &c->overrides, "override a config key (repeatable)")->type_name("KEY=VALUE");
  run[app] = [c] {
    if (c->config_path.empty()) throw UsageError("grads: CONFIG.yaml is required");
    if (c->out.empty()) throw UsageError("grads: --out GRADS.safetensors is required");
    return attnlab::run_grads(*c);
  };
}

}  // namespace attnlab::cli
