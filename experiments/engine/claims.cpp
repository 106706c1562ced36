#include "experiments/engine/claims.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "train/formats/files.h"
#include "train/formats/json.h"
#include "train/formats/safetensors.h"

namespace fs = std::filesystem;

namespace attnlab {

// ---------------------------------------------------------------------------------------------------
// metrics.jsonl: flat JSON objects, one per line (train/formats/run_files.cpp writes them, FlatJson of
// train/formats/json.h reads them).

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Calls f(line, line_no, complete) for each line of a JSON-lines text (line_no from 1; `complete` false
// for a last line without its newline) until f returns false.
template <class F>
void for_each_line(std::string_view text, F&& f) {
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    const bool complete = nl != std::string_view::npos;
    if (!complete) nl = text.size();
    const std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (!f(line, ++line_no, complete)) return;
  }
}

bool parse_double(std::string_view t, bool is_string, double* out) {
  if (is_string || t == "nan" || t == "inf" || t == "-inf") {
    if (t == "nan") *out = kNaN;
    else if (t == "inf") *out = std::numeric_limits<double>::infinity();
    else if (t == "-inf") *out = -std::numeric_limits<double>::infinity();
    else return false;
    return true;
  }
  if (t == "true" || t == "false") {
    *out = t == "true" ? 1.0 : 0.0;
    return true;
  }
  if (t == "null") return false;
  const char* b = t.data();
  const auto r = std::from_chars(b, b + t.size(), *out);
  return r.ec == std::errc() && r.ptr == b + t.size();
}

bool parse_int(std::string_view t, int64_t* out) {
  const char* b = t.data();
  const auto r = std::from_chars(b, b + t.size(), *out);
  return r.ec == std::errc() && r.ptr == b + t.size();
}

int edit_distance(const std::string& a, const std::string& b) {
  std::vector<int> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = int(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = int(i);
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

// Adds one line to `m`; false when it is malformed.
bool RunMetrics::add_line(std::string_view line, const std::function<bool(std::string_view)>& keep) {
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) return true;
  // Fast path for the long tail of per-step metrics nobody asked for: look at the name first.
  if (keep) {
    constexpr std::string_view kTag = "\"metric\":\"";
    const size_t at = line.find(kTag);
    if (at != std::string_view::npos) {
      const size_t b = at + kTag.size(), e = line.find('"', b);
      if (e != std::string_view::npos && !keep(line.substr(b, e - b))) {
        if (line.find("\"kind\":\"probe\"") != std::string_view::npos) {
          int64_t step = -1;
          const size_t s = line.find("\"step\":");
          if (s != std::string_view::npos) {
            const char* p = line.data() + s + 7;
            std::from_chars(p, line.data() + line.size(), step);
          }
          last_probe_step_ = std::max(last_probe_step_, step);
        }
        const size_t s = line.find("\"step\":");
        if (s != std::string_view::npos) {
          int64_t step = -1;
          const char* p = line.data() + s + 7;
          std::from_chars(p, line.data() + line.size(), step);
          last_step_ = std::max(last_step_, step);
        }
        return true;
      }
    }
  }
  int64_t step = -1;
  std::string_view kind, metric;
  int64_t layer = -1, head = -1, index = -1;
  JsonValue value;
  bool have_value = false, bad = false;
  std::vector<std::pair<std::string_view, JsonValue>> fields;  // train/eval members
  const bool ok = FlatJson(line).parse([&](std::string_view k, const JsonValue& v) {
    if (k == "step") bad |= v.is_string || !parse_int(v.text, &step);
    else if (k == "kind") kind = v.text;
    else if (k == "metric") metric = v.text;
    else if (k == "layer") bad |= v.is_string || !parse_int(v.text, &layer);
    else if (k == "head") bad |= v.is_string || !parse_int(v.text, &head);
    else if (k == "index") bad |= v.is_string || !parse_int(v.text, &index);
    else if (k == "value") value = v, have_value = true;
    else fields.emplace_back(k, v);
  });
  if (!ok || bad || step < 0 || kind.empty()) return false;
  last_step_ = std::max(last_step_, step);
  const char k = kind == "train" ? 't' : kind == "eval" ? 'e' : kind == "probe" ? 'p' : kind == "step" ? 's' : '?';
  if (k == '?') return true;  // a record kind added later: not ours to judge
  auto add = [&](std::string_view name, const JsonValue& v, int l, int h, int i) {
    if (keep && !keep(name)) return;
    double x;
    if (!parse_double(v.text, v.is_string, &x)) return;  // e.g. null
    auto it = by_metric_.find(name);
    if (it == by_metric_.end()) it = by_metric_.emplace(std::string(name), std::vector<MetricRow>()).first;
    it->second.push_back({step, l, h, i, x, k});
  };
  if (k == 'p' || k == 's') {
    if (metric.empty() || !have_value) return false;
    if (k == 'p') last_probe_step_ = std::max(last_probe_step_, step);
    add(metric, value, int(layer), int(head), int(index));
  } else {
    for (const auto& [name, v] : fields) add(name, v, -1, -1, -1);
  }
  return true;
}

RunMetrics RunMetrics::parse(std::string_view text, const std::string& source,
                             const std::function<bool(std::string_view)>& keep) {
  RunMetrics m;
  m.source_ = source;
  m.exists_ = true;
  for_each_line(text, [&](std::string_view line, int64_t line_no, bool complete) {
    if (m.add_line(line, keep)) return true;
    if (!complete) return false;  // the last line of a run killed while writing it
    throw IoError(source + ":" + std::to_string(line_no) + ": malformed metrics record: " +
                  std::string(line.substr(0, 120)));
  });
  m.add_events("", source, keep);  // no events text: every known kind counts 0 (tests add their own)
  return m;
}

RunMetrics RunMetrics::read(const std::string& run_dir, const std::function<bool(std::string_view)>& keep) {
  RunMetrics m;
  m.source_ = (fs::path(run_dir) / "metrics.jsonl").string();
  std::error_code ec;
  if (!fs::exists(m.source_, ec)) return m;
  std::string why;
  const int fd = open_regular_file(m.source_, &why);  // a FIFO or device in its place must not hang the reader
  if (fd < 0) throw IoError(m.source_ + ": cannot read: " + why);
  ::close(fd);
  std::ifstream in(m.source_, std::ios::binary);
  if (!in) return m;
  m.exists_ = true;
  // Line by line: a long run's file is hundreds of MB.
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!m.add_line(line, keep)) {
      if (in.eof()) break;  // no newline after it: the last line of a run killed while writing it
      throw IoError(m.source_ + ":" + std::to_string(line_no) + ": malformed metrics record: " + line.substr(0, 120));
    }
  }
  // The events: small files (warnings fire once per place), read whole. Absent = none.
  const std::string events = (fs::path(run_dir) / "events.jsonl").string();
  std::string text;
  if (fs::exists(events, ec) && !read_regular_file(events, &text, &why))
    throw IoError(events + ": cannot read: " + why);
  m.add_events(text, events, keep);
  return m;
}

