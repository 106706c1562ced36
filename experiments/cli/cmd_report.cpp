// cmd_report.cpp: `attnlab report RUN_OR_SWEEP...` -> exec_report (experiments/engine/report.h): the arguments
// go to experiments/report/report.py as they are (its --help included).
#include <memory>
#include <string>
#include <vector>

#include "experiments/cli/commands.h"
#include "experiments/engine/report.h"

namespace attnlab::cli {

// report.py's argparse options, for `attnlab --help` (tests/e2e/test_cli.cpp checks it against report.py).
const char* const kReportOptions =
    "report options (experiments/report/report.py; attnlab report --help for more):\n"
    "  RUN_OR_SWEEP...             run directories or directories of runs\n"
    "  --out DIR                   output directory (default: <first input>/report)\n"
    "  --heads L:H,...             attention maps: LAYER:HEAD pairs, e.g. 0:1,1:* (default: the first 8 heads)\n"
    "  --steps S,...               attention maps and gradient profiles: steps, e.g. 100,last\n"
    "  --seq N=0                   which sequence of the batch the attention maps show\n"
    "  --attnlab BIN               attnlab binary used to get a data batch\n"
    "  --max-runs N=6              runs per heatmap figure\n"
    "  --max-attention-runs N=4    runs with attention maps\n"
    "  --no-attention              skip the attention maps\n"
    "  --window N=0                attention maps: draw the first N positions with the tokens as labels\n"
    "  --interactive               also write index_interactive.html (plotly, embedded; works offline)\n";

void add_report(CLI::App& root, const Context&, Runners& run) {
  CLI::App* app = root.add_subcommand("report", "HTML page and figures of runs and sweeps (report.py)");
  app->prefix_command();  // everything after `report` is report.py's
  app->set_help_flag();   // so is --help
  app->footer(kReportOptions);
  run[app] = [app]() -> int { attnlab::exec_report(app->remaining()); };  // replaces this process
}

}  // namespace attnlab::cli
