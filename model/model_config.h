// model_config.h: the model's shape and numerics. A plain struct with in-class defaults; decoded from YAML
// in train/config.cpp only, validated there (d_model % n_head == 0 and so on) before any model is built.
#pragma once
#include <cstdint>

namespace attnlab {

enum class PosEncoding : uint8_t { kNone, kSinusoidal, kRope };
enum class MlpKind : uint8_t { kSwiGLU, kGELU };

struct ModelConfig {
  int vocab = 256;             // vocabulary size (byte-level by default)
  int d_model = 64;            // residual stream width
  int n_layer = 2;             // number of pre-norm blocks
  int n_head = 4;              // attention heads; d_head = d_model / n_head
  int seq_len = 64;            // T: tokens per sequence (context length)
  MlpKind mlp = MlpKind::kSwiGLU;
  int mlp_hidden = 0;          // MLP hidden width; 0 means 4 * d_model
  PosEncoding pos = PosEncoding::kRope;
  float rope_base = 10000.0f;  // RoPE frequency base: angle(t, i) = t * base^(-2i/d_head)
  bool tied_head = false;      // LM head shares the token-embedding matrix
  float norm_eps = 1e-5f;      // RMSNorm epsilon inside the square root
  float init_std = 0.02f;      // std of the N(0, init_std^2) init of every weight matrix and embedding

  int d_head() const { return d_model / n_head; }
  int hidden() const { return mlp_hidden > 0 ? mlp_hidden : 4 * d_model; }
};

}  // namespace attnlab
