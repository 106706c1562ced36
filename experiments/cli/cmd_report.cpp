// cmd_report.cpp: `attnlab report RUN_OR_SWEEP...` -> exec_report (experiments/engine/report.h): the arguments
// go to experiments/report/report.py as they are.
#include "experiments/cli/commands.h"
#include "experiments/engine/report.h"

namespace attnlab::cli {

void cmd_report(Args& a) { attnlab::exec_report(a.v); }

}  // namespace attnlab::cli
