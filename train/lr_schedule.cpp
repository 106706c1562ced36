#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace attnlab {

float lr_at(int64_t step, int64_t total_steps, float lr, const ScheduleConfig& s) {
  if (s.warmup > 0 && step < s.warmup) return lr * float(step + 1) / float(s.warmup);
  if (s.kind == ScheduleKind::kConstant) return lr;
  // Progress through the decay phase, 0 at the end of warmup and 1 at the last step.
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - 1 - s.warmup);
  const double p = std::clamp(double(step - s.warmup) / double(decay_steps), 0.0, 1.0);
  const double floor = double(s.min_lr_frac);
  const double frac = s.kind == ScheduleKind::kCosine ? floor + (1.0 - floor) * 0.5 * (1.0 + std::cos(M_PI * p))
                                                      : 1.0 - (1.0 - floor) * p;
  return float(double(lr) * frac);
}

}  // namespace attnlab
