// claims.h: reading a run's metrics.jsonl, and evaluating claims (predicates over measured metrics)
// against the runs of a sweep. The YAML form of a claim is decoded in repro.cpp; this file only sees the
// plain structs below.
//
// A claim is `lhs op rhs`. Each side is a number or a selector: one run (a map of config values that
// must match exactly one run), one metric, where (layer / head / index, or all layers / heads reduced
// by max/min/mean), and when (the last step it was recorded, a given step, or max/min/mean over steps),
// then `value * times + plus`. Step selection is applied per (layer, head) series first, then the
// reduction over layers/heads. A metric that is absent from the run is an ERROR (not a FAIL).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "train/config/config.h"
#include "train/formats/json.h"

namespace attnlab {

// A problem with a claim that is known before anything runs (a selector matching zero or several runs,
// a bad field). Reported like a config error (exit code 2).
class ClaimError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------------------
// metrics.jsonl

// One value of one metric. `kind` is 't' (train record), 'e' (eval), 'p' (probe), 's' (step) or 'v'
// (event count). Train records give the metrics "loss", "lr", "grad_norm", "clipped" (0/1), "tokens_per_s",
// "ms_per_step"; eval records give "val_loss"; all with layer = head = index = -1.
// Event counts (from the run's events.jsonl): one row per event kind, metric "events.<kind>" (e.g.
// "events.grad_vanishing"), value = how many events of that kind the run logged, layer = head = index = -1,
// step = the last step of the run (metrics or events). Every kind of `known_event_kinds()` has a row (0 when
// the run logged none, also when events.jsonl is absent); a kind outside the list has a row only if it occurs.
struct MetricRow {
  int64_t step = 0;
  int layer = -1, head = -1, index = -1;
  double value = 0.0;  // "nan"/"inf"/"-inf" strings become the IEEE values
  char kind = 'p';
};

class RunMetrics {
 public:
  // Reads DIR/metrics.jsonl, then DIR/events.jsonl (add_events). `keep(name)` (when given) selects the
  // metrics to store; others are skipped cheaply. A missing metrics file gives an empty table (`exists()`
  // false, no event counts); a malformed line of either file throws IoError naming the file and line (a
  // truncated last line, from a run killed mid-write, is ignored). A missing events.jsonl means no events.
  static RunMetrics read(const std::string& run_dir, const std::function<bool(std::string_view)>& keep = {});
  // Parses metrics.jsonl text (tests); `source` names it in errors.
  static RunMetrics parse(std::string_view text, const std::string& source,
                          const std::function<bool(std::string_view)>& keep = {});

  // Counts the events of `text` (events.jsonl: one JSON object per line with at least "step" and "kind")
  // into the "events.<kind>" rows described above, replacing earlier counts. `source` names it in errors.
  void add_events(std::string_view text, const std::string& source,
                  const std::function<bool(std::string_view)>& keep = {});

  bool exists() const { return exists_; }
  const std::string& source() const { return source_; }
  // Rows of `metric` in file order, or nullptr when the run never recorded it.
  const std::vector<MetricRow>* rows(const std::string& metric) const;
  std::vector<std::string> names() const;
  // The last step with any probe record, or -1.
  int64_t last_probe_step() const { return last_probe_step_; }
  // The last value of a train/eval field ("loss", "val_loss"), or NaN with *found = false.
  double last_value(const std::string& metric, bool* found) const;

