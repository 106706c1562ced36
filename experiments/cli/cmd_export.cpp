// cmd_export.cpp: `attnlab export CKPT --format hf-llama --out DIR` -> run_export (experiments/engine/export.h).
#include <memory>
#include <string>

#include "experiments/cli/commands.h"
#include "experiments/engine/export.h"

namespace attnlab::cli {

void add_export(CLI::App& root, const Context& ctx, Runners& run) {
  (void)ctx;
  auto c = std::make_shared<attnlab::ExportCommand>();
  CLI::App* app = root.add_subcommand("export", "Write a checkpoint as a Hugging Face Llama model (experiments/engine/README.md)");
  add_value(app, "CKPT", &c->checkpoint, "a checkpoint file, or a run directory (its newest checkpoint)")
      ->type_name("CKPT|RUN_DIR");
  add_value(app, "--format", &c->format, "the output format")->type_name("hf-llama");
  add_value(app, "--out", &c->out, "a new or empty directory for model.safetensors and config.json")->type_name("DIR");
  run[app] = [c] {
    if (c->checkpoint.empty()) throw UsageError("export: CKPT (a checkpoint or a run directory) is required");
    if (c->out.empty()) throw UsageError("export: --out DIR is required");
    return attnlab::run_export(*c);
  };
}

}  // namespace attnlab::cli
