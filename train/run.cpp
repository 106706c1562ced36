#include "train/run.h"

#include <fcntl.h>
#include <omp.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include <zlib.h>

#include "model/dnnl_context.h"
#include "train/checkpoint.h"
#include "train/config/config.h"
#include "train/data.h"
#include "train/formats/flight.h"
#include "train/formats/json.h"
#include "train/formats/run_files.h"
#include "train/recall_eval.h"
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
  if (!in) return;  // nothing recorded to compare with
  std::stringstream text;
  text << in.rdbuf();
  const Json info = json_parse(text.str(), run_dir + "/run.json");
  const Json* file = info.contains("data_file") ? &info.at("data_file") : nullptr;
  // A run directory from before run.json recorded the data has no sha256.
  if (file == nullptr || !file->is_object() || !file->contains("sha256") || !file->at("sha256").is_string()) return;
  const std::string recorded = file->at("sha256").get<std::string>();
  if (recorded != fi.sha256)
    throw IoError("--resume " + run_dir + ": the data changed since the run started: " + fi.path + " has SHA-256 " +
                  fi.sha256 + ", run.json records " + recorded);
}

// --out: a new or empty directory. Anything else (a file, /dev/null, a name the file system refuses) is
// an input error before any work, never an uncaught file-system exception.
void check_new_run_dir(const std::string& dir) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory)
    throw IoError("run directory " + dir + ": " + ec.message() + "; pick another --out");
  if (!fs::exists(st)) return;  // created once the run starts
  if (!fs::is_directory(st)) throw IoError("run directory " + dir + " exists and is not a directory; pick another --out");
  bool empty = true;  // a lone .lock is what a run killed before writing anything leaves
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename() != ".lock") empty = false;
  if (ec) throw IoError("run directory " + dir + ": " + ec.message() + "; pick another --out");
  if (!empty)
    throw IoError("run directory " + dir + " already exists and is not empty; pick another --out, or continue "
                  "it with: attnlab train --resume " + dir);
}

// ckpt/step_N.safetensors.tmp.PID files are checkpoint writes that were killed. Called with the run lock
// held, so no live process is writing any of them. Returns what was removed (for the resume event).
std::vector<std::string> remove_stale_temporaries(const std::string& run_dir) {
  static const std::regex tmp_re("step_[0-9]+\\.safetensors\\.tmp\\.[0-9]+");
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(run_dir) / "ckpt", ec)) {
    const std::string name = e.path().filename().string();
    if (!std::regex_match(name, tmp_re)) continue;
    std::error_code rec;
    fs::remove(e.path(), rec);
    if (!rec) removed.push_back(name);
  }
  return removed;
}

// Keys that define a run's trajectory; a checkpoint written with other values of these belongs to
// another run. train.steps (extending a run), threads, cadences and instrumentation may change on resume.
bool identity_key(const std::string& path) {
  for (const char* p : {"model.", "data.", "optim.", "schedule."})
    if (path.rfind(p, 0) == 0) return true;
  return path == "train.seed" || path == "train.batch" || path == "train.accum";
}

// Refuses a checkpoint whose recorded config differs from this run's in an identity key that this command
// did not change on purpose with --set. Returns notes for the keys that --set did change.
std::vector<std::string> check_same_run(const std::string& ckpt_path, const std::string& config_text,
                                        const RunConfig& cfg, const std::vector<std::string>& overrides) {
  std::vector<std::string> notes;
  if (config_text.empty()) return notes;  // a checkpoint from before configs were recorded
  RunConfig theirs;
  try {
    theirs = parse_config(config_text, ckpt_path + " (metadata 'config')");
  } catch (const ConfigError& e) {
    notes.push_back(std::string("its recorded config could not be compared: ") + e.what());
    return notes;
  }
  std::set<std::string> set_now;
  for (const auto& ov : overrides) set_now.insert(ov.substr(0, ov.find('=')));
  std::string foreign;
  for (const ConfigDifference& d : config_differences(theirs, cfg)) {
    if (!identity_key(d.path)) continue;
    const std::string text = d.path + " " + d.a + " (checkpoint) vs " + d.b + " (this run)";
    if (set_now.count(d.path)) notes.push_back("changed with --set: " + text);
    else foreign += (foreign.empty() ? "" : "; ") + text;
  }
  if (!foreign.empty())
    throw IoError(ckpt_path + ": written by another run: " + foreign +
                  ". To continue from it anyway, resume with --set for each of these keys");
  return notes;
}

