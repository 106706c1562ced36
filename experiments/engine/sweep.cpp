#include "experiments/engine/sweep.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "experiments/engine/claims.h"
#include "train/config/yaml_helpers.h"
#include "train/formats/files.h"
#include "train/formats/json.h"
#include "train/formats/run_files.h"
#include "train/formats/safetensors.h"

namespace fs = std::filesystem;

namespace attnlab {

namespace {

// ---------------------------------------------------------------------------------------------------
// Reading the sweep file

// The shared YAML helpers (train/config/yaml_helpers.h).
using yaml::fail;
using yaml::is_float_text;
using yaml::is_int_text;
using yaml::is_string_tagged;
using yaml::loc;
using yaml::parse_number;
using yaml::trim;

std::string key_of_override(const std::string& ov) { return trim(ov.substr(0, ov.find('='))); }

// Shortest text that reads back to the same double, e.g. 1.0e-2 -> 0.01.
std::string shortest(double x) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), x);
  return std::string(buf, r.ptr);
}

// One value of an axis: the text given to the config reader, the text for names and tables, and where
// it was written.
struct AxisValue {
  std::string text;     // as after --set key=
  std::string display;  // canonical: 0.01, true, copy
  std::string where;
};

AxisValue scalar_value(const YAML::Node& v, const std::string& where, const std::string& what) {
  if (!v.IsScalar())
    fail(where, what + ": values must be scalars (numbers, true/false, names), got " +
                    (v.IsSequence() ? std::string("a list") : v.IsMap() ? std::string("a map") : std::string("nothing")));
  const std::string s = v.Scalar();
  AxisValue out;
  out.where = where;
  if (is_string_tagged(v)) {  // keep the quotes so the config reader still sees a string
    out.text = yaml::double_quoted(s);
    out.display = s;
    return out;
  }
  out.text = s;
  out.display = s;
  if (is_int_text(s)) {
    out.display = s[0] == '+' ? s.substr(1) : s;
  } else if (is_float_text(s)) {
    out.display = shortest(std::strtod(s.c_str(), nullptr));
  } else if (s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" || s == "FALSE") {
    out.display = (s[0] == 't' || s[0] == 'T') ? "true" : "false";
  }
  return out;
}

// A group of axes that advance together: one key for a grid/range/seeds axis, several for a zip.
struct AxisGroup {
  std::vector<std::string> keys;
  std::vector<std::vector<AxisValue>> rows;  // rows[j][i]: key i at position j
};

std::vector<AxisValue> list_values(const YAML::Node& v, const std::string& source, const YAML::Node& key,
                                   const std::string& what) {
  const std::string where = loc(source, key.Mark());
  if (!v.IsSequence()) {
    if (v.IsScalar()) return {scalar_value(v, loc(source, v.Mark()), what)};  // a single value
    fail(where, what + ": expected a list of values, e.g. [1, 2]");
  }
  if (v.size() == 0) fail(where, what + ": empty axis (an axis needs at least one value)");
  std::vector<AxisValue> out;
  for (size_t i = 0; i < v.size(); ++i) out.push_back(scalar_value(v[i], loc(source, v[i].Mark()), what));
  return out;
}

double number_field(const YAML::Node& m, const char* name, const std::string& source, const std::string& what,
                    bool required, double fallback) {
  const YAML::Node v = m[name];
  if (!v) {
    if (required) fail(loc(source, m.Mark()), what + ": missing '" + name + "'");
    return fallback;
  }
  double x = 0;
  if (!parse_number(v, &x)) fail(loc(source, v.Mark()), what + "." + name + ": expected a number");
  return x;
}

AxisGroup range_axis(const std::string& key, const YAML::Node& spec, const std::string& source) {
  const std::string what = "range." + key;
  if (!spec.IsMap()) fail(loc(source, spec.Mark()), what + ": expected {start: A, stop: B, num: N[, log: true]}");
  for (auto it = spec.begin(); it != spec.end(); ++it) {
    const std::string k = it->first.Scalar();
    if (k != "start" && k != "stop" && k != "num" && k != "log")
      fail(loc(source, it->first.Mark()), what + ": unknown field '" + k + "' (fields: start, stop, num, log)");
  }
  const double start = number_field(spec, "start", source, what, true, 0);
  const double stop = number_field(spec, "stop", source, what, true, 0);
  const double numd = number_field(spec, "num", source, what, true, 0);
  bool log = false;
  if (const YAML::Node l = spec["log"]) {
    if (!l.IsScalar() || (l.Scalar() != "true" && l.Scalar() != "false"))
      fail(loc(source, l.Mark()), what + ".log: expected true or false");
    log = l.Scalar() == "true";
  }
  if (numd != std::floor(numd) || numd < 0 || numd > 10000)
    fail(loc(source, spec["num"].Mark()), what + ".num: expected a whole number of values");
  const int num = int(numd);
  if (num == 0) fail(loc(source, spec["num"].Mark()), what + ": empty axis (num: 0)");
  if (log && (start <= 0 || stop <= 0))
    fail(loc(source, spec.Mark()), what + ": log: true needs start > 0 and stop > 0");
  AxisGroup g;
  g.keys = {key};
  for (int i = 0; i < num; ++i) {
    const double f = num == 1 ? 0.0 : double(i) / double(num - 1);
    double x = log ? start * std::pow(stop / start, f) : start + (stop - start) * f;
    if (i == num - 1 && num > 1) x = stop;  // the end is exact
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.12g", x);  // drop float noise: 0.30000000000000004 -> 0.3
    const double clean = std::strtod(buf, nullptr);
    // Integers stay integers so int keys accept them.
    const bool integral = clean == std::floor(clean) && std::fabs(clean) < 1e15 &&
                          is_int_text(spec["start"].Scalar()) && is_int_text(spec["stop"].Scalar());
    std::string text = integral ? std::to_string((long long)clean) : shortest(clean);
    if (!integral && text.find_first_of(".e") == std::string::npos) text += ".0";
    g.rows.push_back({AxisValue{text, integral ? text : shortest(clean), loc(source, spec.Mark())}});
  }
  return g;
}

std::string sanitize(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '+' || c == '-') ? c : '_';
  return out;
}

