// Bad input and damaged run directories through the attnlab binary: each case was once a crash, a hang,
// an uncaught exception or a silent wrong result (issue 16), and is now exit 2 with a message naming the
// problem, or a resume that continues from what is still valid.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "train/config/config.h"
#include "train/formats/run_files.h"
#include "train/formats/safetensors.h"
#include "tests/support/fixtures.h"

using namespace attnlab;
using namespace attnlab::testing;
namespace fs = std::filesystem;

namespace {

// attnlab with a time limit: a hang shows up as exit 124 instead of a stuck suite.
CommandResult cli(const std::string& args, int seconds = 60) {
  return run_command("timeout " + std::to_string(seconds) + " " + attnlab_binary() + " " + args);
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
}

}  // namespace

TEST_CASE("input that cannot work is refused by config and train alike, with file and line", "[e2e][reliability]") {
  TempDir dir("rel-input");
  const std::string base = tiny_run_yaml(4);
  struct Case {
    std::string set, want;
  };
  const std::vector<Case> cases = {
      {"model.seq_len=1", "model.seq_len=1 must be >= 2"},  // was SIGABRT at the first probe
      {"model.vocab=1", "model.vocab=1 must be >= 2"},      // was: passed config, train exited without a line
      {"model.d_model=1048576", "does not fit in memory"},  // was: Arena out of memory (abort)
      {"train.batch=2147483647", "row count limit"},        // was: negative size after signed overflow
      {"train.accum=2147483647", "train.accum=2147483647 must be <= 65536"},
      {"train.eval_batches=2147483647", "must be <= 65536"},
      {"instrument.warn_tok_cos=1e75", "instrument.warn_tok_cos"},
  };
  for (const Case& c : cases) {
    INFO(c.set);
    const std::string key = c.set.substr(0, c.set.find('=')), value = c.set.substr(c.set.find('=') + 1);
    const std::string section = key.substr(0, key.find('.')), name = key.substr(key.find('.') + 1);
    // The bad value in the file (not --set), so the message must carry the file's name and line: the
    // resolved tiny config with that key's line replaced.
    std::string text, line, sec;
    std::istringstream in(base);
    while (std::getline(in, line)) {
      if (!line.empty() && line[0] != ' ' && line[0] != '#') sec = line.substr(0, line.find(':'));
      if (sec == section && line.rfind("  " + name + ":", 0) == 0) line = "  " + name + ": " + value;
      text += line + "\n";
    }
    const std::string file = dir.write(name + ".yaml", text);
    const auto r = cli("config " + file);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.output, Catch::Matchers::Contains(c.want));
    CHECK(std::regex_search(r.output, std::regex(file + ":[0-9]+")));  // file and line
    const auto t = cli("train " + file + " --quiet --out " + dir.file("run-" + name));
    CHECK(t.exit_code == 2);
    CHECK_THAT(t.output, Catch::Matchers::Contains(c.want));
    CHECK(!fs::exists(dir.file("run-" + name)));  // nothing started
  }
}

TEST_CASE("FIFOs and devices are refused without blocking", "[e2e][reliability]") {
  TempDir dir("rel-fifo");
  const std::string cfg = dir.write("tiny.yaml", tiny_run_yaml(6));
  const std::string fifo = dir.file("pipe");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string bytes_src = " --set data.source=file --set model.vocab=256 --quiet";
  auto r = cli("train " + cfg + bytes_src + " --set data.path=" + fifo + " --out " + dir.file("a"), 20);
  CHECK(r.exit_code == 2);  // 124 = hung
  CHECK_THAT(r.output, Catch::Matchers::Contains("FIFO"));
  r = cli("train " + cfg + bytes_src + " --set data.path=/dev/zero --out " + dir.file("b"), 20);
  CHECK(r.exit_code == 2);  // was: read until bad_alloc
  CHECK_THAT(r.output, Catch::Matchers::Contains("character device"));
  r = cli("config " + fifo, 20);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("FIFO"));
  r = cli("sweep " + fifo + " --dry-run", 20);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("FIFO"));

  // A FIFO named like the newest checkpoint: resume skips it and continues from the one before.
  const std::string run = dir.file("run");
  REQUIRE(cli("train " + cfg + " --quiet --set train.steps=4 --out " + run).exit_code == 0);
  fs::remove(run + "/ckpt/step_00000004.safetensors");
  REQUIRE(::mkfifo((run + "/ckpt/step_00000005.safetensors").c_str(), 0600) == 0);
  r = cli("train --resume " + run + " --quiet --set train.steps=6", 30);
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Matchers::Contains("step_00000005.safetensors: cannot open: is a FIFO"));
  CHECK_THAT(read_file(run + "/events.jsonl"), Catch::Matchers::Contains("resumed from " + run + "/ckpt/step_00000003"));
}

