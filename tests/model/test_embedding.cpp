// Tests for model/embedding: token embedding forward/backward and the sinusoidal position table.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>
#include <omp.h>

#include "model/embedding.h"
#include "model/rng.h"
#include "tests/support/gradcheck.h"

using namespace attnlab;
using attnlab::testing::gradcheck;
using attnlab::testing::probe_loss;
using attnlab::testing::random_vec;

namespace {

bool bits_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<int32_t> random_tokens(int n, int vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& v : t) v = int32_t(rng.below(uint64_t(vocab)));
  return t;
}

}  // namespace

TEST_CASE("embedding forward copies the token rows", "[model][embedding]") {
  const int V = 5, C = 8, N = 6;
  const auto wte = random_vec(V * C, 1);
  const std::vector<int32_t> tokens = {4, 0, 4, 2, 1, 3};
  std::vector<float> x(N * C, std::numeric_limits<float>::quiet_NaN());  // poisoned output
  embedding_forward(MatView(x.data(), N, C), tokens.data(), ConstMatView(wte.data(), V, C));
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) REQUIRE(x[n * C + c] == wte[tokens[n] * C + c]);
}

TEST_CASE("embedding backward matches finite differences", "[model][embedding][gradcheck]") {
  const int V = 5, C = 8, N = 6;
  auto wte = random_vec(V * C, 2);
  const auto w = random_vec(N * C, 3);
  const std::vector<int32_t> tokens = {1, 3, 1, 0, 1, 3};  // repeats, and rows 2 and 4 unused
  std::vector<float> x(N * C), dwte(V * C, 0.0f);
  embedding_backward(MatView(dwte.data(), V, C), ConstMatView(w.data(), N, C), tokens.data());
  auto loss = [&] {
    embedding_forward(MatView(x.data(), N, C), tokens.data(), ConstMatView(wte.data(), V, C));
    return probe_loss(x.data(), w.data(), N * C);
  };
  const auto r = gradcheck(wte.data(), V * C, dwte.data(), loss);
  INFO(r.describe("dwte"));
  REQUIRE(r.rel_err < 1e-3);
}

TEST_CASE("embedding backward sums the rows of repeated tokens", "[model][embedding]") {
  const int V = 5, C = 8, N = 6;
  const auto dx = random_vec(N * C, 4);
  const std::vector<int32_t> tokens = {2, 0, 2, 2, 4, 0};
  std::vector<float> dwte(V * C, 0.5f);  // pre-filled: backward must add, not overwrite
  embedding_backward(MatView(dwte.data(), V, C), ConstMatView(dx.data(), N, C), tokens.data());
  for (int c = 0; c < C; ++c) {
    INFO("c=" << c);
    REQUIRE(dwte[2 * C + c] ==
            Approx(0.5 + double(dx[0 * C + c]) + dx[2 * C + c] + dx[3 * C + c]).epsilon(1e-6));
    REQUIRE(dwte[0 * C + c] == Approx(0.5 + double(dx[1 * C + c]) + dx[5 * C + c]).epsilon(1e-6));
    REQUIRE(dwte[4 * C + c] == Approx(0.5 + double(dx[4 * C + c])).epsilon(1e-6));
    REQUIRE(dwte[1 * C + c] == 0.5f);  // unused tokens untouched
    REQUIRE(dwte[3 * C + c] == 0.5f);
  }
}

TEST_CASE("embedding backward accumulates and leaves its inputs unchanged", "[model][embedding][contract]") {
  const int V = 7, C = 8, N = 6;
  const auto dx = random_vec(N * C, 5);
  const std::vector<int32_t> tokens = {6, 0, 3, 2, 5, 1};  // distinct: each element gets a single +=
  const auto dx0 = dx;
  const auto tokens0 = tokens;
  std::vector<float> d1(V * C, 0.0f), d2(V * C, 0.0f);
  embedding_backward(MatView(d1.data(), V, C), ConstMatView(dx.data(), N, C), tokens.data());
  REQUIRE(bits_equal(dx, dx0));
  REQUIRE(tokens == tokens0);
  embedding_backward(MatView(d2.data(), V, C), ConstMatView(dx.data(), N, C), tokens.data());
  embedding_backward(MatView(d2.data(), V, C), ConstMatView(dx.data(), N, C), tokens.data());
  for (size_t i = 0; i < d1.size(); ++i) REQUIRE(d2[i] == 2.0f * d1[i]);
}

