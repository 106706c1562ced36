#include "experiments/engine/export.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "model/layout.h"
#include "train/checkpoint.h"
#include "train/config/config.h"
#include "train/formats/json.h"
#include "train/formats/run_files.h"

namespace fs = std::filesystem;

namespace attnlab {

namespace {

// Shortest decimal that reads back to the same float ("1e-05", not "9.99999975e-06"); integral values keep a
// ".0" so that JSON readers see a float where Llama's config has one.
std::string float_text(float v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

const char* mlp_name(MlpKind m) { return m == MlpKind::kSwiGLU ? "swiglu" : m == MlpKind::kGELU ? "gelu" : "none"; }
const char* pos_name(PosEncoding p) {
  return p == PosEncoding::kRope ? "rope" : p == PosEncoding::kSinusoidal ? "sinusoidal" : "none";
}
const char* vscale_name(VScaleMode v) {
  static const char* kNames[] = {"off", "learned", "fixed", "backward_only"};
  return kNames[int(v)];
}

// attnlab tensor name -> Llama name, and whether its rows are RoPE pairs (q, k).
struct HfName {
  std::string name;
  bool rope_rows = false;
};

bool hf_name(const std::string& name, HfName* out) {
  static const std::map<std::string, HfName> kModel = {
      {"tok_emb", {"model.embed_tokens.weight"}}, {"final_norm.g", {"model.norm.weight"}},
      {"lm_head", {"lm_head.weight"}}};
  static const std::map<std::string, HfName> kBlock = {
      {"attn_norm.g", {"input_layernorm.weight"}},  {"attn.w_q", {"self_attn.q_proj.weight", true}},
      {"attn.w_k", {"self_attn.k_proj.weight", true}}, {"attn.w_v", {"self_attn.v_proj.weight"}},
      {"attn.w_o", {"self_attn.o_proj.weight"}},     {"mlp_norm.g", {"post_attention_layernorm.weight"}},
      {"mlp.w_gate", {"mlp.gate_proj.weight"}},      {"mlp.w_up", {"mlp.up_proj.weight"}},
      {"mlp.w_down", {"mlp.down_proj.weight"}}};
  if (auto it = kModel.find(name); it != kModel.end()) {
    *out = it->second;
    return true;
  }
  if (name.rfind("blocks.", 0) != 0) return false;
  const size_t dot = name.find('.', 7);
  if (dot == std::string::npos) return false;
  const std::string layer = name.substr(7, dot - 7);
  auto it = kBlock.find(name.substr(dot + 1));
  if (it == kBlock.end()) return false;
  *out = {"model.layers." + layer + "." + it->second.name, it->second.rope_rows};
  return true;
}

// OUT must be a new or empty directory (nothing is overwritten).
void check_out_dir(const std::string& dir) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) throw IoError("export --out " + dir + ": " + ec.message());
  if (!fs::exists(st)) return;
  if (!fs::is_directory(st)) throw IoError("export --out " + dir + " exists and is not a directory");
  if (!fs::is_empty(dir, ec) || ec)
    throw IoError("export --out " + dir + " already exists and is not empty; pick a new or empty directory");
}

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    f << text;
    f.flush();
    if (!f) throw IoError(path + ": cannot write");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw IoError(path + ": cannot write: " + ec.message());
}

}  // namespace

std::vector<std::string> hf_llama_unsupported(const ModelConfig& c) {
  const ModelConfig d;
  std::vector<std::string> out;
  auto refuse = [&](const std::string& kv, const char* why) { out.push_back("model." + kv + " (" + why + ")"); };
  auto flag = [&](const char* key, bool v, bool dv, const char* why) {
    if (v != dv) refuse(std::string(key) + "=" + (v ? "true" : "false"), why);
  };
  if (c.mlp != MlpKind::kSwiGLU) refuse(std::string("mlp=") + mlp_name(c.mlp), "Llama's MLP is SwiGLU");
  if (c.pos != PosEncoding::kRope) refuse(std::string("pos=") + pos_name(c.pos), "Llama's positions are RoPE");
  if (c.v_scale != VScaleMode::kOff)
    refuse(std::string("v_scale=") + vscale_name(c.v_scale), "Llama has no value rescaling");
  flag("qk_norm", c.qk_norm, d.qk_norm, "Llama has no q/k norm");
  flag("softmax_plus_one", c.softmax_plus_one, d.softmax_plus_one, "Llama's attention has no extra key");
  flag("sink_logit", c.sink_logit, d.sink_logit, "Llama's attention has no extra key");
  flag("attn_bias_kv", c.attn_bias_kv, d.attn_bias_kv, "Llama's attention has no extra key");
  flag("sigmoid_attn", c.sigmoid_attn, d.sigmoid_attn, "Llama's attention is a softmax");
  flag("sigmoid_attn_bias", c.sigmoid_attn_bias, d.sigmoid_attn_bias, "Llama's attention is a softmax");
  if (c.attn_temperature != d.attn_temperature)
    refuse("attn_temperature=" + float_text(c.attn_temperature), "Llama's logits are q·k/√d_head");
  if (c.residual_scale != d.residual_scale)
    refuse("residual_scale=" + float_text(c.residual_scale), "Llama's residual sums are unscaled");
  flag("skip", c.skip, d.skip, "Llama's blocks are residual");
  flag("embed_scale", c.embed_scale, d.embed_scale, "Llama does not scale its embeddings");
  if (c.norm_position != NormPosition::kPre) refuse("norm_position=post", "Llama is pre-norm");
  flag("sink_token", c.sink_token, d.sink_token, "Llama has no learned extra position");
  flag("sigma_reparam", c.sigma_reparam, d.sigma_reparam, "Llama's linear layers are plain");
  // z_loss changes training only; v_scale_theta and the temperature window do nothing with their toggle off.
  return out;
}

