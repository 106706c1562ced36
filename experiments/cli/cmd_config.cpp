// cmd_config.cpp: `attnlab config CONFIG.yaml` -> the resolved config on stdout (train/config/config.h).
#include <cstdio>
#include <string>
#include <vector>

#include "experiments/cli/commands.h"
#include "train/config/config.h"

namespace attnlab::cli {

int cmd_config(Args& a) {
  std::string path;
  std::vector<std::string> overrides;
  for (; !a.done(); ++a.i) {
    const std::string& s = a.v[a.i];
    if (s == "--set") overrides.push_back(a.next_value(s));
    else if (!s.empty() && s[0] == '-') throw UsageError("config: unknown option " + s);
    else path = s;
  }
  if (path.empty()) throw UsageError("config: CONFIG.yaml is required");
  std::fputs(attnlab::dump_config(attnlab::load_config(path, overrides), overrides).c_str(), stdout);
  return 0;
}

}  // namespace attnlab::cli
