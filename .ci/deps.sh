#!/usr/bin/env bash
# Installs attnlab's build and test dependencies from Debian's packages (idempotent: skips apt when
# everything is already installed). Needs root (or sudo) and, the first time, network access to the
# Debian mirror configured on the machine.
set -euo pipefail
PKGS=(cmake g++ make git libdnnl-dev ocl-icd-opencl-dev libeigen3-dev libyaml-cpp-dev catch2 zlib1g-dev
      libopenmpi-dev openmpi-bin libcli11-dev nlohmann-json3-dev)
# libcli11-dev, nlohmann-json3-dev: header-only (the command line; the JSON files of runs and sweeps).
# libopenmpi-dev, openmpi-bin: the MPI plugin (mpirun -np N attnlab train|sweep; tests/mpi).
# ocl-icd-opencl-dev: Debian's libdnnl-dev only recommends it, but oneDNN's CMake config requires OpenCL.
if [[ "${ATTNLAB_WITH_CORPUS:-0}" == 1 ]]; then
  # `attnlab data get` fetches the prose corpus with npm and unpacks it with tar (train/corpus.h). A machine
  # whose npm came with another Node.js install keeps it; ca-certificates for npm's TLS.
  PKGS+=(ca-certificates tar gzip)
  command -v npm >/dev/null || PKGS+=(npm)
fi
if [[ "${ATTNLAB_WITH_TORCH:-0}" == 1 ]]; then
  PKGS+=(python3 python3-numpy python3-torch libopenblas0-openmp)   # only for experiments/bench
fi
if [[ "${ATTNLAB_WITH_REPORT:-0}" == 1 ]]; then
  # experiments/report: figures (matplotlib), configs (yaml), the interactive page (plotly, whose plotly.js is
  # embedded in the page), the headless-browser test (chromium, a font)
  PKGS+=(python3 python3-numpy python3-matplotlib python3-yaml python3-plotly chromium fonts-dejavu-core
         fonts-liberation)
  # experiments/attnlab_py: the run reader's DataFrames (the report itself does not need pandas)
  PKGS+=(python3-pandas)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  echo "attnlab: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
