// probe.h: what a metric family sees: read-only views of the model's state after a forward and backward
// pass on the probe batch (or a training step). Everything is addressable by layer through the Layout
// (model/layout.h documents every buffer and its shape): activations (acts), activation gradients
// (act_grads), parameters and parameter gradients (block / block_grad / head / head_grad).
#pragma once
#include <cstdint>

#include "model/layout.h"
#include "model/model_config.h"

namespace attnlab {

struct ProbeView {
  const ModelConfig& cfg;
  const Layout& layout;         // after forward + backward on the batch below
  const int32_t* inputs;        // [B, seq_len] data tokens of that batch (no sink token)
  const int32_t* targets;       // [B, seq_len]
  bool has_grads = true;        // false if only a forward pass was run
};

}  // namespace attnlab
