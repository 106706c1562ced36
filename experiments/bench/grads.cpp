#include "experiments/bench/grads.h"

#include <omp.h>

#include <cstdio>
#include <cstring>
#include <map>

#include "model/dnnl_context.h"
#include "model/transformer.h"
#include "train/checkpoint.h"
#include "train/config/config.h"
#include "train/data.h"
#include "train/formats/safetensors.h"

namespace attnlab {

namespace {

void read_batch(const std::string& path, const std::string& name, int B, int T, std::vector<int32_t>* out) {
  SafetensorsFile f(path);
  if (!f.has(name)) throw IoError(path + ": batch file has no tensor '" + name + "'");
  const TensorIn& t = f.tensor(name);
  if (t.dtype != DType::kI32 || t.shape != std::vector<int64_t>{B, T})
    throw IoError(path + ": tensor '" + name + "' must be I32 [" + std::to_string(B) + ", " + std::to_string(T) +
                  "] (train.batch, model.seq_len)");
  out->resize(size_t(B) * T);
  std::memcpy(out->data(), t.bytes.data(), out->size() * sizeof(int32_t));
}

}  // namespace

int run_grads(const GradsCommand& cmd) {
  const RunConfig cfg = load_config(cmd.config_path, cmd.overrides);
  if (cmd.out.empty()) throw IoError("grads: --out FILE is required");
  const int B = cfg.train.batch, T = cfg.model.seq_len;
  std::vector<int32_t> inputs(size_t(B) * T), targets(size_t(B) * T);
  if (cmd.batch.empty()) {
    const auto data = make_dataset(cfg.data, cfg.model, cfg.train.seed);
    data->fill(Split::kTrain, 0, B, inputs.data(), targets.data());
  } else {
    read_batch(cmd.batch, "inputs", B, T, &inputs);
    read_batch(cmd.batch, "targets", B, T, &targets);
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i] < 0 || inputs[i] >= cfg.model.vocab || targets[i] < -1 || targets[i] >= cfg.model.vocab)
        throw IoError(cmd.batch + ": token out of range at flat index " + std::to_string(i) + " (vocab " +
                      std::to_string(cfg.model.vocab) + ")");
    }
  }
  if (cfg.train.threads > 0) omp_set_num_threads(cfg.train.threads);
  DnnlContext ctx;
  Transformer model(cfg.model, B, ctx);
  if (cmd.checkpoint.empty()) {
    model.init_params(cfg.train.seed);
  } else {
    load_checkpoint(cmd.checkpoint, model, nullptr);
  }
  model.zero_grad();
  // loss is the objective whose gradients are written (cross-entropy + z-loss when model.z_loss > 0);
  // with z-loss on, its parts are written too, as loss_ce and loss_z.
  const float loss = float(model.forward(inputs.data(), targets.data()));
  const float loss_ce = float(model.last_ce_loss()), loss_z = float(model.last_z_loss());
  const bool parts = cfg.model.z_loss > 0.0f;
  model.backward(1.0f);

  std::vector<TensorOut> out;
  out.push_back({"loss", DType::kF32, {}, &loss});
  if (parts) {
    out.push_back({"loss_ce", DType::kF32, {}, &loss_ce});
    out.push_back({"loss_z", DType::kF32, {}, &loss_z});
  }
  out.push_back({"inputs", DType::kI32, {B, T}, inputs.data()});
  out.push_back({"targets", DType::kI32, {B, T}, targets.data()});
  for (const ParamInfo& p : model.param_table())
    out.push_back({"grad." + p.name, DType::kF32, p.shape, model.grads() + p.offset});
  // The parameters too, under their plain names: the file alone reproduces the computation elsewhere.
  for (const ParamInfo& p : model.param_table()) out.push_back({p.name, DType::kF32, p.shape, model.params() + p.offset});
  std::map<std::string, std::string> meta = {{"format", "attnlab-grads-1"}, {"config", dump_config(cfg)}};
  if (!cmd.checkpoint.empty()) meta["checkpoint"] = cmd.checkpoint;
  write_safetensors(cmd.out, out, meta);
  if (parts)
    std::fprintf(stderr, "attnlab: loss %.6f (cross-entropy %.6f + z-loss %.6f); %zu gradients written to %s\n",
                 double(loss), model.last_ce_loss(), model.last_z_loss(), model.param_table().size(), cmd.out.c_str());
  else
    std::fprintf(stderr, "attnlab: loss %.6f; %zu gradients written to %s\n", double(loss),
                 model.param_table().size(), cmd.out.c_str());
  return 0;
}

}  // namespace attnlab
