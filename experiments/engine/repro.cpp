#include "experiments/engine/repro.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "experiments/engine/report.h"
#include "experiments/engine/sweep.h"
#include "train/config/yaml_helpers.h"
#include "train/formats/files.h"
#include "train/formats/json.h"
#include "train/formats/provenance.h"
#include "train/formats/safetensors.h"


namespace fs = std::filesystem;

namespace attnlab {

namespace {

// The shared YAML helpers (train/config/yaml_helpers.h).
using yaml::fail;
using yaml::is_string_tagged;
using yaml::loc;
using yaml::parse_int;
using yaml::parse_number;

std::string scalar(const YAML::Node& v, const std::string& source, const std::string& what) {
  if (!v || !v.IsScalar()) fail(loc(source, v ? v.Mark() : YAML::Mark::null_mark()), what + ": expected a scalar");
  return v.Scalar();
}

// A config value as the text after "key=" for the config reader (quoted strings stay strings).
std::string override_text(const YAML::Node& v, const std::string& source, const std::string& what) {
  const std::string s = scalar(v, source, what);
  if (!is_string_tagged(v)) return s;
  return yaml::double_quoted(s);
}

Selector parse_selector(const YAML::Node& m, const std::string& source, const std::string& what) {
  Selector s;
  s.where = loc(source, m.Mark()) + ": " + what;
  static const std::set<std::string> kFields = {"run", "metric", "layer", "head", "index", "kind", "step",
                                                "reduce", "times", "plus", "across", "cap_metric"};
  for (auto it = m.begin(); it != m.end(); ++it) {
    const std::string k = it->first.Scalar();
    const YAML::Node v = it->second;
    const std::string at = loc(source, it->first.Mark());
    const std::string field = what + "." + k;
    if (!kFields.count(k))
      fail(at, field + ": unknown selector field (fields: run, metric, layer, head, index, kind, step, reduce, times, "
                       "plus, across, cap_metric)");
    if (k == "run") {
      if (!v.IsMap()) fail(at, field + ": expected a map of config keys to values, e.g. {optim.lr: 0.1}");
      for (auto jt = v.begin(); jt != v.end(); ++jt)
        s.run.emplace_back(jt->first.Scalar(), override_text(jt->second, source, field + "." + jt->first.Scalar()));
    } else if (k == "metric") {
      s.metric = scalar(v, source, field);
    } else if (k == "layer" || k == "head") {
      int64_t x = 0;
      const bool all = v.IsScalar() && v.Scalar() == "all";
      if (!all && !parse_int(v, &x)) fail(loc(source, v.Mark()), field + ": expected a number or all");
      (k == "layer" ? s.all_layers : s.all_heads) = all;
      (k == "layer" ? s.layer : s.head) = int(x);
    } else if (k == "index") {
      int64_t x = 0;
      if (!parse_int(v, &x)) fail(loc(source, v.Mark()), field + ": expected a whole number");
      s.index = int(x);
    } else if (k == "kind") {
      s.kind = scalar(v, source, field);
      if (s.kind != "train" && s.kind != "eval" && s.kind != "probe" && s.kind != "step" && s.kind != "event")
        fail(loc(source, v.Mark()), field + ": expected train, eval, probe, step or event");
    } else if (k == "step") {
      const std::string t = scalar(v, source, field);
      int64_t x = 0;
      if (t == "last") s.step = StepPick::kLast;
      else if (t == "max") s.step = StepPick::kMax;
      else if (t == "min") s.step = StepPick::kMin;
      else if (t == "mean") s.step = StepPick::kMean;
      else if (parse_int(v, &x) && x >= 0) s.step = StepPick::kAt, s.at_step = x;
      else fail(loc(source, v.Mark()), field + ": expected last, max, min, mean or a step number");
    } else if (k == "reduce") {
      const std::string t = scalar(v, source, field);
      if (t == "max") s.reduce = Reduce::kMax;
      else if (t == "min") s.reduce = Reduce::kMin;
      else if (t == "mean") s.reduce = Reduce::kMean;
      else fail(loc(source, v.Mark()), field + ": expected max, min or mean");
    } else if (k == "times" || k == "plus") {
      double x = 0;
      if (!parse_number(v, &x)) fail(loc(source, v.Mark()), field + ": expected a number");
      if (k == "times") s.times = x, s.has_times = true;
      else s.plus = x, s.has_plus = true;
    } else if (k == "across") {
      const std::string t = scalar(v, source, field);
      if (t == "max") s.across = Across::kMax;
      else if (t == "min") s.across = Across::kMin;
      else if (t == "mean") s.across = Across::kMean;
      else if (t == "median") s.across = Across::kMedian;
      else if (t == "sensitivity") s.across = Across::kSensitivity;
      else fail(loc(source, v.Mark()), field + ": expected max, min, mean, median or sensitivity");
    } else if (k == "cap_metric") {
      s.cap_metric = scalar(v, source, field);
    }
  }
  if (s.across != Across::kSensitivity && m["cap_metric"])
    fail(loc(source, m["cap_metric"].Mark()), what + ".cap_metric: only meaningful with across: sensitivity");
  if (s.metric.empty()) fail(loc(source, m.Mark()), what + ": no metric (e.g. metric: zabsmax)");
  return s;
}

ClaimSide parse_side(const YAML::Node& v, const std::string& source, const std::string& what) {
  ClaimSide side;
  side.where = loc(source, v.Mark()) + ": " + what;
  if (v.IsMap() && (v["div"] || v["sub"] || v["absdiff"])) {
    // A combination of two sides: {div: [A, B]} = A / B, {sub: [A, B]} = A - B, {absdiff: [A, B]} = |A - B|.
    int ops = 0;
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string k = it->first.Scalar();
      const std::string at = loc(source, it->first.Mark());
      if (k == "div" || k == "sub" || k == "absdiff") {
        ++ops;
        side.combine = k == "div" ? Combine::kDiv : k == "sub" ? Combine::kSub : Combine::kAbsDiff;
        if (!it->second.IsSequence() || it->second.size() != 2)
          fail(at, what + "." + k + ": expected a list of two sides, e.g. [{run: ..., metric: ...}, {run: ..., metric: ...}]");
        for (size_t i = 0; i < 2; ++i)
          side.args.push_back(parse_side(it->second[i], source, what + "." + k + "[" + std::to_string(i) + "]"));
      } else if (k == "times" || k == "plus") {
        double x = 0;
        if (!parse_number(it->second, &x)) fail(loc(source, it->second.Mark()), what + "." + k + ": expected a number");
        if (k == "times") side.times = x, side.has_times = true;
        else side.plus = x, side.has_plus = true;
      } else {
        fail(at, what + "." + k + ": unknown field beside a combination (fields: div | sub | absdiff, times, plus)");
      }
    }
    if (ops != 1) fail(side.where, "give exactly one of div, sub, absdiff");
    return side;
  }
  if (v.IsMap()) {
    side.sel = parse_selector(v, source, what);
    return side;
  }
  if (v.IsScalar() && parse_number(v, &side.number)) {
    side.is_number = true;
    return side;
  }
  fail(loc(source, v.Mark()), what + ": expected a number or a selector map {run: ..., metric: ...}");
}

std::vector<std::string> override_list(const YAML::Node& v, const std::string& source, const std::string& what) {
  return yaml::override_list(v, source, what, "a list of key=value strings",
                             [&](const YAML::Node& x, const std::string& at) { return override_text(x, source, at); });
}

}  // namespace

