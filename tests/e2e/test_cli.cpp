// The attnlab binary as a user meets it: run directories, errors with exit codes, resume, interruption.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <regex>
#include <thread>
#include <tuple>
#include <vector>

#include "train/formats/json.h"
#include "train/formats/run_files.h"
#include "train/formats/safetensors.h"
#include "tests/support/fixtures.h"

using namespace attnlab;
using namespace attnlab::testing;
namespace fs = std::filesystem;

TEST_CASE("train writes a complete run directory", "[e2e][cli]") {
  TempDir dir("cli-run");
  const std::string cfg = dir.write("tiny.yaml", tiny_run_yaml(6));
  const std::string run = dir.file("run");
  const auto r = run_command(attnlab_binary() + " train " + cfg + " --out " + run + " --quiet");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  for (const char* f : {"config.yaml", "run.json", "metrics.jsonl", "events.jsonl", "summary.md",
                        "ckpt/step_00000003.safetensors", "ckpt/step_00000006.safetensors"})
    REQUIRE(fs::exists(fs::path(run) / f));
  const std::string metrics = read_file(run + "/metrics.jsonl");
  REQUIRE(train_losses(metrics).size() == 6);
  REQUIRE(metrics.find("\"kind\":\"eval\",\"val_loss\":") != std::string::npos);
  REQUIRE(read_file(run + "/run.json").find("\"commit\"") != std::string::npos);
  // The resolved config is loadable and equals the input.
  REQUIRE(dump_config(load_config(run + "/config.yaml")) == dump_config(load_config(cfg)));

  // The same --out again is refused: never overwrite a run.
  const auto again = run_command(attnlab_binary() + " train " + cfg + " --out " + run + " --quiet");
  REQUIRE(again.exit_code == 2);
  REQUIRE(again.output.find("already exists") != std::string::npos);
  REQUIRE(again.output.find("--resume") != std::string::npos);
}

TEST_CASE("resume through the CLI reproduces the uninterrupted run bitwise", "[e2e][cli]") {
  // Plain, and with the toggles that carry state across steps: σReparam's power-iteration vectors, a
  // learned V-scale θ, an attention-temperature window that closes mid-run, z-loss.
  const std::string variant = GENERATE(as<std::string>{}, "",
                                       "--set model.sigma_reparam=true --set model.v_scale=learned "
                                       "--set model.attn_temperature=2.0 --set model.attn_temperature_end=5 "
                                       "--set model.z_loss=1.0e-4");
  INFO("variant: " << variant);
  TempDir dir("cli-resume");
  const std::string cfg9 = dir.write("nine.yaml", tiny_run_yaml(9));
  const auto full_cmd = [&](const std::string& out, const std::string& extra) {
    return attnlab_binary() + " train " + cfg9 + " --out " + dir.file(out) + " --quiet " + variant + " " + extra;
  };

  const auto full = run_command(full_cmd("full", ""));
  INFO(full.output);
  REQUIRE(full.exit_code == 0);
  // A run stopped after 4 steps (checkpoint at 3; step 4 is lost) and resumed to 9.
  const auto part = run_command(full_cmd("part", "--set train.steps=4"));
  REQUIRE(part.exit_code == 0);
  fs::remove(dir.file("part") + "/ckpt/step_00000004.safetensors");
  const auto res = run_command(attnlab_binary() + " train --resume " + dir.file("part") +
                               " --quiet --set train.steps=9");
  INFO(res.output);
  REQUIRE(res.exit_code == 0);
  const auto a = train_losses(read_file(dir.file("full") + "/metrics.jsonl"));
  const auto b = train_losses(read_file(dir.file("part") + "/metrics.jsonl"));
  REQUIRE(a.size() == 9);
  REQUIRE(a == b);
  // Every metric record, instrumentation included (spike z-scores continue from the checkpointed
  // detector state), is identical too; only the timing fields may differ.
  auto without_timing = [](std::string m) {
    static const std::regex timing(",\"tokens_per_s\":[^,]+,\"ms_per_step\":[^}]+");
    return std::regex_replace(m, timing, "");
  };
  const std::string ma = without_timing(read_file(dir.file("full") + "/metrics.jsonl"));
  const std::string mb = without_timing(read_file(dir.file("part") + "/metrics.jsonl"));
  REQUIRE(ma.find("\"kind\":\"probe\"") != std::string::npos);
  REQUIRE(ma == mb);
  REQUIRE(read_file(dir.file("part") + "/events.jsonl").find("\"kind\":\"resume\"") != std::string::npos);
}

