// commands.h: what the attnlab subcommands share. Each subcommand has its own file, cmd_<name>.cpp, with one
// function add_<name>() that declares the subcommand and its options on the CLI11 app (help text, defaults)
// and registers what runs it: reading the options into a library's command struct and calling the library.
// main.cpp parses, refuses what no subcommand declared (with a "did you mean"), runs the chosen subcommand
// and turns errors into exit codes.
#pragma once
#include <CLI/CLI.hpp>  // Debian: libcli11-dev (header-only)

#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "train/comm.h"

namespace attnlab::cli {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What every subcommand may need from the process.
struct Context {
  std::string self;               // this binary's real path, for child processes (self_exe)
  std::vector<std::string> argv;  // the whole command line, for run.json
  // Under mpirun: the ranks (set by main.cpp after the parse, before the action runs; nullptr otherwise).
  // Only train, sweep and bench --json run on several ranks.
  attnlab::Comm* comm = nullptr;
};

// The action of each (sub)subcommand, run by main.cpp after a parse with nothing left over.
using Runners = std::map<const CLI::App*, std::function<int()>>;

// Options. Each refuses an empty value ("--out ''", an unset shell variable would silently mean the
// default) with a UsageError naming the option, and shows its current value as the default in --help.
CLI::Option* add_value(CLI::App* app, const std::string& name, std::string* target, const std::string& help);
// Repeatable: every occurrence appends one value (--set a=1 --set b=2).
CLI::Option* add_repeated(CLI::App* app, const std::string& name, std::vector<std::string>* target,
                          const std::string& help);
// One positive integer up to 1024 (parse_int_list).
CLI::Option* add_count(CLI::App* app, const std::string& name, int* target, const std::string& help);
// "1,2,4": positive integers up to 1024; "A,B": names.
CLI::Option* add_int_list(CLI::App* app, const std::string& name, std::vector<int>* target, const std::string& help);
CLI::Option* add_list(CLI::App* app, const std::string& name, std::vector<std::string>* target,
                      const std::string& help);

// "1,2,4" -> {1, 2, 4}; each a positive integer up to 1024 (UsageError naming `flag` otherwise).
std::vector<int> parse_int_list(const std::string& flag, const std::string& s);
// "A,B" -> {"A", "B"}.
std::vector<std::string> split_list(const std::string& s);
// The candidate closest to `word` by edit distance (a swap of neighbours counts one), or "" when none is
// close enough to be a plausible typo.
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

// The real path of this executable: children started through it must not depend on argv[0] or the cwd.
std::string self_exe(const char* argv0);
// Sets the OpenMP waiting defaults (unless the user set them) and re-executes this binary once (process.cpp).
void apply_thread_defaults(char** argv);

// The subcommands, one file each. A new one is a cmd_<name>.cpp, a declaration here and a line in main.cpp.
void add_train(CLI::App& root, const Context& ctx, Runners& run);
void add_grads(CLI::App& root, const Context& ctx, Runners& run);
void add_bench(CLI::App& root, const Context& ctx, Runners& run);
void add_config(CLI::App& root, const Context& ctx, Runners& run);
void add_sweep(CLI::App& root, const Context& ctx, Runners& run);
void add_repro(CLI::App& root, const Context& ctx, Runners& run);
void add_report(CLI::App& root, const Context& ctx, Runners& run);  // replaces this process with report.py
void add_data(CLI::App& root, const Context& ctx, Runners& run);    // data get|list: the prose corpora
void add_export(CLI::App& root, const Context& ctx, Runners& run);  // a checkpoint as a Hugging Face model

// report.py's options (cmd_report.cpp), for the global help: `attnlab report` hands its arguments over as
// they are, so CLI11 never sees them.
extern const char* const kReportOptions;

}  // namespace attnlab::cli
