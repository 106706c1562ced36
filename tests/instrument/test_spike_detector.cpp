// Spike detector (rolling z-score; llm.c's test_outlier_detector idea): closed-form z, the constant-window
// conventions, Gaussian noise, a planted spike, window rolling, no drift, and the checkpoint state.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "instrument/spike_detector.h"
#include "model/rng.h"

using namespace attnlab;

namespace {

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

}  // namespace

TEST_CASE("z-score against the previous window in closed form", "[instrument][spike]") {
  SpikeDetector d(8, 4);
  for (double x : {1.0, 2.0, 3.0}) REQUIRE(std::isnan(d.update(x)));
  REQUIRE(std::isnan(d.update(4.0)));  // only 3 values before it: still below min_history
  // Window {1, 2, 3, 4}: mean 2.5, population variance 1.25, so z(5) = 2.5 / √1.25 = √5.
  REQUIRE(d.zscore(5.0) == Approx(std::sqrt(5.0)).epsilon(1e-15));
  REQUIRE(d.update(5.0) == Approx(std::sqrt(5.0)).epsilon(1e-15));
  // Window {1..5}: mean 3, variance 2: z(0) = −3/√2.
  REQUIRE(d.update(0.0) == Approx(-3.0 / std::sqrt(2.0)).epsilon(1e-15));
  REQUIRE(d.size() == 6);
}

TEST_CASE("constant series: z = 0, and ±inf for any departure", "[instrument][spike]") {
  for (double c : {0.1, std::log(2.345), 1e6 + 0.3, -7.0}) {
    SpikeDetector d(50, 10);
    for (int i = 0; i < 10; ++i) REQUIRE(std::isnan(d.update(c)));
    for (int i = 0; i < 200; ++i) REQUIRE(d.update(c) == 0.0);  // exactly, through the rolling too
    REQUIRE(d.zscore(std::nextafter(c, 1e300)) == std::numeric_limits<double>::infinity());
    REQUIRE(d.zscore(std::nextafter(c, -1e300)) == -std::numeric_limits<double>::infinity());
  }
}

TEST_CASE("Gaussian noise: |z| mostly below 4, never above 7", "[instrument][spike]") {
  Rng rng(123);
  SpikeDetector d(1000, 100);
  int n = 0, above4 = 0;
  for (int i = 0; i < 5000; ++i) {
    const double z = d.update(std::log(2.5) + 0.05 * rng.normal());
    if (i < 100) {
      REQUIRE(std::isnan(z));
      continue;
    }
    ++n;
    if (std::fabs(z) > 4.0) ++above4;
    REQUIRE(std::fabs(z) < 7.0);
  }
  // P(|z| > 4) ≈ 6e-5 for a normal variable (a little more with a 100-value window early on).
  REQUIRE(above4 <= n / 1000);
}

TEST_CASE("a planted spike at step 500 is flagged at that step and not before", "[instrument][spike]") {
  Rng rng(7);
  SpikeDetector d;  // window 1000, min_history 100
  for (int step = 0; step < 700; ++step) {
    double loss = 3.0 * std::exp(0.01 * rng.normal());  // ln(loss) has σ = 0.01
    if (step == 500) loss *= std::exp(0.2);              // a 20σ jump in ln(loss)
    const double z = d.update(std::log(loss));
    INFO("step " << step << " z " << z);
    if (step < 100) REQUIRE(std::isnan(z));
    if (step >= 100 && step < 500) REQUIRE(z < 7.0);
    if (step == 500) REQUIRE(z > 7.0);
    if (step > 500) REQUIRE(std::fabs(z) < 7.0);  // the spike joined the window and widened it
  }
}

TEST_CASE("the window rolls: old values are forgotten exactly", "[instrument][spike]") {
  Rng rng(99);
  const int W = 100;
  SpikeDetector d(W, 10);
  std::vector<double> xs;
  for (int i = 0; i < 3 * W; ++i) xs.push_back((i < W ? 0.0 : 50.0) + rng.normal());
  std::vector<double> zs;
  for (double x : xs) zs.push_back(d.update(x));
  REQUIRE(zs[W] > 20.0);  // the level shift, against a window of level 0
  // Once W values of the new level are in, the detector equals a fresh one fed only those values.
  for (int i = 2 * W; i < 3 * W; ++i) {
    SpikeDetector fresh(W, 10);
    for (int j = i - W; j < i; ++j) fresh.update(xs[size_t(j)]);
    REQUIRE(same_bits(fresh.zscore(xs[size_t(i)]), zs[size_t(i)]));
  }
  REQUIRE(d.zscore(0.0) < -20.0);  // level 0 is now the outlier
}

