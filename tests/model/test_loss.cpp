// Tests for model/loss: fused softmax cross-entropy, forward values, gradcheck, contracts, stability.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>
#include <omp.h>

#include "model/loss.h"
#include "model/rng.h"
#include "tests/support/gradcheck.h"

using namespace attnlab;
using attnlab::testing::gradcheck;
using attnlab::testing::random_vec;

namespace {

struct LossCase {
  int N, V;
  std::vector<float> logits, lse, row_loss;
  std::vector<int32_t> targets;
  LossCase(int n, int v, uint64_t seed, float std = 2.0f, float mean = 0.0f) : N(n), V(v) {
    logits = random_vec(int64_t(N) * V, seed, std, mean);
    Rng rng(seed + 1);
    targets.resize(size_t(N));
    for (auto& t : targets) t = int32_t(rng.below(uint64_t(V)));
    lse.assign(size_t(N), 0.0f);
    row_loss.assign(size_t(N), 0.0f);
  }
  LossSaved saved() { return {lse.data(), row_loss.data()}; }
  double forward() {
    return cross_entropy_forward(saved(), ConstMatView(logits.data(), N, V), targets.data());
  }
  void backward(std::vector<float>& d, float scale) {
    cross_entropy_backward(MatView(d.data(), N, V), ConstMatView(logits.data(), N, V), targets.data(),
                           saved(), scale);
  }
};

bool bits_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// −log softmax(l)[t] in double, written independently of the kernel.
double ref_row_loss(const float* l, int V, int t) {
  double m = l[0];
  for (int v = 1; v < V; ++v) m = std::max(m, double(l[v]));
  double s = 0.0;
  for (int v = 0; v < V; ++v) s += std::exp(double(l[v]) - m);
  return m + std::log(s) - l[t];
}

}  // namespace

TEST_CASE("cross entropy of a hand-computed case", "[model][loss]") {
  // logits (0, ln 3): softmax = (1/4, 3/4).
  std::vector<float> logits = {0.0f, float(std::log(3.0))};
  std::vector<int32_t> targets = {0};
  float lse = 0.0f, row = 0.0f;
  const double loss = cross_entropy_forward({&lse, &row}, ConstMatView(logits.data(), 1, 2), targets.data());
  REQUIRE(loss == Approx(std::log(4.0)).epsilon(1e-6));
  REQUIRE(lse == Approx(std::log(4.0)).epsilon(1e-6));
  std::vector<float> d(2, 0.0f);
  cross_entropy_backward(MatView(d.data(), 1, 2), ConstMatView(logits.data(), 1, 2), targets.data(),
                         {&lse, &row}, 1.0f);
  REQUIRE(d[0] == Approx(0.25 - 1.0).epsilon(1e-6));
  REQUIRE(d[1] == Approx(0.75).epsilon(1e-6));
}

TEST_CASE("cross entropy forward matches a double reference", "[model][loss]") {
  LossCase k(6, 50, 1);
  k.targets[2] = -1;
  const double loss = k.forward();
  double total = 0.0;
  for (int n = 0; n < k.N; ++n) {
    const float* l = &k.logits[size_t(n) * k.V];
    const double ref_lse = ref_row_loss(l, k.V, 0) + l[0];
    REQUIRE(k.lse[n] == Approx(ref_lse).epsilon(1e-6));  // ignored rows get their lse too
    if (k.targets[n] < 0) continue;
    const double r = ref_row_loss(l, k.V, k.targets[n]);
    REQUIRE(k.row_loss[n] == Approx(r).epsilon(1e-6));
    total += r;
  }
  REQUIRE(loss == Approx(total / 5).epsilon(1e-6));
}

TEST_CASE("cross entropy backward matches finite differences", "[model][loss][gradcheck]") {
  LossCase k(6, 8, 2);
  k.targets[4] = -1;  // an ignored row: zero gradient, checked by the differences too
  k.forward();
  std::vector<float> d(k.logits.size(), 0.0f);
  k.backward(d, 1.0f / float(count_valid_targets(k.targets.data(), k.N)));
  // The loss is a mean of float row losses: a larger step keeps their rounding out of the differences.
  const auto r = gradcheck(
      k.logits.data(), int64_t(k.logits.size()), d.data(), [&] { return k.forward(); }, -1, 7, 1e-2);
  INFO(r.describe("dlogits"));
  REQUIRE(r.rel_err < 1e-3);
}