std::string leaf(const std::string& key) {
  const size_t dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

std::vector<std::string> override_list(const YAML::Node& v, const std::string& source, const std::string& what) {
  return yaml::override_list(v, source, what, "a list of key=value strings (or a map)",
                             [&](const YAML::Node& x, const std::string& at) {
                               return scalar_value(x, loc(source, x.Mark()), at).text;
                             });
}

// Prefixes a config error of one point with the sweep file location of the value that caused it.
[[noreturn]] void rethrow_point_error(const ConfigError& e, const Sweep& sw, const SweepPoint& p,
                                      const std::vector<const AxisValue*>& values) {
  const std::string msg = e.what();
  for (size_t i = 0; i < values.size(); ++i) {
    const std::string ov = "--set " + p.axes[i].first + "=" + values[i]->text;
    if (msg.find(ov) != std::string::npos)
      throw ConfigError(values[i]->where + ": " + p.axes[i].first + " value " + values[i]->text + ": " + msg);
  }
  throw ConfigError(sw.source + ": grid point " + p.name + ": " + msg);
}

}  // namespace

std::string run_name(const std::vector<std::pair<std::string, std::string>>& axes,
                     const std::vector<std::string>& axis_keys) {
  std::map<std::string, int> leaf_count;  // the section is dropped when the last part is unique
  for (const auto& k : axis_keys) ++leaf_count[leaf(k)];
  std::string name;
  for (const auto& [k, v] : axes) {
    if (!name.empty()) name += ',';
    name += (leaf_count[leaf(k)] == 1 ? leaf(k) : k) + "=" + sanitize(v);
  }
  if (name.empty()) return "base";
  if (name.size() > 200) {  // keep within file-name limits; the hash keeps names distinct
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
    char hex[20];
    std::snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);
    name = name.substr(0, 180) + "-" + hex;
  }
  return name;
}

Sweep parse_sweep(const std::string& yaml_text, const std::string& source, const std::string& base_dir,
                  const std::vector<std::string>& extra) {
  YAML::Node root = yaml::load(yaml_text, source);
  if (!root.IsMap()) fail(source, "a sweep file is a map with base (or base_config), set, grid, zip, range, seeds");
  Sweep sw;
  sw.source = source;
  sw.default_dir = (fs::path("runs") / "sweeps" / fs::path(source).stem()).string();

  static const std::set<std::string> kKeys = {"base",  "base_config", "set",       "grid",
                                              "zip",   "range",       "seeds",     "max_points"};
  int64_t max_points = kDefaultMaxPoints;
  std::string max_points_where;
  std::vector<AxisGroup> groups;
  std::map<std::string, std::string> axis_where;  // key -> where first defined
  auto add_group = [&](AxisGroup g, const std::string& where) {
    for (const auto& k : g.keys) {
      if (auto [it, fresh] = axis_where.emplace(k, where); !fresh)
        fail(where, k + " is an axis twice (also at " + it->second + ")");
      if (k == "train.threads")
        fail(where, "train.threads cannot be an axis: threads per run are set with attnlab sweep --threads");
    }
    groups.push_back(std::move(g));
  };
  std::vector<std::string> set;
  std::string base_key;  // "base" or "base_config"
  YAML::Node base_node;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const YAML::Node k = it->first, v = it->second;
    const std::string key = k.IsScalar() ? k.Scalar() : "";
    const std::string where = loc(source, k.Mark());
    if (!kKeys.count(key))
      fail(where, "unknown sweep key '" + key + "' (keys: base, base_config, set, grid, zip, range, seeds, max_points)");
    if (key == "max_points") {
      int64_t n = 0;
      if (!yaml::parse_int(v, &n) || n < 1)
        fail(loc(source, v.Mark()), "max_points: expected a whole number >= 1 (the most grid points this sweep may have)");
      max_points = n;
      max_points_where = loc(source, v.Mark());
    } else if (key == "base" || key == "base_config") {
      if (!base_key.empty()) fail(where, "give exactly one of base (a file) and base_config (an inline config)");
      base_key = key;
      base_node.reset(v);
    } else if (key == "set") {
      set = override_list(v, source, "set");
    } else if (key == "grid") {
      if (!v.IsMap()) fail(where, "grid: expected a map of key: [values]");
      for (auto jt = v.begin(); jt != v.end(); ++jt) {
        const std::string ak = jt->first.Scalar();
        AxisGroup g;
        g.keys = {ak};
        for (auto& x : list_values(jt->second, source, jt->first, "grid." + ak)) g.rows.push_back({x});
        add_group(std::move(g), loc(source, jt->first.Mark()));
      }
    } else if (key == "zip") {
      std::vector<YAML::Node> maps;
      if (v.IsMap()) maps.push_back(v);
      else if (v.IsSequence()) for (size_t i = 0; i < v.size(); ++i) maps.push_back(v[i]);
      else fail(where, "zip: expected a map of key: [values] (or a list of such maps)");
      for (const YAML::Node& m : maps) {
        if (!m.IsMap() || m.size() == 0) fail(loc(source, m.Mark()), "zip: expected a map of key: [values]");
        AxisGroup g;
        size_t n = 0;
        std::string first;
        std::vector<std::vector<AxisValue>> cols;
        for (auto jt = m.begin(); jt != m.end(); ++jt) {
          const std::string ak = jt->first.Scalar();
          auto vals = list_values(jt->second, source, jt->first, "zip." + ak);
          if (g.keys.empty()) {
            n = vals.size();
            first = ak;
          } else if (vals.size() != n) {
            fail(loc(source, jt->first.Mark()), "zip: axes advance together and need equal lengths: " + first +
                                                    " has " + std::to_string(n) + " values, " + ak + " has " +
                                                    std::to_string(vals.size()) + " values");
          }
          g.keys.push_back(ak);
          cols.push_back(std::move(vals));
        }
        for (size_t j = 0; j < n; ++j) {
          std::vector<AxisValue> row;
          for (const auto& c : cols) row.push_back(c[j]);
          g.rows.push_back(row);
        }
        add_group(std::move(g), loc(source, m.Mark()));
      }
    } else if (key == "range") {
      if (!v.IsMap()) fail(where, "range: expected a map of key: {start, stop, num}");
      for (auto jt = v.begin(); jt != v.end(); ++jt)
        add_group(range_axis(jt->first.Scalar(), jt->second, source), loc(source, jt->first.Mark()));
    } else if (key == "seeds") {
      AxisGroup g;
      g.keys = {"train.seed"};
      for (auto& x : list_values(v, source, k, "seeds")) g.rows.push_back({x});
      add_group(std::move(g), where);
    }
  }
  if (base_key.empty()) fail(source, "no base config: give base: PATH (relative to the sweep file) or base_config: {...}");
  if (base_key == "base") {
    if (!base_node.IsScalar() || base_node.Scalar().empty()) fail(loc(source, base_node.Mark()), "base: expected a file path");
    const fs::path p = fs::path(base_node.Scalar());
    sw.base_path = (p.is_absolute() ? p : fs::path(base_dir) / p).lexically_normal().string();
    if (!fs::is_regular_file(sw.base_path))
      fail(loc(source, base_node.Mark()), "base: no such config file " + sw.base_path);
  } else {
    if (!base_node.IsMap() && !base_node.IsNull())
      fail(loc(source, base_node.Mark()), "base_config: expected a config map (model:, optim:, ...)");
    sw.base_text = base_node.IsNull() ? "" : YAML::Dump(base_node) + "\n";
  }

  // Overrides for every point must not fight the axes.
  std::vector<std::string> common = set;
  for (const auto& e : extra) common.push_back(e);
  for (const auto& ov : common) {
    const std::string k = key_of_override(ov);
    if (axis_where.count(k))
      fail(source, k + " is set for every point (" + ov + ") and is also an axis (at " + axis_where[k] + ")");
    if (k == "train.threads")
      fail(source, "train.threads cannot be set in a sweep: threads per run are set with attnlab sweep --threads");
  }

  for (const auto& g : groups)
    for (const auto& k : g.keys) sw.axis_keys.push_back(k);

  // The size of the product, before expanding it (each point is a validated config and a run).
  double n_points = 1.0;
  std::string sizes;
  for (const auto& g : groups) {
    n_points *= double(g.rows.size());
    sizes += (sizes.empty() ? "" : " × ") + std::to_string(g.rows.size());
  }
  if (n_points > double(max_points))
    fail(max_points_where.empty() ? source : max_points_where,
         "the sweep has " + (n_points < 1e15 ? std::to_string(int64_t(n_points)) : std::to_string(n_points)) +
             " points (" + sizes + "), more than max_points = " + std::to_string(max_points) +
             (max_points_where.empty() ? " (the default; raise it with max_points: N in the sweep file)" : ""));

  // Cartesian product over the groups, the first varying slowest.
  std::vector<size_t> idx(groups.size(), 0);
  std::map<std::string, std::string> names;  // name -> first point's values, for duplicates
  while (true) {
    SweepPoint p;
    p.overrides = common;
    std::vector<const AxisValue*> values;
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      const auto& g = groups[gi];
      for (size_t ki = 0; ki < g.keys.size(); ++ki) {
        const AxisValue& v = g.rows[idx[gi]][ki];
        const std::string& k = g.keys[ki];
        p.axes.emplace_back(k, v.display);
        p.overrides.push_back(k + "=" + v.text);
        values.push_back(&v);
      }
    }
    const std::string name = run_name(p.axes, sw.axis_keys);
    p.name = name;
    try {
      p.config = sw.base_path.empty() ? parse_config(sw.base_text, source + " (base_config)", p.overrides)
                                      : load_config(sw.base_path, p.overrides);
    } catch (const ConfigError& e) {
      rethrow_point_error(e, sw, p, values);
    }
    std::string vals;
    for (const auto* v : values) vals += (vals.empty() ? "" : ", ") + v->text + " (" + v->where + ")";
    if (auto [it, fresh] = names.emplace(name, vals); !fresh)
      fail(source, "two grid points have the same name " + name + ": " + it->second + " and " + vals +
                       " (repeated values?)");
    sw.points.push_back(std::move(p));
    // Advance the odometer: the last group fastest.
    int gi = int(groups.size()) - 1;
    while (gi >= 0 && ++idx[size_t(gi)] == groups[size_t(gi)].rows.size()) idx[size_t(gi--)] = 0;
    if (gi < 0) break;
  }
  return sw;
}

