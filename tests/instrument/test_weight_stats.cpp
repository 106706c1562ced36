// Weight metrics: QK eigen-moments and spectral norms on matrices with known spectra, then the family entry
// point on a real tiny model against independent recomputations (explicit d×d W_QK, Eigen's JacobiSVD).
#include <catch2/catch.hpp>
#include <omp.h>

// GCC 12 false positive inside avx512fintrin.h when Eigen's AVX-512 kernels are inlined (see weight_stats.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Dense>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

#include "instrument/weight_stats.h"
#include "model/rng.h"
#include "model/transformer.h"
#include "tests/support/tiny_model.h"

using namespace attnlab;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;
using attnlab::testing::Mat;

namespace {

using RowMajorD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

RowMajorD to_eigen(ConstMatView w) {
  RowMajorD m(w.rows, w.cols);
  for (int r = 0; r < w.rows; ++r)
    for (int c = 0; c < w.cols; ++c) m(r, c) = w(r, c);
  return m;
}

double largest_singular_value(const RowMajorD& m) {
  Eigen::JacobiSVD<RowMajorD> svd(m);
  return svd.singularValues()[0];
}

}  // namespace

TEST_CASE("QK spectrum with W_q = W_k: symmetric PSD kernel with eigenvalues n_a²/√dh", "[instrument][weights]") {
  // Q_h = K_h with orthogonal rows of norms n = (1, 2, 3, 0.5) (rows are scaled ±1 Hadamard rows in R^8):
  // K = K_h Q_hᵀ/√dh = diag(n²)/√dh, so λ = n²/2 and ‖W_QK‖_2 = ‖Q_hᵀ Q_h‖_2/2 = max n²/2.
  const int dh = 4, d = 8;
  const double n[dh] = {1, 2, 3, 0.5};
  const int had[dh][d] = {{1, 1, 1, 1, 1, 1, 1, 1},
                          {1, -1, 1, -1, 1, -1, 1, -1},
                          {1, 1, -1, -1, 1, 1, -1, -1},
                          {1, -1, -1, 1, 1, -1, -1, 1}};
  Mat Q(dh, d);
  for (int a = 0; a < dh; ++a)
    for (int c = 0; c < d; ++c) Q(a, c) = float(n[a] * had[a][c] / std::sqrt(8.0));
  double sum = 0.0, sum_sq = 0.0, lmax = 0.0;
  for (double x : n) {
    const double lambda = x * x / 2.0;
    sum += lambda;
    sum_sq += lambda * lambda;
    lmax = std::max(lmax, lambda);
  }
  const QkSpectrum s = qk_spectrum(Q.view(), Q.view());
  const double tol = 1e-6;  // the rows are rounded to float
  CHECK_THAT(s.trace, WithinRel(sum, tol));
  CHECK_THAT(s.trace_sq, WithinRel(sum_sq, tol));
  CHECK_THAT(s.mean, WithinRel(sum / d, tol));
  CHECK_THAT(s.var, WithinRel(sum_sq / d - (sum / d) * (sum / d), tol));
  CHECK_THAT(s.mean_nz, WithinRel(sum / dh, tol));
  CHECK_THAT(s.var_nz, WithinRel(sum_sq / dh - (sum / dh) * (sum / dh), tol));
  CHECK_THAT(s.cv, WithinRel(std::sqrt(sum_sq / d - (sum / d) * (sum / d)) / (sum / d), tol));
  CHECK_THAT(s.spec, WithinRel(lmax, tol));
}

TEST_CASE("QK spectrum of a rotation kernel: complex eigenvalues, negative variance", "[instrument][weights]") {
  // Q_h = [I_2 | 0], K_h = c·[Rot(θ) | 0]: K = K_h Q_hᵀ/√2 = c·Rot(θ)/√2 with eigenvalues (c/√2)e^{±iθ}.
  // tr K = √2 c cos θ, tr K² = c² cos 2θ (real), ‖W_QK‖_2 = c/√2 (a rotation is orthogonal).
  const int d = 4;
  const double c = 3.0, theta = M_PI / 3.0;
  Mat Q(2, d), K(2, d);
  Q(0, 0) = Q(1, 1) = 1;
  K(0, 0) = float(c * std::cos(theta));
  K(0, 1) = float(-c * std::sin(theta));
  K(1, 0) = float(c * std::sin(theta));
  K(1, 1) = float(c * std::cos(theta));
  const QkSpectrum s = qk_spectrum(Q.view(), K.view());
  const double tr = std::sqrt(2.0) * c * std::cos(theta), tr2 = c * c * std::cos(2 * theta);
  CHECK_THAT(s.trace, WithinRel(tr, 1e-6));
  CHECK_THAT(s.trace_sq, WithinRel(tr2, 1e-6));  // −4.5: Σλ² of a complex pair
  CHECK_THAT(s.mean, WithinRel(tr / d, 1e-6));
  CHECK_THAT(s.var, WithinRel(tr2 / d - (tr / d) * (tr / d), 1e-6));
  CHECK(s.var < 0.0);
  CHECK(s.cv == 0.0);  // sqrt(max(var, 0)) / |mean|
  CHECK_THAT(s.mean_nz, WithinRel(tr / 2, 1e-6));
  CHECK_THAT(s.spec, WithinRel(c / std::sqrt(2.0), 1e-6));
}