Repro parse_repro(const std::string& yaml_text, const std::string& source, const std::string& dir) {
  YAML::Node root = yaml::load(yaml_text, source);
  if (!root.IsMap()) fail(source, "expected a map with name, title, sources, sweep, budgets, claims");
  Repro r;
  r.file = source;
  r.dir = dir;
  static const std::set<std::string> kKeys = {"name",    "title",  "phenomenon", "sources", "sweep",
                                              "budgets", "claims", "recorded",   "notes"};
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string k = it->first.Scalar();
    const YAML::Node v = it->second;
    const std::string at = loc(source, it->first.Mark());
    if (!kKeys.count(k)) fail(at, "unknown key '" + k + "' (keys: name, title, phenomenon, sources, sweep, budgets, claims, recorded, notes)");
    if (k == "name") r.name = scalar(v, source, k);
    else if (k == "title") r.title = scalar(v, source, k);
    else if (k == "phenomenon") r.phenomenon = scalar(v, source, k);
    else if (k == "recorded") {
      // recorded: {quick: {wall: "86 s", verdict: "12/13", where: "2-core AMD EPYC, 2 threads, 2026-12-04"}}
      if (!v.IsMap()) fail(at, "recorded: expected a map of budget name -> {wall, verdict, where}");
      for (auto jt = v.begin(); jt != v.end(); ++jt) {
        const std::string what = "recorded." + jt->first.Scalar();
        const YAML::Node m = jt->second;
        if (!m.IsMap()) fail(loc(source, m.Mark()), what + ": expected a map with wall, verdict, where");
        Repro::Recorded rec;
        rec.budget = jt->first.Scalar();
        for (auto kt = m.begin(); kt != m.end(); ++kt) {
          const std::string f = kt->first.Scalar();
          const std::string val = scalar(kt->second, source, what + "." + f);
          if (f == "wall") rec.wall = val;
          else if (f == "where") rec.where = val;
          else if (f == "verdict") {
            const size_t slash = val.find('/');
            const auto digits = [](const std::string& t) {
              return !t.empty() && std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
            };
            if (slash == std::string::npos || !digits(val.substr(0, slash)) || !digits(val.substr(slash + 1)) ||
                std::stoll(val.substr(0, slash)) > std::stoll(val.substr(slash + 1)))
              fail(loc(source, kt->second.Mark()), what + ".verdict: expected PASSED/TOTAL (e.g. 12/13), got '" + val + "'");
            rec.verdict = val;
          } else {
            fail(loc(source, kt->first.Mark()), what + ": unknown field '" + f + "' (fields: wall, verdict, where)");
          }
        }
        if (rec.verdict.empty() || rec.wall.empty())
          fail(loc(source, m.Mark()), what + ": give both wall and verdict");
        r.recorded.push_back(std::move(rec));
      }
    }
    else if (k == "sources") {
      if (v.IsScalar()) r.sources.push_back(v.Scalar());
      else if (v.IsSequence()) for (size_t i = 0; i < v.size(); ++i) r.sources.push_back(scalar(v[i], source, "sources"));
      else fail(at, "sources: expected a list of references");
    } else if (k == "sweep") {
      const fs::path p(scalar(v, source, k));
      r.sweep_file = (p.is_absolute() ? p : fs::path(dir) / p).lexically_normal().string();
    } else if (k == "budgets") {
      if (!v.IsMap()) fail(at, "budgets: expected a map of budget name -> [key=value, ...]");
      for (auto jt = v.begin(); jt != v.end(); ++jt)
        r.budgets.emplace_back(jt->first.Scalar(), override_list(jt->second, source, "budgets." + jt->first.Scalar()));
    } else if (k == "claims") {
      if (!v.IsSequence()) fail(at, "claims: expected a list of claims");
      for (size_t i = 0; i < v.size(); ++i) {
        const YAML::Node c = v[i];
        const std::string what = "claims[" + std::to_string(i) + "]";
        if (!c.IsMap()) fail(loc(source, c.Mark()), what + ": expected a map with id, text, lhs, op, rhs");
        static const std::set<std::string> kClaimKeys = {"id", "text", "lhs", "op", "rhs", "over", "require", "over_reduce"};
        for (auto jt = c.begin(); jt != c.end(); ++jt)
          if (!kClaimKeys.count(jt->first.Scalar()))
            fail(loc(source, jt->first.Mark()), what + ": unknown field '" + jt->first.Scalar() +
                                                     "' (fields: id, text, lhs, op, rhs, over, require, over_reduce)");
        for (const char* need : {"id", "text", "lhs", "op", "rhs"})
          if (!c[need]) fail(loc(source, c.Mark()), what + ": missing '" + need + "'");
        Claim cl;
        cl.where = loc(source, c.Mark()) + ": " + what;
        cl.id = scalar(c["id"], source, what + ".id");
        cl.text = scalar(c["text"], source, what + ".text");
        const std::string op = scalar(c["op"], source, what + ".op");
        if (op == ">=") cl.op = CompareOp::kGe;
        else if (op == ">") cl.op = CompareOp::kGt;
        else if (op == "<=") cl.op = CompareOp::kLe;
        else if (op == "<") cl.op = CompareOp::kLt;
        else fail(loc(source, c["op"].Mark()), what + ".op: expected one of >=, >, <=, < (quoted in YAML)");
        cl.lhs = parse_side(c["lhs"], source, what + " (" + cl.id + ").lhs");
        cl.rhs = parse_side(c["rhs"], source, what + " (" + cl.id + ").rhs");
        if (cl.lhs.is_number && cl.rhs.is_number) fail(cl.where, "both sides are numbers: nothing is measured");
        if (const YAML::Node ov = c["over"]) {
          // over: train.seed (every value the runs have) or over: {train.seed: [0, 1, 2]}
          if (ov.IsScalar()) {
            cl.over = ov.Scalar();
          } else if (ov.IsMap() && ov.size() == 1 && ov.begin()->second.IsSequence()) {
            cl.over = ov.begin()->first.Scalar();
            const YAML::Node vals = ov.begin()->second;
            for (size_t j = 0; j < vals.size(); ++j)
              cl.over_values.push_back(override_text(vals[j], source, what + ".over." + cl.over));
            if (cl.over_values.empty()) fail(loc(source, vals.Mark()), what + ".over: an empty list of values");
          } else {
            fail(loc(source, ov.Mark()), what + ".over: expected a config key (e.g. train.seed) or {key: [values]}");
          }
          if (cl.over.find('.') == std::string::npos)
            fail(loc(source, ov.Mark()), what + ".over: '" + cl.over + "' is not a config key of the form section.key");
        }
        if (const YAML::Node rq = c["require"]) {
          if (cl.over.empty()) fail(loc(source, rq.Mark()), what + ".require: only meaningful with over");
          const std::string t = scalar(rq, source, what + ".require");
          int64_t n = 0;
          if (t == "all") cl.require = Require::kAll;
          else if (t == "any") cl.require = Require::kAny;
          else if (t == "majority") cl.require = Require::kMajority;
          else if (parse_int(rq, &n) && n >= 1) cl.require = Require::kAtLeast, cl.require_n = int(n);
          else fail(loc(source, rq.Mark()), what + ".require: expected all, any, majority or a count >= 1");
        }
        if (const YAML::Node rd = c["over_reduce"]) {
          if (cl.over.empty()) fail(loc(source, rd.Mark()), what + ".over_reduce: only meaningful with over");
          if (c["require"]) fail(loc(source, rd.Mark()), what + ": give require (per-value verdicts) or over_reduce (one comparison), not both");
          const std::string t = scalar(rd, source, what + ".over_reduce");
          if (t == "max") cl.over_reduce = Reduce::kMax;
          else if (t == "min") cl.over_reduce = Reduce::kMin;
          else if (t == "mean") cl.over_reduce = Reduce::kMean;
          else if (t == "median") cl.over_reduce = Reduce::kMedian;
          else fail(loc(source, rd.Mark()), what + ".over_reduce: expected median, mean, min or max");
        }
        r.claims.push_back(std::move(cl));
      }
    }
  }
  if (r.name.empty()) r.name = fs::path(dir).filename().string();
  if (r.sweep_file.empty()) fail(source, "no sweep: give sweep: FILE (a sweep file, relative to repro.yaml)");
  if (r.claims.empty()) fail(source, "no claims: a reproduction states what it expects to measure");
  for (const Repro::Recorded& rec : r.recorded) {
    bool known = r.budgets.empty() && rec.budget == "default";
    for (const auto& [n, ovs] : r.budgets) known = known || n == rec.budget;
    if (!known) fail(source, "recorded." + rec.budget + ": no such budget in budgets");
  }
  return r;
}