Sweep load_sweep(const std::string& path, const std::vector<std::string>& extra) {
  std::string text, why;
  if (!read_regular_file(path, &text, &why, uint64_t(16) << 20))
    throw ConfigError(path + ": cannot read the sweep file: " + why);
  return parse_sweep(text, path, fs::path(path).parent_path().string(), extra);
}

// ---------------------------------------------------------------------------------------------------
// Run directories

const char* run_state_name(RunState s) {
  switch (s) {
    case RunState::kMissing: return "not run";
    case RunState::kFinished: return "finished";
    case RunState::kStopped: return "stopped";
    case RunState::kResumable: return "incomplete";
    case RunState::kStale: return "failed";
  }
  return "?";
}

namespace {

// "section.key" -> value, from a dump_config text.
std::map<std::string, std::string> dump_map(const std::string& dump) {
  std::map<std::string, std::string> out;
  std::istringstream in(dump);
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] != ' ') {
      section = line.substr(0, line.find(':'));
      continue;
    }
    const std::string t = trim(line);
    const size_t colon = t.find(": ");
    if (colon != std::string::npos) out[section + "." + t.substr(0, colon)] = t.substr(colon + 2);
  }
  return out;
}

std::string normalized_dump(RunConfig c) {
  c.train.threads = 0;  // threads per run is a property of the machine, not of the run
  return dump_config(c);
}

std::string config_diff(const std::string& a, const std::string& b) {
  const auto ma = dump_map(a), mb = dump_map(b);
  std::string out;
  int n = 0;
  for (const auto& [k, v] : ma) {
    const auto it = mb.find(k);
    const std::string w = it == mb.end() ? "(absent)" : it->second;
    if (w == v) continue;
    if (n++ < 4) out += (out.empty() ? "" : ", ") + k + ": " + v + " there, " + w + " here";
  }
  if (n > 4) out += ", ... (" + std::to_string(n) + " keys)";
  return out;
}