const std::vector<std::string>& known_event_kinds() {
  // instrument/monitor.cpp (raise) and train/run.cpp (RunFiles::event).
  static const std::vector<std::string> kinds = {
      "nonfinite",        "loss_spike",    "grad_spike",     "grad_explosion", "grad_vanishing",
      "entropy_collapse", "logit_growth",  "sink_emergence", "rank_collapse",  "massive_activation",
      "flight_recorder",  "resume",        "stopped",        "interrupted"};
  return kinds;
}

void RunMetrics::add_events(std::string_view text, const std::string& source,
                            const std::function<bool(std::string_view)>& keep) {
  std::map<std::string, int64_t, std::less<>> count;
  for (const std::string& k : known_event_kinds()) count[k] = 0;
  int64_t last = last_step_;
  for_each_line(text, [&](std::string_view line, int64_t line_no, bool complete) {
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return true;
    int64_t step = -1;
    std::string_view kind;
    bool bad = false;
    const bool ok = FlatJson(line).parse([&](std::string_view k, const JsonValue& v) {
      if (k == "step") bad |= v.is_string || !parse_int(v.text, &step);
      else if (k == "kind") {
        bad |= !v.is_string;
        kind = v.text;
      }
    });
    if (!ok || bad || step < 0 || kind.empty()) {
      if (!complete) return false;  // the last line of a run killed while writing it
      throw IoError(source + ":" + std::to_string(line_no) + ": malformed event record: " +
                    std::string(line.substr(0, 120)));
    }
    last = std::max(last, step);
    auto it = count.find(kind);
    if (it == count.end()) it = count.emplace(std::string(kind), 0).first;
    ++it->second;
    return true;
  });
  for (auto it = by_metric_.begin(); it != by_metric_.end();)
    it = it->first.rfind("events.", 0) == 0 ? by_metric_.erase(it) : std::next(it);
  for (const auto& [kind, n] : count) {
    const std::string name = "events." + kind;
    if (keep && !keep(name)) continue;
    by_metric_[name] = {MetricRow{last, -1, -1, -1, double(n), 'v'}};
  }
}

const std::vector<MetricRow>* RunMetrics::rows(const std::string& metric) const {
  const auto it = by_metric_.find(metric);
  return it == by_metric_.end() ? nullptr : &it->second;
}

std::vector<std::string> RunMetrics::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : by_metric_) out.push_back(k);
  return out;
}

double RunMetrics::last_value(const std::string& metric, bool* found) const {
  const auto* r = rows(metric);
  *found = r != nullptr && !r->empty();
  return *found ? r->back().value : kNaN;
}