TEST_CASE("uniform logits give loss ln V", "[model][loss]") {
  const int V = GENERATE(2, 1000, 8192);
  LossCase k(4, V, 3);
  std::fill(k.logits.begin(), k.logits.end(), 3.7f);
  const double loss = k.forward();
  REQUIRE(std::fabs(loss - std::log(double(V))) < 1e-6);
  for (int n = 0; n < k.N; ++n) REQUIRE(std::fabs(k.lse[n] - (3.7 + std::log(double(V)))) < 1e-5);
}

TEST_CASE("ignored targets contribute nothing", "[model][loss]") {
  LossCase k(8, 20, 4);
  const double full = k.forward();
  const auto rows = k.row_loss;
  k.targets[1] = -1;
  k.targets[6] = -1;
  REQUIRE(count_valid_targets(k.targets.data(), k.N) == 6);
  const double part = k.forward();
  double expect = 0.0;
  for (int n = 0; n < k.N; ++n)
    if (n != 1 && n != 6) expect += rows[n];
  REQUIRE(part == Approx(expect / 6).epsilon(1e-12));
  REQUIRE(part != Approx(full).epsilon(1e-6));  // the two rows did count before
  REQUIRE(k.row_loss[1] == 0.0f);
  REQUIRE(k.row_loss[6] == 0.0f);

  std::vector<float> d(k.logits.size(), 0.25f);
  k.backward(d, 1.0f / 6);
  for (int v = 0; v < k.V; ++v) {
    REQUIRE(d[size_t(1) * k.V + v] == 0.25f);
    REQUIRE(d[size_t(6) * k.V + v] == 0.25f);
  }

  std::fill(k.targets.begin(), k.targets.end(), -1);
  REQUIRE(count_valid_targets(k.targets.data(), k.N) == 0);
  REQUIRE(k.forward() == 0.0);
}

TEST_CASE("logit gradient rows sum to zero", "[model][loss]") {
  LossCase k(6, 64, 5);
  k.forward();
  std::vector<float> d(k.logits.size(), 0.0f);
  k.backward(d, 1.0f);
  for (int n = 0; n < k.N; ++n) {
    double s = 0.0;
    for (int v = 0; v < k.V; ++v) s += d[size_t(n) * k.V + v];
    INFO("row " << n);
    REQUIRE(std::fabs(s) < 1e-6);
    REQUIRE(d[size_t(n) * k.V + k.targets[n]] < 0.0f);
  }
}

TEST_CASE("cross entropy gives identical bits for 1 and 2 threads", "[model][loss][determinism]") {
  LossCase a(61, 300, 6), b(61, 300, 6);
  a.targets[3] = -1;
  b.targets[3] = -1;
  const int saved = omp_get_max_threads();
  std::vector<float> da(a.logits.size(), 0.0f), db(b.logits.size(), 0.0f);
  omp_set_num_threads(1);
  const double la = a.forward();
  a.backward(da, 1.0f / 60);
  omp_set_num_threads(2);
  const double lb = b.forward();
  b.backward(db, 1.0f / 60);
  omp_set_num_threads(saved);
  REQUIRE(std::memcmp(&la, &lb, sizeof(double)) == 0);
  REQUIRE(bits_equal(a.lse, b.lse));
  REQUIRE(bits_equal(a.row_loss, b.row_loss));
  REQUIRE(bits_equal(da, db));
}

TEST_CASE("cross entropy is stable for logits around 1e4", "[model][loss]") {
  LossCase k(6, 100, 7, 3.0f, 1e4f);
  k.logits[5] = -1e4f;  // and a huge spread inside one row
  k.logits[size_t(1) * 100 + 7] = 3e4f;
  k.targets[1] = 7;  // the dominant logit: loss ≈ 0 for row 1
  const double loss = k.forward();
  REQUIRE(std::isfinite(loss));
  double total = 0.0;
  for (int n = 0; n < k.N; ++n) {
    const double r = ref_row_loss(&k.logits[size_t(n) * k.V], k.V, k.targets[n]);
    REQUIRE(std::isfinite(k.lse[n]));
    REQUIRE(k.row_loss[n] == Approx(r).epsilon(1e-5).margin(1e-6));
    total += r;
  }
  REQUIRE(loss == Approx(total / k.N).epsilon(1e-5));
  REQUIRE(k.row_loss[1] == 0.0f);

  std::vector<float> d(k.logits.size(), 0.0f);
  k.backward(d, 1.0f);
  // lse is saved as a float: at |lse| ≈ 1e4 its rounding (≤ 4.9e-4) scales every probability by up to
  // e^(4.9e-4), so the tolerance here is 1e-3 rather than the 1e-6 of ordinary logits.
  for (int n = 0; n < k.N; ++n) {
    const float* l = &k.logits[size_t(n) * k.V];
    double m = l[0], s = 0.0, rowsum = 0.0;
    for (int v = 1; v < k.V; ++v) m = std::max(m, double(l[v]));
    for (int v = 0; v < k.V; ++v) s += std::exp(double(l[v]) - m);
    for (int v = 0; v < k.V; ++v) {
      const float g = d[size_t(n) * k.V + v];
      REQUIRE(std::isfinite(g));
      const double p = std::exp(double(l[v]) - m) / s - (v == k.targets[n] ? 1.0 : 0.0);
      REQUIRE(g == Approx(p).margin(1e-3));
      rowsum += g;
    }
    REQUIRE(std::fabs(rowsum) < 1e-3);
  }
}

