// Tests for model/fast_exp.h: accuracy against double exp, special values, and use in a simd loop.
#include <cmath>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "model/fast_exp.h"

using namespace attnlab;

TEST_CASE("fast_exp is within 2 ulp of exp on its whole normal range", "[model][fast_exp]") {
  const int n = 1 << 20;
  std::vector<float> x(n), y(n);
  for (int i = 0; i < n; ++i) x[i] = -87.33f + (88.37f + 87.33f) * float(i) / float(n - 1);
#pragma omp simd
  for (int i = 0; i < n; ++i) y[i] = fast_exp(x[i]);  // the vectorized path, as the kernels use it
  double worst = 0.0;
  int worst_i = 0;
  for (int i = 0; i < n; ++i) {
    const double e = std::exp(double(x[i]));
    const double rel = std::fabs(double(y[i]) - e) / e;
    if (rel > worst) {
      worst = rel;
      worst_i = i;
    }
  }
  INFO("worst relative error " << worst << " at x=" << x[worst_i]);
  REQUIRE(worst < 2.4e-7);  // 2 ulp of float
}

TEST_CASE("fast_exp special values", "[model][fast_exp]") {
  const float inf = std::numeric_limits<float>::infinity();
  REQUIRE(fast_exp(0.0f) == 1.0f);
  REQUIRE(fast_exp(1.0f) == Approx(2.718281828).epsilon(2.4e-7));
  REQUIRE(fast_exp(-inf) == 0.0f);
  REQUIRE(fast_exp(-1000.0f) == 0.0f);
  REQUIRE(fast_exp(-88.0f) == 0.0f);  // true value is subnormal; flushed
  REQUIRE(fast_exp(inf) == inf);
  REQUIRE(fast_exp(1000.0f) == inf);
  REQUIRE(std::isnan(fast_exp(std::numeric_limits<float>::quiet_NaN())));
  REQUIRE(fast_sigmoid(0.0f) == 0.5f);
  REQUIRE(fast_sigmoid(200.0f) == 1.0f);
  REQUIRE(fast_sigmoid(-200.0f) == 0.0f);
  REQUIRE(fast_sigmoid(-20.0f) == Approx(2.0611536e-9).epsilon(1e-6));  // accurate in the far tail
}
