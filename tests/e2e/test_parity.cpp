// Parity with PyTorch: attnlab's loss and every parameter gradient against the independent PyTorch
// reference (experiments/bench/torch_reference.py, float64) on the same parameters and batch, for
// several architecture variants and for a trained (non-initial) checkpoint. Needs Debian's
// python3-torch (installed by .ci/run); without it the test says so and checks nothing.
#include <catch2/catch.hpp>

#include <filesystem>

#include "tests/support/fixtures.h"

using namespace attnlab;
using namespace attnlab::testing;

namespace {

const char* kPython = "/usr/bin/python3";

bool torch_available() {
  return run_command(std::string(kPython) + " -c 'import torch, numpy'").exit_code == 0;
}

std::string config_json(const RunConfig& c) {
  const char* pos = c.model.pos == PosEncoding::kRope ? "rope" : c.model.pos == PosEncoding::kSinusoidal ? "sinusoidal" : "none";
  std::ostringstream os;
  os << "{\"vocab\":" << c.model.vocab << ",\"d_model\":" << c.model.d_model << ",\"n_layer\":" << c.model.n_layer
     << ",\"n_head\":" << c.model.n_head << ",\"seq_len\":" << c.model.seq_len << ",\"mlp\":\""
     << (c.model.mlp == MlpKind::kSwiGLU ? "swiglu" : "gelu") << "\",\"mlp_hidden\":" << c.model.mlp_hidden
     << ",\"pos\":\"" << pos << "\",\"rope_base\":" << c.model.rope_base
     << ",\"tied_head\":" << (c.model.tied_head ? "true" : "false") << ",\"norm_eps\":" << c.model.norm_eps << "}";
  return os.str();
}

// attnlab grads (optionally from a checkpoint) vs the PyTorch reference on the same params and batch.
void check_parity(const RunConfig& cfg, const TempDir& dir, const std::string& tag, const std::string& ckpt = "") {
  const std::string yaml = dir.write(tag + ".yaml", dump_config(cfg));
  const std::string ours = dir.file(tag + "-attnlab.safetensors"), theirs = dir.file(tag + "-torch.safetensors");
  auto r = run_command(attnlab_binary() + " grads " + yaml + " --out " + ours + (ckpt.empty() ? "" : " --checkpoint " + ckpt));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const std::string ref = std::string(kPython) + " " + ATTNLAB_SOURCE_DIR + "/experiments/bench/torch_reference.py";
  r = run_command(ref + " grads --params " + ours + " --batch " + ours + " --config-json '" + config_json(cfg) +
                  "' --out " + theirs);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  r = run_command(ref + " compare --a " + ours + " --b " + theirs + " --tol 1e-4");
  INFO(tag << "\n" << r.output);
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.output.find("grad.tok_emb") != std::string::npos);
}

}  // namespace

TEST_CASE("loss and gradients match PyTorch for every architecture variant", "[e2e][parity]") {
  if (!torch_available()) {
    WARN("python3-torch is not installed: PyTorch parity NOT checked (bash .ci/run installs it)");
    return;
  }
  TempDir dir("parity");
  struct V { PosEncoding pos; MlpKind mlp; bool tied; const char* tag; };
  for (const V& v : {V{PosEncoding::kRope, MlpKind::kSwiGLU, false, "rope-swiglu"},
                     V{PosEncoding::kSinusoidal, MlpKind::kGELU, true, "sin-gelu-tied"},
                     V{PosEncoding::kNone, MlpKind::kSwiGLU, true, "nope-swiglu-tied"},
                     V{PosEncoding::kRope, MlpKind::kGELU, false, "rope-gelu"}}) {
    RunConfig cfg = tiny_run_config();
    cfg.model.pos = v.pos;
    cfg.model.mlp = v.mlp;
    cfg.model.tied_head = v.tied;
    cfg.model.init_std = 0.1f;
    check_parity(cfg, dir, v.tag);
  }
}

TEST_CASE("gradients match PyTorch after training (non-initial parameters)", "[e2e][parity]") {
  if (!torch_available()) {
    WARN("python3-torch is not installed: PyTorch parity NOT checked (bash .ci/run installs it)");
    return;
  }
  TempDir dir("parity-trained");
  RunConfig cfg = tiny_run_config();
  cfg.train.steps = 30;
  cfg.data.bos = true;
  const std::string yaml = dir.write("t.yaml", dump_config(cfg));
  const auto r = run_command(attnlab_binary() + " train " + yaml + " --out " + dir.file("run") + " --quiet");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  check_parity(cfg, dir, "trained", dir.file("run") + "/ckpt/step_00000030.safetensors");
}

// ---------------------------------------------------------------------------------------------------
// Model toggles (model/TOGGLES.md): the same comparison with the toggle keys passed to the reference.

