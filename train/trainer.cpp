#include "train/trainer.h"

#include <chrono>
#include <algorithm>
#include <cmath>
#include <string>

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

RunConfig rank_config(const RunConfig& user, int ranks) {
  if (ranks <= 1) return user;
  if (user.train.batch % ranks != 0)
    throw ConfigError("train.batch=" + std::to_string(user.train.batch) + " cannot be split over " +
                      std::to_string(ranks) + " MPI ranks: make it a multiple of " + std::to_string(ranks));
  if (int64_t(user.train.accum) * ranks > 65536)
    throw ConfigError("train.accum=" + std::to_string(user.train.accum) + " x " + std::to_string(ranks) +
                      " ranks is more than 65536 micro-batches per step");
  RunConfig c = user;
  c.train.batch = user.train.batch / ranks;
  c.train.accum = user.train.accum * ranks;
  return c;
}

Trainer::Trainer(const RunConfig& cfg, DnnlContext& ctx, const Dataset& data, Comm* comm)
    : cfg_(cfg),
      data_(data),
      model_(cfg.model, cfg.train.batch, ctx),
      opt_(cfg.optim, model_.n_params(), decay_groups(model_.param_table())) {
  const size_t n = size_t(cfg.train.batch) * size_t(cfg.model.seq_len);
  inputs_.assign(n, 0);
  targets_.assign(n, 0);
  norm_scratch_.assign(size_t(grad_norm_scratch_size(model_.n_params())), 0.0);
  parts_.assign(2 * size_t(std::max(cfg.train.accum, cfg.train.eval_batches)), 0.0);
  comm_ = comm && comm->size() > 1 ? comm : nullptr;
  if (comm_ && cfg.train.accum % comm_->size() != 0)
    throw ConfigError("train.accum=" + std::to_string(cfg.train.accum) + " micro-batches cannot be shared by " +
                      std::to_string(comm_->size()) + " ranks (use rank_config)");
  model_.init_params(cfg.train.seed);
}

StepStats Trainer::step() {
  const auto t0 = std::chrono::steady_clock::now();
  StepStats s;
  s.step = step_;
  const int accum = cfg_.train.accum;
  model_.set_step(step_);  // step-dependent toggles: temperature window, σReparam's power iteration
  model_.zero_grad();
  // Each micro-batch's losses go into their own slot; the slots are summed over the ranks (x + 0 is
  // exact) and then in micro-batch order, so the step's loss is bitwise that of one process. Rank 0 takes
  // the last block of micro-batches: its model then holds the step's last forward and backward, which the
  // monitor's step statistics read, as in one process.
  const int ranks = comm_ ? comm_->size() : 1, mine = accum / ranks;
  const int first = (ranks - 1 - (comm_ ? comm_->rank() : 0)) * mine;
  std::fill(parts_.begin(), parts_.begin() + 2 * accum, 0.0);
  for (int micro = first; micro < first + mine; ++micro) {
    const uint64_t index = uint64_t(step_) * uint64_t(accum) + uint64_t(micro);
    data_.fill(Split::kTrain, index, cfg_.train.batch, inputs_.data(), targets_.data());
    model_.forward(inputs_.data(), targets_.data());  // the objective: cross-entropy (+ z-loss when on)
    parts_[size_t(micro)] = model_.last_ce_loss();
    parts_[size_t(accum + micro)] = model_.last_z_loss();
    model_.backward(1.0f / float(accum));
  }
  if (comm_) {
    comm_->set_context("step " + std::to_string(step_ + 1));
    comm_->allreduce_sum(model_.grads(), model_.n_params());  // the mean gradient: each term is already / accum
    comm_->allreduce_sum(parts_.data(), 2 * accum);
  }
  double ce = 0.0, z = 0.0;
  for (int micro = 0; micro < accum; ++micro) {
    ce += parts_[size_t(micro)];
    z += parts_[size_t(accum + micro)];
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
  // Batch i on rank i mod ranks; summed in batch order as in one process (see step()).
  const int n = cfg_.train.eval_batches, ranks = comm_ ? comm_->size() : 1, rank = comm_ ? comm_->rank() : 0;
  std::fill(parts_.begin(), parts_.begin() + 2 * n, 0.0);
  for (int i = rank; i < n; i += ranks) {
    data_.fill(Split::kVal, uint64_t(i), cfg_.train.batch, inputs_.data(), targets_.data());
    model_.forward(inputs_.data(), targets_.data());
    parts_[size_t(i)] = model_.last_ce_loss();
    parts_[size_t(n + i)] = model_.last_z_loss();
  }
  if (comm_) comm_->allreduce_sum(parts_.data(), 2 * n);
  double ce = 0.0, z = 0.0;
  for (int i = 0; i < n; ++i) {
    ce += parts_[size_t(i)];
    z += parts_[size_t(n + i)];
  }
  LossParts r;
  r.loss_ce = ce / cfg_.train.eval_batches;
  r.loss_z = z / cfg_.train.eval_batches;
  r.loss = r.loss_ce + r.loss_z;
  return r;
}

}  // namespace attnlab
