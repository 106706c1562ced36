// cmd_repro.cpp: `attnlab repro NAME` and `attnlab repro --list` -> run_repro, list_repros
// (experiments/engine/repro.h).
#include <cstdio>
#include <string>
#include <vector>

#include "experiments/cli/commands.h"
#include "experiments/engine/report.h"
#include "experiments/engine/repro.h"

namespace attnlab::cli {

int cmd_repro(Args& a, const std::string& self) {
  attnlab::ReproCommand c;
  c.exe = self;
  bool list = false;
  for (; !a.done(); ++a.i) {
    const std::string& s = a.v[a.i];
    if (s == "--budget") c.budget = a.next_value(s);
    else if (s == "--out") c.out_dir = a.next_value(s);
    else if (s == "--jobs") c.jobs = parse_int_list(s, a.next_value(s)).at(0);
    else if (s == "--threads") c.threads = parse_int_list(s, a.next_value(s)).at(0);
    else if (s == "--no-report") c.report = false;
    else if (s == "--list") list = true;
    else if (!s.empty() && s[0] == '-') throw UsageError("repro: unknown option " + s);
    else if (c.name.empty()) c.name = s;
    else throw UsageError("repro: unexpected argument " + s);
  }
  if (list) {
    for (const auto& n : attnlab::list_repros(attnlab::attnlab_home())) std::printf("%s\n", n.c_str());
    return 0;
  }
  if (c.name.empty()) throw UsageError("repro: NAME is required (attnlab repro --list shows them)");
  return attnlab::run_repro(c);
}

}  // namespace attnlab::cli
