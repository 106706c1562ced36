// cmd_config.cpp: `attnlab config CONFIG.yaml` -> the resolved config on stdout (train/config/config.h).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "experiments/cli/commands.h"
#include "train/config/config.h"

namespace attnlab::cli {

void add_config(CLI::App& root, const Context&, Runners& run) {
  struct Options {
    std::string path;
    std::vector<std::string> overrides;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = root.add_subcommand("config", "Print the resolved config (every key, defaults filled in)");
  add_value(app, "CONFIG", &o->path, "the run config (YAML)")->type_name("CONFIG.yaml");
  add_repeated(app, "--set", &o->overrides, "override a config key (repeatable)")->type_name("KEY=VALUE");
  run[app] = [o] {
    if (o->path.empty()) throw UsageError("config: CONFIG.yaml is required");
    std::fputs(attnlab::dump_config(attnlab::load_config(o->path, o->overrides), o->overrides).c_str(), stdout);
    return 0;
  };
}

}  // namespace attnlab::cli