TEST_CASE("cross entropy backward accumulates and leaves its inputs unchanged", "[model][loss][contract]") {
  LossCase k(6, 8, 8);
  k.targets[0] = -1;
  k.forward();
  const auto logits0 = k.logits, lse0 = k.lse, row0 = k.row_loss;
  const auto targets0 = k.targets;
  std::vector<float> d1(k.logits.size(), 0.0f), d2(k.logits.size(), 0.0f);
  k.backward(d1, 0.2f);
  REQUIRE(bits_equal(k.logits, logits0));
  REQUIRE(bits_equal(k.lse, lse0));
  REQUIRE(bits_equal(k.row_loss, row0));
  REQUIRE(k.targets == targets0);
  k.backward(d2, 0.2f);
  k.backward(d2, 0.2f);
  for (size_t i = 0; i < d1.size(); ++i) REQUIRE(d2[i] == 2.0f * d1[i]);
}

TEST_CASE("cross entropy forward overwrites NaN-poisoned saved state", "[model][loss][contract]") {
  LossCase k(6, 8, 9);
  k.targets[2] = -1;
  std::fill(k.lse.begin(), k.lse.end(), std::numeric_limits<float>::quiet_NaN());
  std::fill(k.row_loss.begin(), k.row_loss.end(), std::numeric_limits<float>::quiet_NaN());
  REQUIRE(std::isfinite(k.forward()));
  for (float v : k.lse) REQUIRE(std::isfinite(v));
  for (float v : k.row_loss) REQUIRE(std::isfinite(v));
}

// ---------------------------------------------------------------------------------------------------
// z-loss (model.z_loss; model/TOGGLES.md)

TEST_CASE("z_loss_forward is coeff·mean(lse²) over valid rows; backward matches finite differences",
          "[model][loss][z_loss][gradcheck]") {
  const int N = 5, V = 7;
  std::vector<float> logits = attnlab::testing::random_vec(N * V, 77, 2.0f), lse(N), row(N);
  std::vector<int32_t> targets = {3, -1, 0, 6, 2};
  const float c = 0.3f;
  auto loss = [&] {
    cross_entropy_forward({lse.data(), row.data()}, ConstMatView(logits.data(), N, V), targets.data());
    return z_loss_forward({lse.data(), row.data()}, targets.data(), N, c);
  };
  const double z = loss();
  double want = 0.0;
  for (int n = 0; n < N; ++n) {
    if (targets[size_t(n)] < 0) continue;
    double s = 0.0;
    for (int v = 0; v < V; ++v) s += std::exp(double(logits[size_t(n * V + v)]));
    want += std::log(s) * std::log(s);
  }
  REQUIRE(z == Approx(c * want / 4).epsilon(1e-6));
  std::vector<float> dl(size_t(N * V), 0.0f);
  z_loss_backward(MatView(dl.data(), N, V), ConstMatView(logits.data(), N, V), targets.data(),
                  {lse.data(), row.data()}, c / 4.0f);
  for (int v = 0; v < V; ++v) REQUIRE(dl[size_t(1 * V + v)] == 0.0f);  // the ignored row
  const auto r = attnlab::testing::gradcheck(logits.data(), N * V, dl.data(), loss);
  INFO(r.describe("dlogits"));
  REQUIRE(r.rel_err < 1e-3);
  // No valid rows: 0. Constant logits a: lse = a + ln V exactly, so z = c·(a + ln V)².
  std::vector<int32_t> none(N, -1);
  REQUIRE(z_loss_forward({lse.data(), row.data()}, none.data(), N, c) == 0.0);
  std::fill(logits.begin(), logits.end(), -1.5f);
  REQUIRE(loss() == Approx(c * (std::log(7.0) - 1.5) * (std::log(7.0) - 1.5)).epsilon(1e-5));
}
