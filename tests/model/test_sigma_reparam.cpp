// σReparam (model/sigma_reparam.h): Ŵ = (γ/σ)·W with σ = ‖W u‖. Finite differences for dW and dγ, the
// converged initialisation against Eigen's SVD, and the power-iteration step.
#include <catch2/catch.hpp>

#include <Eigen/SVD>
#include <cmath>
#include <vector>

#include "model/sigma_reparam.h"
#include "tests/support/gradcheck.h"

using namespace attnlab;
using namespace attnlab::testing;

namespace {

double top_singular_value(const std::vector<float>& w, int rows, int cols) {
  Eigen::MatrixXd m(rows, cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) m(r, c) = w[size_t(r * cols + c)];
  return Eigen::JacobiSVD<Eigen::MatrixXd>(m).singularValues()(0);
}

}  // namespace

TEST_CASE("sigma_reparam_init finds σ_max(W) and its right singular vector; Ŵ = W at init",
          "[model][sigma_reparam]") {
  for (auto [rows, cols] : {std::pair{12, 7}, std::pair{5, 16}, std::pair{20, 20}}) {
    std::vector<float> w = random_vec(rows * cols, uint64_t(rows * 100 + cols), 0.5f), u(static_cast<size_t>(cols));
    const double s = sigma_reparam_init(u.data(), ConstMatView(w.data(), rows, cols));
    REQUIRE(s == Approx(top_singular_value(w, rows, cols)).epsilon(1e-6));
    double un = 0.0;
    for (float x : u) un += double(x) * x;
    REQUIRE(un == Approx(1.0).epsilon(1e-6));
    std::vector<float> weff(w.size()), v(static_cast<size_t>(rows));
    float sigma = 0.0f;
    sigma_reparam_forward(MatView(weff.data(), rows, cols), {&sigma, v.data()}, ConstMatView(w.data(), rows, cols),
                          float(s), u.data());
    REQUIRE(weff == w);  // γ = σ exactly, so the scale is exactly 1
  }
}

TEST_CASE("sigma_reparam_backward matches finite differences for dW and dγ; accumulates; inputs unchanged",
          "[model][sigma_reparam][gradcheck]") {
  const int rows = 6, cols = 5;
  std::vector<float> w = random_vec(rows * cols, 3), u = random_vec(cols, 4), weff(w.size()), v(static_cast<size_t>(rows));
  double un = 0.0;
  for (float x : u) un += double(x) * x;
  for (float& x : u) x = float(x / std::sqrt(un));  // any unit vector: u is a constant of the forward
  std::vector<float> gamma = {1.7f};
  float sigma = 0.0f;
  const std::vector<float> probe = random_vec(rows * cols, 5);
  auto loss = [&] {
    sigma_reparam_forward(MatView(weff.data(), rows, cols), {&sigma, v.data()}, ConstMatView(w.data(), rows, cols),
                          gamma[0], u.data());
    return probe_loss(weff.data(), probe.data(), rows * cols);
  };
  loss();
  double wu2 = 0.0;
  for (int r = 0; r < rows; ++r) {
    double acc = 0.0;
    for (int c = 0; c < cols; ++c) acc += double(w[size_t(r * cols + c)]) * u[size_t(c)];
    wu2 += acc * acc;
  }
  REQUIRE(sigma == Approx(std::sqrt(wu2)).epsilon(1e-6));
  std::vector<float> dw(w.size(), 0.0f), dgamma(1, 0.0f);
  const std::vector<float> w0 = w, v0 = v;
  const float sigma0 = sigma;
  sigma_reparam_backward(MatView(dw.data(), rows, cols), dgamma.data(), ConstMatView(probe.data(), rows, cols),
                         ConstMatView(w.data(), rows, cols), gamma[0], u.data(), {&sigma, v.data()});
  REQUIRE(w == w0);
  REQUIRE(v == v0);
  REQUIRE(sigma == sigma0);
  const auto rw = gradcheck(w.data(), rows * cols, dw.data(), loss);
  INFO(rw.describe("dW"));
  REQUIRE(rw.rel_err < 1e-3);
  const auto rg = gradcheck(gamma.data(), 1, dgamma.data(), loss);
  INFO(rg.describe("dgamma"));
  REQUIRE(rg.rel_err < 1e-3);
  const std::vector<float> dw1 = dw;
  const float dg1 = dgamma[0];
  loss();
  sigma_reparam_backward(MatView(dw.data(), rows, cols), dgamma.data(), ConstMatView(probe.data(), rows, cols),
                         ConstMatView(w.data(), rows, cols), gamma[0], u.data(), {&sigma, v.data()});
  for (size_t i = 0; i < dw.size(); ++i) REQUIRE(dw[i] == Approx(2.0 * dw1[i]).margin(1e-6));
  REQUIRE(dgamma[0] == Approx(2.0 * dg1).epsilon(1e-6));
}

TEST_CASE("sigma_reparam_power_step: repeated steps converge to σ_max from any start", "[model][sigma_reparam]") {
  const int rows = 9, cols = 7;
  const std::vector<float> w = random_vec(rows * cols, 8);
  std::vector<float> u(size_t(cols), 0.0f), tmp(static_cast<size_t>(rows)), weff(w.size()), v(static_cast<size_t>(rows));
  u[0] = 1.0f;  // a poor start
  float sigma = 0.0f;
  auto sigma_now = [&] {
    sigma_reparam_forward(MatView(weff.data(), rows, cols), {&sigma, v.data()}, ConstMatView(w.data(), rows, cols),
                          1.0f, u.data());
    return double(sigma);
  };
  const double s0 = sigma_now();
  sigma_reparam_power_step(u.data(), ConstMatView(w.data(), rows, cols), tmp.data());
  const double s1 = sigma_now();
  REQUIRE(s1 >= s0);  // a power step never decreases ‖W u‖ for unit u
  for (int i = 0; i < 300; ++i) sigma_reparam_power_step(u.data(), ConstMatView(w.data(), rows, cols), tmp.data());
  REQUIRE(sigma_now() == Approx(top_singular_value(w, rows, cols)).epsilon(1e-5));
}
