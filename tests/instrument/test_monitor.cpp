// The Monitor's decisions: cadence, spikes and incidents → events and flight records, resumable state.
#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "instrument/monitor.h"
#include "model/rng.h"
#include "tests/support/tiny_model.h"

using namespace attnlab;

namespace {

ModelConfig tiny_model() {
  return testing::tiny_model({.vocab = 16, .d_model = 16, .n_layer = 1, .n_head = 2, .seq_len = 8, .mlp_hidden = 32});
}

class CountingRecorder : public FlightRecorder {
 public:
  std::string record(int64_t step, const std::string& reason, const Transformer&) override {
    steps.push_back(step);
    reasons.push_back(reason);
    return "flight/step_" + std::to_string(step);
  }
  std::vector<int64_t> steps;
  std::vector<std::string> reasons;
};

int count_kind(const MemorySink& s, const std::string& kind) {
  int n = 0;
  for (const Event& e : s.events) n += e.kind == kind;
  return n;
}

}  // namespace

TEST_CASE("probe cadence: step 1, dense early, then every probe_every", "[instrument][monitor]") {
  DnnlContext ctx;
  Transformer m(tiny_model(), 2, ctx);
  InstrumentConfig cfg;
  cfg.probe_every = 50;
  cfg.dense_until = 20;
  cfg.dense_every = 5;
  MemorySink sink;
  Monitor mon(cfg, m, sink);
  std::vector<int64_t> due;
  for (int64_t s = 1; s <= 120; ++s)
    if (mon.probe_due(s)) due.push_back(s);
  REQUIRE(due == std::vector<int64_t>{1, 5, 10, 15, 20, 50, 100});
  cfg.enabled = false;
  Monitor off(cfg, m, sink);
  REQUIRE_FALSE(off.probe_due(1));
}

TEST_CASE("a planted loss spike raises one event at that step and a flight record", "[instrument][monitor]") {
  DnnlContext ctx;
  Transformer m(tiny_model(), 2, ctx);
  m.init_params(1);
  InstrumentConfig cfg;
  cfg.spike_window = 100;
  cfg.spike_min_history = 20;
  MemorySink sink;
  CountingRecorder rec;
  Monitor mon(cfg, m, sink);
  mon.set_flight_recorder(&rec);
  Rng rng(3);
  for (int64_t step = 1; step <= 200; ++step) {
    double loss = 2.0 * std::exp(0.01 * rng.normal());
    if (step == 150) loss *= 3.0;  // ln(3) ≈ 110 σ above the mean: unmistakable
    mon.on_gradients(step, m, loss, 1.0 + 0.01 * rng.normal());
    mon.on_update(step, m);
  }
  REQUIRE(count_kind(sink, "loss_spike") == 1);
  for (const Event& e : sink.events)
    if (e.kind == "loss_spike") {
      REQUIRE(e.step == 150);
      REQUIRE(e.value > 7.0);
      REQUIRE(e.threshold == 7.0);
    }
  REQUIRE(rec.steps == std::vector<int64_t>{150});
  REQUIRE(count_kind(sink, "flight_recorder") == 1);
  REQUIRE_FALSE(mon.stop_requested());  // default policy: continue
}

TEST_CASE("on_spike: stop requests a stop; non-finite values always record", "[instrument][monitor]") {
  DnnlContext ctx;
  Transformer m(tiny_model(), 2, ctx);
  m.init_params(1);
  InstrumentConfig cfg;
  cfg.spike_window = 50;
  cfg.spike_min_history = 10;
  cfg.on_spike = OnIncident::kStop;
  MemorySink sink;
  CountingRecorder rec;
  Monitor mon(cfg, m, sink);
  mon.set_flight_recorder(&rec);
  for (int64_t step = 1; step <= 30; ++step) mon.on_gradients(step, m, 2.0 + 0.001 * (step % 3), 1.0 + 0.001 * (step % 2));
  REQUIRE_FALSE(mon.stop_requested());
  mon.on_gradients(31, m, 2.0, 50.0);  // gradient-norm spike
  REQUIRE(count_kind(sink, "grad_spike") == 1);
  REQUIRE(mon.stop_requested());
  mon.on_gradients(32, m, NAN, 1.0);
  REQUIRE(count_kind(sink, "nonfinite") == 1);
  REQUIRE(rec.steps == std::vector<int64_t>{31, 32});
}

