// bench.h: the `attnlab bench` command: trains warm-up and timed steps of a named preset (or a config)
// and reports tokens/s, ms/step, achieved GFLOP/s, MFU against the oneDNN sgemm rate measured here,
// and peak RSS. Several (preset, threads) cells run as separate child processes so each peak RSS is
// its own. experiments/bench/compare.py puts these next to the PyTorch reference.
#pragma once
#include <string>
#include <vector>

#include "train/comm.h"
#include "train/config/config.h"

namespace attnlab {

struct BenchCommand {
  std::vector<std::string> presets = {"A", "B", "C", "D"};  // or a config file via config_path
  std::string config_path;
  std::vector<std::string> overrides;
  std::vector<int> threads = {1, 2};
  int warmup = 3, steps = 0, repeats = 5;  // steps 0: per-preset default (about 1-2 s per repeat)
  // Instrumentation modes to time: "off" (none), "default" (the config's cadence in steady state: probes
  // every instrument.probe_every steps, no dense early phase), "all" (every family at every step).
  std::vector<std::string> instrument = {"off"};
  bool json = false;                       // one JSON line per cell (the cell runs in this process)
  std::string self_exe;                    // path of this binary, to run cells as child processes
  // MPI ranks per cell: a cell with R > 1 runs under `mpirun -np R --oversubscribe` (data parallel, train.batch
  // split over the ranks, --threads threads each) and reports the communication per step. mpi_tcp: the ranks
  // talk over TCP on the loopback interface instead of shared memory (closer to a network).
  std::vector<int> ranks = {1};
  bool mpi_tcp = false;
  Comm* comm = nullptr;                    // --json under mpirun: this process's ranks
};

// The named benchmark configurations (SwiGLU hidden 4d, RoPE, untied head, uniform tokens).
RunConfig bench_preset(const std::string& name);  // throws ConfigError for an unknown name

int run_bench(const BenchCommand& cmd);

}  // namespace attnlab
