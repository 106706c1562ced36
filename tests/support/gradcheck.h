// gradcheck.h: finite-difference gradient checks for backward functions (style.md §2.6).
//
// Recipe: pick a scalar probe loss L = Σ w ⊙ y with fixed random w; run backward with dy = w to get the
// analytic gradient of every input; perturb each input element by ±h (h = 1e-3·max(1,|x|)) and take
// central differences of L, accumulated in double. Pass if ‖a − n‖ / max(‖a‖, ‖n‖, 1e-6) < tol.
// The worst element (largest |a − n|) is reported so a failure says where.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "model/rng.h"

namespace attnlab::testing {

inline std::vector<float> random_vec(int64_t n, uint64_t seed, float std = 1.0f, float mean = 0.0f) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = mean + std * float(rng.normal());
  return v;
}

// Σ w ⊙ y in double.
inline double probe_loss(const float* y, const float* w, int64_t n) {
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i) acc += double(w[i]) * double(y[i]);
  return acc;
}

struct GradCheckResult {
  double rel_err = 0.0;       // ‖a − n‖ / max(‖a‖, ‖n‖, 1e-6)
  int64_t worst_index = -1;   // element with the largest |a − n|
  double worst_analytic = 0.0, worst_numeric = 0.0;
  int64_t checked = 0;
  std::string describe(const std::string& name) const {
    std::ostringstream os;
    os << name << ": rel_err=" << rel_err << " over " << checked << " elements; worst index "
       << worst_index << " analytic=" << worst_analytic << " numeric=" << worst_numeric;
    return os.str();
  }
};

// x: the input being checked (perturbed in place and restored); analytic: its gradient from backward;
// loss: recomputes the forward pass and returns L in double. max_points > 0 checks a seeded random
// subset of that many elements (for large tensors); otherwise every element.
inline GradCheckResult gradcheck(float* x, int64_t n, const float* analytic,
                                 const std::function<double()>& loss, int64_t max_points = -1,
                                 uint64_t seed = 7, double h_rel = 1e-3) {
  std::vector<int64_t> idx;
  if (max_points > 0 && max_points < n) {
    Rng rng(seed);
    for (int64_t i = 0; i < max_points; ++i) idx.push_back(int64_t(rng.below(uint64_t(n))));
  } else {
    for (int64_t i = 0; i < n; ++i) idx.push_back(i);
  }
  GradCheckResult r;
  double diff2 = 0.0, a2 = 0.0, n2 = 0.0, worst = -1.0;
  for (int64_t i : idx) {
    const float orig = x[i];
    const float h = float(h_rel * std::max(1.0, std::fabs(double(orig))));
    x[i] = orig + h;
    const double lp = loss();
    x[i] = orig - h;
    const double lm = loss();
    x[i] = orig;
    // Divide by the perturbation actually representable in float.
    const double denom = double(orig + h) - double(orig - h);
    const double num = (lp - lm) / denom;
    const double a = analytic[i];
    diff2 += (a - num) * (a - num);
    a2 += a * a;
    n2 += num * num;
    if (std::fabs(a - num) > worst) {
      worst = std::fabs(a - num);
      r.worst_index = i;
      r.worst_analytic = a;
      r.worst_numeric = num;
    }
  }
  r.checked = int64_t(idx.size());
  r.rel_err = std::sqrt(diff2) / std::max({std::sqrt(a2), std::sqrt(n2), 1e-6});
  return r;
}

}  // namespace attnlab::testing