TEST_CASE("gradient explosion and vanishing warn once per run", "[instrument][monitor]") {
  DnnlContext ctx;
  Transformer m(tiny_model(), 2, ctx);
  InstrumentConfig cfg;
  MemorySink sink;
  Monitor mon(cfg, m, sink);
  for (int64_t step = 1; step <= 5; ++step) mon.on_gradients(step, m, 2.0, 5e3);
  for (int64_t step = 6; step <= 8; ++step) mon.on_gradients(step, m, 2.0, 1e-9);
  REQUIRE(count_kind(sink, "grad_explosion") == 1);
  REQUIRE(count_kind(sink, "grad_vanishing") == 1);
}

TEST_CASE("spike-detector state round-trips: resumed z-scores equal the uninterrupted ones",
          "[instrument][monitor]") {
  DnnlContext ctx;
  Transformer m(tiny_model(), 2, ctx);
  InstrumentConfig cfg;
  cfg.spike_window = 40;
  cfg.spike_min_history = 5;
  cfg.tensor_stats = false;
  auto series = [](int64_t s) { return 2.0 + 0.1 * std::sin(0.7 * double(s)); };
  MemorySink a;
  Monitor straight(cfg, m, a);
  for (int64_t s = 1; s <= 60; ++s) straight.on_gradients(s, m, series(s), series(s + 100));
  MemorySink b;
  Monitor first(cfg, m, b);
  for (int64_t s = 1; s <= 30; ++s) first.on_gradients(s, m, series(s), series(s + 100));
  Monitor second(cfg, m, b);
  second.set_state(first.state());
  for (int64_t s = 31; s <= 60; ++s) second.on_gradients(s, m, series(s), series(s + 100));
  REQUIRE(a.records.size() == b.records.size());
  for (size_t i = 0; i < a.records.size(); ++i) {
    REQUIRE(std::string(a.records[i].name) == b.records[i].name);
    REQUIRE(a.records[i].step == b.records[i].step);
    REQUIRE((a.records[i].value == b.records[i].value || (std::isnan(a.records[i].value) && std::isnan(b.records[i].value))));
  }
}

TEST_CASE("a damaged monitor state is refused, never silently reset", "[instrument][monitor]") {
  DnnlContext ctx;
  Transformer m(tiny_model(), 2, ctx);
  InstrumentConfig cfg;
  cfg.tensor_stats = false;
  MemorySink sink;
  Monitor mon(cfg, m, sink);
  REQUIRE(!mon.state().empty());                                        // even a fresh monitor has its prefix
  REQUIRE_THROWS_AS(mon.set_state({}), std::invalid_argument);          // was: silently ignored
  REQUIRE_THROWS_AS(mon.set_state({5.0, 1.0}), std::invalid_argument);  // prefix longer than the values
  REQUIRE_THROWS_AS(mon.set_state({-1.0}), std::invalid_argument);
  REQUIRE_NOTHROW(mon.set_state(mon.state()));
}