std::string stop_event(const fs::path& dir) {
  std::ifstream in(dir / "events.jsonl");
  std::string line;
  Json found;
  while (std::getline(in, line)) {
    const Json e = Json::parse(line, nullptr, false);  // a damaged line (a killed write) is skipped
    if (!e.is_object() || !e.contains("kind")) continue;
    if (e["kind"] == "nonfinite" || e["kind"] == "stopped") found = e;
  }
  if (found.is_null()) return "";
  const std::string step =
      found.contains("step") && found["step"].is_number_integer() ? " at step " + std::to_string(found["step"].get<int64_t>()) : "";
  if (found.contains("message") && found["message"].is_string()) return found["message"].get<std::string>() + step;
  return "stopped itself" + step + " (see events.jsonl)";
}

int64_t checkpoint_step(const std::string& path) {
  static const std::regex re("step_([0-9]+)\\.safetensors$");
  std::smatch m;
  return std::regex_search(path, m, re) ? std::stoll(m[1]) : -1;
}

}  // namespace

RunState run_state(const std::string& dir_s, const RunConfig& cfg, std::string* detail) {
  const fs::path dir(dir_s);
  std::error_code ec;
  detail->clear();
  if (!fs::exists(dir, ec) || fs::is_empty(dir, ec)) return RunState::kMissing;
  const std::string ckpt = latest_checkpoint(dir_s);
  if (fs::exists(dir / "config.yaml")) {
    std::string have;
    try {
      have = normalized_dump(load_config((dir / "config.yaml").string()));
    } catch (const ConfigError& e) {
      if (!ckpt.empty())
        throw ConfigError(dir_s + " has a checkpoint but its config.yaml does not load (" + e.what() +
                          "); move the directory away to rerun");
    }
    const std::string want = normalized_dump(cfg);
    if (!have.empty() && have != want)
      throw ConfigError(dir_s + " holds a run of a different config (" + config_diff(have, want) +
                        "); use another output directory, or move it away to rerun");
  }
  RunFiles files(dir_s);
  if (fs::exists(files.checkpoint_path(cfg.train.steps)) && fs::exists(dir / "summary.md")) {
    *detail = std::to_string(cfg.train.steps) + " steps";
    return RunState::kFinished;
  }
  const std::string why = stop_event(dir);
  if (!why.empty()) {
    *detail = why;
    return RunState::kStopped;
  }
  if (!ckpt.empty()) {
    *detail = "checkpoint at step " + std::to_string(checkpoint_step(ckpt)) + " of " + std::to_string(cfg.train.steps);
    return RunState::kResumable;
  }
  *detail = "no checkpoint";
  return RunState::kStale;
}

// ---------------------------------------------------------------------------------------------------
// Summary

namespace {

struct SummaryRow {
  std::vector<std::string> cells;
};

const char* kHeadline[] = {"zabsmax", "ent_norm", "alpha0", "rgs_sum", "mass_ratio", "tok_cos"};

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string num6(double v, bool found) {
  if (!found) return "";
  if (!std::isfinite(v)) return format_number(v);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

void write_atomic(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw IoError("cannot write " + tmp.string());
  }
  fs::rename(tmp, path);
}

}  // namespace

void write_sweep_summary(const Sweep& sweep, const std::string& dir) {
  std::map<std::string, int> leaf_count;
  for (const auto& k : sweep.axis_keys) ++leaf_count[leaf(k)];
  std::vector<std::string> csv_head = {"name"}, md_head = {"name"};
  for (const auto& k : sweep.axis_keys) {
    csv_head.push_back(k);
    md_head.push_back(leaf_count[leaf(k)] == 1 ? leaf(k) : k);
  }
  const std::vector<std::string> tail_csv = {"status", "steps", "train_loss", "val_loss", "probe_step",
                                             "zabsmax_max", "ent_norm_min", "alpha0_max", "rgs_sum_mid",
                                             "mass_ratio_max", "tok_cos_max"};
  const std::vector<std::string> tail_md = {"status", "steps", "train loss", "val loss", "probe step",
                                            "zabsmax max", "ent_norm min", "alpha0 max", "rgs_sum mid layer",
                                            "mass_ratio max", "tok_cos max"};
  csv_head.insert(csv_head.end(), tail_csv.begin(), tail_csv.end());
  md_head.insert(md_head.end(), tail_md.begin(), tail_md.end());

  std::vector<SummaryRow> rows;
  Json json_runs = Json::array();
  for (const SweepPoint& p : sweep.points) {
    const std::string run_dir = (fs::path(dir) / p.name).string();
    std::string detail, status;
    RunState st = RunState::kMissing;
    try {
      st = run_state(run_dir, p.config, &detail);
      status = run_state_name(st);
    } catch (const ConfigError&) {
      status = "other config";
    }
    SummaryRow r;
    r.cells.push_back(p.name);
    for (const auto& [k, v] : p.axes) r.cells.push_back(v);
    r.cells.push_back(status);
    RunMetrics m = RunMetrics::read(run_dir, [](std::string_view n) {
      if (n == "loss" || n == "val_loss") return true;
      for (const char* h : kHeadline)
        if (n == h) return true;
      return false;
    });
    bool f1 = false, f2 = false;
    const double loss = m.last_value("loss", &f1), val = m.last_value("val_loss", &f2);
    const auto* lr = m.rows("loss");
    r.cells.push_back(lr && !lr->empty() ? std::to_string(lr->back().step) : "");
    r.cells.push_back(num6(loss, f1));
    r.cells.push_back(num6(val, f2));
    const int64_t ps = m.last_probe_step();
    r.cells.push_back(ps >= 0 ? std::to_string(ps) : "");
    const int mid = p.config.model.n_layer / 2;
    const char ops[] = {'M', 'm', 'M', 'M', 'M', 'M'};
    for (int i = 0; i < 6; ++i) {
      bool found = false;
      const double v = ps >= 0 ? metric_at_step(m, kHeadline[i], ps, ops[i], i == 3 ? mid : -1, &found) : 0.0;
      r.cells.push_back(num6(v, found));
    }
    rows.push_back(r);
    Json axes = Json::object();
    for (const auto& [k, v] : p.axes) axes[k] = v;
    json_runs.push_back({{"name", p.name}, {"dir", p.name}, {"status", status}, {"axes", axes}});
  }

  std::string csv;
  for (size_t i = 0; i < csv_head.size(); ++i) {
    if (i > 0) csv += ',';
    csv += csv_cell(csv_head[i]);
  }
  csv += "\n";
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.cells.size(); ++i) {
      if (i > 0) csv += ',';
      csv += csv_cell(r.cells[i]);
    }
    csv += "\n";
  }
  std::string md = "# Sweep " + fs::path(sweep.source).filename().string() + "\n\n" + std::to_string(rows.size()) +
                   " runs. Final train/val loss; headline metrics at the last probe step (max/min over layers and "
                   "heads; rgs_sum of layer n_layer/2).\n\n|";
  for (const auto& h : md_head) md += " " + h + " |";
  md += "\n|";
  for (size_t i = 0; i < md_head.size(); ++i) md += "---|";
  md += "\n";
  for (const auto& r : rows) {
    md += "|";
    for (const auto& c : r.cells) md += " " + (c.empty() ? std::string("–") : c) + " |";
    md += "\n";
  }
  const Json json = {{"sweep", sweep.source}, {"axes", sweep.axis_keys}, {"runs", json_runs}};
  write_atomic(fs::path(dir) / "summary.csv", csv);
  write_atomic(fs::path(dir) / "summary.md", md);
  write_atomic(fs::path(dir) / "sweep.json", json_dump(json) + "\n");
}

