// toggles.h: a text signature of the model toggles (model/TOGGLES.md), for checkpoint compatibility
// checks. Lists every toggle field that differs from its default, e.g. " v_scale=learned qk_norm=true";
// empty with every toggle off, so the core model's signature does not change.
#pragma once
#include <string>

#include "model/model_config.h"

namespace attnlab {

std::string toggle_signature(const ModelConfig& cfg);

}  // namespace attnlab