Repro load_repro(const std::string& repro_yaml) {
  std::string text, why;
  if (!read_regular_file(repro_yaml, &text, &why, uint64_t(16) << 20))
    throw ConfigError(repro_yaml + ": cannot read the reproduction file: " + why);
  return parse_repro(text, repro_yaml, fs::path(repro_yaml).parent_path().string());
}

std::vector<std::string> list_repros(const std::string& home) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(home) / "experiments", ec))
    if (e.is_directory() && fs::exists(e.path() / "repro.yaml")) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

// "Chen, Lin, Yao 2026, Attention sinks induce ..." -> "Chen, Lin, Yao 2026": the authors and the year.
std::string short_source(const std::string& s) {
  for (size_t i = 0; i + 4 <= s.size(); ++i) {
    const bool year = (s[i] == '1' || s[i] == '2') && std::isdigit((unsigned char)s[i + 1]) &&
                      std::isdigit((unsigned char)s[i + 2]) && std::isdigit((unsigned char)s[i + 3]) &&
                      (i + 4 == s.size() || !std::isdigit((unsigned char)s[i + 4])) &&
                      (i == 0 || !std::isdigit((unsigned char)s[i - 1]));
    if (year && i > 0) return s.substr(0, i + 4);
  }
  if (s.size() <= 60) return s;
  size_t cut = 57;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
  return s.substr(0, cut) + "...";
}