TEST_CASE("embedding backward gives identical bits for 1 and 2 threads", "[model][embedding][determinism]") {
  // Few tokens, many rows: heavy collisions. C = 300 spans several column blocks, with a ragged tail.
  const int V = 11, C = 300, N = 97;
  const auto dx = random_vec(int64_t(N) * C, 6);
  const auto tokens = random_tokens(N, V, 7);
  const int saved = omp_get_max_threads();
  std::vector<float> d1(V * C, 0.0f), d2(V * C, 0.0f);
  omp_set_num_threads(1);
  embedding_backward(MatView(d1.data(), V, C), ConstMatView(dx.data(), N, C), tokens.data());
  omp_set_num_threads(2);
  embedding_backward(MatView(d2.data(), V, C), ConstMatView(dx.data(), N, C), tokens.data());
  omp_set_num_threads(saved);
  REQUIRE(bits_equal(d1, d2));
  // And the sum is right: column 299 (in the tail block) of the first token's row, in double.
  double expect = 0.0;
  for (int n = 0; n < N; ++n)
    if (tokens[n] == tokens[0]) expect += dx[size_t(n) * C + 299];
  REQUIRE(d1[size_t(tokens[0]) * C + 299] == Approx(expect).epsilon(1e-5).margin(1e-6));
}

TEST_CASE("sinusoidal table has the textbook values", "[model][embedding][sinusoidal]") {
  const int T = 6, C = 8;
  std::vector<float> pe(T * C, std::numeric_limits<float>::quiet_NaN());
  sinusoidal_table(MatView(pe.data(), T, C));
  for (float v : pe) REQUIRE(std::isfinite(v));
  for (int c = 0; c < C; c += 2) {
    REQUIRE(pe[c] == 0.0f);      // sin(0)
    REQUIRE(pe[c + 1] == 1.0f);  // cos(0)
  }
  // Frequencies for C = 8: 10000^(-2i/8) = 1, 0.1, 0.01, 0.001.
  REQUIRE(pe[1 * C + 0] == Approx(0.8414709848).epsilon(1e-6));  // sin(1)
  REQUIRE(pe[1 * C + 1] == Approx(0.5403023059).epsilon(1e-6));  // cos(1)
  REQUIRE(pe[3 * C + 2] == Approx(0.2955202067).epsilon(1e-6));  // sin(0.3)
  REQUIRE(pe[3 * C + 3] == Approx(0.9553364891).epsilon(1e-6));  // cos(0.3)
  REQUIRE(pe[5 * C + 6] == Approx(0.0049999792).epsilon(1e-6));  // sin(0.005)
  REQUIRE(pe[5 * C + 7] == Approx(0.9999875000).epsilon(1e-6));  // cos(0.005)
}

TEST_CASE("sinusoidal table is accurate at large positions", "[model][embedding][sinusoidal]") {
  // A float angle t·freq would be off by ~t·2^-24 radians; the table is computed in double.
  const int T = 4097, C = 16;
  std::vector<float> pe(size_t(T) * C);
  sinusoidal_table(MatView(pe.data(), T, C));
  REQUIRE(pe[size_t(4096) * C + 0] == Approx(std::sin(4096.0)).margin(1e-6));
  REQUIRE(pe[size_t(4093) * C + 1] == Approx(std::cos(4093.0)).margin(1e-6));
}

TEST_CASE("sinusoidal forward adds pe[n % T] and its backward is the identity",
          "[model][embedding][gradcheck]") {
  const int T = 3, C = 8, N = 6;  // two sequences of three positions
  std::vector<float> pe(T * C);
  sinusoidal_table(MatView(pe.data(), T, C));
  auto x = random_vec(N * C, 8);
  const auto x0 = x;
  sinusoidal_forward(MatView(x.data(), N, C), ConstMatView(pe.data(), T, C));
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) REQUIRE(x[n * C + c] == x0[n * C + c] + pe[(n % T) * C + c]);

  // Gradcheck of y = x + pe: dx from sinusoidal_backward with dy = w.
  auto xin = random_vec(N * C, 9);
  const auto w = random_vec(N * C, 10);
  std::vector<float> y(N * C), dx(N * C, 0.0f);
  sinusoidal_backward(MatView(dx.data(), N, C), ConstMatView(w.data(), N, C));
  auto loss = [&] {
    y = xin;
    sinusoidal_forward(MatView(y.data(), N, C), ConstMatView(pe.data(), T, C));
    return probe_loss(y.data(), w.data(), N * C);
  };
  const auto r = gradcheck(xin.data(), N * C, dx.data(), loss);
  INFO(r.describe("dx"));
  REQUIRE(r.rel_err < 1e-3);

  // Accumulate contract: a second call adds the same again; dy is unchanged.
  const auto w0 = w;
  sinusoidal_backward(MatView(dx.data(), N, C), ConstMatView(w.data(), N, C));
  REQUIRE(bits_equal(w, w0));
  for (int i = 0; i < N * C; ++i) REQUIRE(dx[i] == 2.0f * w[i]);
}
