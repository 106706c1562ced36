// cmd_data.cpp: `attnlab data get|list` — the prose corpora (train/corpus.h).
#include <cstdlib>
#include <string>

#include "experiments/cli/commands.h"
#include "train/corpus.h"

namespace attnlab::cli {

int cmd_data(Args& a) {
  if (a.done()) throw UsageError("data needs a command: get or list");
  const std::string what = a.v[a.i++];
  if (what != "get" && what != "list") throw UsageError("unknown data command '" + what + "' (get or list)");
  DataGetOptions opt;
  if (const char* npm = std::getenv("ATTNLAB_NPM"); npm != nullptr && *npm != '\0') opt.npm = npm;
  if (const char* s = std::getenv("ATTNLAB_NPM_STRICT_SSL"); s != nullptr && std::string(s) == "1") opt.allow_unverified_tls = false;
  for (; !a.done(); ++a.i) {
    const std::string& x = a.v[a.i];
    if (x == "--dir") opt.dir = a.next_value(x);
    else if (x == "--force" && what == "get") opt.force = true;
    else if (!x.empty() && x[0] == '-') throw UsageError("unknown option " + x + " for data " + what);
    else if (what == "get") opt.names.push_back(x);
    else throw UsageError("data list takes no corpus names, got '" + x + "'");
  }
  if (what == "list") data_list(opt.dir);
  else data_get(opt);
  return 0;
}

}  // namespace attnlab::cli
