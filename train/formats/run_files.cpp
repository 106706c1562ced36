#include "train/formats/run_files.h"

#include <omp.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "instrument/step_stats.h"
#include "train/formats/json.h"
#include "train/formats/provenance.h"
#include "train/formats/safetensors.h"

namespace fs = std::filesystem;

namespace attnlab {

namespace {

void write_text(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw IoError(tmp + ": cannot open for writing: " + std::strerror(errno));
    f << text;
    if (!f.flush()) throw IoError(tmp + ": write failed: " + std::strerror(errno));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw IoError(path + ": rename failed: " + ec.message());
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

// Keeps the lines of a JSONL file whose "step" is <= step.
// The complete lines of `path` (a last line without its newline is a write the process was killed in the
// middle of, and is dropped); false when the file cannot be read.
bool complete_lines(const std::string& path, std::vector<std::string>* lines) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  size_t pos = 0;
  for (size_t nl; (nl = text.find('\n', pos)) != std::string::npos; pos = nl + 1) lines->push_back(text.substr(pos, nl - pos));
  return true;
}

// Keeps the records of a .jsonl file whose "step" is <= step (and those without one).
void truncate_jsonl(const std::string& path, int64_t step) {
  std::vector<std::string> lines;
  if (!complete_lines(path, &lines)) return;
  static const std::regex step_re("\"step\":(-?[0-9]{1,18})");
  std::string kept;
  for (const std::string& line : lines) {
    std::smatch m;
    if (std::regex_search(line, m, step_re) && std::stoll(m[1].str()) > step) continue;
    kept += line + "\n";
  }
  write_text(path, kept);
}

// Keeps the header and the rows of metrics.csv whose step (first column) is <= step; a row whose first
// column is not a step is damage and goes too.
void truncate_csv(const std::string& path, int64_t step) {
  std::vector<std::string> lines;
  if (!complete_lines(path, &lines) || lines.empty()) {
    write_text(path, "step,kind,layer,head,index,metric,value\n");
    return;
  }
  std::string kept = lines[0] + "\n";
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string first = lines[i].substr(0, lines[i].find(','));
    int64_t s = 0;
    const auto r = std::from_chars(first.data(), first.data() + first.size(), s);
    if (r.ec != std::errc() || r.ptr != first.data() + first.size() || s > step) continue;
    kept += lines[i] + "\n";
  }
  write_text(path, kept);
}

}  // namespace

std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& run_dir) {
  const fs::path dir = fs::path(run_dir) / "ckpt";
  std::error_code ec;
  std::vector<std::pair<int64_t, std::string>> out;
  if (!fs::is_directory(dir, ec)) return out;
  static const std::regex name_re("step_([0-9]{1,18})\\.safetensors");
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, m, name_re)) out.emplace_back(std::stoll(m[1].str()), e.path().string());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

std::string latest_checkpoint(const std::string& run_dir) {
  const auto all = list_checkpoints(run_dir);
  return all.empty() ? std::string() : all.front().second;
}

RunFiles::RunFiles(std::string dir) : dir_(std::move(dir)) {}

RunFiles::~RunFiles() {
  if (metrics_) std::fclose(metrics_);
  if (events_) std::fclose(events_);
  if (csv_) std::fclose(csv_);
}

void RunFiles::create() {
  std::error_code ec;
  fs::create_directories(fs::path(dir_) / "ckpt", ec);
  if (ec) throw IoError(dir_ + ": cannot create run directory: " + ec.message());
  write_text(dir_ + "/metrics.jsonl", "");
  write_text(dir_ + "/events.jsonl", "");
  write_text(dir_ + "/metrics.csv", "step,kind,layer,head,index,metric,value\n");
  open_append();
}

void RunFiles::open_append() {
  metrics_ = std::fopen((dir_ + "/metrics.jsonl").c_str(), "a");
  events_ = std::fopen((dir_ + "/events.jsonl").c_str(), "a");
  csv_ = std::fopen((dir_ + "/metrics.csv").c_str(), "a");
  if (!metrics_ || !events_ || !csv_) throw IoError(dir_ + ": cannot open metrics/events for appending: " + std::strerror(errno));
}