TEST_CASE("no drift over 10^6 updates", "[instrument][spike]") {
  Rng rng(5);
  const int W = 64;
  SpikeDetector d(W, 16);
  std::vector<double> last(W);
  for (int i = 0; i < 1000000; ++i) {
    const double x = 1e3 + 1e-3 * rng.normal() + (i % 1000 == 0 ? 1e6 : 0.0);  // huge outliers pass through
    d.update(x);
    last[size_t(i % W)] = x;
  }
  SpikeDetector fresh(W, 16);
  for (int j = 0; j < W; ++j) fresh.update(last[size_t((1000000 + j) % W)]);  // oldest first
  for (double probe : {1e3, 1e3 + 1e-3, 999.0})
    REQUIRE(same_bits(fresh.zscore(probe), d.zscore(probe)));
}

TEST_CASE("non-finite values are reported but not added", "[instrument][spike]") {
  SpikeDetector d(20, 5);
  for (int i = 0; i < 3; ++i) d.update(double(i));
  REQUIRE(std::isnan(d.update(std::numeric_limits<double>::infinity())));  // no history yet
  for (int i = 3; i < 10; ++i) d.update(double(i));
  const double before = d.zscore(4.2);
  REQUIRE(std::isnan(d.update(std::nan(""))));
  REQUIRE(d.update(std::numeric_limits<double>::infinity()) == std::numeric_limits<double>::infinity());
  REQUIRE(d.update(-std::numeric_limits<double>::infinity()) == -std::numeric_limits<double>::infinity());
  REQUIRE(d.size() == 10);
  REQUIRE(same_bits(d.zscore(4.2), before));
}

TEST_CASE("state round trip gives identical subsequent z-scores", "[instrument][spike]") {
  Rng rng(31);
  SpikeDetector a(1000, 100);
  for (int i = 0; i < 1500; ++i) a.update(rng.normal());  // wrapped ring: head is mid-buffer
  const std::vector<double> s = a.state();
  REQUIRE(s.size() == 4 + 1000);
  SpikeDetector b(1000, 100);
  b.set_state(s);
  REQUIRE(b.size() == 1000);
  for (int i = 0; i < 500; ++i) {
    const double x = rng.normal();
    REQUIRE(same_bits(a.update(x), b.update(x)));
  }

  SECTION("a shorter window keeps the newest values") {
    SpikeDetector c(10, 5), ref(10, 5);
    c.set_state(a.state());
    const std::vector<double> sa = a.state();
    for (size_t i = sa.size() - 10; i < sa.size(); ++i) ref.update(sa[i]);
    REQUIRE(c.size() == 10);
    REQUIRE(same_bits(c.zscore(0.3), ref.zscore(0.3)));
  }
  SECTION("a partial history restores below min_history") {
    SpikeDetector p(1000, 100), q(1000, 100);
    for (int i = 0; i < 50; ++i) p.update(double(i));
    q.set_state(p.state());
    REQUIRE(q.size() == 50);
    REQUIRE(std::isnan(q.zscore(1.0)));
  }
  SECTION("malformed states are rejected") {
    SpikeDetector e;
    REQUIRE_THROWS_AS(e.set_state({}), std::invalid_argument);
    std::vector<double> bad = s;
    bad[0] = 2.0;  // unknown format
    REQUIRE_THROWS_AS(e.set_state(bad), std::invalid_argument);
    bad = s;
    bad.pop_back();  // count does not match
    REQUIRE_THROWS_AS(e.set_state(bad), std::invalid_argument);
    bad = s;
    bad[10] = std::nan("");
    REQUIRE_THROWS_AS(e.set_state(bad), std::invalid_argument);
  }
}
