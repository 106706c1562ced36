// sink.h: where metric records and events go. The run directory implements these (metrics.jsonl,
// metrics.csv, events.jsonl); tests use the in-memory versions.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "instrument/metric.h"

namespace attnlab {

// An early warning or incident: what, where, the value and the threshold it crossed.
struct Event {
  int64_t step = 0;
  std::string kind;    // entropy_collapse, logit_growth, loss_spike, grad_spike, nonfinite, grad_explosion,
                       // grad_vanishing, rank_collapse, sink_emergence, massive_activation, flight_recorder
  int layer = -1, head = -1;
  std::string metric;  // the metric that crossed (a name from instrument/docs)
  double value = 0.0, threshold = 0.0;
  std::string message;  // one human line
};

class MetricSink {
 public:
  virtual ~MetricSink() = default;
  virtual void write(const MetricRecord& r) = 0;
  virtual void write_event(const Event& e) = 0;
};

// Writes every value a metric family emitted into `values` to `sink`, stamped with `step` and `kind`.
inline void write_metrics(MetricSink& sink, int64_t step, MetricKind kind, const MemoryOut& values) {
  MetricRecord r;
  r.step = step;
  r.kind = kind;
  for (const MemoryOut::Entry& e : values.entries) {
    r.name = e.name;
    r.layer = int16_t(e.layer);
    r.head = int16_t(e.head);
    r.index = e.index;
    r.value = e.value;
    sink.write(r);
  }
}

class MemorySink : public MetricSink {
 public:
  void write(const MetricRecord& r) override { records.push_back(r); }
  void write_event(const Event& e) override { events.push_back(e); }
  std::vector<MetricRecord> records;
  std::vector<Event> events;
};

}  // namespace attnlab