void RunFiles::truncate_after(int64_t step) {
  truncate_jsonl(dir_ + "/metrics.jsonl", step);
  truncate_jsonl(dir_ + "/events.jsonl", step);
  truncate_csv(dir_ + "/metrics.csv", step);
  open_append();
}

void RunFiles::write_config(const std::string& yaml) { write_text(dir_ + "/config.yaml", yaml); }

void RunFiles::write_run_info(const std::vector<std::string>& argv, int threads, int64_t n_params,
                              const std::string& data_desc, const DataFileRecord& data_file,
                              const std::vector<ParamInfo>& params, int mpi_ranks) {
  struct utsname u {};
  uname(&u);
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  const std::time_t t = std::time(nullptr);
  char stamp[64];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S%z", std::localtime(&t));
  const BuildInfo b = build_info();
  Json j;
  j["commit"] = b.commit;
  j["dirty"] = b.dirty < 0 ? Json() : Json(b.dirty == 1);  // null: not built from a git checkout
  j["build"] = {{"type", b.build_type}, {"compiler", b.compiler}, {"flags", b.flags}, {"onednn", b.onednn}};
  j["command"] = argv;
  j["started"] = stamp;
  j["host"] = host;
  j["kernel"] = std::string(u.sysname) + " " + u.release + " " + u.machine;
  j["cpu"] = cpu_model();
  j["cores"] = omp_get_num_procs();
  j["threads"] = threads;
  j["n_params"] = n_params;
  j["data"] = data_desc;
  j["data_file"] = data_file.path.empty() ? Json()
                                          : Json{{"path", data_file.path}, {"bytes", data_file.bytes},
                                                 {"sha256", data_file.sha256}};
  j["mpi_ranks"] = mpi_ranks;  // data parallel over this many processes, `threads` threads each
  Json ps = Json::array();
  const std::vector<ParamSlot> slots = param_slots(params);
  for (size_t i = 0; i < params.size(); ++i)
    ps.push_back({{"name", params[i].name}, {"layer", slots[i].layer}, {"slot", slots[i].slot},
                  {"shape", params[i].shape}});
  j["params"] = ps;
  write_text(dir_ + "/run.json", json_dump(j, 2) + "\n");
}

namespace {
// `"name":loss` and, with parts, `,"name_ce":ce,"name_z":z`.
std::string loss_fields(const char* name, const RunFiles::Loss& l) {
  std::string s = std::string("\"") + name + "\":" + json_number(l.loss);
  if (l.parts)
    s += std::string(",\"") + name + "_ce\":" + json_number(l.ce) + ",\"" + name + "_z\":" + json_number(l.z);
  return s;
}

std::string loss_cell(const RunFiles::Loss& l, double unset) {
  if (l.loss == unset) return "-";
  std::string s = json_number(l.loss);
  if (l.parts) s += " (cross-entropy " + json_number(l.ce) + " + z-loss " + json_number(l.z) + ")";
  return s;
}
}  // namespace

namespace {
// Flushes `f` and throws IoError when anything written to it since the last check failed (disk full, a
// file-size limit): a metrics line that silently went missing would be a wrong result, not a slow one.
void flush_checked(std::FILE* f, const std::string& path) {
  if (f == nullptr) return;
  if (std::fflush(f) != 0 || std::ferror(f)) {
    const int err = errno;
    std::clearerr(f);
    throw IoError(path + ": write failed: " + std::strerror(err) + " (disk full?); the last checkpoint is intact");
  }
}
}  // namespace

void RunFiles::metric_train(int64_t step, const Loss& loss, float lr, double grad_norm, bool clipped, double tok_s,
                            double ms) {
  last_loss_ = loss;
  std::fprintf(metrics_,
               "{\"step\":%lld,\"kind\":\"train\",%s,\"lr\":%s,\"grad_norm\":%s,\"clipped\":%s,"
               "\"tokens_per_s\":%.1f,\"ms_per_step\":%.3f}\n",
               (long long)step, loss_fields("loss", loss).c_str(), json_number(lr).c_str(), json_number(grad_norm).c_str(),
               clipped ? "true" : "false", tok_s, ms);
  flush_checked(metrics_, dir_ + "/metrics.jsonl");
  flush_checked(csv_, dir_ + "/metrics.csv");
}

