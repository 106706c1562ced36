// End to end for the rank-collapse reproduction's additions: instrument.probe_at_init (a probe of the
// initial model, recorded as step 0, that leaves training bitwise unchanged) and the block variants
// model.skip: false / model.mlp: none through the config reader, the CLI, every instrument family and the
// flight recorder.
#include <catch2/catch.hpp>

#include <omp.h>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "train/data.h"
#include "train/formats/flight.h"
#include "train/formats/safetensors.h"
#include "train/trainer.h"
#include "tests/support/fixtures.h"

using namespace attnlab;
using namespace attnlab::testing;
using Catch::Matchers::Contains;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream is(text);
  for (std::string l; std::getline(is, l);) out.push_back(l);
  return out;
}

// The value of the first record of `metric` at `step` (probe kind), or NaN.
double probe_value(const std::string& metrics, int step, const std::string& metric, int layer = -1) {
  const std::string head = "{\"step\":" + std::to_string(step) + ",\"kind\":\"probe\",\"metric\":\"" + metric +
                           "\",\"layer\":" + std::to_string(layer) + ",";
  for (const std::string& l : lines_of(metrics))
    if (l.rfind(head, 0) == 0) return std::stod(l.substr(l.find("\"value\":") + 8));
  return std::nan("");
}

CommandResult train(const TempDir& dir, const std::string& name, const RunConfig& cfg) {
  const std::string yaml = dir.write(name + ".yaml", dump_config(cfg));
  return run_command(attnlab_binary() + " train " + yaml + " --out " + dir.file(name) + " --quiet");
}

}  // namespace

TEST_CASE("probe_at_init: a step-0 probe of the initial model; the training losses stay bitwise equal",
          "[e2e][instrument]") {
  TempDir dir("probe-init");
  RunConfig cfg = tiny_run_config();
  cfg.train.steps = 6;
  cfg.train.threads = 1;
  cfg.instrument.probe_every = 3;
  RunConfig init = cfg;
  init.instrument.probe_at_init = true;
  const CommandResult a = train(dir, "plain", cfg), b = train(dir, "init", init);
  INFO(a.output << b.output);
  REQUIRE(a.exit_code == 0);
  REQUIRE(b.exit_code == 0);
  const std::string ma = read_file(dir.file("plain/metrics.jsonl")), mb = read_file(dir.file("init/metrics.jsonl"));
  REQUIRE(train_losses(ma).size() == 6);
  REQUIRE(train_losses(ma) == train_losses(mb));
  REQUIRE(ma.find("{\"step\":0,") == std::string::npos);
  for (const char* m : {"probe_loss", "qk_var", "ent_norm", "tok_cos"}) {
    INFO(m);
    REQUIRE(mb.find("{\"step\":0,\"kind\":\"probe\",\"metric\":\"" + std::string(m) + "\"") != std::string::npos);
  }
  REQUIRE(read_file(dir.file("init/config.yaml")).find("probe_at_init: true") != std::string::npos);

  // The step-0 probe loss is the initial model's loss on the probe batch, computed here independently.
  omp_set_num_threads(1);
  DnnlContext ctx;
  const auto data = make_dataset(init.data, init.model, init.train.seed);
  Trainer t(init, ctx, *data);
  std::vector<int32_t> in(size_t(init.train.batch) * init.model.seq_len), tg(in.size());
  t.probe_batch(in.data(), tg.data());
  t.model().forward(in.data(), tg.data());
  REQUIRE(probe_value(mb, 0, "probe_loss") == Approx(t.model().last_ce_loss()).epsilon(1e-12));
  // ... and differs from the step-1 probe (the model has moved by then).
  REQUIRE(probe_value(mb, 1, "probe_loss") != probe_value(mb, 0, "probe_loss"));
}