TEST_CASE("a corrupt checkpoint is refused with the file named", "[e2e][cli]") {
  TempDir dir("cli-corrupt");
  const std::string cfg = dir.write("tiny.yaml", tiny_run_yaml(3));
  REQUIRE(run_command(attnlab_binary() + " train " + cfg + " --out " + dir.file("run") + " --quiet").exit_code == 0);
  const std::string ck = dir.file("run") + "/ckpt/step_00000003.safetensors";
  fs::resize_file(ck, fs::file_size(ck) / 2);
  const auto r = run_command(attnlab_binary() + " train --resume " + dir.file("run") + " --set train.steps=6");
  INFO(r.output);
  REQUIRE(r.exit_code == 2);
  REQUIRE(r.output.find("step_00000003.safetensors") != std::string::npos);
}

TEST_CASE("config mistakes are reported with file, key path and line before any work", "[e2e][cli]") {
  TempDir dir("cli-config");
  const std::string bad = dir.write("bad.yaml", "model:\n  d_model: 64\n  n_heads: 4\n");
  auto r = run_command(attnlab_binary() + " train " + bad + " --out " + dir.file("run"));
  INFO(r.output);
  REQUIRE(r.exit_code == 2);
  REQUIRE(r.output.find("bad.yaml") != std::string::npos);
  REQUIRE(r.output.find("model.n_heads") != std::string::npos);
  REQUIRE(r.output.find("3") != std::string::npos);
  REQUIRE(r.output.find("n_head") != std::string::npos);
  REQUIRE_FALSE(fs::exists(dir.file("run")));  // nothing was started

  const std::string div = dir.write("div.yaml", "model:\n  d_model: 100\n  n_head: 3\n");
  r = run_command(attnlab_binary() + " train " + div + " --out " + dir.file("run2"));
  REQUIRE(r.exit_code == 2);
  REQUIRE(r.output.find("model.d_model") != std::string::npos);
  REQUIRE(r.output.find("model.n_head") != std::string::npos);

  r = run_command(attnlab_binary() + " train " + dir.file("missing.yaml"));
  REQUIRE(r.exit_code == 2);
  REQUIRE(r.output.find("missing.yaml") != std::string::npos);

  r = run_command(attnlab_binary() + " train " + div + " --set model.n_head=abc");
  REQUIRE(r.exit_code == 2);
  REQUIRE(r.output.find("model.n_head") != std::string::npos);

  r = run_command(attnlab_binary() + " frobnicate");
  REQUIRE(r.exit_code == 2);
  REQUIRE(r.output.find("unknown command") != std::string::npos);
}

TEST_CASE("a diverging run stops with an event instead of writing NaN parameters", "[e2e][cli]") {
  TempDir dir("cli-nan");
  const std::string cfg = dir.write("tiny.yaml", tiny_run_yaml(20));
  const auto r = run_command(attnlab_binary() + " train " + cfg + " --out " + dir.file("run") +
                             " --quiet --set optim.lr=1e30 --set optim.grad_clip=0 --set schedule.warmup=0");
  INFO(r.output);
  REQUIRE(r.exit_code == 1);
  REQUIRE(r.output.find("non-finite") != std::string::npos);
  REQUIRE(read_file(dir.file("run") + "/events.jsonl").find("\"kind\":\"nonfinite\"") != std::string::npos);
}

