#include "train/run.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "model/dnnl_context.h"
#include "train/checkpoint.h"
#include "train/config/config.h"
#include "train/data.h"
#include "train/formats/flight.h"
#include "train/formats/run_files.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace attnlab {

namespace {

std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) { g_signal.store(sig); }

std::string default_run_dir(const std::string& config_path) {
  const std::time_t t = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&t));
  return "runs/" + fs::path(config_path).stem().string() + "-" + stamp;
}

std::string format_eta(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = long(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%ld:%02ld", s / 60, s % 60);
  }
  return buf;
}

std::string format_rate(double tok_s) {
  char buf[32];
  if (tok_s >= 1e6) std::snprintf(buf, sizeof(buf), "%.2fM", tok_s / 1e6);
  else if (tok_s >= 1e3) std::snprintf(buf, sizeof(buf), "%.1fk", tok_s / 1e3);
  else std::snprintf(buf, sizeof(buf), "%.0f", tok_s);
  return buf;
}

// A resumed run must train on the bytes it started with: run.json records the data file's SHA-256.
void check_same_data(const std::string& run_dir, const Dataset& data) {
  const Dataset::FileInfo fi = data.file_info();
  if (fi.path.empty()) return;
  std::ifstream in(run_dir + "/run.json");
  std::stringstream text;
  text << in.rdbuf();
  const std::string s = text.str(), key = "\"sha256\": \"";
  const size_t at = s.find(key);
  if (at == std::string::npos) return;  // a run directory from before run.json recorded the data
  const std::string recorded = s.substr(at + key.size(), 64);
  if (recorded != fi.sha256)
    throw IoError("--resume " + run_dir + ": the data changed since the run started: " + fi.path + " has SHA-256 " +
                  fi.sha256 + ", run.json records " + recorded);
}

}  // namespace