TEST_CASE("spectral norm of diagonal, rank-1 and strided matrices", "[instrument][weights]") {
  SECTION("wide diagonal 3x5 and its transpose") {
    Mat W(3, 5), Wt(5, 3);
    const float dg[3] = {1, -5, 3};
    for (int i = 0; i < 3; ++i) W(i, i) = Wt(i, i) = dg[i];
    CHECK_THAT(spectral_norm(W.view()), WithinRel(5.0, 1e-12));
    CHECK_THAT(spectral_norm(Wt.view()), WithinRel(5.0, 1e-12));
  }
  SECTION("rank one u vᵀ: ‖u‖‖v‖") {
    const float u[3] = {1, 2, 2}, v[2] = {3, -4};  // norms 3 and 5
    Mat W(3, 2);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 2; ++j) W(i, j) = u[i] * v[j];
    CHECK_THAT(spectral_norm(W.view()), WithinRel(15.0, 1e-12));
  }
  SECTION("a column block of a wider matrix sees only its own columns") {
    Mat W(2, 4, 100.0f);
    W(0, 1) = 2;
    W(0, 2) = 0;
    W(1, 1) = 0;
    W(1, 2) = 7;
    CHECK_THAT(spectral_norm(W.view().col_block(1, 2)), WithinRel(7.0, 1e-12));
  }
  SECTION("zero matrix") { CHECK(spectral_norm(Mat(3, 3).view()) == 0.0); }
}

TEST_CASE("weight norms of a constant matrix and a gain vector", "[instrument][weights]") {
  const WeightNorms n = weight_norms(Mat(4, 8, -0.5f).view());
  CHECK_THAT(n.rms, WithinRel(0.5, 1e-12));
  CHECK_THAT(n.norm, WithinRel(0.5 * std::sqrt(32.0), 1e-12));
  const float g[4] = {1, 2, 2, 4};  // ‖g‖ = 5
  const WeightNorms gn = weight_norms(ConstMatView(g, 1, 4));
  CHECK_THAT(gn.norm, WithinRel(5.0, 1e-12));
  CHECK_THAT(gn.rms, WithinRel(2.5, 1e-12));
}

namespace {

ModelConfig tiny_model(MlpKind mlp, bool tied) {
  return testing::tiny_model({.vocab = 40, .d_model = 32, .n_layer = 2, .n_head = 4, .seq_len = 8, .mlp_hidden = 48,
                              .mlp = mlp, .tied_head = tied, .init_std = 0.1f});
}

}  // namespace

