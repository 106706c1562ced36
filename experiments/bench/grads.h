// grads.h: the `attnlab grads` command: the loss and every parameter gradient for one batch, written as
// safetensors ("loss" F32 [], "grad.<param name>" F32, the parameters under their plain names, and the
// batch as "inputs"/"targets" I32 [B, T]),
// for debugging and for cross-checks against other frameworks (experiments/bench/torch_reference.py).
#pragma once
#include <string>
#include <vector>

namespace attnlab {

struct GradsCommand {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string checkpoint;  // parameters from this checkpoint; empty means the config's seeded init
  std::string batch;       // safetensors with "inputs"/"targets" I32 [B, T]; empty: training batch 0
  std::string out;         // output safetensors path
};

int run_grads(const GradsCommand& cmd);

}  // namespace attnlab
