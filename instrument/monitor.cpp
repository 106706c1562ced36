#include "instrument/monitor.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "instrument/attention_stats.h"
#include "instrument/grad_stats.h"
#include "instrument/probe.h"
#include "instrument/residual_stats.h"
#include "instrument/step_stats.h"
#include "instrument/weight_stats.h"

namespace attnlab {

namespace {

class Timer {
 public:
  explicit Timer(double* acc) : acc_(acc), t0_(std::chrono::steady_clock::now()) {}
  ~Timer() { *acc_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }

 private:
  double* acc_;
  std::chrono::steady_clock::time_point t0_;
};

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

}  // namespace

Monitor::Monitor(const InstrumentConfig& cfg, const Transformer& model, MetricSink& sink)
    : cfg_(cfg),
      sink_(sink),
      loss_spikes_(cfg.spike_window, cfg.spike_min_history),
      grad_spikes_(cfg.spike_window, cfg.spike_min_history) {
  if (cfg_.enabled && cfg_.tensor_stats) {
    before_.reserve(model.n_params());
    before_.allocate();
  }
  // The data tokens of a batch: B × seq_len (with model.sink_token the model runs B × (seq_len + 1)
  // positions, layout().N, but adds the sink itself).
  const size_t n = size_t(model.layout().B) * size_t(model.config().seq_len);
  probe_in_.assign(n, 0);
  probe_tg_.assign(n, -1);
}

void Monitor::set_probe_batch(const int32_t* inputs, const int32_t* targets) {
  std::memcpy(probe_in_.data(), inputs, probe_in_.size() * sizeof(int32_t));
  std::memcpy(probe_tg_.data(), targets, probe_tg_.size() * sizeof(int32_t));
}

void Monitor::raise(int64_t step, const char* kind, int layer, int head, const char* metric, double value,
                    double threshold, const std::string& message, bool once) {
  if (once && !fired_.insert({kind, metric, layer, head}).second) return;
  Event e;
  e.step = step;
  e.kind = kind;
  e.layer = layer;
  e.head = head;
  e.metric = metric;
  e.value = value;
  e.threshold = threshold;
  e.message = message;
  sink_.write_event(e);
  new_events_.push_back(std::move(e));
}

void Monitor::record_flight(int64_t step, const Transformer& model, const std::string& reason) {
  if (!cfg_.flight_recorder || !flight_) return;
  const std::string path = flight_->record(step, reason, model);
  raise(step, "flight_recorder", -1, -1, "", 0.0, 0.0, "state of step " + std::to_string(step) + " (" + reason +
        ") written to " + path, false);
}

void Monitor::on_gradients(int64_t step, const Transformer& model, double loss, double grad_norm) {
  if (!cfg_.enabled) return;
  Timer timer(&seconds_);
  scratch_.clear();
  // Non-finite values: dump before anything else happens (the trainer then skips the update and stops).
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
    const char* what = std::isfinite(loss) ? "grad_norm" : "loss";
    raise(step, "nonfinite", -1, -1, what, std::isfinite(loss) ? grad_norm : loss, 0.0,
          std::string("non-finite ") + what, false);
    record_flight(step, model, std::string("non-finite ") + what);
    return;
  }
  // Spike z-scores every step, so the rolling windows see the whole series.
  const double z_loss = loss_spikes_.update(std::log(std::max(loss, 1e-30)));
  const double z_grad = grad_spikes_.update(std::log(std::max(grad_norm, 1e-30)));
  const bool cadence = step % cfg_.step_every == 0;
  if (cadence) {
    scratch_.emit("spike_z_loss", -1, -1, z_loss);
    scratch_.emit("spike_z_grad", -1, -1, z_grad);
  }
  bool spike = false;
  if (cfg_.warn_spike_z > 0 && std::isfinite(z_loss) && z_loss > cfg_.warn_spike_z) {
    raise(step, "loss_spike", -1, -1, "spike_z_loss", z_loss, cfg_.warn_spike_z,
          "loss spike: ln(loss) is " + fmt("%.1f", z_loss) + " standard deviations above its rolling mean", false);
    spike = true;
  }
  if (cfg_.warn_spike_z > 0 && std::isfinite(z_grad) && z_grad > cfg_.warn_spike_z) {
    raise(step, "grad_spike", -1, -1, "spike_z_grad", z_grad, cfg_.warn_spike_z,
          "gradient-norm spike: ln(grad norm) is " + fmt("%.1f", z_grad) + " standard deviations above its rolling mean",
          false);
    spike = true;
  }
  if (cfg_.warn_grad_norm > 0 && grad_norm > cfg_.warn_grad_norm)
    raise(step, "grad_explosion", -1, -1, "grad_norm", grad_norm, cfg_.warn_grad_norm,
          "gradient explosion: global gradient norm " + fmt("%.3g", grad_norm), true);
  if (cfg_.warn_grad_vanish > 0 && grad_norm < cfg_.warn_grad_vanish)
    raise(step, "grad_vanishing", -1, -1, "grad_norm", grad_norm, cfg_.warn_grad_vanish,
          "vanishing gradients: global gradient norm " + fmt("%.3g", grad_norm), true);
  if (spike) {
    record_flight(step, model, "spike");
    if (cfg_.on_spike == OnIncident::kStop) stop_ = true;
  }
  if (cadence && cfg_.tensor_stats) {
    param_grad_metrics(model.param_table(), model.layout().grads(), scratch_);
    logit_metrics(model.layout(), scratch_);
    std::memcpy(before_.data(), model.layout().params(), sizeof(float) * size_t(model.n_params()));
    have_before_ = true;
  }
  write_metrics(sink_, step, MetricKind::kStep, scratch_);
}