TEST_CASE("a string that is not UTF-8 is refused before training, not at the final checkpoint", "[e2e][reliability]") {
  TempDir dir("rel-utf8");
  const std::string cfg = dir.write("tiny.yaml", tiny_run_yaml(6));
  const std::string bad = dir.file("\xff\xfe.txt");
  write_bytes(bad, std::string(4096, 'a'));
  const auto r = cli("train " + cfg + " --quiet --set data.source=file --set model.vocab=256 --set 'data.path=" +
                         bad + "' --out " + dir.file("run"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("not valid UTF-8"));
  CHECK(!fs::exists(dir.file("run")));
}

TEST_CASE("resume continues from the newest checkpoint that is valid and of this run", "[e2e][reliability]") {
  TempDir dir("rel-resume");
  const std::string cfg = dir.write("tiny.yaml", tiny_run_yaml(9));
  const std::string train = "train " + cfg + " --quiet --set train.log_every=1 ";
  const std::string full = dir.file("full");
  REQUIRE(cli(train + "--out " + full).exit_code == 0);
  const auto want = train_losses(read_file(full + "/metrics.jsonl"));
  REQUIRE(want.size() == 9);

  // A run stopped at 6 (checkpoints 3 and 6), whose newest checkpoint is then damaged in place.
  const auto stopped = [&](const std::string& name) {
    const std::string run = dir.file(name);
    REQUIRE(cli(train + "--set train.steps=6 --out " + run).exit_code == 0);
    return run;
  };
  const auto resume = [&](const std::string& run, const std::string& extra = "") {
    return cli("train --resume " + run + " --quiet --set train.steps=9 " + extra);
  };
  const auto resumed_from_3_bitwise = [&](const std::string& run, const CommandResult& r) {
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK_THAT(read_file(run + "/events.jsonl"), Catch::Matchers::Contains("resumed from " + run + "/ckpt/step_00000003"));
    CHECK(train_losses(read_file(run + "/metrics.jsonl")) == want);  // steps 4..9 retrained, bit for bit
  };

  SECTION("junk bytes in the newest checkpoint") {
    const std::string run = stopped("junk");
    write_bytes(run + "/ckpt/step_00000006.safetensors", std::string(1000, 'x'));
    const auto r = resume(run);
    CHECK_THAT(r.output, Catch::Matchers::Contains("step_00000006.safetensors"));
    resumed_from_3_bitwise(run, r);
  }
  SECTION("one flipped byte inside the tensor data of the newest checkpoint") {
    const std::string run = stopped("flip");
    const std::string ck = run + "/ckpt/step_00000006.safetensors";
    std::string bytes = read_file(ck);
    const size_t at = bytes.size() - bytes.size() / 3;  // well inside the data section
    bytes[at] = char(bytes[at] ^ 0x10);
    write_bytes(ck, bytes);
    const auto r = resume(run);
    CHECK_THAT(r.output, Catch::Matchers::Contains("fails its checksum"));  // was: trained on, exit 0
    resumed_from_3_bitwise(run, r);
  }
  SECTION("metrics lines cut off by a kill mid-write") {
    const std::string run = stopped("cut");
    fs::remove(run + "/ckpt/step_00000006.safetensors");
    { std::ofstream(run + "/metrics.jsonl", std::ios::app) << "{\"st"; }
    { std::ofstream(run + "/metrics.csv", std::ios::app) << "5,pro"; }
    { std::ofstream(run + "/events.jsonl", std::ios::app) << "{\"step\":4,\"kind\":\"x"; }
    const auto r = resume(run);
    resumed_from_3_bitwise(run, r);
    const std::string m = read_file(run + "/metrics.jsonl");
    CHECK(m.find("{\"st{") == std::string::npos);  // the fragment is gone, not glued to the next record
    for (const char* f : {"/metrics.jsonl", "/events.jsonl"}) {
      std::istringstream in(read_file(run + f));
      for (std::string line; std::getline(in, line);) {
        INFO(f << ": " << line);
        CHECK(line.rfind("{\"step\":", 0) == 0);
        CHECK(line.back() == '}');
      }
    }
    CHECK(read_file(run + "/metrics.csv").find("5,pro") == std::string::npos);
  }
  SECTION("a checkpoint whose metadata step does not match its name") {
    const std::string run = stopped("renamed");
    fs::remove(run + "/ckpt/step_00000006.safetensors");
    fs::copy_file(run + "/ckpt/step_00000003.safetensors", run + "/ckpt/step_00000005.safetensors");
    const auto r = resume(run);
    CHECK_THAT(r.output, Catch::Matchers::Contains("metadata 'step' is 3 but the file name says step 5"));
    resumed_from_3_bitwise(run, r);
  }
  SECTION("an empty monitor_state is damage, not a reset of the spike detectors") {
    const std::string run = stopped("state");
    const std::string ck = run + "/ckpt/step_00000006.safetensors";
    {
      SafetensorsFile f(ck);
      std::map<std::string, std::string> meta = f.metadata();
      meta["monitor_state"] = "";
      std::vector<TensorOut> out;
      for (const auto& [name, t] : f.tensors()) out.push_back({name, t.dtype, t.shape, t.bytes.data()});
      write_safetensors(ck + ".new", out, meta);
    }
    fs::rename(ck + ".new", ck);
    const auto r = resume(run);
    CHECK_THAT(r.output, Catch::Matchers::Contains("metadata 'monitor_state' is empty"));
    resumed_from_3_bitwise(run, r);
  }
  SECTION("stale temporaries of a killed checkpoint write are removed") {
    const std::string run = stopped("tmp");
    fs::remove(run + "/ckpt/step_00000006.safetensors");
    const std::string stale = run + "/ckpt/step_00000006.safetensors.tmp.999999999";  // no such process
    write_bytes(stale, "half a checkpoint");
    const auto r = resume(run);
    CHECK(!fs::exists(stale));
    CHECK_THAT(read_file(run + "/events.jsonl"), Catch::Matchers::Contains("removed stale step_00000006.safetensors.tmp."));
    resumed_from_3_bitwise(run, r);
  }
  SECTION("a checkpoint of another run (other seed) is refused unless the change is asked for") {
    const std::string run = stopped("foreign");
    const std::string other = dir.file("other");
    REQUIRE(cli(train + "--set train.steps=6 --set train.seed=12 --out " + other).exit_code == 0);
    fs::copy_file(other + "/ckpt/step_00000006.safetensors", run + "/ckpt/step_00000006.safetensors",
                  fs::copy_options::overwrite_existing);
    auto r = resume(run);
    INFO(r.output);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.output, Catch::Matchers::Contains("written by another run: train.seed 12 (checkpoint) vs 11 (this run)"));
    r = resume(run, "--set train.seed=12");  // deliberate: the run now is the checkpoint's
    CHECK(r.exit_code == 0);
    CHECK_THAT(read_file(run + "/config.yaml"), Catch::Matchers::Contains("train.seed=12"));
    // Changing a trajectory key on resume on purpose (a new LR) is allowed, and said so.
    r = cli("train --resume " + run + " --quiet --set train.steps=12 --set optim.lr=0.002");
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.output, Catch::Matchers::Contains("changed with --set: optim.lr 0.003 (checkpoint) vs 0.002 (this run)"));
  }
}