TEST_CASE("SIGINT saves a checkpoint and the run resumes from it", "[e2e][cli]") {
  TempDir dir("cli-sigint");
  const std::string cfg = dir.write("long.yaml", tiny_run_yaml(1000000));
  const std::string run = dir.file("run");
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    execl(attnlab_binary().c_str(), "attnlab", "train", cfg.c_str(), "--out", run.c_str(), "--quiet", (char*)nullptr);
    _exit(127);
  }
  // Wait until it has taken some steps, then interrupt.
  for (int i = 0; i < 100 && !fs::exists(run + "/ckpt/step_00000003.safetensors"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 130);
  REQUIRE(read_file(run + "/events.jsonl").find("\"kind\":\"interrupted\"") != std::string::npos);
  // The checkpoint written on the signal is the newest one; resume a few steps past it.
  const std::string ck = fs::path(latest_checkpoint(run)).filename().string();  // step_NNNNNNNN.safetensors
  const long at = std::stol(ck.substr(5, 8));
  REQUIRE(at >= 3);
  const auto res = run_command(attnlab_binary() + " train --resume " + run + " --quiet --set train.steps=" +
                               std::to_string(at + 3));
  INFO(res.output);
  REQUIRE(res.exit_code == 0);
}

TEST_CASE("grads writes the loss, every gradient, the parameters and the batch", "[e2e][cli]") {
  TempDir dir("cli-grads");
  const std::string cfg = dir.write("tiny.yaml", tiny_run_yaml(3));
  const std::string out = dir.file("g.safetensors");
  const auto r = run_command(attnlab_binary() + " grads " + cfg + " --out " + out);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  SafetensorsFile f(out);
  REQUIRE(f.has("loss"));
  REQUIRE(f.has("inputs"));
  REQUIRE(f.has("grad.blocks.1.attn.w_q"));
  REQUIRE(f.has("blocks.1.attn.w_q"));
  REQUIRE(f.tensor("inputs").shape == std::vector<int64_t>{4, 16});
  float loss = 0;
  std::memcpy(&loss, f.tensor("loss").bytes.data(), 4);
  REQUIRE(loss == Approx(std::log(32.0)).margin(0.1));
  // The batch file round-trips as --batch input and gives the same loss.
  const auto r2 = run_command(attnlab_binary() + " grads " + cfg + " --batch " + out + " --out " + dir.file("g2.safetensors"));
  REQUIRE(r2.exit_code == 0);
  float loss2 = 0;
  std::memcpy(&loss2, SafetensorsFile(dir.file("g2.safetensors")).tensor("loss").bytes.data(), 4);
  REQUIRE(loss2 == loss);
}

namespace {

// Every value of `"name":NUMBER` in records of kind `kind` (metrics.jsonl train/eval records), or of the
// probe metric `name` when kind is "probe"; in file order.
std::vector<double> record_values(const std::string& metrics, const std::string& kind, const std::string& name) {
  std::vector<double> out;
  const std::regex re(kind == "probe" ? "\"kind\":\"probe\",\"metric\":\"" + name + "\",[^\\n]*\"value\":([^,}]+)"
                                      : "\"kind\":\"" + kind + "\"[^\\n]*\"" + name + "\":([^,}]+)");
  for (std::sregex_iterator it(metrics.begin(), metrics.end(), re), end; it != end; ++it)
    out.push_back(std::strtod((*it)[1].str().c_str(), nullptr));
  return out;
}

}  // namespace

