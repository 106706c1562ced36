// lr_schedule.h: the learning rate as a pure function of the step.
#pragma once
#include <cstdint>

namespace attnlab {

enum class ScheduleKind : uint8_t { kCosine, kConstant, kLinear };

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::kCosine;
  int warmup = 100;          // linear warmup steps: lr·(step+1)/warmup
  float min_lr_frac = 0.1f;  // cosine/linear decay ends at min_lr_frac·lr at the last step
};

// lr at 0-based `step` of a run of `total_steps` updates with peak `lr`.
float lr_at(int64_t step, int64_t total_steps, float lr, const ScheduleConfig& s);

}  // namespace attnlab