TEST_CASE("--out must name a usable directory; --set values are one YAML document", "[e2e][reliability]") {
  TempDir dir("rel-out");
  const std::string cfg = dir.write("tiny.yaml", tiny_run_yaml(2));
  auto r = cli("train " + cfg + " --quiet --out /dev/null");
  CHECK(r.exit_code == 2);  // was: exit 1, uncaught filesystem_error
  CHECK_THAT(r.output, Catch::Matchers::Contains("/dev/null exists and is not a directory"));
  r = cli("train " + cfg + " --quiet --out " + dir.file(std::string(300, 'n')));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("name too long"));
  r = cli("train " + cfg + " --quiet --out ''");
  CHECK(r.exit_code == 2);  // was: silently ./runs/...
  CHECK_THAT(r.output, Catch::Matchers::Contains("--out needs a value, got an empty string"));
  r = cli("train " + cfg + " --quiet --out " + dir.file("x") + " --set 'train.steps=2\n---\n3'");
  CHECK(r.exit_code == 2);  // was: silently the first document
  CHECK_THAT(r.output, Catch::Matchers::Contains("several YAML documents"));
  r = cli("train " + cfg + " --quiet --out " + dir.file("y") + " --set 'train.steps=!!float 2'");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Matchers::Contains("YAML tag '!!float'"));
}