void RunFiles::metric_eval(int64_t step, const Loss& val_loss) {
  last_val_ = val_loss;
  std::fprintf(metrics_, "{\"step\":%lld,\"kind\":\"eval\",%s}\n", (long long)step,
               loss_fields("val_loss", val_loss).c_str());
  flush_checked(metrics_, dir_ + "/metrics.jsonl");
}

void RunFiles::write(const MetricRecord& r) {
  const char* kind = r.kind == MetricKind::kProbe ? "probe" : "step";
  const std::string v = json_number(r.value);
  std::fprintf(metrics_, "{\"step\":%lld,\"kind\":\"%s\",\"metric\":\"%s\",\"layer\":%d,\"head\":%d,\"index\":%d,\"value\":%s}\n",
               (long long)r.step, kind, r.name, int(r.layer), int(r.head), int(r.index), v.c_str());
  const char* nonfinite = std::isnan(r.value) ? "nan" : r.value > 0 ? "inf" : "-inf";  // unquoted in CSV
  std::fprintf(csv_, "%lld,%s,%d,%d,%d,%s,%s\n", (long long)r.step, kind, int(r.layer), int(r.head), int(r.index),
               r.name, std::isfinite(r.value) ? v.c_str() : nonfinite);
}

void RunFiles::write_event(const Event& e) {
  std::fprintf(events_,
               "{\"step\":%lld,\"kind\":\"%s\",\"layer\":%d,\"head\":%d,\"metric\":\"%s\",\"value\":%s,"
               "\"threshold\":%s,\"message\":\"%s\"}\n",
               (long long)e.step, json_escape(e.kind).c_str(), e.layer, e.head, json_escape(e.metric).c_str(),
               json_number(e.value).c_str(), json_number(e.threshold).c_str(), json_escape(e.message).c_str());
  flush_checked(events_, dir_ + "/events.jsonl");
}

void RunFiles::event(int64_t step, const std::string& kind, const std::string& message) {
  std::fprintf(events_, "{\"step\":%lld,\"kind\":\"%s\",\"message\":\"%s\"}\n", (long long)step,
               json_escape(kind).c_str(), json_escape(message).c_str());
  flush_checked(events_, dir_ + "/events.jsonl");
}

std::string RunFiles::checkpoint_path(int64_t step) const {
  char name[64];
  std::snprintf(name, sizeof(name), "step_%08lld.safetensors", (long long)step);
  return (fs::path(dir_) / "ckpt" / name).string();
}

void RunFiles::write_summary(const RunConfig& cfg, int64_t steps_done, double wall_s, double tok_s) {
  std::ostringstream os;
  os << "# Run summary\n\n| what | value |\n|---|---|\n"
     << "| steps | " << steps_done << " / " << cfg.train.steps << " |\n"
     << "| final train loss | " << loss_cell(last_loss_, NAN_SENTINEL) << " |\n"
     << "| final val loss | " << loss_cell(last_val_, NAN_SENTINEL) << " |\n"
     << "| wall time (s, this session) | " << wall_s << " |\n"
     << "| tokens/s (this session) | " << tok_s << " |\n"
     << "| commit | " << build_info().commit << (build_info().dirty == 1 ? " (dirty)" : "") << " |\n\n"
     << "Metrics: `metrics.jsonl`; events: `events.jsonl`; config: `config.yaml`; checkpoints: `ckpt/`.\n";
  write_text(dir_ + "/summary.md", os.str());
}

void RunFiles::flush() {
  flush_checked(metrics_, dir_ + "/metrics.jsonl");
  flush_checked(events_, dir_ + "/events.jsonl");
  flush_checked(csv_, dir_ + "/metrics.csv");
}

}  // namespace attnlab
