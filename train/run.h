// run.h: the `attnlab train` command: a run directory, the training loop, progress, checkpoints, resume.
//
// Run directory:
//   config.yaml        resolved config (every field), overrides listed at the end
//   run.json           commit, command line, machine, threads, start time
//   metrics.jsonl      one JSON object per line (schema in README.md, "Run directory")
//   events.jsonl       warnings and incidents (non-finite loss, interruption, resume)
//   ckpt/step_N.safetensors   checkpoints (train/checkpoint.h)
//   summary.md         final numbers, written at the end
#pragma once
#include <string>
#include <vector>

#include "train/comm.h"

namespace attnlab {

struct TrainCommand {
  std::string config_path;             // YAML config (not needed with resume_dir)
  std::vector<std::string> overrides;  // --set a.b=v, in order
  std::string out_dir;                 // run directory; empty means runs/<config stem>-<timestamp>
  std::string resume_dir;              // --resume DIR: continue that run from its latest checkpoint
  std::vector<std::string> argv;       // for run.json
  bool quiet = false;                  // no progress line
};

// Returns the process exit code (0 success, 1 failure, 130 interrupted). Throws ConfigError, IoError,
// DataError for bad input, before any training step when the problem is in the input.
//
// With `comm` of several ranks (`mpirun -np N attnlab train ...`): data parallel, the run of one process
// with train.batch / N rows and train.accum · N micro-batches (train/trainer.h). Rank 0 does everything a
// single process does with the run directory (checks, lock, config, metrics, instrumentation, checkpoints,
// resume) and sends the config, the step and the parameters and AdamW moments to the others; those only
// compute. A bad input fails every rank before any step (rank 0 names it); the ranks agree each step on
// stopping (a signal, a spike stop), so they stop after the same step and rank 0 checkpoints.
int run_train(const TrainCommand& cmd, Comm* comm = nullptr);

}  // namespace attnlab
