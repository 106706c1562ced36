// sweep.h: `attnlab sweep FILE.yaml`: a base config plus a grid over config keys, expanded into named
// grid points, each trained by a child `attnlab train` process, several at once, skipping what is done.
//
// Sweep file (keys at the top level; paths are relative to the sweep file):
//   base: ../configs/tiny.yaml           or  base_config: {model: {...}, ...}   (inline; exactly one)
//   set: [train.steps=300]               overrides for every point (a list of key=value, or a map)
//   grid: {optim.lr: [1.0e-3, 1.0e-2]}   cartesian product of the axes
//   zip: {optim.lr: [...], schedule.warmup: [...]}   axes that advance together (equal lengths);
//                                        a list of such maps gives several independent zipped groups
//   range: {optim.weight_decay: {start: 0.0, stop: 0.5, num: 3}}   linspace, ends included;
//                                        log: true spaces the values geometrically (start, stop > 0)
//   seeds: [1, 2]                        shorthand for a train.seed axis
// Axes are ordered as the sections and keys appear in the file; the first axis varies slowest.
// Each point's config is load_config(base, set + extra + axis values), so every error names the key.
//
// Run names: key=value joined by ',' in axis order, e.g. lr=0.01,qk_norm=true,seed=1: the section is
// dropped when the key's last part is unique among the axes; numbers are written in their shortest form
// (1.0e-2 -> 0.01); characters other than [A-Za-z0-9._+-] become '_'. A sweep without axes has one
// run, "base".
//
// A run is FINISHED when its directory has ckpt/step_<train.steps, 8 digits>.safetensors and
// summary.md, and its config.yaml equals the point's config (train.threads aside). Those are skipped.
// A run with a checkpoint short of the end is resumed (`attnlab train --resume`); a run that stopped
// itself (a non-finite loss, or instrument.on_spike: stop: a "nonfinite"/"stopped" event in
// events.jsonl) is final and not retried; a directory with no checkpoint is moved to
// <sweep dir>/.failed/ and the run restarted. A directory whose config differs from the point's is an
// error before anything runs.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "train/comm.h"
#include "train/config/config.h"

namespace attnlab {

struct SweepPoint {
  std::string name;
  std::vector<std::pair<std::string, std::string>> axes;  // axis key path -> value (as in --set)
  std::vector<std::string> overrides;                     // everything applied to the base, in order
  RunConfig config;
};

// A sweep file may expand to at most this many points unless it raises max_points (a guard against a
// grid typo that would expand to millions of runs).
inline constexpr int64_t kDefaultMaxPoints = 10000;

struct Sweep {
  std::string source;     // the sweep file (for messages)
  std::string base_path;  // base config file, or "" when the base is inline
  std::string base_text;  // inline base as YAML text
  std::vector<std::string> axis_keys;
  std::vector<SweepPoint> points;
  std::string default_dir;  // runs/sweeps/<file stem>
};

// Reads and expands a sweep file; `extra` overrides (the command line's --set, a repro budget) are
// applied to every point after `set` and must not name an axis. Validates every point's config.
// Throws ConfigError (with file:line and key) for anything wrong.
Sweep load_sweep(const std::string& path, const std::vector<std::string>& extra = {});
// Same from text; relative paths are resolved against `base_dir`.
Sweep parse_sweep(const std::string& yaml_text, const std::string& source, const std::string& base_dir,
                  const std::vector<std::string>& extra = {});

// The run name of a point: `axes` are (key, canonical value) in axis order, `axis_keys` all axis keys.
std::string run_name(const std::vector<std::pair<std::string, std::string>>& axes,
                     const std::vector<std::string>& axis_keys);

enum class RunState {
  kMissing,      // no directory, or an empty one
  kFinished,     // final checkpoint + summary.md
  kStopped,      // the run stopped itself (non-finite loss, spike stop): final, not retried
  kResumable,    // a checkpoint short of the end (interrupted or crashed)
  kStale,        // a directory without any checkpoint: restarted
};
const char* run_state_name(RunState s);

// The state of `dir` as a run of `cfg`. *detail gets a short human description (the step reached,
// why it stopped). Throws ConfigError when the directory holds a run of a different config.
RunState run_state(const std::string& dir, const RunConfig& cfg, std::string* detail);

struct SweepOptions {
  std::string out_dir;  // "" = sweep.default_dir
  std::string exe;      // the attnlab binary for the child processes (its real path)
  int jobs = 0;         // 0 = max(1, cores / threads)
  int threads = 0;      // threads per run; 0 = the base config's train.threads if > 0, else 1
  bool dry_run = false; // print the plan, run nothing
  // Under mpirun (size > 1): rank 0 classifies the runs, holds the lock and queues the runs; every rank,
  // rank 0 included, runs `jobs` at a time (default 1 per rank) as its own child processes and asks rank 0
  // for the next one when a slot frees (dynamic assignment). The sweep directory must be on a file system
  // every host sees. Rank 0 reports and writes the summary exactly as one process does.
  Comm* comm = nullptr;
  int64_t point = -1;   // >= 0: run only this point (a Slurm array task): no sweep lock, no summary
  // emit_slurm only: the sweep file as given and the --set overrides, repeated in the script.
  std::string sweep_file;
  std::vector<std::string> extra;
};

struct RunOutcome {
  std::string name, dir;
  RunState state = RunState::kMissing;  // after the sweep
  int exit_code = 0;                    // of the child this time (0 if not started)
  bool ran = false;
  bool failed = false;  // a child exited non-zero this time, or the run is kStopped
  std::string detail;
};

struct SweepResult {
  std::string dir;
  int exit_code = 0;  // 0 every run finished; 1 some run failed; 130 interrupted
  bool interrupted = false;
  std::vector<RunOutcome> runs;
};

// Runs what is missing and writes <dir>/summary.csv and summary.md. Progress goes to stderr. Throws
// ConfigError/IoError before starting anything when a run directory conflicts or the directory is
// locked by another sweep.
SweepResult run_sweep(const Sweep& sweep, const SweepOptions& opt);

// Writes <dir>/sweep.slurm, a Slurm job-array script with one task per point (`attnlab sweep FILE --point
// $SLURM_ARRAY_TASK_ID`, the same run names and resume rules), and returns a line saying where it is.
std::string emit_slurm(const Sweep& sweep, const SweepOptions& opt);

// The summary table for `sweep` in `dir` (also written by run_sweep): CSV and Markdown.
void write_sweep_summary(const Sweep& sweep, const std::string& dir);

}  // namespace attnlab
