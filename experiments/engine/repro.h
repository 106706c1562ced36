// repro.h: `attnlab repro NAME [--budget B]`: a sweep, the claims on its runs, the verdict, the report.
//
// A reproduction is a directory experiments/<name>/ holding repro.yaml, a README.md and the configs and
// sweep file it references. repro.yaml:
//   name: logit-growth
//   title: "..."
//   phenomenon: "..."                     (one line for `attnlab repro --list`; the title when absent)
//   sources: ["Wortsman et al. 2023 (arXiv 2309.14322) §3.1"]
//   sweep: sweep.yaml                     (relative to repro.yaml)
//   budgets: {quick: [train.steps=300], full: [train.steps=3000]}   (the first is the default)
//   recorded: {quick: {wall: "191 s", verdict: "8/8", where: "machine, threads, load, date"}}
//                                         (what the README reports per budget; printed by --list)
//   claims:
//     - id: ...
//       text: "..."
//       lhs: {run: {optim.lr: 0.1}, metric: zabsmax, layer: 0, head: -1, step: last}
//       op: ">="
//       rhs: {run: {...}, metric: ..., times: 100}      (or a number)
// Selector fields (claims.h): run, metric, layer (int | all), head (int | all), index, kind (train | eval |
// probe | step | event: `events.<kind>` counts from events.jsonl), step
// (last | max | min | mean | N), reduce (max | min | mean, with all), times, plus.
//
// The command runs the sweep with the budget's overrides in runs/repro/<name>/<budget>/ (skipping
// finished runs), evaluates the claims, prints the verdict table, writes verdict.md and verdict.json in
// that directory, then renders the report into <dir>/report/. Exit code: 0 every claim passes, 1 a claim
// fails or cannot be evaluated, 2 bad input (before any run), 130 interrupted.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "experiments/engine/claims.h"

namespace attnlab {

struct Repro {
  std::string file;  // repro.yaml
  std::string dir;   // its directory
  std::string name, title;
  std::string phenomenon;  // one line: what the reproduction is about (`attnlab repro --list`)
  std::vector<std::string> sources;
  // What the maintainers measured per budget (repro.yaml `recorded:`, kept in step with the README):
  // wall time, the verdict count "passed/total", and where (machine, threads, date).
  struct Recorded {
    std::string budget, wall, verdict, where;
  };
  std::vector<Recorded> recorded;
  std::string sweep_file;  // resolved path
  std::vector<std::pair<std::string, std::vector<std::string>>> budgets;  // in file order
  std::vector<Claim> claims;
};

// Reads repro.yaml (claims included; their runs are checked later, against the sweep). Throws
// ConfigError with file:line.
Repro load_repro(const std::string& repro_yaml);
Repro parse_repro(const std::string& yaml_text, const std::string& source, const std::string& dir);

// The names of the reproductions under <home>/experiments (directories with a repro.yaml), sorted.
std::vector<std::string> list_repros(const std::string& home);
// `attnlab repro --list`: one block per reproduction (phenomenon, the papers by authors and year, recorded
// wall time and verdict per budget, and the verdict of the last run in runs/repro/NAME/BUDGET when there is
// one; a budget with neither appears only on the run line). A repro.yaml that does not parse is listed with
// its error. Returns the text.
std::string list_repros_table(const std::string& home, const std::string& runs_root = "runs/repro");
// NAME (under <home>/experiments), a directory holding repro.yaml, or a repro.yaml path -> the file.
// Throws ConfigError listing the available reproductions when NAME is unknown.
std::string resolve_repro(const std::string& name_or_path);

struct ReproCommand {
  std::string name;
  std::string budget;   // "" = the first budget in repro.yaml
  std::string out_dir;  // "" = runs/repro/<name>/<budget>
  std::string exe;      // the attnlab binary (its real path), for the runs
  int jobs = 0;
  int threads = 0;
  bool report = true;   // render the report after the claims
};
int run_repro(const ReproCommand& cmd);

}  // namespace attnlab