TEST_CASE("with z-loss on, loss is cross-entropy + z-loss everywhere it is reported, and the parts add up",
          "[e2e][cli][z_loss]") {
  TempDir dir("cli-zloss");
  const std::string cfg = dir.write("tiny.yaml", tiny_run_yaml(6));
  const std::string base =
      attnlab_binary() + " train " + cfg + " --quiet --set train.log_every=1 --set instrument.probe_at_init=true";
  const auto z = run_command(base + " --out " + dir.file("z") + " --set model.z_loss=0.05");
  const auto plain = run_command(base + " --out " + dir.file("plain"));
  INFO(z.output << plain.output);
  REQUIRE(z.exit_code == 0);
  REQUIRE(plain.exit_code == 0);
  const std::string mz = read_file(dir.file("z") + "/metrics.jsonl");
  const std::string mp = read_file(dir.file("plain") + "/metrics.jsonl");

  // Train, eval and probe records: loss = loss_ce + loss_z exactly (the same doubles, printed round-trip).
  for (const auto& [kind, name] : std::vector<std::pair<std::string, std::string>>{
           {"train", "loss"}, {"eval", "val_loss"}, {"probe", "probe_loss"}}) {
    INFO(kind << " " << name);
    const auto total = record_values(mz, kind, name), ce = record_values(mz, kind, name + "_ce"),
               zt = record_values(mz, kind, name + "_z");
    REQUIRE(!total.empty());
    REQUIRE(ce.size() == total.size());
    REQUIRE(zt.size() == total.size());
    for (size_t i = 0; i < total.size(); ++i) {
      REQUIRE(zt[i] > 0.0);
      REQUIRE(total[i] == ce[i] + zt[i]);
    }
    // Without z-loss the parts are not written and the loss is the cross-entropy.
    REQUIRE(record_values(mp, kind, name + "_ce").empty());
    REQUIRE(record_values(mp, kind, name).size() == total.size());
  }
  // The first step's forward (and the step-0 probe) run on the initial weights, where both runs agree: the
  // cross-entropy part is the plain run's loss bit for bit, and the z term is c·mean(lse²) ≈ 0.05·ln²(32).
  REQUIRE(record_values(mz, "train", "loss_ce")[0] == record_values(mp, "train", "loss")[0]);
  REQUIRE(record_values(mz, "probe", "probe_loss_ce")[0] == record_values(mp, "probe", "probe_loss")[0]);
  REQUIRE(record_values(mz, "train", "loss_z")[0] == Approx(0.05 * std::pow(std::log(32.0), 2)).epsilon(0.05));
  // summary.md names both parts.
  const std::string summary = read_file(dir.file("z") + "/summary.md");
  REQUIRE(summary.find("(cross-entropy ") != std::string::npos);
  REQUIRE(summary.find(" + z-loss ") != std::string::npos);
  REQUIRE(read_file(dir.file("plain") + "/summary.md").find("z-loss") == std::string::npos);

  // attnlab grads: the objective and its parts; the CE part equals the plain model's loss.
  const auto gz = run_command(attnlab_binary() + " grads " + cfg + " --set model.z_loss=0.05 --out " + dir.file("gz.st"));
  const auto gp = run_command(attnlab_binary() + " grads " + cfg + " --out " + dir.file("gp.st"));
  INFO(gz.output);
  REQUIRE(gz.exit_code == 0);
  REQUIRE(gp.exit_code == 0);
  REQUIRE(gz.output.find("(cross-entropy ") != std::string::npos);
  const auto scalar = [&](const std::string& file, const char* name) {
    float v = 0;
    std::memcpy(&v, SafetensorsFile(dir.file(file)).tensor(name).bytes.data(), 4);
    return v;
  };
  REQUIRE(scalar("gz.st", "loss_ce") == scalar("gp.st", "loss"));
  REQUIRE(scalar("gz.st", "loss") == Approx(double(scalar("gz.st", "loss_ce")) + scalar("gz.st", "loss_z")).epsilon(1e-6));
  REQUIRE(!SafetensorsFile(dir.file("gp.st")).has("loss_ce"));
}