double metric_at_step(const RunMetrics& m, const std::string& metric, int64_t step, char op, int layer, bool* found) {
  *found = false;
  const auto* rows = m.rows(metric);
  if (rows == nullptr) return kNaN;
  double acc = kNaN;
  for (const MetricRow& r : *rows) {
    if (r.step != step || r.layer < 0 || (layer >= 0 && r.layer != layer)) continue;
    if (!*found || std::isnan(r.value)) acc = r.value;
    else if (!std::isnan(acc)) acc = op == 'M' ? std::max(acc, r.value) : std::min(acc, r.value);
    *found = true;
  }
  return acc;
}

// ---------------------------------------------------------------------------------------------------
// Formatting

std::string format_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.4g", v);
  return buf;
}

const char* verdict_name(Verdict v) { return v == Verdict::kPass ? "PASS" : v == Verdict::kFail ? "FAIL" : "ERROR"; }

const char* op_text(CompareOp op) {
  switch (op) {
    case CompareOp::kGe: return ">=";
    case CompareOp::kGt: return ">";
    case CompareOp::kLe: return "<=";
    case CompareOp::kLt: return "<";
  }
  return "?";
}

namespace {

std::string describe_run_map(const Selector& sel) {
  std::string s = "{";
  for (size_t i = 0; i < sel.run.size(); ++i) s += (i ? ", " : "") + sel.run[i].first + ": " + sel.run[i].second;
  return s + "}";
}

std::string where_prefix(const Selector& sel) { return sel.where.empty() ? "" : sel.where + ": "; }

std::string describe_place(const Selector& sel) {
  std::string s = "layer " + (sel.all_layers ? std::string("all") : std::to_string(sel.layer)) + ", head " +
                  (sel.all_heads ? std::string("all") : std::to_string(sel.head)) + ", index " +
                  std::to_string(sel.index);
  if (!sel.kind.empty()) s += ", kind " + sel.kind;
  return s;
}

std::string join_ints(const std::set<int>& xs) {
  std::string s;
  for (int x : xs) {
    if (!s.empty()) s += ',';
    s += std::to_string(x);
  }
  return s;
}

// The selected value over one series (step, value) in step order.
bool pick_step(const std::vector<std::pair<int64_t, double>>& series, const Selector& sel, double* out,
               std::string* err) {
  switch (sel.step) {
    case StepPick::kLast: *out = series.back().second; return true;
    case StepPick::kAt:
      for (auto it = series.rbegin(); it != series.rend(); ++it)
        if (it->first == sel.at_step) {
          *out = it->second;
          return true;
        }
      *err = "recorded at steps " + std::to_string(series.front().first) + ".." + std::to_string(series.back().first) +
             " (" + std::to_string(series.size()) + " records) but not at step " + std::to_string(sel.at_step);
      return false;
    case StepPick::kMax:
    case StepPick::kMin:
    case StepPick::kMean: {
      double acc = sel.step == StepPick::kMean ? 0.0 : series.front().second;
      bool nan = false;
      for (const auto& [s, v] : series) {
        nan |= std::isnan(v);
        if (sel.step == StepPick::kMax) acc = std::max(acc, v);
        else if (sel.step == StepPick::kMin) acc = std::min(acc, v);
        else acc += v;
      }
      if (sel.step == StepPick::kMean) acc /= double(series.size());
      *out = nan ? kNaN : acc;  // a NaN anywhere is not silently dropped
      return true;
    }
  }
  return false;
}

std::string apply_text(const Selector& sel, double raw, double value) {
  if (!sel.has_times && !sel.has_plus) return format_number(raw);
  std::string s;
  if (sel.has_times) s += format_number(sel.times) + " × ";
  s += format_number(raw);
  if (sel.has_plus) s += (sel.plus < 0 ? " - " : " + ") + format_number(std::fabs(sel.plus));
  return s + " = " + format_number(value);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Matching runs

std::vector<size_t> match_runs(const Selector& sel, const std::vector<ClaimRun>& runs, std::string* why) {
  std::vector<size_t> out;
  for (size_t r = 0; r < runs.size(); ++r) {
    const std::string base = dump_config(runs[r].config);
    bool all = true;
    for (const auto& [key, value] : sel.run) {
      // Setting the key to the selector's value leaves the config unchanged iff the run has that value.
      try {
        if (dump_config(parse_config(base, "run " + runs[r].name, {key + "=" + value})) != base) all = false;
      } catch (const ConfigError& e) {
        if (why != nullptr && why->empty()) *why = e.what();
        all = false;
      }
      if (!all) break;
    }
    if (all) out.push_back(r);
  }
  return out;
}

namespace {

void collect_selectors(const ClaimSide& side, std::vector<const Selector*>* out) {
  if (side.is_number) return;
  if (side.combine != Combine::kNone) {
    for (const ClaimSide& a : side.args) collect_selectors(a, out);
    return;
  }
  out->push_back(&side.sel);
}

// The text the resolved config gives `section.key` ("" when there is no such key).
std::string config_value_text(const RunConfig& cfg, const std::string& key) {
  const size_t dot = key.find('.');
  if (dot == std::string::npos) return "";
  const std::string section = key.substr(0, dot) + ":", field = "  " + key.substr(dot + 1) + ": ";
  std::istringstream in(dump_config(cfg));
  std::string line;
  bool in_section = false;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] != ' ') in_section = line == section;
    else if (in_section && line.compare(0, field.size(), field) == 0) return line.substr(field.size());
  }
  return "";
}

