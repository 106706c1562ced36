// monitor.h: the instrumentation driver. The Trainer calls it at three points of a step; it decides what
// to measure (instrument_config.h cadences), runs the metric families on read-only views, turns threshold
// crossings into events, and asks the flight recorder to dump state on incidents.
//
//   on_gradients(): after backward, before clipping and the update: spike z-scores (every step),
//                   non-finite / explosion / vanishing checks, per-tensor gradient statistics, output-logit
//                   statistics, and a parameter snapshot for the update ratios.
//   on_update():    after the optimizer update: update-to-weight ratios.
//   maybe_probe():  on the probe cadence: forward + backward on the fixed probe batch (no update) and every
//                   enabled family (attention, residual stream, gradients, weights). With probe_at_init
//                   the run loop also calls probe(0) once before the first step (the initial model).
//
// Passive by construction: it reads the model's buffers, writes only its own, and runs the probe pass
// after the update, when the step's activations and gradients are no longer needed (the next step zeroes
// the gradients and recomputes every activation). tests/e2e proves bitwise equality with it off.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "instrument/instrument_config.h"
#include "instrument/metric.h"
#include "instrument/sink.h"
#include "instrument/spike_detector.h"
#include "model/arena.h"
#include "model/transformer.h"

namespace attnlab {

// Writes the model's full state of the current step somewhere (train/ implements it with safetensors).
class FlightRecorder {
 public:
  virtual ~FlightRecorder() = default;
  // Returns the path written.
  virtual std::string record(int64_t step, const std::string& reason, const Transformer& model) = 0;
};

class Monitor {
 public:
  Monitor(const InstrumentConfig& cfg, const Transformer& model, MetricSink& sink);
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  void set_flight_recorder(FlightRecorder* fr) { flight_ = fr; }
  // The fixed probe batch, [B, seq_len] data tokens each (the model's batch size; what forward reads).
  void set_probe_batch(const int32_t* inputs, const int32_t* targets);

  // `step` is the number of the step being taken, counted from 1 (as in metrics.jsonl).
  void on_gradients(int64_t step, const Transformer& model, double loss, double grad_norm);
  void on_update(int64_t step, const Transformer& model);
  bool probe_due(int64_t step) const;
  void maybe_probe(int64_t step, Transformer& model);  // probe(step) when probe_due(step)
  // One probe now, recorded at `step` (0 = the initial model, for instrument.probe_at_init).
  void probe(int64_t step, Transformer& model);

  // The depth warnings' check of one probe's ρ_grad (grad_depth_ratio_params): probe() calls it with the
  // gradients family's value; public so tests can feed a synthetic series.
  void check_depth_ratio(int64_t step, double ratio);

  // True after an incident whose policy is to stop (a spike with on_spike: stop).
  bool stop_requested() const { return stop_; }
  // Events raised since the last call (for the progress line).
  std::vector<Event> take_new_events();
  double seconds() const { return seconds_; }  // total time spent in the monitor

  // Spike-detector history, for checkpoints (resume continues the z-scores exactly).
  std::vector<double> state() const;
  void set_state(const std::vector<double>& s);  // std::invalid_argument when `s` is not a state() output

 private:
  void raise(int64_t step, const char* kind, int layer, int head, const char* metric, double value, double threshold,
             const std::string& message, bool once);
  void check_probe_warnings(int64_t step, const MemoryOut& values);
  void record_flight(int64_t step, const Transformer& model, const std::string& reason);

  InstrumentConfig cfg_;
  MetricSink& sink_;
  FlightRecorder* flight_ = nullptr;
  SpikeDetector loss_spikes_, grad_spikes_;
  Arena before_;                  // parameter snapshot for update ratios (allocated once)
  bool have_before_ = false;
  std::vector<int32_t> probe_in_, probe_tg_;
  MemoryOut scratch_;             // values of the current call (reused; cleared, not freed)

  std::set<std::tuple<std::string, std::string, int, int>> fired_;  // once-per-(kind, metric, layer, head) warnings
  // The first probe step of the current streak of ρ_grad above warn_depth_ratio (hi) or below its inverse
  // (lo); -1 = no streak. Not part of state(): a resumed run starts its streaks anew (like fired_).
  int64_t depth_hi_since_ = -1, depth_lo_since_ = -1;
  std::vector<Event> new_events_;
  bool stop_ = false;
  double seconds_ = 0.0;
};

}  // namespace attnlab