TEST_CASE("mlp: none and skip: false parse, validate, train with every instrument family on, and round-trip",
          "[e2e][toggles]") {
  const RunConfig c = parse_config("model: {mlp: none, skip: false}\n", "t.yaml");
  REQUIRE(c.model.mlp == MlpKind::kNone);
  REQUIRE_FALSE(c.model.skip);
  const RunConfig back = parse_config(dump_config(c), "dump.yaml");
  REQUIRE(back.model.mlp == MlpKind::kNone);
  REQUIRE_FALSE(back.model.skip);
  try {
    parse_config("model: {mlp: none, mlp_hidden: 32}\n", "t.yaml");
    FAIL("mlp_hidden with mlp: none must be an error");
  } catch (const ConfigError& e) {
    REQUIRE_THAT(std::string(e.what()), Contains("model.mlp_hidden") && Contains("model.mlp"));
  }
  try {
    parse_config("model: {skip: no}\n", "t.yaml");
    FAIL("skip: no must be an error");
  } catch (const ConfigError& e) {
    REQUIRE_THAT(std::string(e.what()), Contains("model.skip"));
  }

  TempDir dir("variants");
  RunConfig cfg = tiny_run_config();
  cfg.model.mlp = MlpKind::kNone;
  cfg.model.mlp_hidden = 0;
  cfg.model.skip = false;
  cfg.train.steps = 4;
  cfg.instrument.probe_every = 1;
  cfg.instrument.probe_at_init = true;
  const CommandResult r = train(dir, "pure", cfg);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const std::string m = read_file(dir.file("pure/metrics.jsonl"));
  // No MLP tensors, so no MLP weight or per-tensor statistics; the MLP branch reads as zero.
  for (const char* absent : {"\"spec_win\"", "\"w_rms_mlp_norm\"", "\"spec_wdown\""}) {
    INFO(absent);
    REQUIRE(m.find(absent) == std::string::npos);
  }
  REQUIRE(m.find("mlp.w_up") == std::string::npos);
  REQUIRE(probe_value(m, 0, "rho_mlp", 0) == 0.0);
  REQUIRE(probe_value(m, 4, "rho_mlp", 1) == 0.0);
  for (const char* present : {"spec_wq", "tok_cos", "r_dong", "erank", "qk_var", "grad_q_norm"}) {
    INFO(present);
    REQUIRE(m.find(std::string("\"metric\":\"") + present + "\"") != std::string::npos);
  }
  const std::string resolved = read_file(dir.file("pure/config.yaml"));
  REQUIRE_THAT(resolved, Contains("mlp: none") && Contains("skip: false"));
  // The checkpoint names the variant in its model signature and resumes.
  const CommandResult more = run_command(attnlab_binary() + " train --resume " + dir.file("pure") +
                                         " --set train.steps=6 --quiet");
  INFO(more.output);
  REQUIRE(more.exit_code == 0);
  const SafetensorsFile ck(dir.file("pure/ckpt/step_00000006.safetensors"));
  REQUIRE_THAT(ck.metadata().at("model"), Contains("mlp=none") && Contains("skip=false"));
}

TEST_CASE("flight recorder: an attention-only model's state is written and readable", "[e2e][toggles]") {
  TempDir dir("flight-none");
  RunConfig cfg = tiny_run_config();
  cfg.model.mlp = MlpKind::kNone;
  cfg.model.mlp_hidden = 0;
  DnnlContext ctx;
  const auto data = make_dataset(cfg.data, cfg.model, cfg.train.seed);
  Trainer t(cfg, ctx, *data);
  t.step();
  SafetensorsFlightRecorder rec(dir.file("flight"), FlightContents::kEverything);
  const std::string path = rec.record(1, "test", t.model());
  const SafetensorsFile f(path);
  REQUIRE(f.metadata().at("contents") == "everything");
  REQUIRE(f.has("act.blocks.1.mlp_out"));
  REQUIRE(f.tensor("act.blocks.0.pre").numel() == 0);
  REQUIRE_FALSE(f.has("blocks.0.mlp.w_down"));
  REQUIRE(f.has("grad.blocks.1.attn.w_o"));
}