void Monitor::on_update(int64_t step, const Transformer& model) {
  if (!cfg_.enabled || !have_before_) return;
  Timer timer(&seconds_);
  scratch_.clear();
  update_metrics(model.param_table(), before_.data(), model.layout().params(), scratch_);
  have_before_ = false;
  write_metrics(sink_, step, MetricKind::kStep, scratch_);
}

bool Monitor::probe_due(int64_t step) const {
  if (!cfg_.enabled || cfg_.probe_every <= 0) return false;
  if (step == 1) return true;
  if (step <= cfg_.dense_until && step % cfg_.dense_every == 0) return true;
  return step % cfg_.probe_every == 0;
}

void Monitor::maybe_probe(int64_t step, Transformer& model) {
  if (probe_due(step)) probe(step, model);
}

void Monitor::probe(int64_t step, Transformer& model) {
  if (!cfg_.enabled) return;
  Timer timer(&seconds_);
  scratch_.clear();
  // The probe pass: forward and backward on the fixed probe batch, no update. It overwrites activations
  // and gradients, which the next step recomputes from scratch (zero_grad, then forward).
  model.zero_grad();
  model.forward(probe_in_.data(), probe_tg_.data());
  model.backward(1.0f);
  // probe_loss is the objective whose gradients the gradient metrics read; with z-loss on, its parts too.
  scratch_.emit("probe_loss", -1, -1, model.last_ce_loss() + model.last_z_loss());
  if (model.config().z_loss > 0.0f) {
    scratch_.emit("probe_loss_ce", -1, -1, model.last_ce_loss());
    scratch_.emit("probe_loss_z", -1, -1, model.last_z_loss());
  }
  const ProbeView view{model.config(), model.layout(), probe_in_.data(), probe_tg_.data(), true};
  if (cfg_.attention) attention_metrics(view, scratch_);
  if (cfg_.residual) residual_metrics(view, scratch_);
  if (cfg_.gradients) gradient_metrics(view, scratch_);
  if (cfg_.weights) weight_metrics(model.config(), model.layout(), scratch_);
  check_probe_warnings(step, scratch_);
  write_metrics(sink_, step, MetricKind::kProbe, scratch_);
}

// ρ_grad beyond warn_depth_ratio (or its inverse) at every probe from the streak's first to this one, for at
// least warn_depth_window steps. A probe inside the band, or a non-finite ratio, ends the streak.
void Monitor::check_depth_ratio(int64_t step, double ratio) {
  const double thr = cfg_.warn_depth_ratio;
  if (!(thr > 0)) return;
  const bool hi = std::isfinite(ratio) && ratio > thr, lo = std::isfinite(ratio) && ratio < 1.0 / thr;
  depth_hi_since_ = hi ? (depth_hi_since_ < 0 ? step : depth_hi_since_) : -1;
  depth_lo_since_ = lo ? (depth_lo_since_ < 0 ? step : depth_lo_since_) : -1;
  if (hi && step - depth_hi_since_ >= cfg_.warn_depth_window)
    raise(step, "grad_explosion", -1, -1, "grad_depth_ratio_params", ratio, thr,
          "gradient explosion with depth: block 0 / block L-1 gradient norm " + fmt("%.3g", ratio) + " (above " +
              fmt("%g", thr) + " since step " + std::to_string(depth_hi_since_) + ")",
          true);
  if (lo && step - depth_lo_since_ >= cfg_.warn_depth_window)
    raise(step, "grad_vanishing", -1, -1, "grad_depth_ratio_params", ratio, 1.0 / thr,
          "vanishing gradients with depth: block 0 / block L-1 gradient norm " + fmt("%.3g", ratio) + " (below " +
              fmt("%g", 1.0 / thr) + " since step " + std::to_string(depth_lo_since_) + ")",
          true);
}

