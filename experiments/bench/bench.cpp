#include "experiments/bench/bench.h"

#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>
#include <unistd.h>

#include "model/dnnl_context.h"
#include "model/matmul.h"
#include "train/formats/run_files.h"
#include "train/formats/safetensors.h"
#include "train/process.h"
#include "train/trainer.h"

namespace attnlab {

RunConfig bench_preset(const std::string& name) {
  RunConfig c;
  c.model.mlp = MlpKind::kSwiGLU;
  c.model.mlp_hidden = 0;  // 4d
  c.model.pos = PosEncoding::kRope;
  c.model.tied_head = false;
  c.data.source = DataSource::kUniform;
  c.optim.lr = 1e-3f;
  c.optim.weight_decay = 0.1f;
  c.optim.grad_clip = 1.0f;
  c.schedule.kind = ScheduleKind::kConstant;
  c.schedule.warmup = 0;
  c.train.eval_every = 0;
  struct P { const char* name; int vocab, d, L, H, T, B; };
  static const P presets[] = {{"A", 256, 64, 2, 4, 64, 16},
                              {"B", 256, 128, 4, 4, 128, 16},
                              {"C", 4096, 256, 6, 8, 256, 8},
                              {"D", 8192, 512, 8, 8, 256, 8}};
  for (const P& p : presets) {
    if (name == p.name) {
      c.model.vocab = p.vocab;
      c.model.d_model = p.d;
      c.model.n_layer = p.L;
      c.model.n_head = p.H;
      c.model.seq_len = p.T;
      c.train.batch = p.B;
      return c;
    }
  }
  throw ConfigError("bench: unknown preset '" + name + "' (presets: A, B, C, D)");
}

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

// Achieved rate of one 1024³ oneDNN sgemm with the current thread count (median of 7), in GFLOP/s.
double sgemm_rate(DnnlContext& ctx) {
  const int64_t n = 1024;
  std::vector<float> a(size_t(n * n), 0.5f), b(size_t(n * n), 0.25f), c(size_t(n * n));
  Gemm g(ctx, gemm_desc_2d(n, n, n, false, n, false, n, n));
  g.run(a.data(), b.data(), c.data());
  std::vector<double> t;
  for (int i = 0; i < 7; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    g.run(a.data(), b.data(), c.data());
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * double(n * n * n) / median(t) / 1e9;
}

int default_steps(const RunConfig& c) {
  const double tokens = double(c.train.batch) * c.model.seq_len;
  const double flops = tokens * 6.0 * double(c.model.n_layer) * 12.0 * c.model.d_model * c.model.d_model;
  return std::clamp(int(2e10 / std::max(flops, 1.0)), 2, 50);  // about 0.1-1 s per repeat here
}

int run_cell(const BenchCommand& cmd, const std::string& label, RunConfig cfg, int threads, const std::string& mode) {
  omp_set_num_threads(threads);
  if (mode == "off") {
    cfg.instrument.enabled = false;
  } else if (mode == "default") {
    cfg.instrument.enabled = true;
    cfg.instrument.dense_until = 0;  // steady state: the timed steps are early in the run
  } else if (mode == "all") {
    cfg.instrument.enabled = true;
    cfg.instrument.probe_every = 1;
    cfg.instrument.step_every = 1;
  } else {
    throw ConfigError("bench: unknown --instrument mode '" + mode + "' (off, default, all)");
  }
  cfg.train.threads = threads;
  const int steps = cmd.steps > 0 ? cmd.steps : default_steps(cfg);
  cfg.train.steps = int64_t(cmd.warmup) + int64_t(steps) * cmd.repeats;
  Comm* comm = cmd.comm && cmd.comm->size() > 1 ? cmd.comm : nullptr;
  const int ranks = comm ? comm->size() : 1;
  const bool root = !comm || comm->rank() == 0;
  DnnlContext ctx;
  double gemm = sgemm_rate(ctx);
  if (comm) comm->allreduce_sum(&gemm, 1);  // the ranks' rates, measured at once: the job's sgemm rate
  const auto data = make_dataset(cfg.data, cfg.model, cfg.train.seed);
  const RunConfig rank_cfg = rank_config(cfg, ranks);
  Trainer trainer(rank_cfg, ctx, *data, comm);
  // With instrumentation, metrics go to a real run directory (in /tmp, removed afterwards) so the timing
  // includes formatting and writing them.
  std::unique_ptr<RunFiles> files;
  std::unique_ptr<Monitor> monitor;
  std::string tmp;
  if (cfg.instrument.enabled && root) {
    char tmpl[] = "/tmp/attnlab-bench-XXXXXX";
    if (!mkdtemp(tmpl)) throw IoError("bench: cannot create a temporary directory in /tmp");
    tmp = tmpl;
    files = std::make_unique<RunFiles>(tmp);
    files->create();
    monitor = std::make_unique<Monitor>(cfg.instrument, trainer.model(), *files);
    std::vector<int32_t> in(size_t(rank_cfg.train.batch) * cfg.model.seq_len), tg(in.size());
    trainer.probe_batch(in.data(), tg.data());
    monitor->set_probe_batch(in.data(), tg.data());
    trainer.set_monitor(monitor.get());
  }
  auto one_step = [&] {
    const StepStats s = trainer.step();
    if (monitor) monitor->maybe_probe(s.step + 1, trainer.model());
  };
  for (int i = 0; i < cmd.warmup; ++i) one_step();
  const CommStats before = comm ? comm->stats() : CommStats{};
  std::vector<double> ms;
  for (int r = 0; r < cmd.repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) one_step();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / steps);
  }
  const CommStats after = comm ? comm->stats() : CommStats{};
  const double timed = double(steps) * cmd.repeats;
  const double comm_bytes = double(after.allreduce_bytes - before.allreduce_bytes) / timed;
  const double comm_calls = double(after.allreduces - before.allreduces) / timed;
  if (!root) {
    if (!tmp.empty()) files.reset(), std::filesystem::remove_all(tmp);
    return 0;
  }
  const double ms_step = median(ms);
  const double tok_s = double(trainer.tokens_per_step()) / (ms_step / 1e3);
  const double gflops = trainer.model().flops_per_token() * tok_s / 1e9;
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const double rss_mb = double(ru.ru_maxrss) / 1024.0;
  std::ostringstream reps;
  for (size_t i = 0; i < ms.size(); ++i) reps << (i ? "," : "") << ms[i];
  if (!tmp.empty()) {
    files.reset();
    std::filesystem::remove_all(tmp);
  }
  std::printf("{\"impl\":\"attnlab\",\"preset\":\"%s\",\"threads\":%d,\"ranks\":%d,\"instrument\":\"%s\","
              "\"tokens_per_s\":%.1f,\"ms_per_step\":%.4f,"
              "\"gflops\":%.2f,\"sgemm_gflops\":%.2f,\"mfu\":%.4f,\"peak_rss_mb\":%.1f,\"steps\":%d,"
              "\"comm_bytes_per_step\":%.0f,\"allreduces_per_step\":%.2f,\"repeat_ms\":[%s]}\n",
              label.c_str(), threads, ranks, mode.c_str(), tok_s, ms_step, gflops, gemm, gflops / gemm, rss_mb, steps,
              comm_bytes, comm_calls, reps.str().c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace

int run_bench(const BenchCommand& cmd) {
  std::vector<std::pair<std::string, RunConfig>> cells;
  if (!cmd.config_path.empty()) {
    cells.push_back({cmd.config_path, load_config(cmd.config_path, cmd.overrides)});
  } else {
    for (const std::string& p : cmd.presets) cells.push_back({p, bench_preset(p)});
  }
  if (cmd.json) {
    for (auto& [label, cfg] : cells)
      for (int t : cmd.threads)
        for (const auto& mode : cmd.instrument) run_cell(cmd, label, cfg, t, mode);
    return 0;
  }
  // Table mode: one child process per cell, so every peak RSS and thread pool is its own.
  const bool show_ranks = cmd.ranks.size() > 1 || cmd.ranks[0] != 1;
  std::string mpirun;
  if (show_ranks) {
    for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"})
      if (access((std::string(dir) + "/mpirun").c_str(), X_OK) == 0) {
        mpirun = std::string(dir) + "/mpirun";
        break;
      }
    for (int r : cmd.ranks)
      if (r > 1 && mpirun.empty())
        throw IoError("bench: --ranks " + std::to_string(r) + " needs mpirun (Debian: openmpi-bin libopenmpi-dev)");
  }
  if (show_ranks)
    std::printf("| config | ranks | threads | instrument | tokens/s | ms/step | GFLOP/s | sgemm GFLOP/s | MFU | peak RSS (MB) "
                "| allreduce/step |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
  else
    std::printf("| config | threads | instrument | tokens/s | ms/step | GFLOP/s | sgemm GFLOP/s | MFU | peak RSS (MB) |\n"
                "|---|---|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);
  int status = 0;
  for (auto& [label, cfg] : cells) {
    for (int r : cmd.ranks) for (int t : cmd.threads) for (const auto& mode : cmd.instrument) {
      // The child gets its arguments as they are (fork/exec, no shell): any character in a path or a --set
      // value is safe, and the exit code reported is the child's own.
      std::vector<std::string> args;
      if (r > 1) {
        args = {mpirun, "-np", std::to_string(r), "--oversubscribe", "--bind-to", "none"};
        if (geteuid() == 0) args.push_back("--allow-run-as-root");  // Open MPI refuses root otherwise
        if (cmd.mpi_tcp) args.insert(args.end(), {"--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo"});
      }
      args.insert(args.end(), {cmd.self_exe, "bench", "--json", "--threads", std::to_string(t), "--instrument",
                               mode, "--warmup", std::to_string(cmd.warmup), "--repeats", std::to_string(cmd.repeats)});
      if (cmd.steps > 0) args.insert(args.end(), {"--steps", std::to_string(cmd.steps)});
      if (!cmd.config_path.empty()) {
        args.push_back(cmd.config_path);
        for (const auto& o : cmd.overrides) args.insert(args.end(), {"--set", o});
      } else {
        args.insert(args.end(), {"--preset", label});
      }
      const ProcessResult child = run_process(args);
      std::string line;  // the JSON record among the child's output
      for (size_t pos = 0; pos < child.output.size();) {
        const size_t nl = std::min(child.output.find('\n', pos), child.output.size());
        const std::string l = child.output.substr(pos, nl - pos);
        if (l.rfind("{", 0) == 0 && l.find("\"tokens_per_s\":") != std::string::npos) line = l;
        pos = nl + 1;
      }
      double tok = 0, ms = 0, gf = 0, sg = 0, mfu = 0, rss = 0, cb = 0, cn = 0;
      auto field = [&](const char* key, double* out) {
        const size_t at = line.find(key);
        if (at != std::string::npos) *out = std::atof(line.c_str() + at + std::strlen(key));
      };
      if (child.exit_code != 0 || line.empty()) {
        std::string why = child.output;
        while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
        why = why.substr(why.rfind('\n') == std::string::npos ? 0 : why.rfind('\n') + 1);
        if (show_ranks)
          std::printf("| %s | %d | %d | %s | failed (exit %d: %s) | | | | | | |\n", label.c_str(), r, t, mode.c_str(),
                      child.exit_code, why.c_str());
        else
          std::printf("| %s | %d | %s | failed (exit %d: %s) | | | | | |\n", label.c_str(), t, mode.c_str(),
                      child.exit_code, why.c_str());
        status = 1;
        continue;
      }
      field("\"tokens_per_s\":", &tok);
      field("\"ms_per_step\":", &ms);
      field("\"gflops\":", &gf);
      field("\"sgemm_gflops\":", &sg);
      field("\"mfu\":", &mfu);
      field("\"peak_rss_mb\":", &rss);
      field("\"comm_bytes_per_step\":", &cb);
      field("\"allreduces_per_step\":", &cn);
      if (show_ranks) {
        char comm_text[64] = "-";
        if (r > 1) std::snprintf(comm_text, sizeof(comm_text), "%.0f x, %.3f MB", cn, cb / 1e6);
        std::printf("| %s | %d | %d | %s | %.0f | %.2f | %.1f | %.1f | %.1f%% | %.0f | %s |\n", label.c_str(), r, t,
                    mode.c_str(), tok, ms, gf, sg, 100.0 * mfu, rss, comm_text);
        std::fflush(stdout);
        continue;
      }
      std::printf("| %s | %d | %s | %.0f | %.2f | %.1f | %.1f | %.1f%% | %.0f |\n", label.c_str(), t, mode.c_str(), tok,
                  ms, gf, sg, 100.0 * mfu, rss);
      std::fflush(stdout);
    }
  }
  return status;
}

}  // namespace attnlab
