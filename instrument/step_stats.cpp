#include "instrument/step_stats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace attnlab {

namespace {

// Chunking of one tensor: at most kMaxChunks chunks of at least kMinChunk elements, fixed by n alone, so
// the combined sums do not depend on the thread count. Small tensors stay on the calling thread.
constexpr int kMaxChunks = 64;
constexpr int64_t kMinChunk = 8192;

int num_chunks(int64_t n) { return int(std::clamp<int64_t>((n + kMinChunk - 1) / kMinChunk, 1, kMaxChunks)); }
int64_t chunk_begin(int64_t n, int chunks, int c) { return n * c / chunks; }

struct Agg {  // running sums of one block or of the whole model
  double a = 0.0, b = 0.0;
  int64_t count = 0, numel = 0;
  void add(double x, double y, int64_t c, int64_t n) {
    a += x;
    b += y;
    count += c;
    numel += n;
  }
};

// Number from "blocks.<l>." and the rest of the name after it; false if the name is not a block tensor.
bool split_block_name(std::string_view name, int* layer, std::string_view* rest) {
  constexpr std::string_view kPrefix = "blocks.";
  if (name.substr(0, kPrefix.size()) != kPrefix) return false;
  size_t i = kPrefix.size();
  int l = 0;
  bool digits = false;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') {
    l = 10 * l + (name[i] - '0');
    ++i;
    digits = true;
  }
  if (!digits || i >= name.size() || name[i] != '.') return false;
  *layer = l;
  *rest = name.substr(i + 1);
  return true;
}

constexpr const char* kBlockSlotNames[] = {"attn_norm.g", "attn.w_q",   "attn.w_k", "attn.w_v",  "attn.w_o",
                                           "mlp_norm.g",  "mlp.w_gate", "mlp.w_up", "mlp.w_down"};
constexpr const char* kModelSlotNames[] = {"tok_emb", "final_norm.g", "lm_head"};

// Walks the table in order, giving each tensor its (layer, slot) with unlisted tensors numbered from
// kFirstUnlistedSlot within their group, and calls visit(i, layer, slot). Calls flush(layer) whenever
// a block ends (the next tensor belongs to another layer), so callers can emit block aggregates
// without storing them.
template <class Visit, class Flush>
void walk_table(const std::vector<ParamInfo>& table, Visit visit, Flush flush) {
  int cur_layer = -2, last_block = -1, unlisted = 0, model_unlisted = 0;
  for (size_t i = 0; i < table.size(); ++i) {
    ParamSlot ps = param_slot(table[i].name);
    if (ps.layer != cur_layer) {
      if (cur_layer >= 0) flush(cur_layer);
      ATTNLAB_CHECK(ps.layer < 0 || ps.layer > last_block, "param table: blocks must be contiguous, in order");
      if (ps.layer >= 0) last_block = ps.layer;
      cur_layer = ps.layer;
      unlisted = 0;
    }
    if (ps.slot < 0) ps.slot = kFirstUnlistedSlot + (ps.layer >= 0 ? unlisted++ : model_unlisted++);
    visit(i, ps.layer, ps.slot);
  }
  if (cur_layer >= 0) flush(cur_layer);
}

}  // namespace

ParamSlot param_slot(std::string_view name) {
  ParamSlot ps;
  std::string_view rest;
  if (split_block_name(name, &ps.layer, &rest)) {
    for (int s = 0; s < int(std::size(kBlockSlotNames)); ++s)
      if (rest == kBlockSlotNames[s]) ps.slot = s;
    return ps;
  }
  ps.layer = -1;
  for (int s = 0; s < int(std::size(kModelSlotNames)); ++s)
    if (name == kModelSlotNames[s]) ps.slot = s;
  return ps;
}

const char* slot_name(int layer, int slot) {
  if (layer >= 0) return slot >= 0 && slot < int(std::size(kBlockSlotNames)) ? kBlockSlotNames[slot] : "";
  return slot >= 0 && slot < int(std::size(kModelSlotNames)) ? kModelSlotNames[slot] : "";
}

std::vector<ParamSlot> param_slots(const std::vector<ParamInfo>& table) {
  std::vector<ParamSlot> out(table.size());
  walk_table(
      table, [&](size_t i, int layer, int slot) { out[i] = {layer, slot}; }, [](int) {});
  return out;
}

GradSums grad_sums(const float* g, int64_t n) {
  const int chunks = num_chunks(n);
  double sq[kMaxChunks];
  int64_t tiny[kMaxChunks];
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int c = 0; c < chunks; ++c) {
    const int64_t i0 = chunk_begin(n, chunks, c), i1 = chunk_begin(n, chunks, c + 1);
    double s = 0.0;
    int64_t k = 0;
#pragma omp simd reduction(+ : s, k)
    for (int64_t i = i0; i < i1; ++i) {
      const double x = g[i];
      s += x * x;
      k += std::fabs(x) < kTinyGrad ? 1 : 0;
    }
    sq[c] = s;
    tiny[c] = k;
  }
  GradSums r;
  for (int c = 0; c < chunks; ++c) {
    r.sq += sq[c];
    r.tiny += tiny[c];
  }
  return r;
}