// One process trains in a run directory at a time: an exclusive flock on RUN_DIR/.lock, held until exit
// (the kernel drops it when the process dies, however it dies). A second `train --resume` of the same
// directory — a sweep restarted while its killed predecessor's runs still checkpoint — is refused.
class RunLock {
 public:
  explicit RunLock(const std::string& run_dir) {
    std::error_code ec;
    fs::create_directories(run_dir, ec);
    if (ec) throw IoError("run directory " + run_dir + ": cannot create it: " + ec.message());
    const std::string path = (fs::path(run_dir) / ".lock").string();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw IoError(path + ": cannot open the run lock: " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      throw IoError("run directory " + run_dir + " is in use by another attnlab process (" + path + " is locked)");
    }
  }
  ~RunLock() { ::close(fd_); }
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// The ranks apply the same update to the same parameters, so their copies stay bitwise equal; checked at
// every checkpoint (CRC-32 of the parameters, min and max over the ranks), so a replica that drifted —
// a bug, or a host whose arithmetic differs — is caught instead of checkpointing one rank's view.
void check_replicas(Comm& comm, Trainer& trainer, int64_t step) {
  const auto* bytes = reinterpret_cast<const Bytef*>(trainer.model().params());
  uLong crc = crc32(0L, Z_NULL, 0);
  const int64_t n = trainer.model().n_params() * int64_t(sizeof(float));
  for (int64_t off = 0; off < n; off += int64_t(1) << 30)
    crc = crc32(crc, bytes + off, uInt(std::min<int64_t>(n - off, int64_t(1) << 30)));
  int64_t c[2] = {int64_t(crc), -int64_t(crc)};
  comm.allreduce_max(c, 2);
  if (c[0] != -c[1])
    throw std::runtime_error("after step " + std::to_string(step) + " the MPI ranks' parameters differ (CRC-32 " +
                             std::to_string(-c[1]) + " .. " + std::to_string(c[0]) +
                             "): the replicas diverged; no checkpoint written");
}

}  // namespace

