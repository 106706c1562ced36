// export.h: `attnlab export CKPT --format hf-llama --out DIR`: a checkpoint as a Hugging Face Llama model
// directory (model.safetensors + config.json) that tools without attnlab can load.
//
// Only the core model maps onto Llama: RoPE, SwiGLU, pre-norm RMSNorm, no biases. Every model key whose
// value has no Llama equivalent (GELU or no MLP, sinusoidal or no positions, any toggle of model/TOGGLES.md
// except z_loss, which only changes training) is refused with the key and value named. The q and k rows are
// permuted from attnlab's interleaved RoPE pairs (2i, 2i+1) to Llama's rotate-half pairs (i, i + d_head/2)
// (rope_rows_to_rotate_half), so the exported model computes the same logits.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "train/formats/safetensors.h"

namespace attnlab {

// A refused export (a model Llama cannot express, a file that is not an attnlab checkpoint): bad input.
class ExportError : public IoError {
 public:
  using IoError::IoError;
};

struct ExportCommand {
  std::string checkpoint;         // a checkpoint file, or a run directory (its newest checkpoint)
  std::string format = "hf-llama";  // the only format so far
  std::string out;                // a new or empty directory
};

// Writes OUT/model.safetensors and OUT/config.json. Throws ExportError / IoError / ConfigError naming the
// file and the problem; nothing is left in OUT on a refusal. Returns 0.
int run_export(const ExportCommand& c);

// Every model key of `cfg` with no Hugging Face Llama equivalent, as "model.key=value (why)"; empty when
// the model can be exported.
std::vector<std::string> hf_llama_unsupported(const ModelConfig& cfg);

// q or k weight [n_head·d_head, cols] (row-major) with each head's rows reordered from interleaved RoPE
// pairs to rotate-half: output row h·dh + j is input row h·dh + 2j for j < dh/2, h·dh + 2(j − dh/2) + 1 after.
std::vector<float> rope_rows_to_rotate_half(const float* w, int n_head, int d_head, int cols);

// config.json of the exported model (LlamaForCausalLM, float32).
std::string hf_llama_config_json(const ModelConfig& cfg);

}  // namespace attnlab
