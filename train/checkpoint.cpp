#include "train/checkpoint.h"

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <vector>

#include "model/toggles.h"
#include "train/formats/provenance.h"

namespace attnlab {

namespace {
constexpr const char* kFormat = "attnlab-checkpoint-1";

const char* pos_name(PosEncoding p) {
  return p == PosEncoding::kRope ? "rope" : p == PosEncoding::kSinusoidal ? "sinusoidal" : "none";
}
}  // namespace

std::string model_signature(const ModelConfig& c) {
  std::ostringstream os;
  os.precision(9);
  os << "vocab=" << c.vocab << " d_model=" << c.d_model << " n_layer=" << c.n_layer << " n_head=" << c.n_head
     << " seq_len=" << c.seq_len << " mlp="
     << (c.mlp == MlpKind::kSwiGLU ? "swiglu" : c.mlp == MlpKind::kGELU ? "gelu" : "none")
     << " mlp_hidden=" << c.hidden() << " pos=" << pos_name(c.pos) << " rope_base=" << c.rope_base
     << " tied_head=" << (c.tied_head ? "true" : "false") << " norm_eps=" << c.norm_eps;
  const std::string toggles = toggle_signature(c);  // empty with every toggle off
  if (!toggles.empty()) os << " " << toggles;
  return os.str();
}

void save_checkpoint(const std::string& path, const Transformer& model, const AdamW& opt, int64_t step,
                     const RunConfig& cfg, const std::vector<double>* monitor_state, int ranks) {
  const auto& table = model.param_table();
  const float* p = model.layout().params();
  std::vector<TensorOut> out;
  out.reserve(table.size() * 3);
  for (const ParamInfo& info : table) out.push_back({info.name, DType::kF32, info.shape, p + info.offset});
  for (const ParamInfo& info : table)
    out.push_back({"optim.m." + info.name, DType::kF32, info.shape, opt.m() + info.offset});
  for (const ParamInfo& info : table)
    out.push_back({"optim.v." + info.name, DType::kF32, info.shape, opt.v() + info.offset});
  std::map<std::string, std::string> meta;
  meta["format"] = kFormat;
  meta["step"] = std::to_string(step);
  meta["data_position"] = std::to_string(step * cfg.train.accum * ranks);
  meta["ranks"] = std::to_string(ranks);
  meta["seed"] = std::to_string(cfg.train.seed);
  meta["model"] = model_signature(model.config());
  meta["config"] = dump_config(cfg);
  meta["commit"] = build_info().commit;
  for (const auto& [k, v] : build_metadata()) meta[k] = v;  // build.commit, build.dirty, build.flags, ...
  if (monitor_state) {
    std::ostringstream os;
    os.precision(17);  // %.17g round-trips every double exactly
    for (size_t i = 0; i < monitor_state->size(); ++i) os << (i ? " " : "") << (*monitor_state)[i];
    meta["monitor_state"] = os.str();
  }
  write_safetensors(path, out, meta);
}

namespace {

void load_tensor(const SafetensorsFile& f, const std::string& name, const ParamInfo& info, float* dst) {
  if (!f.has(name)) throw IoError(f.path() + ": missing tensor '" + name + "'");
  const TensorIn& t = f.tensor(name);
  if (t.dtype != DType::kF32) throw IoError(f.path() + ": tensor '" + name + "' is not F32");
  if (t.shape != info.shape) {
    std::ostringstream os;
    os << f.path() << ": tensor '" << name << "' has shape [";
    for (size_t i = 0; i < t.shape.size(); ++i) os << (i ? ", " : "") << t.shape[i];
    os << "] but the model expects [";
    for (size_t i = 0; i < info.shape.size(); ++i) os << (i ? ", " : "") << info.shape[i];
    os << "]";
    throw IoError(os.str());
  }
  std::memcpy(dst, t.bytes.data(), sizeof(float) * size_t(info.size));
}

}  // namespace

int64_t load_checkpoint(const std::string& path, Transformer& model, AdamW* opt, std::vector<double>* monitor_state,
                        std::string* config_text, int* ranks) {
  SafetensorsFile f(path);
  const auto& meta = f.metadata();
  auto get = [&](const std::string& key) -> std::string {
    auto it = meta.find(key);
    if (it == meta.end()) throw IoError(path + ": not an attnlab checkpoint (metadata '" + key + "' missing)");
    return it->second;
  };
  if (get("format") != kFormat)
    throw IoError(path + ": checkpoint format '" + get("format") + "' is not '" + kFormat + "'");
  const std::string want = model_signature(model.config()), have = get("model");
  if (want != have) {
    // Name the first differing field rather than dumping two long strings.
    std::istringstream a(have), b(want);
    std::string x, y;
    while (a >> x && b >> y)
      if (x != y) break;
    throw IoError(path + ": checkpoint was written for a different model: checkpoint has " + x +
                  ", the config has " + y);
  }
  int64_t step = 0;
  try {
    step = std::stoll(get("step"));
  } catch (const std::exception&) {
    throw IoError(path + ": metadata 'step' is not an integer: '" + get("step") + "'");
  }
  if (step < 0) throw IoError(path + ": metadata 'step' is negative");
  const auto& table = model.param_table();
  for (const ParamInfo& info : table) load_tensor(f, info.name, info, model.params() + info.offset);
  if (opt) {
    for (const ParamInfo& info : table) load_tensor(f, "optim.m." + info.name, info, opt->m() + info.offset);
    for (const ParamInfo& info : table) load_tensor(f, "optim.v." + info.name, info, opt->v() + info.offset);
  }
  // Unknown tensors mean the file is not what we think it is; refuse rather than ignore them.
  for (const auto& [name, t] : f.tensors()) {
    bool known = false;
    for (const ParamInfo& info : table)
      if (name == info.name || name == "optim.m." + info.name || name == "optim.v." + info.name) known = true;
    if (!known) throw IoError(path + ": unexpected tensor '" + name + "' (not a parameter of this model)");
  }
  if (monitor_state) {
    monitor_state->clear();
    auto it = meta.find("monitor_state");
    if (it != meta.end()) {
      // Written only by an instrumented run, and then never empty (its length prefix at least).
      if (it->second.find_first_not_of(" \t\n") == std::string::npos)
        throw IoError(path + ": metadata 'monitor_state' is empty (a damaged checkpoint: an instrumented run always "
                             "writes its spike detectors' state)");
      std::istringstream is(it->second);
      double x;
      while (is >> x) monitor_state->push_back(x);
      if (!is.eof()) throw IoError(path + ": metadata 'monitor_state' is malformed");
    }
  }
  if (ranks) {
    *ranks = 1;
    if (auto it = meta.find("ranks"); it != meta.end()) {
      char* end = nullptr;
      const long r = std::strtol(it->second.c_str(), &end, 10);
      if (it->second.empty() || *end != '\0' || r < 1 || r > 1000000)
        throw IoError(path + ": metadata 'ranks' is not a positive integer: '" + it->second + "'");
      *ranks = int(r);
    }
  }
  if (config_text) {
    auto it = meta.find("config");
    *config_text = it == meta.end() ? std::string() : it->second;
  }
  return step;
}

}  // namespace attnlab
