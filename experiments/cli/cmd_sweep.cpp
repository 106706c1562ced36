// cmd_sweep.cpp: `attnlab sweep SWEEP.yaml` -> load_sweep and run_sweep (experiments/engine/sweep.h).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "experiments/cli/commands.h"
#include "experiments/engine/sweep.h"

namespace attnlab::cli {

int cmd_sweep(Args& a, const std::string& self, attnlab::Comm* comm) {
  std::string path;
  std::vector<std::string> extra;
  attnlab::SweepOptions o;
  std::string emit;
  o.exe = self;
  o.comm = comm;
  for (; !a.done(); ++a.i) {
    const std::string& s = a.v[a.i];
    if (s == "--out") o.out_dir = a.next_value(s);
    else if (s == "--jobs") o.jobs = parse_int_list(s, a.next_value(s)).at(0);
    else if (s == "--threads") o.threads = parse_int_list(s, a.next_value(s)).at(0);
    else if (s == "--set") extra.push_back(a.next_value(s));
    else if (s == "--dry-run") o.dry_run = true;
    else if (s == "--point") {
      const std::string v = a.next_value(s);
      char* end = nullptr;
      const long x = std::strtol(v.c_str(), &end, 10);
      if (*end != '\0' || x < 0 || x > 100000000) throw UsageError("sweep: --point expects a point index >= 0, got '" + v + "'");
      o.point = x;
    } else if (s == "--emit") {
      emit = a.next_value(s);
      if (emit != "slurm") throw UsageError("sweep: --emit knows 'slurm', got '" + emit + "'");
    }
    else if (!s.empty() && s[0] == '-') throw UsageError("sweep: unknown option " + s);
    else if (path.empty()) path = s;
    else throw UsageError("sweep: unexpected argument " + s);
  }
  if (path.empty()) throw UsageError("sweep: SWEEP.yaml is required");
  if (!emit.empty() && (o.point >= 0 || o.dry_run)) throw UsageError("sweep: --emit cannot be combined with --point or --dry-run");
  if (comm && comm->size() > 1 && (o.point >= 0 || !emit.empty()))
    throw UsageError("sweep: --point and --emit run in one process, not under mpirun");
  const attnlab::Sweep sw = attnlab::load_sweep(path, extra);
  if (!emit.empty()) {
    o.sweep_file = path;
    o.extra = extra;
    std::fprintf(stderr, "%s\n", attnlab::emit_slurm(sw, o).c_str());
    return 0;
  }
  return attnlab::run_sweep(sw, o).exit_code;
}

}  // namespace attnlab::cli