void Monitor::check_probe_warnings(int64_t step, const MemoryOut& values) {
  for (const MemoryOut::Entry& e : values.entries) {
    if (e.layer < 0 && e.head < 0 && std::strcmp(e.name, "grad_depth_ratio_params") == 0) {
      check_depth_ratio(step, e.value);
      continue;
    }
    if (!std::isfinite(e.value)) continue;
    const std::string where = "layer " + std::to_string(e.layer) + (e.head >= 0 ? " head " + std::to_string(e.head) : "");
    if (cfg_.warn_entropy > 0 && e.head >= 0 && e.index < 0 && std::strcmp(e.name, "ent_norm") == 0 &&
        e.value < cfg_.warn_entropy)
      raise(step, "entropy_collapse", e.layer, e.head, e.name, e.value, cfg_.warn_entropy,
            "entropy collapse at " + where + ": normalised attention entropy " + fmt("%.3f", e.value), true);
    else if (cfg_.warn_logit > 0 && e.head >= 0 && std::strcmp(e.name, "zabsmax") == 0 && e.value > cfg_.warn_logit)
      raise(step, "logit_growth", e.layer, e.head, e.name, e.value, cfg_.warn_logit,
            "attention-logit growth at " + where + ": max |logit| " + fmt("%.4g", e.value), true);
    else if (cfg_.warn_sink > 0 && e.head >= 0 && std::strcmp(e.name, "alpha0") == 0 && e.value > cfg_.warn_sink)
      raise(step, "sink_emergence", e.layer, e.head, e.name, e.value, cfg_.warn_sink,
            "attention sink at " + where + ": token 0 receives α_0 = " + fmt("%.3f", e.value), true);
    else if (cfg_.warn_tok_cos > 0 && e.layer >= 0 && e.head < 0 && std::strcmp(e.name, "tok_cos") == 0 &&
             e.value > cfg_.warn_tok_cos)
      raise(step, "rank_collapse", e.layer, -1, e.name, e.value, cfg_.warn_tok_cos,
            "rank collapse at layer " + std::to_string(e.layer) + ": mean token cosine " + fmt("%.3f", e.value), true);
    else if (cfg_.warn_mass_ratio > 0 && e.layer >= 0 && std::strcmp(e.name, "mass_ratio") == 0 &&
             e.value > cfg_.warn_mass_ratio)
      raise(step, "massive_activation", e.layer, -1, e.name, e.value, cfg_.warn_mass_ratio,
            "massive activation at layer " + std::to_string(e.layer) + ": top-1 / median |x| = " +
                fmt("%.4g", e.value), true);
  }
}

std::vector<Event> Monitor::take_new_events() {
  std::vector<Event> out;
  out.swap(new_events_);
  return out;
}

std::vector<double> Monitor::state() const {
  std::vector<double> s = loss_spikes_.state();
  const std::vector<double> g = grad_spikes_.state();
  s.insert(s.begin(), double(s.size()));  // length prefix so the two histories can be split again
  s.insert(s.end(), g.begin(), g.end());
  return s;
}

void Monitor::set_state(const std::vector<double>& s) {
  // state() always writes the length prefix, so an empty or inconsistent state is damage, never "none".
  if (s.empty()) throw std::invalid_argument("empty (a state always holds at least its length prefix)");
  if (!(s[0] >= 0.0) || s[0] != std::floor(s[0]) || s[0] + 1.0 > double(s.size()))
    throw std::invalid_argument("length prefix " + std::to_string(s[0]) + " does not fit the " +
                                std::to_string(s.size()) + " values");
  const size_t n = size_t(s[0]);
  loss_spikes_.set_state(std::vector<double>(s.begin() + 1, s.begin() + 1 + long(n)));
  grad_spikes_.set_state(std::vector<double>(s.begin() + 1 + long(n), s.end()));
}

}  // namespace attnlab
