// cmd_train.cpp: `attnlab train CONFIG.yaml` and `attnlab train --resume RUN_DIR` -> run_train (train/run.h).
#include <string>
#include <vector>

#include "experiments/cli/commands.h"
#include "train/run.h"

namespace attnlab::cli {

int cmd_train(Args& a, const std::vector<std::string>& argv, attnlab::Comm* comm) {
  attnlab::TrainCommand c;
  c.argv = argv;
  for (; !a.done(); ++a.i) {
    const std::string& s = a.v[a.i];
    if (s == "--set") c.overrides.push_back(a.next_value(s));
    else if (s == "--out") c.out_dir = a.next_value(s);
    else if (s == "--resume") c.resume_dir = a.next_value(s);
    else if (s == "--quiet") c.quiet = true;
    else if (!s.empty() && s[0] == '-') throw UsageError("train: unknown option " + s);
    else if (c.config_path.empty()) c.config_path = s;
    else throw UsageError("train: unexpected argument " + s);
  }
  if (c.config_path.empty() && c.resume_dir.empty()) throw UsageError("train: CONFIG.yaml or --resume RUN_DIR is required");
  if (!c.config_path.empty() && !c.resume_dir.empty())
    throw UsageError("train: give either CONFIG.yaml or --resume RUN_DIR (a resumed run uses its own config.yaml)");
  if (!c.resume_dir.empty() && !c.out_dir.empty()) throw UsageError("train: --out cannot be combined with --resume");
  return attnlab::run_train(c, comm);
}

}  // namespace attnlab::cli