TEST_CASE("weight_metrics on a real tiny model: independent recomputation, passive, deterministic",
          "[instrument][weights]") {
  DnnlContext ctx;
  for (MlpKind mlp : {MlpKind::kSwiGLU, MlpKind::kGELU}) {
    for (bool tied : {false, true}) {
      const ModelConfig cfg = tiny_model(mlp, tied);
      INFO((mlp == MlpKind::kSwiGLU ? "swiglu" : "gelu") << (tied ? " tied" : " untied"));
      Transformer m(cfg, 1, ctx);
      m.init_params(9);
      const Layout& y = m.layout();
      const int d = cfg.d_model, H = cfg.n_head, dh = cfg.d_head();
      const std::vector<float> before(y.params(), y.params() + y.n_params());

      MemoryOut out;
      weight_metrics(cfg, y, out);
      CHECK(std::memcmp(before.data(), y.params(), before.size() * sizeof(float)) == 0);
      for (const auto& e : out.entries) {
        INFO(e.name << " layer " << e.layer << " head " << e.head);
        REQUIRE(std::isfinite(e.value));
      }

      for (int l = 0; l < cfg.n_layer; ++l) {
        const BlockParams& p = y.block(l);
        const RowMajorD qkv = to_eigen(p.w_qkv);
        // Per head: W_QK = Q_hᵀ K_h / √dh formed explicitly as a d×d matrix.
        for (int h = 0; h < H; ++h) {
          INFO("layer " << l << " head " << h);
          const RowMajorD Qh = qkv.block(h * dh, 0, dh, d), Kh = qkv.block(d + h * dh, 0, dh, d);
          const RowMajorD W = Qh.transpose() * Kh / std::sqrt(double(dh));
          const double mean = W.trace() / d, var = (W * W).trace() / d - mean * mean;
          CHECK_THAT(out.get("qk_mean", l, h), WithinAbs(mean, 1e-12));
          CHECK_THAT(out.get("qk_var", l, h), WithinRel(var, 1e-9));
          CHECK_THAT(out.get("qk_mean_nz", l, h), WithinAbs(W.trace() / dh, 1e-12));
          CHECK_THAT(out.get("qk_spec", l, h), WithinRel(largest_singular_value(W), 1e-9));
        }
        const char* spec_names[6] = {"spec_wq", "spec_wk", "spec_wv", "spec_wo", "spec_win", "spec_wdown"};
        const RowMajorD mats[6] = {qkv.topRows(d), qkv.middleRows(d, d), qkv.bottomRows(d), to_eigen(p.w_o),
                                   to_eigen(p.w_in), to_eigen(p.w_down)};
        for (int i = 0; i < 6; ++i) {
          INFO(spec_names[i] << " layer " << l);
          CHECK_THAT(out.get(spec_names[i], l), WithinRel(largest_singular_value(mats[i]), 1e-10));
          // Gaussian init: ‖W‖_2 ≈ std·(√rows + √cols) (Marchenko-Pastur edge), loosely.
          const double edge = cfg.init_std * (std::sqrt(double(mats[i].rows())) + std::sqrt(double(mats[i].cols())));
          CHECK(out.get(spec_names[i], l) > 0.7 * edge);
          CHECK(out.get(spec_names[i], l) < 1.3 * edge);
        }
        const char* rms_names[6] = {"w_rms_q", "w_rms_k", "w_rms_v", "w_rms_o", "w_rms_in", "w_rms_down"};
        const char* norm_names[6] = {"w_norm_q", "w_norm_k", "w_norm_v", "w_norm_o", "w_norm_in", "w_norm_down"};
        for (int i = 0; i < 6; ++i) {
          CHECK_THAT(out.get(norm_names[i], l), WithinRel(mats[i].norm(), 1e-12));
          CHECK_THAT(out.get(rms_names[i], l), WithinRel(mats[i].norm() / std::sqrt(double(mats[i].size())), 1e-12));
          CHECK_THAT(out.get(rms_names[i], l), WithinRel(double(cfg.init_std), 0.15));
        }
        CHECK_THAT(out.get("w_rms_attn_norm", l), WithinRel(1.0, 1e-12));  // gains start at 1
        CHECK_THAT(out.get("w_norm_mlp_norm", l), WithinRel(std::sqrt(double(d)), 1e-12));
      }
      CHECK_THAT(out.get("spec_lm_head"), WithinRel(largest_singular_value(to_eigen(y.head().lm_head)), 1e-10));
      CHECK_THAT(out.get("w_rms_final_norm"), WithinRel(1.0, 1e-12));
      CHECK_THAT(out.get("w_rms_tok_emb"), WithinRel(double(cfg.init_std), 0.15));
      if (tied) CHECK(out.get("w_rms_lm_head") == out.get("w_rms_tok_emb"));
      else CHECK(out.get("w_rms_lm_head") != out.get("w_rms_tok_emb"));

      // Bitwise identical on repeat and with one thread.
      const int threads = omp_get_max_threads();
      MemoryOut again, serial;
      weight_metrics(cfg, y, again);
      omp_set_num_threads(1);
      weight_metrics(cfg, y, serial);
      omp_set_num_threads(threads);
      for (const MemoryOut* o : {&again, &serial}) {
        REQUIRE(o->entries.size() == out.entries.size());
        for (size_t i = 0; i < out.entries.size(); ++i)
          CHECK(std::memcmp(&o->entries[i].value, &out.entries[i].value, sizeof(double)) == 0);
      }
    }
  }
}