TEST_CASE("a sink-token model trains with probes on (the probe batch is the data tokens)", "[e2e][reliability]") {
  TempDir dir("rel-sink");
  const std::string cfg = dir.write("tiny.yaml", tiny_run_yaml(3));
  const auto r = cli("train " + cfg + " --quiet --set model.sink_token=true --set instrument.probe_at_init=true "
                         "--out " + dir.file("run"));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(read_file(dir.file("run") + "/metrics.jsonl"), Catch::Matchers::Contains("\"probe_loss\""));
}

TEST_CASE("bench runs its cells without a shell: any path works, and a failed cell shows the child's exit code",
          "[e2e][reliability]") {
  TempDir dir("rel-bench");
  const std::string cfg = dir.write("tiny.yaml", tiny_run_yaml(4));
  const std::string quoted = dir.file("it's a \"file\" $(x).txt");  // was: sh: Unterminated quoted string
  write_bytes(quoted, std::string(8192, 'a'));
  const std::string small = dir.file("it's small.txt");
  write_bytes(small, "tiny");
  const std::string common = "bench " + cfg + " --repeats 1 --warmup 1 --threads 1 --set data.source=file --set model.vocab=256 ";
  auto ok = cli(common + "--set 'data.path=" + std::string(quoted).replace(quoted.find('\''), 1, "'\\''") + "'");
  INFO(ok.output);
  CHECK(ok.exit_code == 0);
  CHECK_THAT(ok.output, Catch::Matchers::Contains("| 1 | off |"));
  CHECK_THAT(ok.output, !Catch::Matchers::Contains("failed"));
  auto bad = cli(common + "--set 'data.path=" + std::string(small).replace(small.find('\''), 1, "'\\''") + "'");
  INFO(bad.output);
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.output, Catch::Matchers::Contains("failed (exit 2: attnlab: data error:"));  // was: exit 512
}

TEST_CASE("a run directory in use by a live process is not resumed a second time", "[e2e][reliability]") {
  TempDir dir("rel-lock");
  const std::string cfg = dir.write("long.yaml", tiny_run_yaml(100000));
  const std::string run = dir.file("run");
  const auto started = run_command(attnlab_binary() + " train " + cfg + " --quiet --set train.checkpoint_every=10 --out " +
                                   run + " > /dev/null 2>&1 & echo $!");
  const std::string pid = started.output.substr(0, started.output.find('\n'));
  for (int i = 0; i < 2000 && list_checkpoints(run).empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE(!list_checkpoints(run).empty());
  const auto second = cli("train --resume " + run + " --quiet");
  run_command("kill -9 " + pid);
  INFO(second.output);
  CHECK(second.exit_code == 2);
  CHECK_THAT(second.output, Catch::Matchers::Contains("is in use by another attnlab process"));
  // Once the first process is gone (however it died), the lock is free again.
  for (int i = 0; i < 400 && run_command("kill -0 " + pid).exit_code == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto third = cli("train --resume " + run + " --quiet --set train.steps=" +
                         std::to_string(list_checkpoints(run).front().first + 2));
  INFO(third.output);
  CHECK(third.exit_code == 0);
}
