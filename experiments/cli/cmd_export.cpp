// cmd_export.cpp: `attnlab export CKPT --format hf-llama --out DIR` -> run_export (experiments/engine/export.h).
#include <string>

#include "experiments/cli/commands.h"
#include "experiments/engine/export.h"

namespace attnlab::cli {

int cmd_export(Args& a) {
  attnlab::ExportCommand c;
  for (; !a.done(); ++a.i) {
    const std::string& s = a.v[a.i];
    if (s == "--format") c.format = a.next_value(s);
    else if (s == "--out") c.out = a.next_value(s);
    else if (!s.empty() && s[0] == '-') throw UsageError("export: unknown option " + s);
    else if (c.checkpoint.empty()) c.checkpoint = s;
    else throw UsageError("export: unexpected argument " + s);
  }
  if (c.checkpoint.empty()) throw UsageError("export: CKPT (a checkpoint or a run directory) is required");
  if (c.out.empty()) throw UsageError("export: --out DIR is required");
  return attnlab::run_export(c);
}

}  // namespace attnlab::cli
