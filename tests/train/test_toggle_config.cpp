// The model-toggle keys of train/config/config.cpp (model/TOGGLES.md): each key parses to its field, the resolved
// config round-trips, invalid values and incompatible combinations are errors that name every key
// involved, and every example under configs/vscale/ and configs/mitigations/ loads with its toggle on.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "train/config/config.h"

using namespace attnlab;
using Catch::Matchers::Contains;

namespace {

RunConfig parse(const std::string& model_keys, const std::vector<std::string>& overrides = {}) {
  return parse_config("model: {" + model_keys + "}\n", "t.yaml", overrides);
}

std::string error_of(const std::string& model_keys) {
  try {
    parse(model_keys);
  } catch (const ConfigError& e) {
    return e.what();
  }
  FAIL("expected a ConfigError for model: {" << model_keys << "}");
  return "";
}

}  // namespace

TEST_CASE("toggle keys parse into ModelConfig and the resolved config round-trips", "[train][config][toggles]") {
  const RunConfig c = parse(
      "v_scale: learned, v_scale_theta: 0.25, qk_norm: true, z_loss: 1.0e-4, sink_logit: true, "
      "attn_temperature: 0.5, attn_temperature_start: 10, attn_temperature_end: 30, residual_scale: 0.5, "
      "embed_scale: true, norm_position: post, sink_token: true, sigma_reparam: true");
  const ModelConfig& m = c.model;
  REQUIRE(m.v_scale == VScaleMode::kLearned);
  REQUIRE(m.v_scale_theta == 0.25f);
  REQUIRE(m.qk_norm);
  REQUIRE(m.z_loss == 1.0e-4f);
  REQUIRE(m.sink_logit);
  REQUIRE(m.attn_temperature == 0.5f);
  REQUIRE(m.attn_temperature_start == 10);
  REQUIRE(m.attn_temperature_end == 30);
  REQUIRE(m.residual_scale == 0.5f);
  REQUIRE(m.embed_scale);
  REQUIRE(m.norm_position == NormPosition::kPost);
  REQUIRE(m.sink_token);
  REQUIRE(m.sigma_reparam);
  const RunConfig back = parse_config(dump_config(c), "dump.yaml");
  REQUIRE(dump_config(back) == dump_config(c));
  // The other modes and toggles by --set.
  for (const char* mode : {"off", "fixed", "backward_only"})
    REQUIRE(parse("", {std::string("model.v_scale=") + mode}).model.v_scale != VScaleMode::kLearned);
  REQUIRE(parse("softmax_plus_one: true").model.softmax_plus_one);
  REQUIRE(parse("attn_bias_kv: true").model.attn_bias_kv);
  REQUIRE(parse("sigmoid_attn: true, sigmoid_attn_bias: true").model.sigmoid_attn_bias);
  // The default resolved config (every toggle off) loads back too: a toggle's dependent keys at their
  // defaults are never errors.
  REQUIRE_NOTHROW(parse_config(dump_config(RunConfig{}), "defaults.yaml"));
}

TEST_CASE("toggle values out of range are errors naming the key", "[train][config][toggles]") {
  REQUIRE_THAT(error_of("v_scale: sometimes"), Contains("model.v_scale") && Contains("backward_only"));
  REQUIRE_THAT(error_of("v_scale: learned, v_scale_theta: 80"), Contains("model.v_scale_theta=80"));
  REQUIRE_THAT(error_of("z_loss: -1.0e-4"), Contains("model.z_loss"));
  REQUIRE_THAT(error_of("attn_temperature: 0"), Contains("model.attn_temperature"));
  REQUIRE_THAT(error_of("attn_temperature: 2, attn_temperature_start: -1"), Contains("model.attn_temperature_start"));
  REQUIRE_THAT(error_of("residual_scale: -0.5"), Contains("model.residual_scale"));
  REQUIRE_THAT(error_of("norm_position: middle"), Contains("model.norm_position") && Contains("pre, post"));
}

