// cmd_grads.cpp: `attnlab grads CONFIG.yaml --out GRADS.safetensors` -> run_grads (experiments/bench/grads.h).
#include <string>
#include <vector>

#include "experiments/bench/grads.h"
#include "experiments/cli/commands.h"

namespace attnlab::cli {

int cmd_grads(Args& a) {
  attnlab::GradsCommand c;
  for (; !a.done(); ++a.i) {
    const std::string& s = a.v[a.i];
    if (s == "--set") c.overrides.push_back(a.next_value(s));
    else if (s == "--out") c.out = a.next_value(s);
    else if (s == "--checkpoint") c.checkpoint = a.next_value(s);
    else if (s == "--batch") c.batch = a.next_value(s);
    else if (!s.empty() && s[0] == '-') throw UsageError("grads: unknown option " + s);
    else if (c.config_path.empty()) c.config_path = s;
    else throw UsageError("grads: unexpected argument " + s);
  }
  if (c.config_path.empty()) throw UsageError("grads: CONFIG.yaml is required");
  if (c.out.empty()) throw UsageError("grads: --out GRADS.safetensors is required");
  return attnlab::run_grads(c);
}

}  // namespace attnlab::cli
