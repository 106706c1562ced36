#include "train/trainer.h"

#include <chrono>
#include <cmath>

#include "train/grad_clip.h"
#include "train/lr_schedule.h"

namespace attnlab {

std::vector<ParamGroup> decay_groups(const std::vector<ParamInfo>& table) {
  std::vector<ParamGroup> groups;
  for (const ParamInfo& p : table) {
    if (!groups.empty() && groups.back().decay == p.matrix) {
      groups.back().size += p.size;  // merge neighbours with the same setting
    } else {
      groups.push_back({p.offset, p.size, p.matrix});
    }
  }
  return groups;
}

Trainer::Trainer(const RunConfig& cfg, DnnlContext& ctx, const Dataset& data)
    : cfg_(cfg),
      data_(data),
      model_(cfg.model, cfg.train.batch, ctx),
      opt_(cfg.optim, model_.n_params(), decay_groups(model_.param_table())) {
  const size_t n = size_t(cfg.train.batch) * size_t(cfg.model.seq_len);
  inputs_.assign(n, 0);
  targets_.assign(n, 0);
  norm_scratch_.assign(size_t(grad_norm_scratch_size(model_.n_params())), 0.0);
  model_.init_params(cfg.train.seed);
}

StepStats Trainer::step() {
  const auto t0 = std::chrono::steady_clock::now();
  StepStats s;
  s.step = step_;
  const int accum = cfg_.train.accum;
  model_.set_step(step_);  // step-dependent toggles: temperature window, σReparam's power iteration
  model_.zero_grad();
  double ce = 0.0, z = 0.0;
  for (int micro = 0; micro < accum; ++micro) {
    const uint64_t index = uint64_t(step_) * uint64_t(accum) + uint64_t(micro);
    data_.fill(Split::kTrain, index, cfg_.train.batch, inputs_.data(), targets_.data());
    model_.forward(inputs_.data(), targets_.data());  // the objective: cross-entropy (+ z-loss when on)
    ce += model_.last_ce_loss();
    z += model_.last_z_loss();
    model_.backward(1.0f / float(accum));
  }
  s.loss_ce = ce / accum;
  s.loss_z = z / accum;
  s.loss = s.loss_ce + s.loss_z;
  s.grad_norm = global_grad_norm(model_.grads(), model_.n_params(), norm_scratch_.data());
  s.finite = std::isfinite(s.loss) && std::isfinite(s.grad_norm);
  s.lr = lr_at(step_, cfg_.train.steps, cfg_.optim.lr, cfg_.schedule);
  if (monitor_) monitor_->on_gradients(step_ + 1, model_, s.loss, s.grad_norm);
  if (s.finite) {
    s.clipped = clip_grads(model_.grads(), model_.n_params(), s.grad_norm, cfg_.optim.grad_clip);
    opt_.step(model_.params(), model_.grads(), s.lr, step_ + 1);
    if (monitor_) monitor_->on_update(step_ + 1, model_);
  }
  ++step_;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

void Trainer::probe_batch(int32_t* inputs, int32_t* targets) const {
  // A validation batch far from the evaluation batches (which use indices 0..eval_batches-1).
  data_.fill(Split::kVal, (uint64_t(1) << 40) + cfg_.instrument.probe_seed, cfg_.train.batch, inputs, targets);
}

LossParts Trainer::evaluate() {
  double ce = 0.0, z = 0.0;
  for (int i = 0; i < cfg_.train.eval_batches; ++i) {
    data_.fill(Split::kVal, uint64_t(i), cfg_.train.batch, inputs_.data(), targets_.data());
    model_.forward(inputs_.data(), targets_.data());
    ce += model_.last_ce_loss();
    z += model_.last_z_loss();
  }
  LossParts r;
  r.loss_ce = ce / cfg_.train.eval_batches;
  r.loss_z = z / cfg_.train.eval_batches;
  r.loss = r.loss_ce + r.loss_z;
  return r;
}

}  // namespace attnlab