namespace {

// The bytes of rows [0, rows) of a [·, cols] float view, as written.
std::vector<uint8_t> prefix_bytes(ConstMatView m, int rows) {
  const auto* p = reinterpret_cast<const uint8_t*>(m.p);
  return std::vector<uint8_t>(p, p + size_t(rows) * size_t(m.cols) * sizeof(float));
}

}  // namespace

TEST_CASE("flight recorder: a diagnosis record holds the first sequences' streams, maps and gradients, and is small",
          "[e2e][toggles][flight]") {
  TempDir dir("flight-diag");
  // The gradient-sink recipe's shape (L 4, d 64, H 4, hidden 176, T 64, B 32, vocab 257): the size the
  // documentation quotes (instrument/docs/README.md "Flight recorder").
  RunConfig cfg = tiny_run_config();
  cfg.model.vocab = 257;
  cfg.model.d_model = 64;
  cfg.model.n_layer = 4;
  cfg.model.n_head = 4;
  cfg.model.mlp_hidden = 176;
  cfg.model.seq_len = 64;
  cfg.train.batch = 32;
  DnnlContext ctx;
  const auto data = make_dataset(cfg.data, cfg.model, cfg.train.seed);
  Trainer t(cfg, ctx, *data);
  t.step();
  const Layout& y = t.model().layout();
  const int S = 4, T = y.T;
  SafetensorsFlightRecorder diag(dir.file("diag"), FlightContents::kDiagnosis, S);
  SafetensorsFlightRecorder every(dir.file("every"), FlightContents::kEverything);
  const std::string pd = diag.record(1, "test", t.model());
  const std::string pe = every.record(1, "test", t.model());
  const SafetensorsFile d(pd), e(pe);
  REQUIRE(d.metadata().at("contents") == "diagnosis");
  REQUIRE(d.metadata().at("seqs") == "4");
  REQUIRE(e.metadata().at("seqs") == "32");
  for (int l = 0; l < y.L; ++l) {
    const std::string b = "act.blocks." + std::to_string(l) + ".", g = "actgrad.blocks." + std::to_string(l) + ".";
    CHECK(d.tensor(b + "x").shape == std::vector<int64_t>{S * T, 64});
    CHECK(d.tensor(b + "x").bytes == prefix_bytes(y.acts(l).x, S * T));
    CHECK(d.tensor(b + "probs").shape == std::vector<int64_t>{S, 4, T, T});
    CHECK(d.tensor(g + "dx").bytes == prefix_bytes(y.act_grads(l).dx, S * T));
    // Sequence 0..S-1 of the full record are the same bytes.
    const auto& ep = e.tensor(b + "probs").bytes;
    CHECK(d.tensor(b + "probs").bytes == std::vector<uint8_t>(ep.begin(), ep.begin() + d.tensor(b + "probs").bytes.size()));
    CHECK_FALSE(d.has(b + "qkv"));
    CHECK_FALSE(d.has(g + "dqkv"));
    CHECK(e.has(b + "qkv"));
  }
  CHECK_FALSE(d.has("act.final.logits"));
  CHECK(d.tensor("act.final.lse").numel() == y.N);
  CHECK(d.tensor("inputs").shape == std::vector<int64_t>{32, T});
  // Every parameter and its gradient in both.
  for (const ParamInfo& p : t.model().param_table()) {
    CHECK(d.has(p.name));
    CHECK(d.has("grad." + p.name));
    CHECK(d.tensor(p.name).bytes == e.tensor(p.name).bytes);
  }
  const auto bytes_d = std::filesystem::file_size(pd), bytes_e = std::filesystem::file_size(pe);
  std::printf("flight record, gradient-sink recipe: diagnosis (4 sequences) %.2f MB, everything %.2f MB\n",
              bytes_d / 1e6, bytes_e / 1e6);
  CHECK(bytes_d * 8 < bytes_e);
}