TEST_CASE("--help of every subcommand exits 0 and lists its options with their defaults", "[e2e][cli][usage]") {
  // (subcommand, options it must list, defaults that must appear)
  const std::vector<std::tuple<std::string, std::vector<std::string>, std::vector<std::string>>> cases = {
      {"train", {"CONFIG", "--set", "--out", "--resume", "--quiet"}, {}},
      {"grads", {"CONFIG", "--out", "--checkpoint", "--batch", "--set"}, {}},
      {"bench", {"--preset", "--threads", "--instrument", "--warmup", "--steps", "--repeats", "--set", "--json"},
       {"=A,B,C,D", "=1,2", "=off", "=3", "=0", "=5"}},
      {"config", {"CONFIG", "--set"}, {}},
      {"sweep", {"SWEEP", "--out", "--jobs", "--threads", "--set", "--dry-run"}, {"=0"}},
      {"repro", {"NAME", "--budget", "--out", "--jobs", "--threads", "--no-report", "--list"}, {"=0"}},
      {"data get", {"NAMES", "--dir", "--force"}, {}},
      {"data list", {"--dir"}, {}},
  };
  for (const auto& [sub, options, defaults] : cases) {
    INFO(sub);
    const auto r = run_command(attnlab_binary() + " " + sub + " --help");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    for (const auto& o : options) CHECK_THAT(r.output, Catch::Matchers::Contains(o));
    for (const auto& d : defaults) CHECK_THAT(r.output, Catch::Matchers::Contains(d));
  }
  // The whole command line, and `attnlab help`, on stdout with exit 0; with nothing, on stderr with exit 2.
  auto r = run_command(attnlab_binary() + " --help");
  REQUIRE(r.exit_code == 0);
  for (const char* sub : {"train", "grads", "bench", "config", "sweep", "repro", "report", "data"})
    CHECK_THAT(r.output, Catch::Matchers::Contains(sub));
  REQUIRE(run_command(attnlab_binary() + " help").exit_code == 0);
  r = run_command(attnlab_binary());
  REQUIRE(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("train"));
}

TEST_CASE("the global help lists every option of report.py", "[e2e][cli][usage]") {
  // `attnlab report` hands its arguments to report.py, so CLI11 cannot list them itself: cmd_report.cpp
  // keeps the list, and this test fails when report.py gains an option it does not name.
  const std::string py = read_file(std::string(ATTNLAB_SOURCE_DIR) + "/experiments/report/report.py");
  const std::regex arg_re("add_argument\\(\"(--[a-z-]+)\"");
  std::vector<std::string> options;
  for (std::sregex_iterator it(py.begin(), py.end(), arg_re), end; it != end; ++it) options.push_back((*it)[1].str());
  REQUIRE(options.size() >= 8);
  const auto r = run_command(attnlab_binary() + " --help");
  REQUIRE(r.exit_code == 0);
  for (const auto& o : options) {
    INFO(o);
    CHECK(r.output.find("  " + o + " ") != std::string::npos);
  }
}

TEST_CASE("--version prints the commit, the dirty flag, build type, compiler, flags and oneDNN", "[e2e][cli][usage]") {
  const auto r = run_command(attnlab_binary() + " --version");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  for (const char* field : {"commit:", "dirty:", "build type:", "compiler:", "flags:", "oneDNN:"})
    CHECK_THAT(r.output, Catch::Matchers::Contains(field));
  CHECK(std::regex_search(r.output, std::regex("oneDNN: +[0-9]+\\.[0-9]+\\.[0-9]+")));
  CHECK(std::regex_search(r.output, std::regex("dirty: +(true|false|unknown)")));
}

