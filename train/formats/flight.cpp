#include "train/formats/flight.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "train/formats/safetensors.h"

namespace attnlab {

std::string SafetensorsFlightRecorder::record(int64_t step, const std::string& reason, const Transformer& model) {
  const Layout& y = model.layout();
  const bool all = contents_ == FlightContents::kEverything;
  // Sequences b < S are rows [0, S·T) of every [B·T, ·] activation and the first S of [B, H, T, T].
  const int S = all ? y.B : std::min(std::max(seqs_, 1), y.B);
  std::vector<TensorOut> out;
  auto mat = [&](std::string name, ConstMatView m) {
    const int rows = all ? m.rows : m.rows / y.B * S;
    out.push_back({std::move(name), DType::kF32, {rows, m.cols}, m.p});
  };
  for (int l = 0; l < y.L; ++l) {
    const BlockActs& a = y.acts(l);
    const BlockGrads& g = y.act_grads(l);
    const std::string p = "act.blocks." + std::to_string(l) + ".";
    const std::string q = "actgrad.blocks." + std::to_string(l) + ".";
    mat(p + "x", a.x);
    out.push_back({p + "probs", DType::kF32, {S, y.H, y.T, y.T}, a.probs});
    mat(q + "dx", g.dx);
    if (!all) continue;
    mat(p + "norm1", a.norm1);
    mat(p + "qkv", a.qkv);
    mat(p + "att", a.att);
    mat(p + "attn_out", a.attn_out);
    mat(p + "resid_mid", a.resid_mid);
    mat(p + "norm2", a.norm2);
    mat(p + "pre", a.pre);
    mat(p + "act", a.act);
    mat(p + "mlp_out", a.mlp_out);
    mat(q + "dnorm1", g.dnorm1);
    mat(q + "dqkv", g.dqkv);
    mat(q + "dresid_mid", g.dresid_mid);
    mat(q + "dnorm2", g.dnorm2);
  }
  const HeadActs& h = y.head_acts();
  mat("act.final.x", h.x);
  if (all) {
    mat("act.final.normf", h.normf);
    mat("act.final.logits", h.logits);
  }
  out.push_back({"act.final.lse", DType::kF32, {y.N}, h.lse});
  mat("actgrad.final.dx", y.act_grads(y.L).dx);
  for (const ParamInfo& p : model.param_table()) {
    out.push_back({"grad." + p.name, DType::kF32, p.shape, y.grads() + p.offset});
    out.push_back({p.name, DType::kF32, p.shape, y.params() + p.offset});
  }
  out.push_back({"inputs", DType::kI32, {y.B, y.T}, model.last_inputs()});
  out.push_back({"targets", DType::kI32, {y.B, y.T}, model.last_targets()});
  std::filesystem::create_directories(dir_);
  char name[64];
  std::snprintf(name, sizeof(name), "step_%08lld.safetensors", (long long)step);
  const std::string path = (std::filesystem::path(dir_) / name).string();
  write_safetensors(path, out,
                    {{"format", "attnlab-flight-1"},
                     {"step", std::to_string(step)},
                     {"reason", reason},
                     {"contents", all ? "everything" : "diagnosis"},
                     {"seqs", std::to_string(S)}});
  return path;
}

}  // namespace attnlab
