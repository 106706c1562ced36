// metric.h: the unit of instrumentation output and the interface metric families write into.
//
// A metric value is (name, layer, head, index, value): `layer` −1 for model-wide values, `head` −1 for
// layer-wide values, `index` −1 unless the metric is a profile over positions, token groups or ranks
// (then index is the position / group / rank). Names are string literals (static storage): no string
// is built per value. Every name is documented in instrument/docs/*.md with its formula and source.
#pragma once
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace attnlab {

enum class MetricKind : uint8_t { kStep, kProbe };

struct MetricRecord {
  int64_t step = 0;
  MetricKind kind = MetricKind::kStep;
  int16_t layer = -1, head = -1;
  int32_t index = -1;
  const char* name = "";
  double value = 0.0;
};

// Metric families emit through this; the Monitor stamps step and kind and forwards to the sinks.
class MetricOut {
 public:
  virtual ~MetricOut() = default;
  virtual void emit(const char* name, int layer, int head, int index, double value) = 0;
  void emit(const char* name, int layer, int head, double value) { emit(name, layer, head, -1, value); }
};

// Collects values in memory (tests, and the Monitor's view of the current step for early warnings).
class MemoryOut : public MetricOut {
 public:
  using MetricOut::emit;  // keep the 4-argument overload visible
  struct Entry {
    const char* name;
    int layer, head, index;
    double value;
  };
  void emit(const char* name, int layer, int head, int index, double value) override {
    entries.push_back({name, layer, head, index, value});
  }
  // The value of a metric, or NaN when absent.
  double get(const char* name, int layer = -1, int head = -1, int index = -1) const {
    for (const Entry& e : entries)
      if (std::strcmp(e.name, name) == 0 && e.layer == layer && e.head == head && e.index == index) return e.value;
    return std::numeric_limits<double>::quiet_NaN();
  }
  bool has(const char* name) const {
    for (const Entry& e : entries)
      if (std::strcmp(e.name, name) == 0) return true;
    return false;
  }
  void clear() { entries.clear(); }
  std::vector<Entry> entries;
};

}  // namespace attnlab