int run_train(const TrainCommand& cmd, Comm* comm_arg) {
  Comm* comm = comm_arg && comm_arg->size() > 1 ? comm_arg : nullptr;
  const int ranks = comm ? comm->size() : 1;
  const bool root = !comm || comm->rank() == 0;
  // Setup hand-shakes: each rank says whether its part worked; 0 = all did, else 1 + the highest failed rank.
  auto all_ok = [&](bool ok) -> int64_t {
    if (!comm) return ok ? 0 : 1;
    int64_t f = ok ? 0 : 1 + comm->rank();
    comm->allreduce_max(&f, 1);
    return f;
  };

  // 1. Everything that can be wrong with the input is checked before any work starts (rank 0).
  const bool resuming = !cmd.resume_dir.empty();
  std::string run_dir = resuming ? cmd.resume_dir : (cmd.out_dir.empty() ? default_run_dir(cmd.config_path) : cmd.out_dir);
  std::string ckpt_path;
  RunConfig cfg;
  std::vector<std::string> removed_temporaries;
  std::optional<RunLock> lock;
  std::unique_ptr<Dataset> data;
  try {
    if (root) {
      if (resuming) {
        std::error_code ec;
        if (!fs::is_directory(run_dir, ec)) throw IoError("--resume " + run_dir + ": no such run directory");
        const std::string cfg_file = (fs::path(run_dir) / "config.yaml").string();
        if (!fs::exists(cfg_file, ec)) throw IoError("--resume " + run_dir + ": no config.yaml in it (not a run directory?)");
        cfg = load_config(cfg_file, cmd.overrides);
        if (list_checkpoints(run_dir).empty())
          throw IoError("--resume " + run_dir + ": no checkpoint in " + run_dir + "/ckpt (nothing to resume from)");
      } else {
        cfg = load_config(cmd.config_path, cmd.overrides);
        check_new_run_dir(run_dir);
      }
      (void)rank_config(cfg, ranks);  // train.batch must split over the ranks
      lock.emplace(run_dir);
      if (resuming) removed_temporaries = remove_stale_temporaries(run_dir);
      data = make_dataset(cfg.data, cfg.model, cfg.train.seed);
    }
  } catch (...) {
    all_ok(false);
    throw;
  }
  if (all_ok(true) != 0) return 2;  // rank 0 failed and says why

  // 2. The other ranks get the resolved config from rank 0 and build the same dataset and model.
  bool ok = true;
  if (comm) {
    std::string text = root ? dump_config(cfg, cmd.overrides) : std::string();
    std::string sha = root ? data->file_info().sha256 : std::string();
    broadcast_string(*comm, text, 0);
    broadcast_string(*comm, sha, 0);
    if (!root) {
      try {
        cfg = parse_config(text, "the config sent by rank 0");
        data = make_dataset(cfg.data, cfg.model, cfg.train.seed);
        if (data->file_info().sha256 != sha)
          throw DataError(data->file_info().path + " differs on this rank from rank 0's (SHA-256 " +
                          data->file_info().sha256 + " vs " + sha + "): every host needs the same data file");
      } catch (const std::exception& e) {
        std::fprintf(stderr, "attnlab: rank %d: %s\n", comm->rank(), e.what());
        ok = false;
      }
    }
  }
  const RunConfig rank_cfg = rank_config(cfg, ranks);  // == cfg in one process

  const int threads = cfg.train.threads > 0 ? cfg.train.threads : omp_get_num_procs();
  omp_set_num_threads(threads);
  DnnlContext ctx;
  std::optional<Trainer> trainer_slot;
  std::optional<RunFiles> files_slot;
  // Instrumentation: reads the model at fixed points of the step; never changes what it computes. On rank 0
  // only: it sees the summed gradients, the same as one process would.
  std::unique_ptr<Monitor> monitor;
  std::optional<SafetensorsFlightRecorder> flight;
  // train.recall_eval: dependency metrics at the training window and, with recall_eval_len, beyond it.
  std::vector<std::unique_ptr<RecallEval>> recall;
  int64_t start_step = 0;
  try {
    if (ok) trainer_slot.emplace(rank_cfg, ctx, *data, comm);
    if (root) {
      Trainer& trainer = *trainer_slot;
      files_slot.emplace(run_dir);
      RunFiles& files = *files_slot;
      flight.emplace((fs::path(run_dir) / "flight").string(), cfg.instrument.flight_contents, cfg.instrument.flight_seqs);
      if (cfg.train.recall_eval) {
        recall.push_back(std::make_unique<RecallEval>(cfg, cfg.model.seq_len, ctx));
        if (cfg.train.recall_eval_len > 0)
          recall.push_back(std::make_unique<RecallEval>(cfg, cfg.train.recall_eval_len, ctx));
      }
      if (cfg.instrument.enabled) {
        monitor = std::make_unique<Monitor>(cfg.instrument, trainer.model(), files);
        monitor->set_flight_recorder(&*flight);
        std::vector<int32_t> in(size_t(rank_cfg.train.batch) * cfg.model.seq_len), tg(in.size());
        trainer.probe_batch(in.data(), tg.data());
        monitor->set_probe_batch(in.data(), tg.data());
        trainer.set_monitor(monitor.get());
      }
      if (resuming) {
        // The newest checkpoint that loads; those that do not (truncated, corrupt, a FIFO, a step that does
        // not match the file name) are named and left in place untouched, and the run continues from the one
        // before (a later save at that step replaces the damaged file atomically).
        std::vector<double> monitor_state;
        std::string config_text;
        std::vector<std::string> skipped;
        int ckpt_ranks = 1;
        for (const auto& [named_step, path] : list_checkpoints(run_dir)) {
          try {
            const int64_t s = load_checkpoint(path, trainer.model(), &trainer.optim(), &monitor_state, &config_text,
                                              &ckpt_ranks);
            if (s != named_step)
              throw IoError(path + ": metadata 'step' is " + std::to_string(s) + " but the file name says step " +
                            std::to_string(named_step));
            if (monitor && !monitor_state.empty()) {
              try {
                monitor->set_state(monitor_state);
              } catch (const std::invalid_argument& e) {
                throw IoError(path + ": metadata 'monitor_state' is malformed: " + e.what());
              }
            }
            start_step = s;
            ckpt_path = path;
            break;
          } catch (const IoError& e) {
            skipped.push_back(e.what());
          }
        }
        if (ckpt_path.empty()) {
          std::string all;
          for (const auto& s : skipped) all += "\n  " + s;
          throw IoError("--resume " + run_dir + ": no checkpoint in " + run_dir + "/ckpt can be resumed from:" + all);
        }
        if (ckpt_ranks != ranks)
          throw IoError(ckpt_path + ": written by a run on " + std::to_string(ckpt_ranks) + " MPI rank" +
                        (ckpt_ranks == 1 ? "" : "s") + ", this one has " + std::to_string(ranks) +
                        ": train.batch is split into one micro-batch per rank, so resume it with " +
                        (ckpt_ranks == 1 ? std::string("one process (no mpirun)")
                                         : "mpirun -np " + std::to_string(ckpt_ranks)));
        for (const auto& s : skipped)
          std::fprintf(stderr, "attnlab: skipped a checkpoint that cannot be loaded (left in place): %s\n", s.c_str());
        const std::vector<std::string> notes = check_same_run(ckpt_path, config_text, cfg, cmd.overrides);
        for (const auto& n : notes) std::fprintf(stderr, "attnlab: %s: %s\n", ckpt_path.c_str(), n.c_str());
        if (monitor && monitor_state.empty() && !cmd.quiet)
          std::fprintf(stderr, "attnlab: %s carries no instrumentation state (written with instrument.enabled: false); "
                       "the spike detectors start empty\n", ckpt_path.c_str());
        if (start_step > cfg.train.steps)
          throw IoError(ckpt_path + ": checkpoint is at step " + std::to_string(start_step) +
                        ", beyond train.steps=" + std::to_string(cfg.train.steps));
        check_same_data(run_dir, *data);
        trainer.set_next_step(start_step);
        files.truncate_after(start_step);  // metrics past the checkpoint belong to the lost future
        files.write_config(dump_config(cfg, cmd.overrides));
        std::string what = "resumed from " + ckpt_path + " with " + std::to_string(threads) + " threads";
        if (comm) what += " x " + std::to_string(ranks) + " MPI ranks";
        for (const auto& s : skipped) what += "; skipped " + s;
        for (const auto& n : removed_temporaries) what += "; removed stale " + n;
        files.event(start_step, "resume", what);
      } else {
        files.create();
        files.write_config(dump_config(cfg, cmd.overrides));
        const Dataset::FileInfo fi = data->file_info();
        files.write_run_info(cmd.argv, threads, trainer.model().n_params(), data->describe(),
                             {fi.path, fi.bytes, fi.sha256}, trainer.model().param_table(), ranks);
      }
    }
  } catch (...) {
    if (!root) {  // a rank other than 0 that cannot build the model: say so, and let rank 0 stop the run
      try {
        throw;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "attnlab: rank %d: %s\n", comm->rank(), e.what());
      } catch (...) {
        std::fprintf(stderr, "attnlab: rank %d: unknown error while setting up\n", comm->rank());
      }
      all_ok(false);
      return 2;
    }
    all_ok(false);
    throw;
  }
  if (const int64_t f = all_ok(ok); f != 0) {
    if (!root) return 2;
    throw IoError("MPI rank " + std::to_string(f - 1) + " could not start the run (its message is above)");
  }
  Trainer& trainer = *trainer_slot;
  if (comm) {
    // Rank 0's state, whether initialised or resumed, is every rank's: the step, parameters, AdamW moments.
    const int64_t n = trainer.model().n_params();
    comm->broadcast(&start_step, sizeof(start_step), 0);
    comm->broadcast(trainer.model().params(), n * int64_t(sizeof(float)), 0);
    comm->broadcast(trainer.optim().m(), n * int64_t(sizeof(float)), 0);
    comm->broadcast(trainer.optim().v(), n * int64_t(sizeof(float)), 0);
    trainer.set_next_step(start_step);
  }
  RunFiles* files = root ? &*files_slot : nullptr;  // rank 0 writes the run directory
  const bool quiet = cmd.quiet || !root;

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  const bool tty = isatty(fileno(stderr)) && !quiet;
  if (!quiet) {
    const std::string par = comm ? " x " + std::to_string(ranks) + " MPI ranks" : "";
    std::fprintf(stderr, "attnlab: %s | %lld params | %s | %d threads%s | run dir %s\n",
                 model_signature(cfg.model).c_str(), (long long)trainer.model().n_params(),
                 data->describe().c_str(), threads, par.c_str(), run_dir.c_str());
    if (comm)
      std::fprintf(stderr, "attnlab: data parallel: %s; per step %d micro-batch(es) of %d rows per rank, one "
                   "allreduce of the %lld gradients (%.2f MB) and two of a few bytes\n",
                   comm->describe().c_str(), cfg.train.accum, rank_cfg.train.batch,
                   (long long)trainer.model().n_params(), trainer.model().n_params() * 4.0 / 1e6);
  }

  // After the setup every rank computes; one that fails alone (a full disk on rank 0, a lost host) would
  // leave the others waiting in the next collective, so under MPI a failure ends the whole job.
  try {
    // The initial model (before any update) as step 0: at-initialisation measurements.
    if (monitor && cfg.instrument.probe_at_init && start_step == 0) monitor->probe(0, trainer.model());
    if (start_step == 0)
      for (auto& r : recall) r->run(trainer.model(), 0, *files);  // the initial model: chance level

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
      if (files && (step % cfg.train.log_every == 0 || step == cfg.train.steps || !s.finite))
        files->metric_train(step, {s.loss, s.loss_ce, s.loss_z, cfg.model.z_loss > 0}, s.lr, s.grad_norm, s.clipped,
                           tok_s, s.seconds * 1e3);
      if (!s.finite) {
        std::ostringstream os;
        os << "non-finite " << (std::isfinite(s.loss) ? "gradient norm" : "loss") << " at step " << step
           << " (loss " << s.loss << ", grad norm " << s.grad_norm << "); update skipped, run stopped";
        if (files && !monitor) files->event(step, "nonfinite", os.str());  // the monitor logged it, with a flight record
        if (root) std::fprintf(stderr, "%sattnlab: %s\n", tty ? "\n" : "", os.str().c_str());
        exit_code = 1;
        break;
      }
      if (monitor) {
        monitor->maybe_probe(step, trainer.model());
        for (const Event& e : monitor->take_new_events()) {
          last_warning = e.kind;
          if (e.layer >= 0) last_warning.append(" L").append(std::to_string(e.layer));
          if (e.head >= 0) last_warning.append("H").append(std::to_string(e.head));
          if (!quiet) std::fprintf(stderr, "%sattnlab: step %lld: %s\n", tty ? "\n" : "", (long long)step, e.message.c_str());
        }
      }
      if (cfg.train.eval_every > 0 && (step % cfg.train.eval_every == 0 || step == cfg.train.steps)) {
        const LossParts v = trainer.evaluate();
        last_val = v.loss;
        if (files) files->metric_eval(step, {v.loss, v.loss_ce, v.loss_z, cfg.model.z_loss > 0});
        for (auto& r : recall) r->run(trainer.model(), step, *files);
      }
      int signal_seen = g_signal.load();
      bool stop = monitor && monitor->stop_requested();
      if (comm) {  // the ranks stop after the same step: a signal to any of them, a spike stop on rank 0
        int64_t f[2] = {signal_seen, stop ? 1 : 0};
        comm->allreduce_max(f, 2);
        signal_seen = int(f[0]);
        stop = f[1] != 0;
      }
      const bool interrupted = signal_seen != 0;
      if ((cfg.train.checkpoint_every > 0 && step % cfg.train.checkpoint_every == 0) || step == cfg.train.steps ||
          interrupted || stop) {
        if (comm) check_replicas(*comm, trainer, step);
        if (root) {
          const std::vector<double> mstate = monitor ? monitor->state() : std::vector<double>();
          save_checkpoint(files->checkpoint_path(step), trainer.model(), trainer.optim(), step, cfg,
                          monitor ? &mstate : nullptr, ranks);
          // Durable now (save fsyncs the file and the directory): only then may older ones go. Files past
          // this step (a damaged one resume skipped) are not ours to count or delete.
          if (cfg.train.keep_checkpoints > 0) {
            int kept = 0;
            for (const auto& [s, path] : list_checkpoints(run_dir)) {
              if (s > step) continue;
              if (++kept <= cfg.train.keep_checkpoints) continue;
              std::error_code rec;
              fs::remove(path, rec);
            }
          }
        }
      }
      const auto now = std::chrono::steady_clock::now();
      if (!quiet && (tty ? std::chrono::duration<double>(now - t_last_print).count() > 0.1
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
        if (files) files->event(step, "stopped", msg);
        if (root) std::fprintf(stderr, "%sattnlab: %s\n", tty ? "\n" : "", msg.c_str());
        exit_code = 1;
        break;
      }
      if (interrupted) {
        const std::string msg = "interrupted by signal " + std::to_string(signal_seen) + " after step " +
                                std::to_string(step) + "; checkpoint saved; continue with: attnlab train --resume " +
                                run_dir;
        if (files) files->event(step, "interrupted", msg);
        if (root) std::fprintf(stderr, "%sattnlab: %s\n", tty ? "\n" : "", msg.c_str());
        exit_code = 130;
        break;
      }
    }
    if (tty) std::fprintf(stderr, "\n");
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    if (files) {
      files->write_summary(cfg, step, wall, double(step - start_step) * tokens / std::max(wall, 1e-9));
      files->flush();
    }
    if (!quiet && exit_code == 0)
      std::fprintf(stderr, "attnlab: done, %lld steps in %.1f s; run directory %s\n", (long long)(step - start_step),
                   wall, run_dir.c_str());
    return exit_code;
  } catch (const std::exception& e) {
    if (!comm) throw;
    std::fprintf(stderr, "attnlab: rank %d: %s; ending every rank\n", comm->rank(), e.what());
    comm->abort(1);
  }
  return 1;  // not reached: abort ends the process
}

}  // namespace attnlab