TEST_CASE("incompatible toggle combinations are errors naming every key involved", "[train][config][toggles]") {
  // θ without V-scale.
  const std::string theta = error_of("v_scale: off, v_scale_theta: 1.0");
  REQUIRE_THAT(theta, Contains("model.v_scale_theta") && Contains("model.v_scale=off"));
  // Two forms of the extra key.
  const std::string two = error_of("softmax_plus_one: true, sink_logit: true");
  REQUIRE_THAT(two, Contains("model.softmax_plus_one=true") && Contains("model.sink_logit=true") &&
                        Contains("model.attn_bias_kv"));
  REQUIRE_THAT(error_of("sink_logit: true, attn_bias_kv: true"), Contains("at most one"));
  // Sigmoid attention has no normaliser for an extra key.
  REQUIRE_THAT(error_of("sigmoid_attn: true, attn_bias_kv: true"),
               Contains("model.sigmoid_attn=true") && Contains("model.attn_bias_kv=true"));
  REQUIRE_THAT(error_of("sigmoid_attn_bias: true"), Contains("model.sigmoid_attn_bias") && Contains("model.sigmoid_attn=false"));
  // Temperature window.
  REQUIRE_THAT(error_of("attn_temperature: 2, attn_temperature_start: 50, attn_temperature_end: 50"),
               Contains("model.attn_temperature_end=50") && Contains("model.attn_temperature_start=50"));
  REQUIRE_THAT(error_of("attn_temperature_end: 100"), Contains("model.attn_temperature=1.0"));
  // The sink token adds a position: the context no longer fits.
  try {
    parse_config("model: {sink_token: true, seq_len: 2147483647}\ntrain: {batch: 1}\n", "t.yaml");
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    REQUIRE_THAT(std::string(e.what()), Contains("model.sink_token") && Contains("model.seq_len") && Contains("train.batch=1"));
  }
  REQUIRE_NOTHROW(parse("sink_token: true, seq_len: 64"));
  // Errors point at the lines that set the keys.
  try {
    parse_config("model:\n  softmax_plus_one: true\n  sink_logit: true\n", "cfg.yaml");
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    REQUIRE_THAT(std::string(e.what()), Contains("model.softmax_plus_one: line 2") && Contains("model.sink_logit: line 3"));
  }
}

TEST_CASE("every configs/vscale and configs/mitigations example loads with its toggle on", "[train][config][toggles]") {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(ATTNLAB_SOURCE_DIR) / "configs";
  int n = 0;
  for (const char* dir : {"vscale", "mitigations"}) {
    for (const auto& e : fs::directory_iterator(root / dir)) {
      if (e.path().extension() != ".yaml") continue;
      INFO(e.path().string());
      const RunConfig c = load_config(e.path().string());
      const ModelConfig& m = c.model;
      const std::string name = e.path().stem().string();
      ++n;
      if (std::string(dir) == "vscale") {
        const VScaleMode want = name == "baseline" ? VScaleMode::kOff
                                : name == "learned" ? VScaleMode::kLearned
                                                    : VScaleMode::kBackwardOnly;
        REQUIRE(m.v_scale == want);
        continue;
      }
      const bool on = name == "qk_norm"            ? m.qk_norm
                      : name == "z_loss"           ? m.z_loss > 0.0f
                      : name == "softmax_plus_one" ? m.softmax_plus_one
                      : name == "sink_logit"       ? m.sink_logit
                      : name == "attn_bias_kv"     ? m.attn_bias_kv
                      : name == "sink_token"       ? m.sink_token
                      : name == "sigma_reparam"    ? m.sigma_reparam
                      : name == "residual_scale"   ? m.residual_scale != 1.0f
                      : name == "embed_scale"      ? m.embed_scale
                      : name == "attn_temperature" ? m.attn_temperature != 1.0f
                      : name == "sigmoid_attn"     ? m.sigmoid_attn
                      : name == "post_norm"        ? m.norm_position == NormPosition::kPost
                                                   : false;
      REQUIRE(on);
    }
  }
  REQUIRE(n == 3 + 12);
}