std::vector<float> rope_rows_to_rotate_half(const float* w, int n_head, int d_head, int cols) {
  std::vector<float> out(size_t(n_head) * d_head * cols);
  const int half = d_head / 2;
  for (int h = 0; h < n_head; ++h)
    for (int j = 0; j < d_head; ++j) {
      const int src = h * d_head + (j < half ? 2 * j : 2 * (j - half) + 1);
      const float* row = w + size_t(src) * cols;
      std::copy(row, row + cols, out.begin() + (size_t(h) * d_head + j) * cols);
    }
  return out;
}

std::string hf_llama_config_json(const ModelConfig& c) {
  std::ostringstream os;
  os << "{\n"
     << "  \"architectures\": [\"LlamaForCausalLM\"],\n"
     << "  \"model_type\": \"llama\",\n"
     << "  \"hidden_size\": " << c.d_model << ",\n"
     << "  \"intermediate_size\": " << c.hidden() << ",\n"
     << "  \"num_attention_heads\": " << c.n_head << ",\n"
     << "  \"num_key_value_heads\": " << c.n_head << ",\n"
     << "  \"head_dim\": " << c.d_head() << ",\n"
     << "  \"num_hidden_layers\": " << c.n_layer << ",\n"
     << "  \"vocab_size\": " << c.vocab << ",\n"
     << "  \"max_position_embeddings\": " << c.seq_len << ",\n"
     << "  \"rms_norm_eps\": " << float_text(c.norm_eps) << ",\n"
     << "  \"rope_theta\": " << float_text(c.rope_base) << ",\n"
     << "  \"rope_scaling\": null,\n"
     << "  \"attention_bias\": false,\n"
     << "  \"mlp_bias\": false,\n"
     << "  \"tie_word_embeddings\": " << (c.tied_head ? "true" : "false") << ",\n"
     << "  \"hidden_act\": \"silu\",\n"
     << "  \"initializer_range\": " << float_text(c.init_std) << ",\n"
     << "  \"torch_dtype\": \"float32\"\n"
     << "}\n";
  return os.str();
}

int run_export(const ExportCommand& cmd) {
  if (cmd.format != "hf-llama")
    throw ExportError("export --format " + cmd.format + ": unknown format (the one format is hf-llama)");
  std::string path = cmd.checkpoint;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    path = latest_checkpoint(cmd.checkpoint);
    if (path.empty()) throw ExportError("export " + cmd.checkpoint + ": a directory without checkpoints in ckpt/");
  }
  check_out_dir(cmd.out);
  const SafetensorsFile ckpt(path);  // refuses truncated or corrupt files (CRC-32 per tensor)
  const auto& meta = ckpt.metadata();
  auto fmt = meta.find("format");
  if (fmt == meta.end() || fmt->second.rfind("attnlab-checkpoint-", 0) != 0)
    throw ExportError(path + ": not an attnlab checkpoint (metadata 'format' is " +
                      (fmt == meta.end() ? std::string("missing") : "'" + fmt->second + "'") + ")");
  auto cfg_it = meta.find("config");
  if (cfg_it == meta.end() || cfg_it->second.empty())
    throw ExportError(path + ": the checkpoint records no config (metadata 'config'), so its model is unknown");
  const RunConfig run_cfg = parse_config(cfg_it->second, path + " (metadata 'config')");
  const ModelConfig& m = run_cfg.model;
  const std::vector<std::string> bad = hf_llama_unsupported(m);
  if (!bad.empty()) {
    std::string what = path + ": cannot export as hf-llama, these model settings have no Hugging Face Llama equivalent:";
    for (const auto& b : bad) what += "\n  " + b;
    throw ExportError(what);
  }
  if (auto sig = meta.find("model"); sig != meta.end() && sig->second != model_signature(m))
    throw ExportError(path + ": metadata 'model' (" + sig->second + ") does not match its config (" +
                      model_signature(m) + ")");

  int64_t total = 0;
  const std::vector<ParamInfo> table = build_param_table(m, &total);
  std::vector<std::vector<float>> permuted;  // owns the q/k copies until the write
  permuted.reserve(2 * size_t(m.n_layer));
  std::vector<TensorOut> out;
  for (const ParamInfo& p : table) {
    HfName hn;
    if (!hf_name(p.name, &hn)) throw ExportError(path + ": tensor '" + p.name + "' has no Llama equivalent");
    if (!ckpt.has(p.name)) throw ExportError(path + ": tensor '" + p.name + "' is missing");
    const TensorIn& t = ckpt.tensor(p.name);
    if (t.dtype != DType::kF32 || t.shape != p.shape)
      throw ExportError(path + ": tensor '" + p.name + "' is not F32 of the config's shape");
    const float* data = reinterpret_cast<const float*>(t.bytes.data());
    if (hn.rope_rows) {
      permuted.push_back(rope_rows_to_rotate_half(data, m.n_head, m.d_head(), int(p.shape[1])));
      data = permuted.back().data();
    }
    out.push_back({hn.name, DType::kF32, p.shape, data});
  }

  fs::create_directories(cmd.out);
  write_safetensors(cmd.out + "/model.safetensors", out, {{"format", "pt"}});
  write_file_atomic(cmd.out + "/config.json", hf_llama_config_json(m));
  std::printf("attnlab: exported %s (step %s) as a Hugging Face Llama model: %s/model.safetensors, %s/config.json\n",
              path.c_str(), meta.count("step") ? meta.at("step").c_str() : "?", cmd.out.c_str(), cmd.out.c_str());
  return 0;
}

}  // namespace attnlab
