// config.h: the run configuration. YAML is decoded into these plain structs here and nowhere else;
// no YAML::Node travels past config.cpp. Every error names the source file, the key path and the line
// (and for an unknown key, the closest valid key).
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include "instrument/instrument_config.h"
#include "model/model_config.h"
#include "train/adamw.h"
#include "train/data.h"
#include "train/lr_schedule.h"
#include "train/train_config.h"

namespace attnlab {

struct RunConfig {
  ModelConfig model;
  DataConfig data;
  OptimConfig optim;
  ScheduleConfig schedule;
  TrainConfig train;
  InstrumentConfig instrument;
};

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads `path`, applies `overrides` ("a.b=value", parsed as YAML scalars through the same reader), and
// validates. Relative data.path / data.corpus_dir values become absolute: from the file, relative to the
// file's folder; from an override, relative to the working directory. Throws ConfigError.
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// Same from text; `source_name` is used in messages in place of the file name.
RunConfig parse_config(const std::string& yaml_text, const std::string& source_name,
                       const std::vector<std::string>& overrides = {});
// Checks relations between fields (d_model % n_head, RoPE needs an even d_head, positive sizes,
// vocab covers the data and the BOS id, ...). Throws ConfigError naming the key path.
void validate(const RunConfig& cfg);
// The resolved configuration as YAML: every field with its value (defaults filled in), loadable by
// parse_config to give back the same RunConfig. Overrides are listed in a trailing comment block.
std::string dump_config(const RunConfig& cfg, const std::vector<std::string>& overrides = {});

// One key whose value differs between two configs: its path ("optim.lr") and both values as dumped.
struct ConfigDifference {
  std::string path, a, b;
};
// Every key of `a` and `b` whose dumped value differs, in table order.
std::vector<ConfigDifference> config_differences(const RunConfig& a, const RunConfig& b);

}  // namespace attnlab