TEST_CASE("with a sink token the probe batch is B × seq_len data tokens (no read past the caller's buffer)",
          "[instrument][monitor]") {
  ModelConfig c = tiny_model();
  c.sink_token = true;  // the model runs seq_len + 1 positions; the caller's batch has seq_len
  DnnlContext ctx;
  const int B = 2;
  Transformer m(c, B, ctx);
  m.init_params(3);
  InstrumentConfig cfg;
  cfg.tensor_stats = false;
  MemorySink sink;
  Monitor mon(cfg, m, sink);
  // The caller's buffers end exactly at a page the process may not read: copying B × (seq_len + 1) tokens,
  // as before the fix, faults here (ASan called it a heap-buffer-overflow).
  const size_t n = size_t(B) * size_t(c.seq_len), page = size_t(sysconf(_SC_PAGESIZE));
  const size_t bytes = n * sizeof(int32_t), span = (bytes + page - 1) / page * page;
  auto* base = static_cast<char*>(mmap(nullptr, 2 * (span + page), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  REQUIRE(base != MAP_FAILED);
  REQUIRE(mprotect(base + span, page, PROT_NONE) == 0);
  REQUIRE(mprotect(base + 2 * span + page, page, PROT_NONE) == 0);
  auto* in = reinterpret_cast<int32_t*>(base + span - bytes);
  auto* tg = reinterpret_cast<int32_t*>(base + 2 * span + page - bytes);
  Rng rng(5);
  for (size_t i = 0; i < n; ++i) in[i] = int32_t(rng.below(uint64_t(c.vocab))), tg[i] = int32_t(rng.below(uint64_t(c.vocab)));
  mon.set_probe_batch(in, tg);
  mon.probe(1, m);
  bool has_loss = false;
  for (const auto& r : sink.records) has_loss |= std::string(r.name) == "probe_loss" && std::isfinite(r.value);
  REQUIRE(has_loss);
  munmap(base, 2 * (span + page));
}

namespace {
// The depth events of `s`: (kind, step).
std::vector<std::pair<std::string, int64_t>> depth_events(const MemorySink& s) {
  std::vector<std::pair<std::string, int64_t>> out;
  for (const Event& e : s.events)
    if (e.metric == "grad_depth_ratio_params") out.push_back({e.kind, e.step});
  return out;
}
}  // namespace

TEST_CASE("depth warnings: rho_grad beyond [1/10, 10] for 100 steps fires once; a healthy or broken streak does not",
          "[instrument][monitor]") {
  DnnlContext ctx;
  Transformer m(tiny_model(), 2, ctx);
  InstrumentConfig cfg;  // defaults: warn_depth_ratio 10, window 100
  REQUIRE(cfg.warn_depth_ratio == 10.0);
  REQUIRE(cfg.warn_depth_window == 100);
  // The default probe cadence: step 0 (probe_at_init), 1, every 10 up to 200, then every 50.
  std::vector<int64_t> probes = {0, 1};
  for (int64_t s = 10; s <= 200; s += 10) probes.push_back(s);
  for (int64_t s = 250; s <= 600; s += 50) probes.push_back(s);

  SECTION("vanishing from init: fires at the first probe 100 steps into the streak, once") {
    MemorySink sink;
    Monitor mon(cfg, m, sink);
    for (int64_t s : probes) mon.check_depth_ratio(s, 0.02);
    REQUIRE(depth_events(sink) == std::vector<std::pair<std::string, int64_t>>{{"grad_vanishing", 100}});
    REQUIRE(sink.events[0].value == 0.02);
    REQUIRE(sink.events[0].threshold == 0.1);
    REQUIRE(sink.events[0].layer == -1);
  }
  SECTION("exploding from step 150: fires at 250 (the first probe >= 150 + 100)") {
    MemorySink sink;
    Monitor mon(cfg, m, sink);
    for (int64_t s : probes) mon.check_depth_ratio(s, s < 150 ? 2.0 : 40.0);
    REQUIRE(depth_events(sink) == std::vector<std::pair<std::string, int64_t>>{{"grad_explosion", 250}});
    REQUIRE(sink.events[0].threshold == 10.0);
  }
  SECTION("healthy series inside the band (0.11 .. 9.9, noisy) never fires") {
    MemorySink sink;
    Monitor mon(cfg, m, sink);
    Rng rng(5);
    for (int64_t s : probes) mon.check_depth_ratio(s, std::exp(2.2 * std::tanh(rng.normal())));
    mon.check_depth_ratio(700, 9.9);
    mon.check_depth_ratio(800, 0.11);
    REQUIRE(sink.events.empty());
  }
  SECTION("a streak broken by one probe inside the band, or a non-finite ratio, starts again") {
    MemorySink sink;
    Monitor mon(cfg, m, sink);
    for (int64_t s : probes) {
      const bool broken = s == 90 || s == 180;  // never 100 steps in a row below 0.1 before step 180
      mon.check_depth_ratio(s, s == 180 ? NAN : broken ? 0.5 : 0.01);
    }
    // Streaks: 0..80, 100..170, then 190.. -> fires at 290? No probe there: the first probe >= 290 is 300.
    REQUIRE(depth_events(sink) == std::vector<std::pair<std::string, int64_t>>{{"grad_vanishing", 300}});
  }
  SECTION("window 0 fires at the first crossing; threshold 0 disables; the global-norm warning is separate") {
    InstrumentConfig c0 = cfg;
    c0.warn_depth_window = 0;
    MemorySink sink;
    Monitor mon(c0, m, sink);
    mon.on_gradients(1, m, 2.0, 1e-9);  // the global-norm grad_vanishing
    mon.check_depth_ratio(1, 0.05);
    mon.check_depth_ratio(10, 0.05);
    REQUIRE(depth_events(sink) == std::vector<std::pair<std::string, int64_t>>{{"grad_vanishing", 1}});
    REQUIRE(count_kind(sink, "grad_vanishing") == 2);  // one per metric
    InstrumentConfig off = cfg;
    off.warn_depth_ratio = 0;
    off.warn_depth_window = 0;
    MemorySink quiet;
    Monitor q(off, m, quiet);
    for (int64_t s : probes) q.check_depth_ratio(s, 1e-6);
    REQUIRE(quiet.events.empty());
  }
}

TEST_CASE("depth warnings read the probe's rho_grad: a 2-block model probed with a band it lies outside",
          "[instrument][monitor]") {
  DnnlContext ctx;
  ModelConfig mc = tiny_model();
  mc.n_layer = 2;
  Transformer m(mc, 2, ctx);
  m.init_params(7);
  InstrumentConfig cfg;
  cfg.tensor_stats = false;
  cfg.warn_depth_window = 0;
  MemorySink sink;
  Monitor mon(cfg, m, sink);
  std::vector<int32_t> in(size_t(2) * mc.seq_len), tg(in.size());
  for (size_t i = 0; i < in.size(); ++i) in[i] = int32_t(i % 16), tg[i] = int32_t((i + 1) % 16);
  mon.set_probe_batch(in.data(), tg.data());
  mon.probe(0, m);
  double rho = NAN;
  for (const MetricRecord& r : sink.records)
    if (std::string(r.name) == "grad_depth_ratio_params") rho = r.value;
  REQUIRE(std::isfinite(rho));
  REQUIRE(rho > 0);
  REQUIRE(depth_events(sink).empty());  // a tiny random model: ρ_grad inside [1/10, 10]
  // A band narrower than the measured ratio fires in the direction of the measured value.
  InstrumentConfig narrow = cfg;
  narrow.warn_depth_ratio = rho > 1 ? std::sqrt(rho) : std::sqrt(1 / rho);
  MemorySink s2;
  Monitor mon2(narrow, m, s2);
  mon2.set_probe_batch(in.data(), tg.data());
  mon2.probe(0, m);
  REQUIRE(depth_events(s2) ==
          std::vector<std::pair<std::string, int64_t>>{{rho > 1 ? "grad_explosion" : "grad_vanishing", 0}});
  for (const Event& e : s2.events)
    if (e.metric == "grad_depth_ratio_params") REQUIRE(e.value == rho);
}