namespace {

const char* v_scale_name(VScaleMode m) {
  switch (m) {
    case VScaleMode::kOff: return "off";
    case VScaleMode::kLearned: return "learned";
    case VScaleMode::kFixed: return "fixed";
    case VScaleMode::kBackwardOnly: return "backward_only";
  }
  return "?";
}

// config_json plus every toggle key the reference knows (experiments/bench/torch_reference.py TOGGLE_DEFAULTS).
std::string toggle_config_json(const RunConfig& c) {
  std::string base = config_json(c);
  base.pop_back();  // the closing brace
  std::ostringstream os;
  const ModelConfig& m = c.model;
  auto b = [](bool x) { return x ? "true" : "false"; };
  os.precision(9);
  os << base << ",\"init_std\":" << m.init_std << ",\"v_scale\":\"" << v_scale_name(m.v_scale)
     << "\",\"v_scale_theta\":" << m.v_scale_theta << ",\"qk_norm\":" << b(m.qk_norm) << ",\"z_loss\":" << m.z_loss
     << ",\"softmax_plus_one\":" << b(m.softmax_plus_one) << ",\"sink_logit\":" << b(m.sink_logit)
     << ",\"attn_bias_kv\":" << b(m.attn_bias_kv) << ",\"sigmoid_attn\":" << b(m.sigmoid_attn)
     << ",\"sigmoid_attn_bias\":" << b(m.sigmoid_attn_bias) << ",\"attn_temperature\":" << m.attn_temperature
     << ",\"attn_temperature_start\":" << m.attn_temperature_start
     << ",\"attn_temperature_end\":" << m.attn_temperature_end << ",\"residual_scale\":" << m.residual_scale
     << ",\"embed_scale\":" << b(m.embed_scale) << ",\"norm_position\":\""
     << (m.norm_position == NormPosition::kPost ? "post" : "pre") << "\",\"sink_token\":" << b(m.sink_token)
     << ",\"sigma_reparam\":" << b(m.sigma_reparam) << "}";
  return os.str();
}

void check_toggle_parity(const RunConfig& cfg, const TempDir& dir, const std::string& tag) {
  const std::string yaml = dir.write(tag + ".yaml", dump_config(cfg));
  const std::string ours = dir.file(tag + "-attnlab.safetensors"), theirs = dir.file(tag + "-torch.safetensors");
  auto r = run_command(attnlab_binary() + " grads " + yaml + " --out " + ours);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const std::string ref = std::string(kPython) + " " + ATTNLAB_SOURCE_DIR + "/experiments/bench/torch_reference.py";
  r = run_command(ref + " grads --params " + ours + " --batch " + ours + " --config-json '" + toggle_config_json(cfg) +
                  "' --out " + theirs);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  r = run_command(ref + " compare --a " + ours + " --b " + theirs + " --tol 1e-4");
  INFO(tag << "\n" << r.output);
  REQUIRE(r.exit_code == 0);
}

}  // namespace

TEST_CASE("V-scale (learned, fixed, backward_only) matches PyTorch, incl. ∂L/∂θ", "[e2e][parity][vscale]") {
  if (!torch_available()) {
    WARN("python3-torch is not installed: PyTorch parity NOT checked (bash .ci/run installs it)");
    return;
  }
  TempDir dir("parity-vscale");
  struct V { VScaleMode mode; PosEncoding pos; float theta; const char* tag; };
  for (const V& v : {V{VScaleMode::kLearned, PosEncoding::kRope, 0.0f, "vscale-learned-rope"},
                     V{VScaleMode::kLearned, PosEncoding::kSinusoidal, -0.7f, "vscale-learned-sin"},
                     V{VScaleMode::kFixed, PosEncoding::kNone, 0.5f, "vscale-fixed-nope"},
                     V{VScaleMode::kBackwardOnly, PosEncoding::kRope, 0.0f, "vscale-bwd-rope"}}) {
    RunConfig cfg = tiny_run_config();
    cfg.model.pos = v.pos;
    cfg.model.init_std = 0.1f;
    cfg.model.v_scale = v.mode;
    cfg.model.v_scale_theta = v.theta;
    check_toggle_parity(cfg, dir, v.tag);
  }
}

TEST_CASE("mitigation toggles match PyTorch (loss and every gradient, toggle parameters included)",
          "[e2e][parity][toggles]") {
  if (!torch_available()) {
    WARN("python3-torch is not installed: PyTorch parity NOT checked (bash .ci/run installs it)");
    return;
  }
  TempDir dir("parity-toggles");
  // Four groups of compatible toggles cover every toggle; each group with a different position encoding.
  struct G { const char* tag; PosEncoding pos; void (*set)(ModelConfig&); };
  const G groups[] = {
      {"qknorm-zloss-sm1-alpha-embed", PosEncoding::kRope,
       [](ModelConfig& m) {
         m.qk_norm = true;
         m.z_loss = 1e-2f;
         m.softmax_plus_one = true;
         m.residual_scale = 0.7f;
         m.embed_scale = true;
       }},
      {"sinklogit-tau-sinktoken-sigma", PosEncoding::kSinusoidal,
       [](ModelConfig& m) {
         m.sink_logit = true;
         m.attn_temperature = 0.6f;
         m.attn_temperature_end = 100;  // step 0 (attnlab grads) is inside [0, 100)
         m.sink_token = true;
         m.sigma_reparam = true;
       }},
      {"kvbias-postnorm-vscale", PosEncoding::kNone,
       [](ModelConfig& m) {
         m.attn_bias_kv = true;
         m.norm_position = NormPosition::kPost;
         m.v_scale = VScaleMode::kLearned;
       }},
      {"sigmoid-bias", PosEncoding::kRope,
       [](ModelConfig& m) {
         m.sigmoid_attn = true;
         m.sigmoid_attn_bias = true;
       }},
  };
  for (const G& g : groups) {
    RunConfig cfg = tiny_run_config();
    cfg.model.pos = g.pos;
    cfg.model.init_std = 0.1f;
    g.set(cfg.model);
    check_toggle_parity(cfg, dir, g.tag);
  }
}