// ---------------------------------------------------------------------------------------------------
// Execution

namespace {

std::atomic<int> g_sweep_signal{0};
std::atomic<int> g_sweep_signal_count{0};
extern "C" void on_sweep_signal(int sig) {
  g_sweep_signal.store(sig);
  g_sweep_signal_count.fetch_add(1);
}

int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

std::string stamp() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d-%H%M%S", std::localtime(&t));
  return buf;
}

std::string seconds_text(double s) {
  char buf[32];
  if (s < 120) std::snprintf(buf, sizeof(buf), "%.1f s", s);
  else std::snprintf(buf, sizeof(buf), "%dm%02ds", int(s) / 60, int(s) % 60);
  return buf;
}

// The last `max_lines` lines of `path` from byte `offset` on (this attempt's output).
std::string tail_from(const fs::path& path, std::streamoff offset, int max_lines) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(offset);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (int(lines.size()) > max_lines) lines.erase(lines.begin());
  }
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

std::string last_line(const std::string& s) {
  std::istringstream in(s);
  std::string line, last;
  while (std::getline(in, line))
    if (!trim(line).empty()) last = trim(line);
  return last;
}

struct Job {
  size_t point = 0;
  bool resume = false;
  std::string detail;  // the state before starting
};

struct Running {
  Job job;
  std::chrono::steady_clock::time_point start;
  std::streamoff log_offset = 0;
};

pid_t launch(const std::vector<std::string>& args, const fs::path& log_path) {
  const pid_t sweep_pid = getpid();
  const pid_t pid = fork();
  if (pid != 0) return pid;  // parent (or -1)
  // Child: if the sweep dies, the run gets SIGTERM, checkpoints and exits. A sweep that died between the
  // fork and this line sent nothing: then do not start at all (a later sweep would race this run).
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != sweep_pid) _exit(130);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
  }
  const int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) {
    dup2(devnull, 0);
    close(devnull);
  }
  setenv("ATTNLAB_NO_MPI", "1", 1);  // a run is one process even when this sweep is an MPI rank
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  execv(argv[0], argv.data());
  std::fprintf(stderr, "attnlab sweep: cannot run %s: %s\n", argv[0], std::strerror(errno));
  _exit(127);
}

