// report.h: `attnlab report ...` and the report step of `attnlab repro`: the C++ side hands its arguments to
// experiments/report/report.py (Python: the HTML page and the figures; experiments/report/README.md).
#pragma once
#include <string>
#include <vector>

namespace attnlab {

// The attnlab source tree: $ATTNLAB_HOME if set, else the source directory compiled in, else the
// directory above the executable. Throws IoError when none has an experiments/ directory.
std::string attnlab_home();

// The report command line: <python> <home>/experiments/report/report.py ARGS... ($ATTNLAB_PYTHON or
// /usr/bin/python3). Throws IoError with what to install or set when python or the script is missing.
std::vector<std::string> report_command(const std::vector<std::string>& args);
// Replaces the process with the report (attnlab report); returns only by throwing.
[[noreturn]] void exec_report(const std::vector<std::string>& args);
// Runs the report as a child and returns its exit code (attnlab repro).
int run_report(const std::vector<std::string>& args);

}  // namespace attnlab
