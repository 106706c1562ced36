// run_files.h: the files of a run directory (layout documented in train/run.h and README.md). Every line is
// flushed when written, so a crash loses at most the step in flight.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "instrument/sink.h"
#include "model/layout.h"
#include "train/config/config.h"

namespace attnlab {

// Path of the checkpoint with the highest step in DIR/ckpt, or "" if there is none.
std::string latest_checkpoint(const std::string& run_dir);
// Every RUN_DIR/ckpt/step_<N>.safetensors as (N, path), newest (largest N) first.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& run_dir);

struct DataFileRecord {
  std::string path;
  size_t bytes = 0;
  std::string sha256;
};

class RunFiles : public MetricSink {
 public:
  explicit RunFiles(std::string dir);
  ~RunFiles();
  RunFiles(const RunFiles&) = delete;
  RunFiles& operator=(const RunFiles&) = delete;

  void create();  // makes the directory tree and fresh metrics/events files; throws IoError
  void write_config(const std::string& yaml);
  // run.json; `data_file` is the file the tokens come from (path empty for generated data: written as null).
  // `params` (the model's param_table()) is recorded as "params": each tensor's name, shape and the
  // (layer, slot) its per-tensor metrics carry as (layer, head) (instrument/docs/step.md).
  void write_run_info(const std::vector<std::string>& argv, int threads, int64_t n_params,
                      const std::string& data_desc, const DataFileRecord& data_file,
                      const std::vector<ParamInfo>& params, int mpi_ranks = 1);
  // Drops metrics and events recorded after `step` (resume), then opens both for appending.
  void truncate_after(int64_t step);

  // `loss` is the objective; with `parts` (model.z_loss > 0) its parts are written too, as loss_ce and
  // loss_z (eval: val_loss, val_loss_ce, val_loss_z). Without them loss is the cross-entropy and the
  // default schema is unchanged.
  struct Loss {
    double loss = 0.0, ce = 0.0, z = 0.0;
    bool parts = false;
  };
  void metric_train(int64_t step, const Loss& loss, float lr, double grad_norm, bool clipped, double tok_s, double ms);
  void metric_eval(int64_t step, const Loss& val_loss);
  void event(int64_t step, const std::string& kind, const std::string& message);
  // MetricSink: instrumentation records go to metrics.jsonl and metrics.csv; events to events.jsonl.
  void write(const MetricRecord& r) override;
  void write_event(const Event& e) override;
  std::string checkpoint_path(int64_t step) const;
  void write_summary(const RunConfig& cfg, int64_t steps_done, double wall_s, double tok_s);
  void flush();
  const std::string& dir() const { return dir_; }

 private:
  void open_append();
  std::string dir_;
  std::FILE* metrics_ = nullptr;
  std::FILE* events_ = nullptr;
  std::FILE* csv_ = nullptr;
  static constexpr double NAN_SENTINEL = -1.0;  // "not recorded yet" (losses are never negative)
  Loss last_loss_{NAN_SENTINEL}, last_val_{NAN_SENTINEL};
};

}  // namespace attnlab