UpdateSums update_sums(const float* before, const float* after, int64_t n) {
  const int chunks = num_chunks(n);
  double d2[kMaxChunks], w2[kMaxChunks];
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int c = 0; c < chunks; ++c) {
    const int64_t i0 = chunk_begin(n, chunks, c), i1 = chunk_begin(n, chunks, c + 1);
    double sd = 0.0, sw = 0.0;
#pragma omp simd reduction(+ : sd, sw)
    for (int64_t i = i0; i < i1; ++i) {
      const double w = before[i], dw = double(after[i]) - w;  // exact in double
      sd += dw * dw;
      sw += w * w;
    }
    d2[c] = sd;
    w2[c] = sw;
  }
  UpdateSums r;
  for (int c = 0; c < chunks; ++c) {
    r.d2 += d2[c];
    r.w2 += w2[c];
  }
  return r;
}

void param_grad_metrics(const std::vector<ParamInfo>& table, const float* grads, MetricOut& out) {
  auto emit = [&](int layer, int slot, const Agg& a) {
    out.emit("grad_norm_p", layer, slot, std::sqrt(a.a));
    out.emit("grad_rms_p", layer, slot, std::sqrt(a.a / double(a.numel)));
    out.emit("grad_tiny_frac", layer, slot, double(a.count) / double(a.numel));
  };
  Agg block, model;
  walk_table(
      table,
      [&](size_t i, int layer, int slot) {
        const ParamInfo& p = table[i];
        const GradSums s = grad_sums(grads + p.offset, p.size);
        Agg t;
        t.add(s.sq, 0.0, s.tiny, p.size);
        emit(layer, slot, t);
        if (layer >= 0) block.add(s.sq, 0.0, s.tiny, p.size);
        model.add(s.sq, 0.0, s.tiny, p.size);
      },
      [&](int layer) {
        emit(layer, -1, block);
        block = Agg{};
      });
  emit(-1, -1, model);
}

void update_metrics(const std::vector<ParamInfo>& table, const float* params_before, const float* params_after,
                    MetricOut& out) {
  auto emit = [&](int layer, int slot, const Agg& a) {
    out.emit("upd_ratio", layer, slot, std::sqrt(a.a) / std::sqrt(a.b));
    out.emit("upd_rms", layer, slot, std::sqrt(a.a / double(a.numel)));
  };
  Agg block, model;
  walk_table(
      table,
      [&](size_t i, int layer, int slot) {
        const ParamInfo& p = table[i];
        const UpdateSums s = update_sums(params_before + p.offset, params_after + p.offset, p.size);
        Agg t;
        t.add(s.d2, s.w2, 0, p.size);
        emit(layer, slot, t);
        if (layer >= 0) block.add(s.d2, s.w2, 0, p.size);
        model.add(s.d2, s.w2, 0, p.size);
      },
      [&](int layer) {
        emit(layer, -1, block);
        block = Agg{};
      });
  emit(-1, -1, model);
}

void logit_metrics(const Layout& y, MetricOut& out) {
  const ConstMatView logits = y.head_acts().logits;
  const float* lse = y.head_acts().lse;
  const int N = logits.rows, V = logits.cols;
  const int chunks = std::min(N, kMaxChunks);  // fixed row chunks: thread-count independent sums
  float mx[kMaxChunks], mn[kMaxChunks];
  double sum[kMaxChunks], z1[kMaxChunks], z2[kMaxChunks];
#pragma omp parallel for schedule(static)
  for (int c = 0; c < chunks; ++c) {
    const int r0 = int(int64_t(N) * c / chunks), r1 = int(int64_t(N) * (c + 1) / chunks);
    float cmax = -std::numeric_limits<float>::infinity(), cmin = std::numeric_limits<float>::infinity();
    double s = 0.0, a = 0.0, b = 0.0;
    for (int r = r0; r < r1; ++r) {
      const float* row = logits.row(r);
      float rmax = cmax, rmin = cmin;
      double rs = 0.0;
#pragma omp simd reduction(max : rmax) reduction(min : rmin) reduction(+ : rs)
      for (int v = 0; v < V; ++v) {
        rmax = std::max(rmax, row[v]);
        rmin = std::min(rmin, row[v]);
        rs += row[v];
      }
      cmax = rmax;
      cmin = rmin;
      s += rs;
      a += lse[r];
      b += double(lse[r]) * lse[r];
    }
    mx[c] = cmax;
    mn[c] = cmin;
    sum[c] = s;
    z1[c] = a;
    z2[c] = b;
  }
  float gmax = -std::numeric_limits<float>::infinity(), gmin = std::numeric_limits<float>::infinity();
  double s = 0.0, a = 0.0, b = 0.0;
  for (int c = 0; c < chunks; ++c) {
    gmax = std::max(gmax, mx[c]);
    gmin = std::min(gmin, mn[c]);
    s += sum[c];
    a += z1[c];
    b += z2[c];
  }
  out.emit("logit_absmax", -1, -1, std::max(double(gmax), -double(gmin)));
  out.emit("logit_min", -1, -1, gmin);
  out.emit("logit_mean", -1, -1, s / (double(N) * V));
  out.emit("logz_mean", -1, -1, a / N);
  out.emit("logz2_mean", -1, -1, b / N);
}

}  // namespace attnlab