TEST_CASE("weight_metrics reports toggle parameters only when their toggle is on", "[instrument][weights]") {
  DnnlContext ctx;
  ModelConfig cfg = tiny_model(MlpKind::kSwiGLU, false);
  {
    Transformer m(cfg, 1, ctx);
    m.init_params(2);
    MemoryOut out;
    weight_metrics(cfg, m.layout(), out);
    for (const char* name : {"w_rms_q_norm", "w_rms_k_norm", "w_rms_k_bias", "w_rms_v_bias", "vscale_theta", "sink_logit"})
      CHECK(!out.has(name));
  }
  SECTION("QK-norm, V-scale and a sink logit") {
    cfg.qk_norm = true;
    cfg.v_scale = VScaleMode::kLearned;
    cfg.v_scale_theta = 0.5f;
    cfg.sink_logit = true;
    Transformer m(cfg, 1, ctx);
    m.init_params(2);
    MemoryOut out;
    weight_metrics(cfg, m.layout(), out);
    for (int l = 0; l < cfg.n_layer; ++l) {
      CHECK(out.get("w_rms_q_norm", l) == 1.0);  // gains start at 1
      CHECK_THAT(out.get("w_norm_k_norm", l), WithinRel(std::sqrt(double(cfg.d_head())), 1e-12));
      for (int h = 0; h < cfg.n_head; ++h) {
        CHECK(out.get("vscale_theta", l, h) == 0.5);  // θ starts at the configured value
        CHECK(out.get("sink_logit", l, h) == 0.0);
      }
      CHECK(!out.has("w_rms_k_bias"));
    }
  }
  SECTION("attention key/value bias") {
    cfg.attn_bias_kv = true;
    Transformer m(cfg, 1, ctx);
    m.init_params(2);
    MemoryOut out;
    weight_metrics(cfg, m.layout(), out);
    for (int l = 0; l < cfg.n_layer; ++l) {
      const WeightNorms k = weight_norms(m.layout().block(l).k_bias);
      CHECK(out.get("w_rms_k_bias", l) == k.rms);
      CHECK_THAT(out.get("w_rms_v_bias", l), WithinRel(double(cfg.init_std), 0.5));  // 16 values of N(0, std²)
    }
  }
}

TEST_CASE("under sigma-reparam, spectra read the effective weights and sizes the parameters",
          "[instrument][weights]") {
  DnnlContext ctx;
  ModelConfig cfg = tiny_model(MlpKind::kSwiGLU, false);
  cfg.sigma_reparam = true;
  const int B = 1, T = cfg.seq_len;
  Transformer m(cfg, B, ctx);
  m.init_params(6);
  std::vector<int32_t> tokens(size_t(B) * T);
  for (int t = 0; t < T; ++t) tokens[t] = t % cfg.vocab;
  m.forward(tokens.data(), tokens.data());
  MemoryOut before;
  weight_metrics(cfg, m.layout(), before);
  // Ŵ = (γ/σ)·W: doubling every γ doubles every effective matrix (σ = ‖W u‖ is unchanged: u is W's top
  // right singular vector from init), so every spectral norm doubles and every QK eigenvalue quadruples,
  // while the parameters W, hence w_rms, stay as they are.
  for (int l = 0; l < cfg.n_layer; ++l)
    for (const SigmaView& sv : m.layout().sigma_views(l)) *sv.gamma *= 2.0f;
  m.forward(tokens.data(), tokens.data());
  MemoryOut after;
  weight_metrics(cfg, m.layout(), after);
  for (int l = 0; l < cfg.n_layer; ++l) {
    INFO("layer " << l);
    for (const char* name : {"spec_wq", "spec_wk", "spec_wv", "spec_wo", "spec_win", "spec_wdown"})
      CHECK_THAT(after.get(name, l), WithinRel(2.0 * before.get(name, l), 1e-5));
    CHECK_THAT(after.get("qk_spec", l, 0), WithinRel(4.0 * before.get("qk_spec", l, 0), 1e-5));
    CHECK_THAT(after.get("qk_mean", l, 1), WithinRel(4.0 * before.get("qk_mean", l, 1), 1e-5));
    for (const char* name : {"w_rms_q", "w_rms_in", "w_norm_down"}) CHECK(after.get(name, l) == before.get(name, l));
  }
}

TEST_CASE("weight_metrics timing at d=64, L=4, H=4", "[.][bench]") {
  DnnlContext ctx;
  ModelConfig cfg;
  cfg.d_model = 64;
  cfg.n_layer = 4;
  cfg.n_head = 4;
  cfg.seq_len = 64;
  Transformer m(cfg, 1, ctx);
  m.init_params(1);
  MemoryOut out;
  weight_metrics(cfg, m.layout(), out);  // warm-up
  // Minimum and median over repetitions: the minimum is what the code costs on an otherwise idle machine.
  std::vector<double> ms;
  for (int i = 0; i < 30; ++i) {
    out.clear();
    const auto t0 = std::chrono::steady_clock::now();
    weight_metrics(cfg, m.layout(), out);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  WARN("weight_metrics: min " << ms.front() << " ms, median " << ms[ms.size() / 2] << " ms per call, " << out.entries.size()
                      << " values, " << omp_get_max_threads() << " threads");
}