 private:
  bool add_line(std::string_view line, const std::function<bool(std::string_view)>& keep);
  std::string source_;
  bool exists_ = false;
  int64_t last_probe_step_ = -1;
  int64_t last_step_ = 0;  // the largest step of any stored or skipped record
  std::map<std::string, std::vector<MetricRow>, std::less<>> by_metric_;
};

// The event kinds the trainer and the monitor write (instrument/monitor.cpp, train/run.cpp): each has an
// "events.<kind>" count in every RunMetrics that exists.
const std::vector<std::string>& known_event_kinds();

// Reduces one metric at one step over layers >= 0 (or the given layer) and all heads/indices.
// Returns NaN with *found = false when there is no such record. op: 'M' max, 'm' min.
double metric_at_step(const RunMetrics& m, const std::string& metric, int64_t step, char op, int layer, bool* found);

// ---------------------------------------------------------------------------------------------------
// Claims

enum class StepPick { kLast, kAt, kMax, kMin, kMean };
enum class Reduce { kNone, kMax, kMin, kMean, kMedian };  // kMedian: across runs and seeds only
// Across the runs a selector matches: a plain reduction, or Wortsman et al.'s LR sensitivity
// E_r[min(v_r, cap_r) - min_r v_r] (cap_r: the run's `cap_metric` at its first record, the loss at init).
enum class Across { kNone, kMax, kMin, kMean, kMedian, kSensitivity };
enum class CompareOp { kGe, kGt, kLe, kLt };

struct Selector {
  std::vector<std::pair<std::string, std::string>> run;  // config key path -> value (as for --set)
  std::string metric;
  bool all_layers = false;
  int layer = -1;
  bool all_heads = false;
  int head = -1;
  int index = -1;
  std::string kind;  // "" any, else "train", "eval", "probe", "step" or "event"
  StepPick step = StepPick::kLast;
  int64_t at_step = 0;  // for StepPick::kAt
  Reduce reduce = Reduce::kNone;
  double times = 1.0;
  bool has_times = false;
  double plus = 0.0;
  bool has_plus = false;
  std::string where;  // location for messages, e.g. "repro.yaml:14: claims[0].lhs"
  // Sweep-level statistics: with `across`, `run` may match several runs (at least one) and their values
  // are reduced (after `step` and `reduce`, before `times`/`plus`).
  Across across = Across::kNone;
  std::string cap_metric = "loss";  // kSensitivity: the per-run cap (its first recorded value)
};

// A side is a number, a selector, or a combination of two sides (a ratio or a difference between arms),
// then `value * times + plus`.
enum class Combine { kNone, kDiv, kSub, kAbsDiff };

struct ClaimSide {
  bool is_number = false;
  double number = 0.0;
  Selector sel;
  Combine combine = Combine::kNone;
  std::vector<ClaimSide> args;  // the two operands when combine != kNone
  double times = 1.0, plus = 0.0;
  bool has_times = false, has_plus = false;
  std::string where;
};

// How many of the values of a claim's `over` axis must pass for the claim to pass.
enum class Require { kAll, kAny, kMajority, kAtLeast };

struct Claim {
  std::string id;
  std::string text;
  ClaimSide lhs;
  CompareOp op = CompareOp::kGe;
  ClaimSide rhs;
  std::string where;
  // Aggregation over a sweep axis (seeds): `over` is a config key; each value (`over_values`, or every
  // value the runs have when empty) is added to every selector's `run` map. Either the comparison is made
  // per value and `require` says how many must pass (paired comparisons: both sides at the same seed), or,
  // with `over_reduce`, each side is first reduced over the values and compared once.
  std::string over;
  std::vector<std::string> over_values;
  Require require = Require::kAll;
  int require_n = 0;  // kAtLeast
  Reduce over_reduce = Reduce::kNone;
};

// A run the claims may refer to: its name, directory and resolved config (for matching `run:` maps).
// `problem` is non-empty when the run cannot be used (never ran, interrupted): claims on it are ERRORs.
// `note` is set for a run that ended early but whose metrics are evidence (non-finite loss): claims on
// it are evaluated, and the note is shown beside them.
struct ClaimRun {
  std::string name;
  std::string dir;
  RunConfig config;
  std::string problem;
  std::string note;
};

// Indices of the runs whose resolved config has every key of `sel.run` at the given value (compared
// after decoding the value with the config reader, so 1.0e-1 matches 0.1 and a bad key or type is
// reported by the config reader). *why receives the config reader's complaint when no run matches
// because of it.
std::vector<size_t> match_runs(const Selector& sel, const std::vector<ClaimRun>& runs, std::string* why = nullptr);

// Checks every selector before anything runs: each must match exactly one run, and its fields must be
// consistent (layer/head "all" needs a reduce). Throws ClaimError listing every problem.
void check_claims(const std::vector<Claim>& claims, const std::vector<ClaimRun>& runs);

enum class Verdict { kPass, kFail, kError };
const char* verdict_name(Verdict v);
const char* op_text(CompareOp op);

struct SideValue {
  bool ok = false;
  double raw = 0.0;    // the selected value before times/plus
  double value = 0.0;  // after
  std::string run;     // run name ("" for a number)
  std::string text;    // "100 × 3.2 = 320", "3.2", "50"
  std::string error;
};

// One value of a claim's `over` axis: both sides at that value and its verdict.
struct ClaimPoint {
  std::string value;
  SideValue lhs, rhs;
  Verdict verdict = Verdict::kError;
};

struct ClaimResult {
  std::string id, text;
  std::string over;               // the axis key, when the claim aggregates over one
  std::vector<ClaimPoint> points;  // per value (per-value comparisons only)
  int passed = 0;                  // points that pass
  std::string expected;  // ">= 100 × 3.2 = 320"
  std::string measured;  // "412.5"
  Verdict verdict = Verdict::kError;
  std::string detail;  // the error, or notes about the runs used
  SideValue lhs, rhs;
  CompareOp op = CompareOp::kGe;
};

// Evaluates every claim; reads each run's metrics once. Never throws for a missing metric or run: that
// claim's verdict is ERROR with the reason in `detail`.
std::vector<ClaimResult> evaluate_claims(const std::vector<Claim>& claims, const std::vector<ClaimRun>& runs);
// The distinct values of config key `key` among the runs, in run order, as the config writes them.
std::vector<std::string> axis_values(const std::string& key, const std::vector<ClaimRun>& runs);
// `side` with `key: value` added to (or replacing it in) every selector's run map.
ClaimSide with_run_key(const ClaimSide& side, const std::string& key, const std::string& value);
// Evaluates one side against already read metrics (tests).
SideValue evaluate_side(const ClaimSide& side, const std::vector<ClaimRun>& runs,
                        const std::function<const RunMetrics&(size_t run)>& metrics);

// The verdict table: claim | text | expected | measured | verdict, as GitHub Markdown, followed by the
// details of every ERROR and note.
std::string verdict_markdown(const std::vector<ClaimResult>& results);
// The same as JSON (one object with "claims": [...], "passed": bool), with the members of `header` (an
// object, e.g. {"name": "logit-growth"}) first. Non-finite values are the strings "nan", "inf", "-inf".
std::string verdict_json(const std::vector<ClaimResult>& results, const Json& header);
bool all_passed(const std::vector<ClaimResult>& results);

// "%.4g"-style number for tables, with nan/inf spelled out.
std::string format_number(double v);

}  // namespace attnlab
