// cmd_bench.cpp: `attnlab bench` -> run_bench (experiments/bench/bench.h).
#include <string>
#include <vector>

#include "experiments/bench/bench.h"
#include "experiments/cli/commands.h"

namespace attnlab::cli {

int cmd_bench(Args& a, const std::string& self, attnlab::Comm* comm) {
  attnlab::BenchCommand c;
  c.self_exe = self;
  c.comm = comm;
  for (; !a.done(); ++a.i) {
    const std::string& s = a.v[a.i];
    if (s == "--preset") c.presets = split_list(a.next_value(s));
    else if (s == "--threads") c.threads = parse_int_list(s, a.next_value(s));
    else if (s == "--warmup") c.warmup = parse_int_list(s, a.next_value(s)).at(0);
    else if (s == "--steps") c.steps = parse_int_list(s, a.next_value(s)).at(0);
    else if (s == "--repeats") c.repeats = parse_int_list(s, a.next_value(s)).at(0);
    else if (s == "--set") c.overrides.push_back(a.next_value(s));
    else if (s == "--instrument") c.instrument = split_list(a.next_value(s));
    else if (s == "--json") c.json = true;
    else if (s == "--ranks") c.ranks = parse_int_list(s, a.next_value(s));
    else if (s == "--mpi-tcp") c.mpi_tcp = true;
    else if (!s.empty() && s[0] == '-') throw UsageError("bench: unknown option " + s);
    else if (c.config_path.empty()) c.config_path = s;
    else throw UsageError("bench: unexpected argument " + s);
  }
  for (const auto& p : c.presets) attnlab::bench_preset(p);  // unknown names fail before any work
  for (const auto& m : c.instrument)
    if (m != "off" && m != "default" && m != "all")
      throw UsageError("bench: --instrument takes off, default or all, got '" + m + "'");
  if (comm && comm->size() > 1 && !c.json)
    throw UsageError("bench: under mpirun only a --json cell runs; use attnlab bench --ranks 1,2 (it starts mpirun)");
  return attnlab::run_bench(c);
}

}  // namespace attnlab::cli
