// trainer.h: one optimizer step = data → forward → backward (× accum) → grad norm → monitor → clip →
// AdamW → monitor.
// No math lives here; it only sequences the model, the optimizer and the data.
#pragma once
#include <cstdint>
#include <vector>

#include "instrument/monitor.h"
#include "model/dnnl_context.h"
#include "model/transformer.h"
#include "train/adamw.h"
#include "train/comm.h"
#include "train/config/config.h"
#include "train/data.h"

namespace attnlab {

struct StepStats {
  int64_t step = 0;        // 0-based index of the step just taken
  // The objective and its parts, each the mean over the step's micro-batches: loss = loss_ce + loss_z
  // (exactly, in double). loss_z is 0 unless model.z_loss > 0.
  double loss = 0.0;
  double loss_ce = 0.0;    // cross-entropy
  double loss_z = 0.0;     // z-loss term c·mean(lse²)
  float lr = 0.0f;         // learning rate used
  double grad_norm = 0.0;  // global gradient norm before clipping
  bool clipped = false;    // whether clipping scaled the gradients
  bool finite = true;      // loss and gradient norm finite; when false no update was applied
  double seconds = 0.0;    // wall time of the step
};

// A loss and its parts (loss = loss_ce + loss_z exactly); see StepStats.
struct LossParts {
  double loss = 0.0, loss_ce = 0.0, loss_z = 0.0;
};

// Data parallel over the ranks of `comm` (nullptr or size 1: one process). `cfg` is the config of the
// equivalent single process: train.batch rows per micro-batch and train.accum micro-batches per step over
// all ranks (rank_config() makes it from a user's config); each rank runs accum / ranks of the micro-batches
// (rank 0 the last block, rank 1 the one before, …), the gradients are summed over the ranks before the norm, the clip
// and AdamW, and every rank applies the same update, so the parameters stay identical on every rank.
class Trainer {
 public:
  Trainer(const RunConfig& cfg, DnnlContext& ctx, const Dataset& data, Comm* comm = nullptr);
  StepStats step();
  // Mean validation loss (the objective, with its parts) over train.eval_batches fixed batches (forward
  // only; gradients untouched).
  LossParts evaluate();

  // Instrumentation hooks (nullptr = off). The monitor reads; it never changes what the step computes.
  void set_monitor(Monitor* m) { monitor_ = m; }
  // Fills the fixed probe batch (validation split, index instrument.probe_seed) into `inputs/targets`.
  void probe_batch(int32_t* inputs, int32_t* targets) const;

  int64_t next_step() const { return step_; }
  void set_next_step(int64_t s) { step_ = s; }
  Transformer& model() { return model_; }
  AdamW& optim() { return opt_; }
  const RunConfig& config() const { return cfg_; }
  int64_t tokens_per_step() const { return int64_t(cfg_.train.batch) * cfg_.train.accum * cfg_.model.seq_len; }

 private:
  RunConfig cfg_;
  const Dataset& data_;
  Transformer model_;
  AdamW opt_;
  std::vector<int32_t> inputs_, targets_;
  std::vector<double> norm_scratch_;
  std::vector<double> parts_;  // the losses of every micro-batch (or eval batch), summed over the ranks
  Comm* comm_ = nullptr;       // nullptr: one process
  int64_t step_ = 0;
  Monitor* monitor_ = nullptr;
};

// The config each rank trains with when `user` runs on `ranks` ranks: train.batch / ranks rows per
// micro-batch, train.accum · ranks micro-batches per step (the equivalent single-process run). Throws
// ConfigError when train.batch is not a multiple of ranks.
RunConfig rank_config(const RunConfig& user, int ranks);

// Decay groups from the parameter table: 2-D weights decay, vectors (gains) do not.
std::vector<ParamGroup> decay_groups(const std::vector<ParamInfo>& table);

}  // namespace attnlab
