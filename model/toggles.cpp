#include "model/toggles.h"

#include <sstream>

namespace attnlab {

std::string toggle_signature(const ModelConfig& c) {
  const ModelConfig d;  // the defaults
  std::ostringstream os;
  os.precision(9);
  auto flag = [&](const char* name, bool v, bool dv) {
    if (v != dv) os << " " << name << "=" << (v ? "true" : "false");
  };
  auto num = [&](const char* name, auto v, auto dv) {
    if (v != dv) os << " " << name << "=" << v;
  };
  static const char* kVScale[] = {"off", "learned", "fixed", "backward_only"};
  if (c.v_scale != d.v_scale) os << " v_scale=" << kVScale[int(c.v_scale)];
  num("v_scale_theta", c.v_scale_theta, d.v_scale_theta);
  flag("qk_norm", c.qk_norm, d.qk_norm);
  num("z_loss", c.z_loss, d.z_loss);
  flag("softmax_plus_one", c.softmax_plus_one, d.softmax_plus_one);
  flag("sink_logit", c.sink_logit, d.sink_logit);
  flag("attn_bias_kv", c.attn_bias_kv, d.attn_bias_kv);
  flag("sigmoid_attn", c.sigmoid_attn, d.sigmoid_attn);
  flag("sigmoid_attn_bias", c.sigmoid_attn_bias, d.sigmoid_attn_bias);
  num("attn_temperature", c.attn_temperature, d.attn_temperature);
  num("attn_temperature_start", c.attn_temperature_start, d.attn_temperature_start);
  num("attn_temperature_end", c.attn_temperature_end, d.attn_temperature_end);
  num("residual_scale", c.residual_scale, d.residual_scale);
  flag("skip", c.skip, d.skip);
  flag("embed_scale", c.embed_scale, d.embed_scale);
  if (c.norm_position != d.norm_position) os << " norm_position=" << (c.norm_position == NormPosition::kPost ? "post" : "pre");
  flag("sink_token", c.sink_token, d.sink_token);
  flag("sigma_reparam", c.sigma_reparam, d.sigma_reparam);
  return os.str();
}

}  // namespace attnlab
