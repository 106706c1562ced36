// checkpoint.h: training checkpoints as safetensors files.
//
// Tensors: every parameter under its param_table() name ("tok_emb", "blocks.3.attn.w_q", ...), and the
// AdamW moments as "optim.m.<name>" and "optim.v.<name>". Metadata (strings): "format"
// ("attnlab-checkpoint-1"), "step" (optimizer steps done), "data_position" (the next training batch
// index = step·accum; batches are a pure function of (seed, index), so this is the whole loader state),
// "seed", "ranks" (MPI ranks), "model" (the model signature, checked on load), "config" (the resolved YAML) and "commit".
// The data sampler and initialiser are counter-based, so there is no other RNG state to save.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/transformer.h"
#include "train/adamw.h"
#include "train/config/config.h"
#include "train/formats/safetensors.h"

namespace attnlab {

// "vocab=256 d_model=64 ..." — every ModelConfig field that changes the parameter layout or the math.
std::string model_signature(const ModelConfig& cfg);

// Atomic (temp file + rename). Throws IoError.
// `monitor_state` (optional): the instrumentation's rolling history (spike detectors), stored exactly as
// metadata "monitor_state" so that resumed z-scores continue bitwise too.
// `ranks`: the MPI rank count the run trains on (metadata "ranks"; train.batch is split into `ranks`
// micro-batches, so a run resumes on the same count).
void save_checkpoint(const std::string& path, const Transformer& model, const AdamW& opt, int64_t step,
                     const RunConfig& cfg, const std::vector<double>* monitor_state = nullptr, int ranks = 1);

// Loads parameters (and the optimizer moments when opt != nullptr) into place. Refuses, with an IoError
// naming the file and the first mismatch, a checkpoint whose format, model signature, tensor names or
// shapes differ from `model`, or that is missing optimizer state when opt is given. Returns the step.
// `monitor_state` receives the instrumentation's saved state (empty when the run that wrote it had none; a
// present but empty entry is refused as damage); `config_text` the resolved config it was written with
// (empty for a checkpoint without one); `ranks` the rank count it was written on (1 when not recorded).
int64_t load_checkpoint(const std::string& path, Transformer& model, AdamW* opt,
                        std::vector<double>* monitor_state = nullptr, std::string* config_text = nullptr,
                        int* ranks = nullptr);

}  // namespace attnlab