class SignalGuard {
 public:
  SignalGuard() {
    g_sweep_signal = 0;
    g_sweep_signal_count = 0;
    struct sigaction sa {};
    sa.sa_handler = on_sweep_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: the wait loop polls anyway
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

}  // namespace

namespace {

// The distributed sweep's messages (int64 pairs): a rank asks for a run when it has a free slot, rank 0
// answers every request with a point to run or "stop", the rank reports each run's exit code, and says
// goodbye when it has nothing left; rank 0 forwards an interrupt.
enum Tag : int { kRequest = 1, kAssign = 2, kDone = 3, kBye = 4, kInterrupt = 5 };
constexpr int64_t kStop = -1;

// The runs' processes are single-process attnlab: an mpirun environment they inherit must not make them
// ranks (train/comm.h).
void forward_signal(const std::map<pid_t, Running>& running, int count, int sig) {
  const int s = count >= 3 ? SIGKILL : sig;  // a third Ctrl-C gives up on clean stops
  for (const auto& [pid, r] : running) kill(pid, s);
}

int exit_code_of(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
}

// A rank other than 0: runs what rank 0 assigns, `jobs` at a time, until rank 0 says stop.
void run_worker(Comm& comm, int jobs, const std::function<std::vector<std::string>(const Job&)>& child_args,
                const fs::path& dir, const Sweep& sweep) {
  const SignalGuard guard;
  std::map<pid_t, Running> running;
  int outstanding = 0, forwarded = 0;
  bool stopped = false;
  const int64_t req[2] = {0, 0};
  for (int k = 0; k < jobs; ++k, ++outstanding) comm.send(req, 2, 0, kRequest);
  comm.set_context("the sweep queue");
  while (!(stopped && outstanding == 0 && running.empty())) {
    int64_t msg[2];
    int src = 0;
    if (g_sweep_signal_count.load() > forwarded || comm.poll_recv(msg, 2, kInterrupt, &src)) {
      forwarded = std::max(forwarded + 1, g_sweep_signal_count.load());
      stopped = true;  // ask for nothing more; what runs saves a checkpoint and stops
      forward_signal(running, forwarded, g_sweep_signal.load() ? g_sweep_signal.load() : SIGINT);
    }
    bool busy = false;
    if (comm.poll_recv(msg, 2, kAssign, &src)) {
      busy = true;
      --outstanding;
      if (msg[0] == kStop) {
        stopped = true;
      } else {
        const Job j{size_t(msg[0]), msg[1] != 0, ""};
        const pid_t pid = launch(child_args(j), dir / "logs" / (sweep.points[j.point].name + ".log"));
        if (pid < 0) {
          const int64_t done[2] = {msg[0], 127};
          comm.send(done, 2, 0, kDone);
          if (!stopped) comm.send(req, 2, 0, kRequest), ++outstanding;
        } else {
          running[pid] = {j, std::chrono::steady_clock::now(), 0};
        }
      }
    }
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0 && running.count(pid)) {
      busy = true;
      const int64_t done[2] = {int64_t(running[pid].job.point), exit_code_of(status)};
      running.erase(pid);
      comm.send(done, 2, 0, kDone);
      if (!stopped) comm.send(req, 2, 0, kRequest), ++outstanding;
    }
    if (!busy) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const int64_t bye[2] = {0, 0};
  comm.send(bye, 2, 0, kBye);
}

// Threads per run: --threads, else the base config's train.threads when set, else 1.
int run_threads(const Sweep& sweep, const SweepOptions& opt) {
  if (opt.threads > 0) return opt.threads;
  return !sweep.points.empty() && sweep.points[0].config.train.threads > 0 ? sweep.points[0].config.train.threads : 1;
}

// The binary the runs start: opt.exe, else this process's (its real path, not argv[0]).
std::string child_exe(const SweepOptions& opt) {
  if (!opt.exe.empty()) return opt.exe;
  char buf[4096] = {0};
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, size_t(n)) : std::string();
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

SweepResult run_sweep(const Sweep& sweep, const SweepOptions& opt) {
  SweepResult res;
  res.dir = opt.out_dir.empty() ? sweep.default_dir : opt.out_dir;
  const fs::path dir(res.dir);
  Comm* comm = opt.comm && opt.comm->size() > 1 ? opt.comm : nullptr;
  const bool root = !comm || comm->rank() == 0;
  const int threads = run_threads(sweep, opt);
  const int cores = available_cores();
  // Under mpirun one run per rank unless --jobs says more (a rank per host with --jobs = its cores works too).
  const int jobs = opt.jobs > 0 ? opt.jobs : comm ? 1 : std::max(1, cores / threads);
  if (opt.point >= 0 && opt.point >= int64_t(sweep.points.size()))
    throw ConfigError("--point " + std::to_string(opt.point) + ": " + sweep.source + " has " +
                      std::to_string(sweep.points.size()) + " points (0.." + std::to_string(sweep.points.size() - 1) + ")");

  const std::string exe = child_exe(opt);
  auto child_args = [&](const Job& j) {
    const SweepPoint& p = sweep.points[j.point];
    const std::string run_dir = (dir / p.name).string();
    std::vector<std::string> a = {exe, "train"};
    if (j.resume) a.insert(a.end(), {"--resume", run_dir});
    else a.insert(a.end(), {(dir / "configs" / (p.name + ".yaml")).string(), "--out", run_dir});
    a.insert(a.end(), {"--quiet", "--set", "train.threads=" + std::to_string(threads)});
    return a;
  };
  // Rank 0 classifies, locks and writes the configs; the others wait for its word (0 = go).
  auto all_ok = [&](bool ok) {
    if (!comm) return ok;
    int64_t f = ok ? 0 : 1;
    comm->allreduce_max(&f, 1);
    return f == 0;
  };
  if (!root) {
    if (opt.dry_run) return res;
    if (!all_ok(true)) {
      res.exit_code = 2;
      return res;
    }
    try {
      run_worker(*comm, jobs, child_args, dir, sweep);
    } catch (const std::exception& e) {  // rank 0 would wait for this rank's reports forever: end the job
      std::fprintf(stderr, "attnlab sweep: rank %d: %s; ending every rank\n", comm->rank(), e.what());
      comm->abort(1);
    }
    return res;  // rank 0 reports
  }
  int lock_fd = -1;
  struct LockRelease {
    int& fd;
    ~LockRelease() {
      if (fd >= 0) close(fd);
    }
  } lock_release{lock_fd};
  std::vector<Job> todo;
  try {
    // 1. Classify every run before anything starts: a conflicting directory stops the sweep here.
    std::vector<std::string> conflicts;
    std::vector<RunState> states(sweep.points.size());
    std::vector<std::string> details(sweep.points.size());
    for (size_t i = 0; i < sweep.points.size(); ++i) {
      if (opt.point >= 0 && int64_t(i) != opt.point) continue;
      try {
        states[i] = run_state((dir / sweep.points[i].name).string(), sweep.points[i].config, &details[i]);
      } catch (const ConfigError& e) {
        conflicts.push_back(e.what());
      }
    }
    if (!conflicts.empty()) {
      std::string msg = "the sweep directory " + res.dir + " holds runs that do not match the sweep file:";
      for (const auto& c : conflicts) msg += "\n  " + c;
      throw ConfigError(msg);
    }
    int n_done = 0, n_stopped = 0, n_resume = 0;
    for (size_t i = 0; i < sweep.points.size(); ++i) {
      RunOutcome o;
      o.name = sweep.points[i].name;
      o.dir = (dir / o.name).string();
      o.state = states[i];
      o.detail = details[i];
      if (opt.point >= 0 && int64_t(i) != opt.point) {
        res.runs.push_back(o);  // not this task's
        continue;
      }
      if (states[i] == RunState::kFinished) ++n_done;
      else if (states[i] == RunState::kStopped) ++n_stopped, o.failed = true;
      else {
        if (states[i] == RunState::kResumable) ++n_resume;
        todo.push_back({i, states[i] == RunState::kResumable, details[i]});
      }
      res.runs.push_back(o);
    }
    const int slots = jobs * (comm ? comm->size() : 1);
    std::string plan;
    if (!todo.empty())
      plan = "; " + std::to_string(std::min<size_t>(size_t(slots), todo.size())) + " at a time x " +
             std::to_string(threads) + (threads == 1 ? " thread" : " threads") +
             (comm ? " over " + std::to_string(comm->size()) + " MPI ranks (" + comm->describe() + ")" : "");
    const size_t listed = opt.point >= 0 ? 1 : sweep.points.size();
    std::fprintf(stderr, "attnlab sweep: %zu run%s in %s: %d finished, %d stopped early, %zu to run (%d to resume)%s\n",
                 listed, listed == 1 ? "" : "s", res.dir.c_str(), n_done, n_stopped, todo.size(), n_resume, plan.c_str());
    for (size_t i = 0; i < sweep.points.size(); ++i)
      if (states[i] == RunState::kStopped && (opt.point < 0 || int64_t(i) == opt.point))
        std::fprintf(stderr, "  %s: stopped early, not retried (%s); move the directory away to rerun it\n",
                     sweep.points[i].name.c_str(), details[i].c_str());

    if (opt.dry_run) {
      for (const Job& j : todo) {
        std::string line;
        for (const auto& a : child_args(j)) line += (line.empty() ? "" : " ") + a;
        std::printf("%s\n", line.c_str());
      }
      return res;
    }

    // 2. The directory, its lock (two sweeps writing the same runs would corrupt them), the configs. One
    // point of an array job takes no sweep lock (the tasks run at once; each run has its own lock).
    fs::create_directories(dir / "configs");
    fs::create_directories(dir / "logs");
    if (opt.point < 0) {
      lock_fd = open((dir / ".sweep.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0)
        throw IoError("another attnlab sweep is running in " + res.dir + " (lock " + (dir / ".sweep.lock").string() + ")");
    }
    for (size_t i = 0; i < sweep.points.size(); ++i)
      if (opt.point < 0 || int64_t(i) == opt.point)
        write_atomic(dir / "configs" / (sweep.points[i].name + ".yaml"),
                     dump_config(sweep.points[i].config, sweep.points[i].overrides));
  } catch (...) {
    if (comm && !opt.dry_run) all_ok(false);
    throw;
  }
  if (opt.dry_run) return res;
  all_ok(true);
  // From here on the ranks work apart; a failure on rank 0 would leave the others waiting for work that
  // never comes, so under MPI it ends the job.
  auto execute = [&]() -> SweepResult {

    // 3. Run: at most `jobs` children at once here and `jobs` on every other rank; one line per start and finish.
    const SignalGuard guard;
    const auto t0 = std::chrono::steady_clock::now();
    auto since = [&](std::chrono::steady_clock::time_point t) {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    };
    std::map<pid_t, Running> running;     // this rank's children
    std::map<size_t, Running> remote;     // point -> run on another rank
    size_t next = 0;
    int forwarded = 0, finished_now = 0, failed_now = 0, byes = 0;
    const int workers = comm ? comm->size() - 1 : 0;
    const size_t total = todo.size();
    // Takes the next job: a stale directory moves to .failed/, the log's size marks where this attempt starts.
    auto begin = [&](const Job& j, const std::string& where) {
      const SweepPoint& p = sweep.points[j.point];
      const fs::path run_dir = dir / p.name;
      if (res.runs[j.point].state == RunState::kStale) {  // no checkpoint: keep it for inspection, start over
        fs::create_directories(dir / ".failed");
        fs::path to = dir / ".failed" / (p.name + "-" + stamp());
        for (int k = 1; fs::exists(to); ++k) to = dir / ".failed" / (p.name + "-" + stamp() + "-" + std::to_string(k));
        fs::rename(run_dir, to);
      }
      const fs::path log = dir / "logs" / (p.name + ".log");
      std::error_code ec;
      const auto size = fs::exists(log) ? fs::file_size(log, ec) : 0;
      res.runs[j.point].ran = true;
      std::fprintf(stderr, "[%7.1fs] start  %s (%zu/%zu)%s%s\n", since(t0), p.name.c_str(), next, total, where.c_str(),
                   j.resume ? (" resuming: " + j.detail).c_str() : "");
      return Running{j, std::chrono::steady_clock::now(), std::streamoff(ec ? 0 : size)};
    };
    // A run ended with `exit_code`: its state now, one line, its output's tail on failure.
    auto complete = [&](const Running& r, int exit_code, bool stopping) {
      const SweepPoint& p = sweep.points[r.job.point];
      RunOutcome& o = res.runs[r.job.point];
      o.exit_code = exit_code;
      try {
        o.state = run_state(o.dir, p.config, &o.detail);
      } catch (const ConfigError& e) {
        o.detail = e.what();
      }
      const double secs = since(r.start);
      if (o.exit_code == 0 && o.state == RunState::kFinished) {
        ++finished_now;
        std::fprintf(stderr, "[%7.1fs] done   %s in %s\n", since(t0), p.name.c_str(), seconds_text(secs).c_str());
        return;
      }
      if (stopping && (o.exit_code == 130 || o.exit_code == 128 + SIGINT || o.exit_code == 128 + SIGTERM)) {
        std::fprintf(stderr, "[%7.1fs] paused %s (%s)\n", since(t0), p.name.c_str(), o.detail.c_str());
        return;
      }
      o.failed = true;
      ++failed_now;
      const fs::path log = dir / "logs" / (p.name + ".log");
      const std::string tail = tail_from(log, r.log_offset, 40);
      std::error_code ec;
      fs::create_directories(o.dir, ec);
      {
        std::ofstream err(fs::path(o.dir) / "stderr.log", std::ios::binary | std::ios::trunc);
        err << tail;
      }
      std::fprintf(stderr, "[%7.1fs] FAILED %s (exit %d, %s): %s\n           output: %s/stderr.log\n", since(t0),
                   p.name.c_str(), o.exit_code, seconds_text(secs).c_str(), last_line(tail).c_str(), o.dir.c_str());
    };
    bool told_workers = false;
    while (next < todo.size() || !running.empty() || !remote.empty() || byes < workers) {
      const bool stopping = g_sweep_signal.load() != 0;
      if (stopping && g_sweep_signal_count.load() > forwarded) {
        // Forward each Ctrl-C to the children: they finish the step, checkpoint and exit with 130.
        if (forwarded == 0)
          std::fprintf(stderr, "attnlab sweep: interrupted; stopping %zu running runs (they save a checkpoint)\n",
                       running.size() + remote.size());
        forward_signal(running, g_sweep_signal_count.load(), g_sweep_signal.load());
        if (comm && !told_workers) {
          const int64_t msg[2] = {g_sweep_signal.load(), 0};
          for (int r = 1; r < comm->size(); ++r) comm->send(msg, 2, r, kInterrupt);
          told_workers = true;
        }
        forwarded = g_sweep_signal_count.load();
      }
      while (!stopping && next < todo.size() && int(running.size()) < jobs) {
        const Job& j = todo[next++];
        const Running r = begin(j, comm ? " on rank 0" : "");
        const pid_t pid = launch(child_args(j), dir / "logs" / (sweep.points[j.point].name + ".log"));
        if (pid < 0) throw IoError(std::string("cannot start a run: fork failed: ") + std::strerror(errno));
        running[pid] = r;
      }
      bool busy = false;
      if (comm) {
        int64_t msg[2];
        int src = 0;
        while (comm->poll_recv(msg, 2, kRequest, &src)) {  // a free slot on rank src
          busy = true;
          int64_t reply[2] = {kStop, 0};
          if (!stopping && next < todo.size()) {
            const Job& j = todo[next++];
            remote[j.point] = begin(j, " on rank " + std::to_string(src));
            reply[0] = int64_t(j.point);
            reply[1] = j.resume ? 1 : 0;
          }
          comm->send(reply, 2, src, kAssign);
        }
        while (comm->poll_recv(msg, 2, kDone, &src)) {
          busy = true;
          const auto it = remote.find(size_t(msg[0]));
          if (it == remote.end()) continue;
          const Running r = it->second;
          remote.erase(it);
          complete(r, int(msg[1]), stopping);
        }
        while (comm->poll_recv(msg, 2, kBye, &src)) ++byes, busy = true;
      }
      int status = 0;
      const pid_t pid = running.empty() ? 0 : waitpid(-1, &status, WNOHANG);
      if (pid < 0 && errno == ECHILD) running.clear();  // cannot happen; avoid a hang
      const auto it = pid > 0 ? running.find(pid) : running.end();
      if (it == running.end()) {
        if (!busy) std::this_thread::sleep_for(std::chrono::milliseconds(comm ? 20 : 50));
        continue;
      }
      const Running r = it->second;
      running.erase(it);
      complete(r, exit_code_of(status), stopping);
    }
    res.interrupted = g_sweep_signal.load() != 0;

    int n_failed = 0, n_finished = 0, n_incomplete = 0;
    for (size_t i = 0; i < res.runs.size(); ++i) {
      if (opt.point >= 0 && int64_t(i) != opt.point) continue;
      const auto& o = res.runs[i];
      if (o.state == RunState::kFinished) ++n_finished;
      else if (o.failed) ++n_failed;
      else ++n_incomplete;
    }
    if (opt.point < 0) {
      write_sweep_summary(sweep, res.dir);
      std::fprintf(stderr, "attnlab sweep: %d of %zu runs finished (%d now), %d failed or stopped early, %d incomplete; "
                   "%s; summary: %s\n",
                   n_finished, res.runs.size(), finished_now, n_failed, n_incomplete, seconds_text(since(t0)).c_str(),
                   (dir / "summary.md").string().c_str());
    } else {
      std::fprintf(stderr, "attnlab sweep: point %lld (%s): %s; %s; the summary is written by a run of the whole sweep "
                   "(attnlab sweep %s --out %s)\n",
                   (long long)opt.point, sweep.points[size_t(opt.point)].name.c_str(),
                   run_state_name(res.runs[size_t(opt.point)].state), seconds_text(since(t0)).c_str(),
                   sweep.source.c_str(), res.dir.c_str());
    }
    if (res.interrupted) {
      std::fprintf(stderr, "attnlab sweep: interrupted; run the same command again to resume\n");
      res.exit_code = 130;
    } else {
      res.exit_code = (n_failed > 0 || n_incomplete > 0) ? 1 : 0;
    }
    (void)failed_now;
    return res;
  };
  if (!comm) return execute();
  try {
    return execute();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attnlab sweep: rank 0: %s; ending every rank\n", e.what());
    comm->abort(1);
  }
  return res;  // not reached
}

std::string emit_slurm(const Sweep& sweep, const SweepOptions& opt) {
  const fs::path dir = fs::absolute(opt.out_dir.empty() ? sweep.default_dir : opt.out_dir);
  const int threads = run_threads(sweep, opt);
  const std::string exe = child_exe(opt);
  const std::string file = fs::absolute(opt.sweep_file.empty() ? sweep.source : opt.sweep_file).string();
  const size_t n = sweep.points.size();
  std::string sets;
  for (const auto& e : opt.extra) sets += " --set " + shell_quote(e);
  std::ostringstream os;
  os << "#!/bin/bash\n"
     << "# Slurm job array for the attnlab sweep " << file << ": one task per point, task i runs point i with\n"
     << "# the run names and resume rules of `attnlab sweep` (a finished run is skipped, a cut one resumed).\n"
     << "# Submit: sbatch " << (dir / "sweep.slurm").string() << "\n"
     << "# After the array: " << shell_quote(exe) << " sweep " << shell_quote(file) << " --out " << shell_quote(dir.string())
     << sets << "   (nothing left to run: writes the summary)\n"
     << "#SBATCH --job-name=attnlab-" << sanitize(fs::path(sweep.source).stem().string()) << "\n"
     << "#SBATCH --array=0-" << (n == 0 ? 0 : n - 1) << "\n"
     << "#SBATCH --ntasks=1\n"
     << "#SBATCH --cpus-per-task=" << threads << "\n"
     << "#SBATCH --output=" << (dir / "logs" / "slurm-%A_%a.out").string() << "\n"
     << "#\n# task  run\n";
  for (size_t i = 0; i < n; ++i) os << "# " << i << "  " << sweep.points[i].name << "\n";
  os << "set -euo pipefail\n"
     << "exec " << shell_quote(exe) << " sweep " << shell_quote(file) << " --out " << shell_quote(dir.string())
     << " --threads " << threads;
  os << sets << " --point \"${SLURM_ARRAY_TASK_ID:?not a Slurm array task}\"\n";
  fs::create_directories(dir / "logs");
  const fs::path script = dir / "sweep.slurm";
  write_atomic(script, os.str());
  fs::permissions(script, fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec, fs::perm_options::add);
  return "attnlab sweep: wrote " + script.string() + " (" + std::to_string(n) + " array tasks, " +
         std::to_string(threads) + " CPU each); submit it with: sbatch " + script.string();
}

}  // namespace attnlab