int run_train(const TrainCommand& cmd) {
  // 1. Everything that can be wrong with the input is checked before any work starts.
  const bool resuming = !cmd.resume_dir.empty();
  std::string run_dir = resuming ? cmd.resume_dir : (cmd.out_dir.empty() ? default_run_dir(cmd.config_path) : cmd.out_dir);
  std::string ckpt_path;
  RunConfig cfg;
  if (resuming) {
    if (!fs::is_directory(run_dir)) throw IoError("--resume " + run_dir + ": no such run directory");
    const std::string cfg_file = (fs::path(run_dir) / "config.yaml").string();
    if (!fs::exists(cfg_file)) throw IoError("--resume " + run_dir + ": no config.yaml in it (not a run directory?)");
    cfg = load_config(cfg_file, cmd.overrides);
    ckpt_path = latest_checkpoint(run_dir);
    if (ckpt_path.empty())
      throw IoError("--resume " + run_dir + ": no checkpoint in " + run_dir + "/ckpt (nothing to resume from)");
  } else {
    cfg = load_config(cmd.config_path, cmd.overrides);
    if (fs::exists(run_dir) && !fs::is_empty(run_dir))
      throw IoError("run directory " + run_dir + " already exists and is not empty; pick another --out, or continue "
                    "it with: attnlab train --resume " + run_dir);
  }
  const auto data = make_dataset(cfg.data, cfg.model, cfg.train.seed);

  const int threads = cfg.train.threads > 0 ? cfg.train.threads : omp_get_num_procs();
  omp_set_num_threads(threads);
  DnnlContext ctx;
  Trainer trainer(cfg, ctx, *data);
  RunFiles files(run_dir);

  // Instrumentation: reads the model at fixed points of the step; never changes what it computes.
  std::unique_ptr<Monitor> monitor;
  SafetensorsFlightRecorder flight((fs::path(run_dir) / "flight").string());
  if (cfg.instrument.enabled) {
    monitor = std::make_unique<Monitor>(cfg.instrument, trainer.model(), files);
    monitor->set_flight_recorder(&flight);
    std::vector<int32_t> in(size_t(cfg.train.batch) * cfg.model.seq_len), tg(in.size());
    trainer.probe_batch(in.data(), tg.data());
    monitor->set_probe_batch(in.data(), tg.data());
    trainer.set_monitor(monitor.get());
  }

  int64_t start_step = 0;
  if (resuming) {
    std::vector<double> monitor_state;
    start_step = load_checkpoint(ckpt_path, trainer.model(), &trainer.optim(), &monitor_state);
    if (monitor) {
      try {
        monitor->set_state(monitor_state);
      } catch (const std::invalid_argument& e) {
        throw IoError(ckpt_path + ": metadata 'monitor_state' is malformed: " + e.what());
      }
    }
    if (start_step > cfg.train.steps)
      throw IoError(ckpt_path + ": checkpoint is at step " + std::to_string(start_step) +
                    ", beyond train.steps=" + std::to_string(cfg.train.steps));
    check_same_data(run_dir, *data);
    trainer.set_next_step(start_step);
    files.truncate_after(start_step);  // metrics past the checkpoint belong to the lost future
    files.write_config(dump_config(cfg, cmd.overrides));
    files.event(start_step, "resume", "resumed from " + ckpt_path + " with " + std::to_string(threads) + " threads");
  } else {
    files.create();
    files.write_config(dump_config(cfg, cmd.overrides));
    const Dataset::FileInfo fi = data->file_info();
    files.write_run_info(cmd.argv, threads, trainer.model().n_params(), data->describe(), {fi.path, fi.bytes, fi.sha256});
  }

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  const bool tty = isatty(fileno(stderr)) && !cmd.quiet;
  if (!cmd.quiet)
    std::fprintf(stderr, "attnlab: %s | %lld params | %s | %d threads | run dir %s\n",
                 model_signature(cfg.model).c_str(), (long long)trainer.model().n_params(),
                 data->describe().c_str(), threads, run_dir.c_str());

  // The initial model (before any update) as step 0: at-initialisation measurements.
  if (monitor && cfg.instrument.probe_at_init && start_step == 0) monitor->probe(0, trainer.model());

  const auto t_start = std::chrono::steady_clock::now();
  auto t_last_print = t_start;
  double last_val = NAN, tok_s_ema = 0.0;
  std::string last_warning;
  int exit_code = 0;
  const int64_t tokens = trainer.tokens_per_step();
  int64_t step = start_step;
  while (step < cfg.train.steps) {
    const StepStats s = trainer.step();
    step = s.step + 1;  // steps completed
    const double tok_s = double(tokens) / s.seconds;
    tok_s_ema = tok_s_ema == 0.0 ? tok_s : 0.9 * tok_s_ema + 0.1 * tok_s;
    if (step % cfg.train.log_every == 0 || step == cfg.train.steps || !s.finite)
      files.metric_train(step, {s.loss, s.loss_ce, s.loss_z, cfg.model.z_loss > 0}, s.lr, s.grad_norm, s.clipped,
                         tok_s, s.seconds * 1e3);
    if (!s.finite) {
      std::ostringstream os;
      os << "non-finite " << (std::isfinite(s.loss) ? "gradient norm" : "loss") << " at step " << step
         << " (loss " << s.loss << ", grad norm " << s.grad_norm << "); update skipped, run stopped";
      if (!monitor) files.event(step, "nonfinite", os.str());  // the monitor has logged it, with a flight record
      std::fprintf(stderr, "%sattnlab: %s\n", tty ? "\n" : "", os.str().c_str());
      exit_code = 1;
      break;
    }
    if (monitor) {
      monitor->maybe_probe(step, trainer.model());
      for (const Event& e : monitor->take_new_events()) {
        last_warning = e.kind;
        if (e.layer >= 0) last_warning.append(" L").append(std::to_string(e.layer));
        if (e.head >= 0) last_warning.append("H").append(std::to_string(e.head));
        if (!cmd.quiet) std::fprintf(stderr, "%sattnlab: step %lld: %s\n", tty ? "\n" : "", (long long)step, e.message.c_str());
      }
    }
    if (cfg.train.eval_every > 0 && (step % cfg.train.eval_every == 0 || step == cfg.train.steps)) {
      const LossParts v = trainer.evaluate();
      last_val = v.loss;
      files.metric_eval(step, {v.loss, v.loss_ce, v.loss_z, cfg.model.z_loss > 0});
    }
    const bool interrupted = g_signal.load() != 0;
    const bool stop = monitor && monitor->stop_requested();
    if ((cfg.train.checkpoint_every > 0 && step % cfg.train.checkpoint_every == 0) || step == cfg.train.steps ||
        interrupted || stop) {
      const std::vector<double> mstate = monitor ? monitor->state() : std::vector<double>();
      save_checkpoint(files.checkpoint_path(step), trainer.model(), trainer.optim(), step, cfg,
                      monitor ? &mstate : nullptr);
    }
    const auto now = std::chrono::steady_clock::now();
    if (!cmd.quiet && (tty ? std::chrono::duration<double>(now - t_last_print).count() > 0.1
                           : std::chrono::duration<double>(now - t_last_print).count() > 5.0 ||
                                 step == cfg.train.steps)) {
      t_last_print = now;
      char line[256];
      std::snprintf(line, sizeof(line), "step %lld/%lld | loss %.4f | val %s | lr %.2e | %s tok/s | ETA %s%s%s",
                    (long long)step, (long long)cfg.train.steps, s.loss,
                    std::isnan(last_val) ? "-" : std::to_string(last_val).substr(0, 6).c_str(), s.lr,
                    format_rate(tok_s_ema).c_str(),
                    format_eta(double(cfg.train.steps - step) * tokens / tok_s_ema).c_str(),
                    last_warning.empty() ? "" : " | warn ", last_warning.c_str());
      std::fprintf(stderr, tty ? "\r%-100s" : "%s\n", line);
    }
    if (stop) {
      const std::string msg = "stopped after a spike at step " + std::to_string(step) +
                              " (instrument.on_spike: stop); flight record and checkpoint saved in " + run_dir;
      files.event(step, "stopped", msg);
      std::fprintf(stderr, "%sattnlab: %s\n", tty ? "\n" : "", msg.c_str());
      exit_code = 1;
      break;
    }
    if (interrupted) {
      const std::string msg = "interrupted by signal " + std::to_string(g_signal.load()) + " after step " +
                              std::to_string(step) + "; checkpoint saved; continue with: attnlab train --resume " +
                              run_dir;
      files.event(step, "interrupted", msg);
      std::fprintf(stderr, "%sattnlab: %s\n", tty ? "\n" : "", msg.c_str());
      exit_code = 130;
      break;
    }
  }
  if (tty) std::fprintf(stderr, "\n");
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  files.write_summary(cfg, step, wall, double(step - start_step) * tokens / std::max(wall, 1e-9));
  files.flush();
  if (!cmd.quiet && exit_code == 0)
    std::fprintf(stderr, "attnlab: done, %lld steps in %.1f s; run directory %s\n", (long long)(step - start_step),
                 wall, run_dir.c_str());
  return exit_code;
}

}  // namespace attnlab
