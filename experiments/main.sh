#!/usr/bin/env bash
# The main job: set up (Debian packages, build) and train the default experiment on generated data.
# Writes a run directory under runs/ with the resolved config, metrics.jsonl, events, checkpoints and
# summary.md. Extra arguments go to `attnlab train` (for example --set train.steps=500).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh
BUILD_DIR=${BUILD_DIR:-build} bash .ci/build.sh >/dev/null
exec "${BUILD_DIR:-build}/attnlab" train configs/default.yaml "$@"
