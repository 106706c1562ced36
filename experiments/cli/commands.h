// commands.h: what the attnlab subcommands share. Each subcommand has its own file, cmd_<name>.cpp, that
// reads its arguments into a library's command struct and calls the library; main.cpp picks the
// subcommand and turns errors into exit codes. No subcommand does more than that here.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include "train/comm.h"

namespace attnlab::cli {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A small argv walker: flags with values, repeated --set, positional arguments.
struct Args {
  std::vector<std::string> v;
  size_t i = 0;
  bool done() const { return i >= v.size(); }
  std::string next_value(const std::string& flag) {
    if (i + 1 >= v.size()) throw UsageError(flag + " needs a value");
    ++i;
    // An empty value ("--out ''", an unset shell variable) would silently mean the default.
    if (v[i].empty()) throw UsageError(flag + " needs a value, got an empty string");
    return v[i];
  }
};

// "1,2,4" -> {1, 2, 4}; each a positive integer up to 1024 (UsageError naming `flag` otherwise).
std::vector<int> parse_int_list(const std::string& flag, const std::string& s);
// "A,B" -> {"A", "B"}.
std::vector<std::string> split_list(const std::string& s);

// The real path of this executable: children started through it must not depend on argv[0] or the cwd.
std::string self_exe(const char* argv0);
// Sets the OpenMP waiting defaults (unless the user set them) and re-executes this binary once (process.cpp).
void apply_thread_defaults(char** argv);

// The subcommands: each returns the exit code; bad arguments throw UsageError, bad input the libraries' errors.
// comm: the MPI ranks under mpirun (nullptr or size 1 otherwise); only train and sweep run on several.
int cmd_train(Args& a, const std::vector<std::string>& argv, attnlab::Comm* comm);  // argv: for run.json
int cmd_grads(Args& a);
int cmd_bench(Args& a, const std::string& self, attnlab::Comm* comm);  // self: for the cells' child processes
int cmd_config(Args& a);
int cmd_sweep(Args& a, const std::string& self, attnlab::Comm* comm);
int cmd_repro(Args& a, const std::string& self);
[[noreturn]] void cmd_report(Args& a);  // replaces this process with experiments/report/report.py
int cmd_data(Args& a);                  // data get|list: the prose corpora
int cmd_export(Args& a);                // a checkpoint as a Hugging Face Llama directory

}  // namespace attnlab::cli