// The last run's verdict in DIR/verdict.json as "P/N, W s" (empty when there is none or it is unreadable).
std::string local_verdict(const fs::path& dir) {
  std::string text, why;
  if (!read_regular_file((dir / "verdict.json").string(), &text, &why, uint64_t(16) << 20)) return "";
  try {
    const Json j = Json::parse(text);
    int pass = 0, total = 0;
    for (const auto& c : j.at("claims")) total += 1, pass += c.value("verdict", "") == "PASS";
    std::string out = std::to_string(pass) + "/" + std::to_string(total);
    if (j.contains("wall_s") && j.value("runs_trained", 0) == j.value("runs", -1)) {
      char buf[48];
      std::snprintf(buf, sizeof(buf), ", %.0f s", j["wall_s"].get<double>());
      out += buf;
    }
    return out + " (" + j.value("date", std::string("?")) + ")";
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace

std::string list_repros_table(const std::string& home, const std::string& runs_root) {
  std::string out;
  for (const std::string& name : list_repros(home)) {
    const fs::path file = fs::path(home) / "experiments" / name / "repro.yaml";
    out += name + "\n";
    Repro r;
    try {
      r = load_repro(file.string());
    } catch (const std::exception& e) {
      out += "  ERROR: " + std::string(e.what()) + "\n\n";
      continue;
    }
    out += "  phenomenon: " + (r.phenomenon.empty() ? r.title : r.phenomenon) + "\n";
    // The papers, by authors and year (once each); the project's own docs (shared/docs/...) are left out.
    std::string src;
    std::set<std::string> seen;
    for (const auto& s : r.sources) {
      if (s.rfind("shared/docs/", 0) == 0) continue;
      const std::string short_s = short_source(s);
      if (seen.insert(short_s).second) src += (src.empty() ? "" : "; ") + short_s;
    }
    out += "  sources:    " + (src.empty() ? std::string("-") : src) + "\n";
    for (const auto& [budget, ovs] : r.budgets) {
      std::string line = "  " + budget + ":" + std::string(budget.size() < 10 ? 10 - budget.size() : 1, ' ');
      const Repro::Recorded* rec = nullptr;
      for (const auto& x : r.recorded) if (x.budget == budget) rec = &x;
      const std::string here = local_verdict(fs::path(runs_root) / name / budget);
      if (!rec && here.empty()) continue;  // never measured (e.g. the test suite's budget): only on the run line
      line += rec ? rec->verdict + " claims pass, " + rec->wall + (rec->where.empty() ? "" : " (" + rec->where + ")")
                  : std::string("not recorded");
      if (!here.empty()) line += "; last run here: " + here;
      out += line + "\n";
    }
    out += "  run:        attnlab repro " + name + (r.budgets.size() > 1 ? " [--budget " : "");
    for (size_t i = 0; r.budgets.size() > 1 && i < r.budgets.size(); ++i)
      out += (i ? "|" : "") + r.budgets[i].first;
    out += std::string(r.budgets.size() > 1 ? "]" : "") + "\n\n";
  }
  return out;
}

std::string resolve_repro(const std::string& name) {
  const fs::path p(name);
  if (fs::is_regular_file(p) && p.extension() == ".yaml") return p.string();
  if (fs::is_directory(p) && fs::exists(p / "repro.yaml")) return (p / "repro.yaml").string();
  if (name.find('/') != std::string::npos)
    throw ConfigError(name + ": not a reproduction (expected a directory with a repro.yaml, or a repro.yaml)");
  const std::string home = attnlab_home();
  const fs::path f = fs::path(home) / "experiments" / name / "repro.yaml";
  if (fs::exists(f)) return f.string();
  const auto names = list_repros(home);
  std::string msg = "unknown reproduction '" + name + "'; available in " + home + "/experiments: ";
  if (names.empty()) msg += "none";
  for (size_t i = 0; i < names.size(); ++i) msg += (i ? ", " : "") + names[i];
  throw ConfigError(msg);
}

int run_repro(const ReproCommand& cmd) {
  // 1. Everything is read and checked before any run starts.
  const Repro r = load_repro(resolve_repro(cmd.name));
  std::vector<std::string> budget_overrides;
  std::string budget = cmd.budget;
  if (r.budgets.empty()) {
    if (!budget.empty()) throw ConfigError(r.file + ": --budget " + budget + ": this reproduction defines no budgets");
    budget = "default";
  } else {
    if (budget.empty()) budget = r.budgets.front().first;
    bool found = false;
    for (const auto& [n, ovs] : r.budgets)
      if (n == budget) budget_overrides = ovs, found = true;
    if (!found) {
      std::string names;
      for (const auto& [n, ovs] : r.budgets) names += (names.empty() ? "" : ", ") + n;
      throw ConfigError(r.file + ": unknown budget '" + budget + "' (budgets: " + names + ")");
    }
  }
  if (!fs::is_regular_file(r.sweep_file)) throw ConfigError(r.file + ": sweep: no such file " + r.sweep_file);
  const Sweep sweep = load_sweep(r.sweep_file, budget_overrides);
  const std::string dir = cmd.out_dir.empty() ? (fs::path("runs") / "repro" / r.name / budget).string() : cmd.out_dir;
  std::vector<ClaimRun> runs;
  for (const SweepPoint& p : sweep.points) runs.push_back({p.name, (fs::path(dir) / p.name).string(), p.config, "", ""});
  check_claims(r.claims, runs);

  std::fprintf(stderr, "attnlab repro %s (budget %s): %s\n", r.name.c_str(), budget.c_str(), r.title.c_str());
  for (const auto& s : r.sources) std::fprintf(stderr, "  source: %s\n", s.c_str());

  // 2. The runs.
  const auto t_start = std::chrono::steady_clock::now();
  SweepOptions so;
  so.out_dir = dir;
  so.exe = cmd.exe;
  so.jobs = cmd.jobs;
  so.threads = cmd.threads;
  const SweepResult sr = run_sweep(sweep, so);
  if (sr.interrupted) return 130;
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  int n_ran = 0;
  for (const RunOutcome& o : sr.runs) n_ran += o.ran;

  // 3. The claims. A run that stopped itself (non-finite loss) still has evidence; one that never
  // finished does not.
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunOutcome& o = sr.runs[i];
    if (o.state == RunState::kStopped) runs[i].note = "stopped early: " + o.detail;
    else if (o.state != RunState::kFinished)
      runs[i].problem = std::string("did not finish (") + run_state_name(o.state) + (o.detail.empty() ? "" : ": " + o.detail) +
                        (o.exit_code != 0 ? ", exit " + std::to_string(o.exit_code) : "") + "; see " + o.dir + "/stderr.log";
  }
  const auto results = evaluate_claims(r.claims, runs);
  const std::string table = verdict_markdown(results);
  int n_pass = 0;
  for (const auto& x : results) n_pass += x.verdict == Verdict::kPass;
  const bool passed = all_passed(results);
  std::printf("\n%s\n%d of %zu claims pass%s\n", table.c_str(), n_pass, results.size(),
              passed ? "" : " — see verdict.md for the details");
  std::fflush(stdout);

  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", std::localtime(&now));
  std::string md = "# " + (r.title.empty() ? r.name : r.title) + "\n\nReproduction `" + r.name + "`, budget `" + budget +
                   "`, " + std::to_string(sweep.points.size()) + " runs (summary.md), " + date + ", commit " +
                   build_info().commit + (build_info().dirty == 1 ? " (dirty)" : "") + ".\n";
  if (!r.sources.empty()) {
    md += "\nSources:\n";
    for (const auto& s : r.sources) md += "- " + s + "\n";
  }
  md += "\n" + table + "\n" + std::to_string(n_pass) + " of " + std::to_string(results.size()) + " claims pass.\n";
  const BuildInfo b = build_info();
  const Json header = {{"name", r.name},     {"title", r.title},
                       {"budget", budget},   {"date", date},
                       {"commit", b.commit}, {"dirty", b.dirty < 0 ? Json() : Json(b.dirty == 1)},
                       {"sources", r.sources},
                       // this invocation's wall time and how many runs it trained (the others were done)
                       {"wall_s", std::round(wall_s * 10.0) / 10.0}, {"runs", sweep.points.size()},
                       {"runs_trained", n_ran}, {"jobs", cmd.jobs}};
  {
    std::ofstream(fs::path(dir) / "verdict.md", std::ios::binary | std::ios::trunc) << md;
    std::ofstream(fs::path(dir) / "verdict.json", std::ios::binary | std::ios::trunc) << verdict_json(results, header);
  }
  std::fprintf(stderr, "attnlab repro: verdict in %s/verdict.md and verdict.json\n", dir.c_str());

  // 4. The report: its failure is reported but does not change the verdict.
  if (cmd.report) {
    try {
      const int rc = run_report({dir, "--out", (fs::path(dir) / "report").string()});
      if (rc != 0) std::fprintf(stderr, "attnlab repro: warning: the report exited with code %d\n", rc);
    } catch (const IoError& e) {
      std::fprintf(stderr, "attnlab repro: warning: no report: %s\n", e.what());
    }
  }
  return passed ? 0 : 1;
}

}  // namespace attnlab