TEST_CASE("--opt=value is --opt value; usage errors are exit 2 naming the option, with a did-you-mean",
          "[e2e][cli][usage]") {
  TempDir dir("cli-usage");
  const std::string cfg = dir.write("tiny.yaml", tiny_run_yaml(2));
  auto r = run_command(attnlab_binary() + " train " + cfg + " --quiet --out=" + dir.file("run") + " --set=train.steps=1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  REQUIRE(train_losses(read_file(dir.file("run") + "/metrics.jsonl")).size() == 1);  // --set=... took effect

  // A repeated --set takes one value each; the positional CONFIG after it stays the config.
  r = run_command(attnlab_binary() + " config --set train.steps=7 " + cfg + " --set train.batch=3");
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Matchers::Contains("steps: 7") && Catch::Matchers::Contains("batch: 3"));

  r = run_command(attnlab_binary() + " trian " + cfg);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("unknown command 'trian' (did you mean train?)"));
  r = run_command(attnlab_binary() + " bench --stpes 3");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("bench: unknown option --stpes (did you mean --steps?)"));
  r = run_command(attnlab_binary() + " train " + cfg + " --qiuet");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("unknown option --qiuet (did you mean --quiet?)"));
  r = run_command(attnlab_binary() + " sweep x.yaml --dry-rn=1");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("unknown option --dry-rn (did you mean --dry-run?)"));
  r = run_command(attnlab_binary() + " data lsit");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("unknown command 'lsit' (did you mean list?)"));
  // Nothing close: no suggestion.
  r = run_command(attnlab_binary() + " train " + cfg + " --zzzzzzzz");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("unknown option --zzzzzzzz") && !Catch::Matchers::Contains("did you mean"));

  // The checks that were there before CLI11: empty values, integer lists, a missing value, extra arguments.
  r = run_command(attnlab_binary() + " sweep x.yaml --out ''");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("--out needs a value, got an empty string"));
  r = run_command(attnlab_binary() + " bench --threads 1,x");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("--threads expects positive integers separated by commas, got '1,x'"));
  r = run_command(attnlab_binary() + " repro --jobs=0 x");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("--jobs expects positive integers"));
  r = run_command(attnlab_binary() + " train " + cfg + " --out");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("--out"));
  r = run_command(attnlab_binary() + " train " + cfg + " " + cfg);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("train: unexpected argument"));
  r = run_command(attnlab_binary() + " train");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("CONFIG.yaml or --resume RUN_DIR is required"));
  r = run_command(attnlab_binary() + " repro --list");
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Matchers::Contains("gradient-sinks"));
}

TEST_CASE("run.json and every checkpoint record the build's provenance", "[e2e][cli]") {
  TempDir dir("cli-provenance");
  const std::string cfg = dir.write("tiny.yaml", tiny_run_yaml(3));
  const auto r = run_command(attnlab_binary() + " train " + cfg + " --quiet --out " + dir.file("run"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const Json info = json_parse(read_file(dir.file("run") + "/run.json"), "run.json");
  const auto version = run_command(attnlab_binary() + " --version").output;
  REQUIRE(info.at("commit").is_string());
  CHECK_THAT(version, Catch::Matchers::Contains("commit:     " + info.at("commit").get<std::string>()));
  REQUIRE((info.at("dirty").is_boolean() || info.at("dirty").is_null()));
  const Json& b = info.at("build");
  for (const char* k : {"type", "compiler", "flags", "onednn"}) {
    INFO(k);
    REQUIRE(b.at(k).is_string());
    REQUIRE(!b.at(k).get<std::string>().empty());
  }
  CHECK_THAT(version, Catch::Matchers::Contains(b.at("onednn").get<std::string>()));
  CHECK_THAT(version, Catch::Matchers::Contains(b.at("flags").get<std::string>()));
  const SafetensorsFile ck(dir.file("run") + "/ckpt/step_00000003.safetensors");
  const auto& meta = ck.metadata();
  for (const char* k : {"build.commit", "build.dirty", "build.type", "build.compiler", "build.flags", "build.onednn"}) {
    INFO(k);
    REQUIRE(meta.count(k) == 1);
  }
  CHECK(meta.at("build.commit") == info.at("commit").get<std::string>());
  CHECK(meta.at("build.onednn") == b.at("onednn").get<std::string>());
  CHECK(meta.at("build.dirty") == (info.at("dirty").is_null() ? "unknown" : info.at("dirty").get<bool>() ? "true" : "false"));
}
