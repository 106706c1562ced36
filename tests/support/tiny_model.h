// tiny_model.h: tiny models and their inputs, for the model and instrument tests: ModelConfigs small enough for
// finite differences and closed forms, seeded token batches, and a small dense matrix owned by the test.
// (Runs: tests/support/fixtures.h; finite differences: gradcheck.h and model_check.h.)
#pragma once
#include <cstdint>
#include <vector>

#include "model/model_config.h"
#include "model/rng.h"
#include "model/tensor.h"

namespace attnlab::testing {

// What a tiny model sets; every other field keeps its ModelConfig default. The sizes default to the
// gradient-check model: 2 layers, d = 16, 2 heads of 8, T = 8.
struct TinySpec {
  int vocab = 11;
  int d_model = 16;
  int n_layer = 2;
  int n_head = 2;
  int seq_len = 8;
  int mlp_hidden = 24;
  MlpKind mlp = MlpKind::kSwiGLU;
  PosEncoding pos = PosEncoding::kRope;
  bool tied_head = false;
  float init_std = ModelConfig{}.init_std;
};

inline ModelConfig tiny_model(const TinySpec& s) {
  ModelConfig c;
  c.vocab = s.vocab;
  c.d_model = s.d_model;
  c.n_layer = s.n_layer;
  c.n_head = s.n_head;
  c.seq_len = s.seq_len;
  c.mlp = s.mlp;
  c.mlp_hidden = s.mlp_hidden;
  c.pos = s.pos;
  c.tied_head = s.tied_head;
  c.init_std = s.init_std;
  return c;
}

// The gradient-check model with the given positions, MLP and head.
inline ModelConfig tiny_model(PosEncoding pos = PosEncoding::kRope, MlpKind mlp = MlpKind::kSwiGLU,
                              bool tied = false) {
  // init_std larger than the 0.02 default so every gradient is well above float noise
  return tiny_model({.mlp = mlp, .pos = pos, .tied_head = tied, .init_std = 0.3f});
}

inline const char* pos_name(PosEncoding p) {
  return p == PosEncoding::kRope ? "rope" : p == PosEncoding::kSinusoidal ? "sinusoidal" : "none";
}

// Seeded inputs and targets, n of each, uniform in [0, V): every input first, then every target.
inline void random_batch(int n, int V, uint64_t seed, std::vector<int32_t>* in, std::vector<int32_t>* tg) {
  Rng rng(seed);
  in->resize(size_t(n));
  tg->resize(size_t(n));
  for (auto& x : *in) x = int32_t(rng.below(uint64_t(V)));
  for (auto& x : *tg) x = int32_t(rng.below(uint64_t(V)));
}

// A seeded batch [B, T]; targets[3] = -1 exercises the ignore mask.
inline void make_batch(int B, int T, int V, uint64_t seed, std::vector<int32_t>* in, std::vector<int32_t>* tg) {
  random_batch(B * T, V, seed, in, tg);
  (*tg)[3] = -1;
}

// A dense row-major matrix owned by the test.
struct Mat {
  int rows, cols;
  std::vector<float> v;
  Mat(int r, int c, float fill = 0.0f) : rows(r), cols(c), v(size_t(r) * c, fill) {}
  float& operator()(int r, int c) { return v[size_t(r) * cols + c]; }
  ConstMatView view() const { return ConstMatView(v.data(), rows, cols); }
};

}  // namespace attnlab::testing