std::vector<std::string> claim_values(const Claim& c, const std::vector<ClaimRun>& runs) {
  return c.over_values.empty() ? axis_values(c.over, runs) : c.over_values;
}

}  // namespace

std::vector<std::string> axis_values(const std::string& key, const std::vector<ClaimRun>& runs) {
  std::vector<std::string> out;
  for (const ClaimRun& r : runs) {
    const std::string v = config_value_text(r.config, key);
    if (!v.empty() && std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  }
  return out;
}

ClaimSide with_run_key(const ClaimSide& side, const std::string& key, const std::string& value) {
  ClaimSide out = side;
  if (out.is_number) return out;
  if (out.combine != Combine::kNone) {
    for (ClaimSide& a : out.args) a = with_run_key(a, key, value);
    return out;
  }
  bool replaced = false;
  for (auto& kv : out.sel.run)
    if (kv.first == key) kv.second = value, replaced = true;
  if (!replaced) out.sel.run.emplace_back(key, value);
  return out;
}

void check_claims(const std::vector<Claim>& claims, const std::vector<ClaimRun>& runs) {
  std::vector<std::string> problems;
  std::set<std::string> ids;
  for (const Claim& c : claims) {
    if (!ids.insert(c.id).second) problems.push_back(c.where + ": claim id '" + c.id + "' is used twice");
    std::vector<std::pair<std::string, std::vector<ClaimSide>>> expanded;  // (over value, sides)
    if (c.over.empty()) {
      expanded.push_back({"", {c.lhs, c.rhs}});
    } else {
      const std::vector<std::string> values = claim_values(c, runs);
      if (values.empty())
        problems.push_back(c.where + ": over: " + c.over + " has no values (no run has that key; is it a config key?)");
      if (c.require == Require::kAtLeast && (c.require_n < 1 || c.require_n > int(values.size())))
        problems.push_back(c.where + ": require: " + std::to_string(c.require_n) + " is not between 1 and the " +
                           std::to_string(values.size()) + " values of " + c.over);
      for (const auto& v : values)
        expanded.push_back({v, {with_run_key(c.lhs, c.over, v), with_run_key(c.rhs, c.over, v)}});
    }
    std::set<std::string> seen;  // one message per problem, not one per seed
    for (const auto& [value, sides] : expanded) {
      std::vector<const Selector*> sels;
      for (const ClaimSide& side : sides) collect_selectors(side, &sels);
      for (const Selector* sp : sels) {
        const Selector& s = *sp;
        const std::string at = where_prefix(s);
        std::vector<std::string> mine;
        if (s.metric.empty()) mine.push_back(at + "no metric");
        if ((s.all_layers || s.all_heads) && s.reduce == Reduce::kNone)
          mine.push_back(at + "layer/head 'all' needs reduce: max, min or mean");
        if (!s.all_layers && !s.all_heads && s.reduce != Reduce::kNone)
          mine.push_back(at + "reduce is only meaningful with layer: all or head: all");
        std::string why;
        const auto m = match_runs(s, runs, &why);
        if (!(m.size() == 1 || (s.across != Across::kNone && !m.empty()))) {
          std::string msg = at + "run " + describe_run_map(s) + " matches " +
                            (m.empty() ? std::string("no run") : std::to_string(m.size()) + " runs");
          if (m.empty() && !why.empty()) msg += " (" + why + ")";
          msg += m.empty() ? "; the runs are: " : ": ";
          const size_t shown = m.empty() ? std::min<size_t>(runs.size(), 12) : m.size();
          for (size_t i = 0; i < shown; ++i) msg += (i ? ", " : "") + runs[m.empty() ? i : m[i]].name;
          if (m.empty() && runs.size() > shown) msg += ", ...";
          if (!m.empty()) msg += "; add the keys that tell them apart (or across: mean|median|min|max to reduce over them)";
          mine.push_back(msg);
        }
        for (auto& p : mine)
          if (seen.insert(p).second) problems.push_back(p);
      }
    }
  }
  if (problems.empty()) return;
  std::string all = problems.size() == 1 ? "" : std::to_string(problems.size()) + " problems with the claims:\n";
  for (size_t i = 0; i < problems.size(); ++i) all += (problems.size() == 1 ? "" : "  ") + problems[i] + (i + 1 < problems.size() ? "\n" : "");
  throw ClaimError(all);
}

// ---------------------------------------------------------------------------------------------------
// Evaluation

namespace {

// The value of a selector on one run: step selection per (layer, head) series, then the reduction over
// layers/heads; before `across`, `times` and `plus`.
SideValue selector_on_run(const Selector& sel, size_t r, const std::vector<ClaimRun>& runs,
                          const std::function<const RunMetrics&(size_t run)>& metrics) {
  SideValue out;
  const std::string at = where_prefix(sel);
  const ClaimRun& run = runs[r];
  out.run = run.name;
  if (!run.problem.empty()) {
    out.error = "run " + run.name + " (" + run.dir + "): " + run.problem;
    return out;
  }
  const RunMetrics& m = metrics(r);
  if (!m.exists()) {
    out.error = "run " + run.name + ": no metrics file " + m.source();
    return out;
  }
  const std::vector<MetricRow>* rows = m.rows(sel.metric);
  if (rows == nullptr) {
    out.error = at + "metric '" + sel.metric + "' is missing from " + m.source() + " (selector: metric " + sel.metric +
                ", " + describe_place(sel) + ")";
    std::vector<std::string> close;
    for (const auto& n : m.names())
      if (edit_distance(n, sel.metric) <= 2 || (sel.metric.size() >= 3 && n.find(sel.metric) != std::string::npos))
        close.push_back(n);
    if (!close.empty()) {
      out.error += "; did you mean ";
      for (size_t i = 0; i < close.size() && i < 5; ++i) out.error += (i ? ", " : "") + close[i];
    } else {
      out.error += "; is its instrument family enabled in the run's config?";
    }
    return out;
  }
  // Series per (kind, layer, head), in file order (steps increase).
  std::map<std::tuple<char, int, int>, std::vector<std::pair<int64_t, double>>> series;
  std::set<int> layers, heads, indices;
  const char want_kind = sel.kind.empty() ? '\0' : sel.kind == "train" ? 't' : sel.kind == "eval" ? 'e'
                                                     : sel.kind == "probe" ? 'p' : sel.kind == "event" ? 'v' : 's';
  for (const MetricRow& r : *rows) {
    layers.insert(r.layer);
    heads.insert(r.head);
    indices.insert(r.index);
    if (want_kind != '\0' && r.kind != want_kind) continue;
    if (r.index != sel.index) continue;
    if (sel.all_layers ? r.layer < 0 : r.layer != sel.layer) continue;
    if (sel.all_heads ? r.head < 0 : r.head != sel.head) continue;
    series[{r.kind, r.layer, r.head}].emplace_back(r.step, r.value);
  }
  if (series.empty()) {
    out.error = at + "metric '" + sel.metric + "' has no record at " + describe_place(sel) + " in " + m.source() +
                " (recorded: layers " + join_ints(layers) + "; heads " + join_ints(heads) + "; indices " +
                join_ints(indices) + ")";
    return out;
  }
  std::set<char> kinds;
  for (const auto& [key, s] : series) kinds.insert(std::get<0>(key));
  if (kinds.size() > 1) {
    out.error = at + "metric '" + sel.metric + "' is recorded under several kinds; add kind: probe or kind: step";
    return out;
  }
  if (series.size() > 1 && sel.reduce == Reduce::kNone) {
    out.error = at + "several layers/heads match; give reduce: max, min or mean";
    return out;
  }
  double acc = sel.reduce == Reduce::kMean ? 0.0 : kNaN;
  bool first = true, nan = false;
  for (const auto& [key, s] : series) {
    double v;
    std::string err;
    if (!pick_step(s, sel, &v, &err)) {
      out.error = at + "metric '" + sel.metric + "' at layer " + std::to_string(std::get<1>(key)) + " head " +
                  std::to_string(std::get<2>(key)) + " in " + m.source() + ": " + err;
      return out;
    }
    nan |= std::isnan(v);
    if (sel.reduce == Reduce::kMean) acc += v;
    else if (first) acc = v;
    else acc = sel.reduce == Reduce::kMin ? std::min(acc, v) : std::max(acc, v);
    first = false;
  }
  if (sel.reduce == Reduce::kMean) acc /= double(series.size());
  if (nan) acc = kNaN;
  out.ok = true;
  out.raw = out.value = acc;
  return out;
}

double median_of(std::vector<double> v) {
  for (double x : v)
    if (std::isnan(x)) return kNaN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? kNaN : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double reduce_values(const std::vector<double>& v, int how) {  // how: 'M' max, 'm' min, 'a' mean, 'd' median
  if (v.empty()) return kNaN;
  if (how == 'd') return median_of(v);
  double acc = how == 'a' ? 0.0 : v[0];
  bool nan = false;
  for (double x : v) {
    nan |= std::isnan(x);
    if (how == 'a') acc += x;
    else acc = how == 'M' ? std::max(acc, x) : std::min(acc, x);
  }
  if (how == 'a') acc /= double(v.size());
  return nan ? kNaN : acc;
}

const char* across_name(Across a) {
  switch (a) {
    case Across::kMax: return "max";
    case Across::kMin: return "min";
    case Across::kMean: return "mean";
    case Across::kMedian: return "median";
    case Across::kSensitivity: return "sensitivity";
    case Across::kNone: break;
  }
  return "";
}

std::string scaled_text(const std::string& core, double raw, double value, double times, bool has_times, double plus,
                        bool has_plus) {
  if (!has_times && !has_plus) return core;
  std::string s;
  if (has_times) s += format_number(times) + " × ";
  s += format_number(raw);
  if (has_plus) s += (plus < 0 ? " - " : " + ") + format_number(std::fabs(plus));
  return s + " = " + format_number(value);
}

}  // namespace

SideValue evaluate_side(const ClaimSide& side, const std::vector<ClaimRun>& runs,
                        const std::function<const RunMetrics&(size_t run)>& metrics) {
  SideValue out;
  if (side.is_number) {
    out.ok = true;
    out.raw = out.value = side.number;
    out.text = format_number(side.number);
    return out;
  }
  if (side.combine != Combine::kNone) {
    const SideValue a = evaluate_side(side.args.at(0), runs, metrics), b = evaluate_side(side.args.at(1), runs, metrics);
    if (!a.ok || !b.ok) {
      out.error = !a.ok ? a.error : b.error;
      if (!a.ok && !b.ok) out.error += "; " + b.error;
      return out;
    }
    const char* sym = side.combine == Combine::kDiv ? " / " : " - ";
    out.raw = side.combine == Combine::kDiv ? a.value / b.value
              : side.combine == Combine::kSub ? a.value - b.value
                                              : std::fabs(a.value - b.value);
    out.value = out.raw * side.times + side.plus;
    out.ok = true;
    const std::string core = std::string(side.combine == Combine::kAbsDiff ? "|" : "(") + format_number(a.value) + sym +
                             format_number(b.value) + (side.combine == Combine::kAbsDiff ? "|" : ")") + " = " +
                             format_number(out.raw);
    out.text = scaled_text(core, out.raw, out.value, side.times, side.has_times, side.plus, side.has_plus);
    out.run = a.run.empty() ? b.run : a.run;
    return out;
  }
  const Selector& sel = side.sel;
  const std::string at = where_prefix(sel);
  const auto matched = match_runs(sel, runs);
  if (sel.across == Across::kNone ? matched.size() != 1 : matched.empty()) {
    out.error = at + "run " + describe_run_map(sel) + " matches " + std::to_string(matched.size()) + " runs";
    return out;
  }
  if (sel.across == Across::kNone) {
    out = selector_on_run(sel, matched[0], runs, metrics);
    if (!out.ok) return out;
    out.value = out.raw * sel.times + sel.plus;
    out.text = apply_text(sel, out.raw, out.value);
    return out;
  }
  std::vector<double> vals, caps;
  for (size_t r : matched) {
    const SideValue v = selector_on_run(sel, r, runs, metrics);
    if (!v.ok) return v;
    vals.push_back(v.raw);
    if (sel.across == Across::kSensitivity) {
      bool found = false;
      const std::vector<MetricRow>* rows = metrics(r).rows(sel.cap_metric);
      if (rows != nullptr && !rows->empty()) found = true;
      if (!found) {
        out.error = at + "across: sensitivity needs the cap metric '" + sel.cap_metric + "' in run " + runs[r].name;
        return out;
      }
      caps.push_back(rows->front().value);
    }
  }
  double raw;
  if (sel.across == Across::kSensitivity) {
    double best = kNaN;
    for (double v : vals)
      if (!std::isnan(v)) best = std::isnan(best) ? v : std::min(best, v);
    std::vector<double> gaps;
    for (size_t i = 0; i < vals.size(); ++i) gaps.push_back((std::isnan(vals[i]) ? caps[i] : std::min(vals[i], caps[i])) - best);
    raw = reduce_values(gaps, 'a');
  } else {
    raw = reduce_values(vals, sel.across == Across::kMax ? 'M' : sel.across == Across::kMin ? 'm'
                                 : sel.across == Across::kMean ? 'a' : 'd');
  }
  out.ok = true;
  out.raw = raw;
  out.value = raw * sel.times + sel.plus;
  out.run = runs[matched[0]].name;
  const std::string core = std::string(across_name(sel.across)) + " over " + std::to_string(matched.size()) +
                           " runs = " + format_number(raw);
  out.text = scaled_text(core, raw, out.value, sel.times, sel.has_times, sel.plus, sel.has_plus);
  return out;
}

namespace {

bool compare(double a, CompareOp op, double b) {
  switch (op) {
    case CompareOp::kGe: return a >= b;
    case CompareOp::kGt: return a > b;
    case CompareOp::kLe: return a <= b;
    case CompareOp::kLt: return a < b;
  }
  return false;
}

std::string require_text(const Claim& c, size_t n) {
  const std::string of = std::to_string(n) + " values of " + c.over;
  switch (c.require) {
    case Require::kAll: return "in all " + of;
    case Require::kAny: return "in at least one of the " + of;
    case Require::kMajority: return "in a majority (" + std::to_string(n / 2 + 1) + ") of the " + of;
    case Require::kAtLeast: return "in at least " + std::to_string(c.require_n) + " of the " + of;
  }
  return "";
}

int required(const Claim& c, size_t n) {
  switch (c.require) {
    case Require::kAll: return int(n);
    case Require::kAny: return 1;
    case Require::kMajority: return int(n / 2 + 1);
    case Require::kAtLeast: return c.require_n;
  }
  return int(n);
}

// Reduces one side over the claim's values (over_reduce).
SideValue reduce_side_over(const Claim& c, const ClaimSide& side, const std::vector<std::string>& values,
                           const std::vector<ClaimRun>& runs, const std::function<const RunMetrics&(size_t)>& metrics) {
  if (side.is_number) return evaluate_side(side, runs, metrics);
  SideValue out;
  std::vector<double> vals;
  std::string parts;
  for (const auto& v : values) {
    const SideValue sv = evaluate_side(with_run_key(side, c.over, v), runs, metrics);
    if (!sv.ok) return sv;
    vals.push_back(sv.value);
    parts += (parts.empty() ? "" : ", ") + format_number(sv.value);
    if (out.run.empty()) out.run = sv.run;
  }
  const Reduce r = c.over_reduce;
  out.raw = out.value = reduce_values(vals, r == Reduce::kMax ? 'M' : r == Reduce::kMin ? 'm' : r == Reduce::kMean ? 'a' : 'd');
  out.ok = true;
  const char* name = r == Reduce::kMax ? "max" : r == Reduce::kMin ? "min" : r == Reduce::kMean ? "mean" : "median";
  out.text = std::string(name) + " over " + c.over + " of [" + parts + "] = " + format_number(out.value);
  return out;
}

}  // namespace

std::vector<ClaimResult> evaluate_claims(const std::vector<Claim>& claims, const std::vector<ClaimRun>& runs) {
  std::map<size_t, RunMetrics> cache;
  auto metrics = [&](size_t r) -> const RunMetrics& {
    auto it = cache.find(r);
    if (it == cache.end()) it = cache.emplace(r, RunMetrics::read(runs[r].dir)).first;
    return it->second;
  };
  std::vector<ClaimResult> out;
  for (const Claim& c : claims) {
    ClaimResult res;
    res.id = c.id;
    res.text = c.text;
    res.op = c.op;
    res.over = c.over;
    std::vector<std::string> details;
    const bool per_value = !c.over.empty() && c.over_reduce == Reduce::kNone;
    try {
      if (per_value) {
        const std::vector<std::string> values = claim_values(c, runs);
        bool error = values.empty();
        if (values.empty()) details.push_back("over: " + c.over + " has no values among the runs");
        std::string measured, expected_rhs;
        bool same_rhs = true;
        for (const auto& v : values) {
          ClaimPoint pt;
          pt.value = v;
          pt.lhs = evaluate_side(with_run_key(c.lhs, c.over, v), runs, metrics);
          pt.rhs = evaluate_side(with_run_key(c.rhs, c.over, v), runs, metrics);
          if (!pt.lhs.ok || !pt.rhs.ok) {
            pt.verdict = Verdict::kError;
            error = true;
            if (!pt.lhs.ok) details.push_back(c.over + "=" + v + ": " + pt.lhs.error);
            if (!pt.rhs.ok) details.push_back(c.over + "=" + v + ": " + pt.rhs.error);
          } else {
            pt.verdict = compare(pt.lhs.value, c.op, pt.rhs.value) ? Verdict::kPass : Verdict::kFail;
            if (std::isnan(pt.lhs.value) || std::isnan(pt.rhs.value))
              details.push_back(c.over + "=" + v + ": a measured value is NaN, so the comparison is false");
          }
          res.passed += pt.verdict == Verdict::kPass;
          const std::string lhs_t = pt.lhs.ok ? format_number(pt.lhs.value) : "?";
          const std::string rhs_t = pt.rhs.ok ? format_number(pt.rhs.value) : "?";
          if (expected_rhs.empty()) expected_rhs = rhs_t;
          same_rhs &= rhs_t == expected_rhs;
          measured += (measured.empty() ? "" : "; ") + v + ": " + lhs_t + (c.rhs.is_number ? "" : " vs " + rhs_t) + " " +
                      verdict_name(pt.verdict);
          res.points.push_back(pt);
        }
        const int need = required(c, values.size());
        res.verdict = error ? Verdict::kError : res.passed >= need ? Verdict::kPass : Verdict::kFail;
        res.expected = std::string(op_text(c.op)) + " " + (c.rhs.is_number || same_rhs ? expected_rhs : "the rhs") + " " +
                       require_text(c, values.size());
        res.measured = std::to_string(res.passed) + " of " + std::to_string(values.size()) + " pass (" + c.over + " " +
                       measured + ")";
        if (!res.points.empty()) res.lhs = res.points.front().lhs, res.rhs = res.points.front().rhs;
      } else {
        if (!c.over.empty()) {
          const std::vector<std::string> values = claim_values(c, runs);
          res.lhs = reduce_side_over(c, c.lhs, values, runs, metrics);
          res.rhs = reduce_side_over(c, c.rhs, values, runs, metrics);
        } else {
          res.lhs = evaluate_side(c.lhs, runs, metrics);
          res.rhs = evaluate_side(c.rhs, runs, metrics);
        }
        res.expected = std::string(op_text(c.op)) + " " + (res.rhs.ok ? res.rhs.text : "?");
        res.measured = res.lhs.ok ? res.lhs.text : "?";
        if (!res.lhs.ok) details.push_back(res.lhs.error);
        if (!res.rhs.ok) details.push_back(res.rhs.error);
        if (details.empty()) {
          const double a = res.lhs.value, b = res.rhs.value;
          res.verdict = compare(a, c.op, b) ? Verdict::kPass : Verdict::kFail;
          res.passed = res.verdict == Verdict::kPass;
          if (std::isnan(a) || std::isnan(b)) details.push_back("a measured value is NaN, so the comparison is false");
        } else {
          res.verdict = Verdict::kError;
        }
      }
    } catch (const IoError& e) {  // a malformed metrics file
      res.verdict = Verdict::kError;
      res.detail = e.what();
      out.push_back(res);
      continue;
    }
    std::set<std::string> noted;
    std::vector<const SideValue*> sides = {&res.lhs, &res.rhs};
    for (const ClaimPoint& pt : res.points) sides.push_back(&pt.lhs), sides.push_back(&pt.rhs);
    for (const SideValue* sv : sides) {
      if (sv->run.empty() || !noted.insert(sv->run).second) continue;
      for (const ClaimRun& r : runs)
        if (r.name == sv->run && !r.note.empty()) details.push_back("run " + r.name + ": " + r.note);
    }
    for (size_t i = 0; i < details.size(); ++i) res.detail += (i ? "; " : "") + details[i];
    out.push_back(res);
  }
  return out;
}

bool all_passed(const std::vector<ClaimResult>& results) {
  for (const auto& r : results)
    if (r.verdict != Verdict::kPass) return false;
  return true;
}

namespace {

std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += ' ';
    else out += c;
  }
  return out;
}

Json json_side(const SideValue& s) {
  Json o = {{"ok", s.ok}};
  if (!s.run.empty()) o["run"] = s.run;
  if (s.ok) {
    o["raw"] = json_double(s.raw);
    o["value"] = json_double(s.value);
    o["text"] = s.text;
  } else {
    o["error"] = s.error;
  }
  return o;
}

}  // namespace

