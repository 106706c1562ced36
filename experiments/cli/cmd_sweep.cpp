// cmd_sweep.cpp: `attnlab sweep SWEEP.yaml` -> load_sweep and run_sweep (experiments/engine/sweep.h).
#include <string>
#include <vector>

#include "experiments/cli/commands.h"
#include "experiments/engine/sweep.h"

namespace attnlab::cli {

int cmd_sweep(Args& a, const std::string& self) {
  std::string path;
  std::vector<std::string> extra;
  attnlab::SweepOptions o;
  o.exe = self;
  for (; !a.done(); ++a.i) {
    const std::string& s = a.v[a.i];
    if (s == "--out") o.out_dir = a.next_value(s);
    else if (s == "--jobs") o.jobs = parse_int_list(s, a.next_value(s)).at(0);
    else if (s == "--threads") o.threads = parse_int_list(s, a.next_value(s)).at(0);
    else if (s == "--set") extra.push_back(a.next_value(s));
    else if (s == "--dry-run") o.dry_run = true;
    else if (!s.empty() && s[0] == '-') throw UsageError("sweep: unknown option " + s);
    else if (path.empty()) path = s;
    else throw UsageError("sweep: unexpected argument " + s);
  }
  if (path.empty()) throw UsageError("sweep: SWEEP.yaml is required");
  return attnlab::run_sweep(attnlab::load_sweep(path, extra), o).exit_code;
}

}  // namespace attnlab::cli
