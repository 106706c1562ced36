#include "tests/fuzz/targets.h"

#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "experiments/engine/claims.h"
#include "experiments/engine/repro.h"
#include "experiments/engine/sweep.h"
#include "train/config/config.h"
#include "train/data.h"
#include "train/formats/safetensors.h"

namespace attnlab::fuzz {

namespace {

std::string text_of(const uint8_t* data, size_t size) { return std::string(reinterpret_cast<const char*>(data), size); }

// Runs `f`, swallowing the readers' documented errors; anything else escapes and is the finding.
template <class F>
void refused_only_cleanly(F&& f) {
  try {
    f();
  } catch (const ConfigError&) {
  } catch (const IoError&) {
  } catch (const ClaimError&) {
  } catch (const DataError&) {
  }
}

// A directory with nothing in it, so that relative paths in the inputs resolve to nothing.
const char* kNowhere = "/nonexistent-attnlab-fuzz";

}  // namespace

int config(const uint8_t* data, size_t size) {
  const std::string text = text_of(data, size);
  refused_only_cleanly([&] { parse_config(text, "fuzz.yaml"); });
  const std::string first = text.substr(0, text.find('\n'));
  refused_only_cleanly([&] { parse_config("", "fuzz.yaml", {first}); });
  return 0;
}

int sweep(const uint8_t* data, size_t size) {
  const std::string text = text_of(data, size);
  refused_only_cleanly([&] { parse_sweep(text, "fuzz-sweep.yaml", kNowhere); });
  return 0;
}

int repro(const uint8_t* data, size_t size) {
  const std::string text = text_of(data, size);
  refused_only_cleanly([&] { parse_repro(text, "fuzz-repro.yaml", kNowhere); });
  return 0;
}

int safetensors(const uint8_t* data, size_t size) {
  // An in-memory regular file: the reader opens it by path like any checkpoint.
  const int fd = memfd_create("attnlab-fuzz", MFD_CLOEXEC);
  if (fd < 0) return 0;
  size_t off = 0;
  while (off < size) {
    const ssize_t w = ::write(fd, data + off, size - off);
    if (w <= 0) break;
    off += size_t(w);
  }
  refused_only_cleanly([&] {
    SafetensorsFile f("/proc/self/fd/" + std::to_string(fd));
    for (const auto& [name, t] : f.tensors()) (void)t.numel();
  });
  ::close(fd);
  return 0;
}

int claims(const uint8_t* data, size_t size) {
  const std::string text = text_of(data, size);
  const size_t cut = text.find("\n%%\n");
  const std::string yaml = cut == std::string::npos ? text : text.substr(0, cut);
  const std::string metrics = cut == std::string::npos ? std::string() : text.substr(cut + 4);
  refused_only_cleanly([&] {
    const Repro r = parse_repro(yaml, "fuzz-claims.yaml", kNowhere);
    const RunMetrics m = RunMetrics::parse(metrics, "fuzz-metrics.jsonl");
    std::vector<ClaimRun> runs(1);
    runs[0].name = "run";
    runs[0].dir = kNowhere;
    const auto metrics_of = [&](size_t) -> const RunMetrics& { return m; };
    for (const Claim& c : r.claims) {
      (void)evaluate_side(c.lhs, runs, metrics_of);
      (void)evaluate_side(c.rhs, runs, metrics_of);
    }
  });
  return 0;
}

const std::vector<Target>& targets() {
  static const std::vector<Target> t = {
      {"config", config}, {"sweep", sweep}, {"repro", repro}, {"safetensors", safetensors}, {"claims", claims}};
  return t;
}

}  // namespace attnlab::fuzz