std::string verdict_markdown(const std::vector<ClaimResult>& results) {
  std::string s = "| claim | text | expected | measured | verdict |\n|---|---|---|---|---|\n";
  for (const auto& r : results)
    s += "| " + md_cell(r.id) + " | " + md_cell(r.text) + " | " + md_cell(r.expected) + " | " + md_cell(r.measured) +
         " | " + verdict_name(r.verdict) + " |\n";
  bool any = false;
  for (const auto& r : results) {
    if (r.detail.empty()) continue;
    if (!any) s += "\n";
    any = true;
    s += "- **" + r.id + "** (" + verdict_name(r.verdict) + "): " + r.detail + "\n";
  }
  return s;
}

std::string verdict_json(const std::vector<ClaimResult>& results, const Json& header) {
  Json j = header.is_object() ? header : Json::object();
  j["passed"] = all_passed(results);
  Json claims = Json::array();
  for (const auto& r : results) {
    Json c = {{"id", r.id},           {"text", r.text},     {"op", op_text(r.op)},
              {"expected", r.expected}, {"measured", r.measured}, {"verdict", verdict_name(r.verdict)},
              {"detail", r.detail},   {"lhs", json_side(r.lhs)}, {"rhs", json_side(r.rhs)}};
    if (!r.over.empty() && !r.points.empty()) {
      c["over"] = r.over;
      c["passed_count"] = r.passed;
      Json points = Json::array();
      for (const ClaimPoint& pt : r.points)
        points.push_back({{"value", pt.value}, {"verdict", verdict_name(pt.verdict)}, {"lhs", json_side(pt.lhs)},
                          {"rhs", json_side(pt.rhs)}});
      c["points"] = points;
    }
    claims.push_back(c);
  }
  j["claims"] = claims;
  return json_dump(j) + "\n";
}

}  // namespace attnlab
