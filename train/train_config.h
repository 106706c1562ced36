// train_config.h: the run loop's settings (sizes, cadences, seed, threads).
#pragma once
#include <cstdint>

namespace attnlab {

struct TrainConfig {
  int batch = 16;             // sequences per micro-batch (B)
  int accum = 1;              // micro-batches per optimizer step (gradient accumulation)
  int64_t steps = 1000;       // optimizer steps
  uint64_t seed = 1337;       // init, data sampling and everything else random derive from it
  int threads = 0;            // OpenMP threads; 0 means all cores
  int eval_every = 100;       // validation loss cadence in steps; 0 disables
  int eval_batches = 4;       // validation batches per evaluation
  bool recall_eval = false;   // at each evaluation also measure the dependency metrics (recall_acc, recall_attn)
                              // on the eval batches (train/recall_eval.h); needs data with dependency labels
  int recall_eval_len = 0;    // > seq_len: also measure them on rows of this length with the trained
                              // parameters (recall_acc_ext, ...: evaluation beyond the training length); 0 off
  int log_every = 1;          // metrics.jsonl cadence in steps
  int checkpoint_every = 0;   // checkpoint cadence in steps; 0 means only at the end
  int keep_checkpoints = 0;   // keep the newest K checkpoints, deleting older ones once a new one is durable; 0 = all
};

}  // namespace attnlab
