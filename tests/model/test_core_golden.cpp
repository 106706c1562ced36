// Golden values of the core model (every toggle off): the loss and a bitwise hash of all parameter
// gradients after one forward + backward, for three tiny configurations that together cover every
// position encoding (rope / sinusoidal / none), both MLPs (swiglu / gelu) and both heads (tied / untied).
// It is the proof that adding the mitigation toggles (model/TOGGLES.md) did not change the default model:
// every value in tests/data/core_golden.txt was generated from the core model before any toggle code
// existed (commit de8b698) and must never be regenerated to make a toggle change pass.
//
// The bits depend on the platform: the CPU (oneDNN's kernel choice and blocking, -march=native), the
// compiler, oneDNN's version and sanitizers. So the file holds one section per platform, headed
// `platform: <key>` (platform_key() below; the test prints this machine's key). On a platform with a section
// the test asserts BITWISE equality. On any other platform (or in a sanitizer build, ATTNLAB_SANITIZED) it
// says so with a WARN and checks loss and grad_sum against the first (reference) section to a relative 1e-6
// / 1e-5 — rounding moves them by ~1e-8 / ~3e-7, a change of the math by far more — and skips the hash.
//
// Adding a platform (bitwise values from the baseline, never from the current code; the baseline's own
// attnlab binary does not build, so the test is compiled by hand against its model library):
//   git worktree add /tmp/golden-base de8b698 && cd /tmp/golden-base
//   git -C <repo> show 7777515:tests/model/test_core_golden.cpp > tests/model/test_core_golden.cpp
//   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build --target attnlab_model attnlab_test_main
//   g++ -O3 -march=native -fopenmp -std=c++17 -I. -DATTNLAB_SOURCE_DIR=\"$PWD\" tests/model/test_core_golden.cpp \
//       build/tests/libattnlab_test_main.a build/libattnlab_model.a -ldnnl -o golden && mkdir -p tests/data
//   OMP_NUM_THREADS=2 ATTNLAB_GOLDEN_GENERATE=1 ./golden     # writes tests/data/core_golden.txt: three lines
// then append `platform: <the key this test prints>` and those three lines to <repo>/tests/data/core_golden.txt.
// The test pins 2 OpenMP threads (the ctest setting).
//
// Line format: <name> loss=<%.17g> grad_sum=<%.17g of Σ g in double, table order> grad_hash=<FNV-1a 64 of
// the raw float bits of every gradient, table order, hex>.
#include <catch2/catch.hpp>

#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <dnnl.hpp>

#include "model/rng.h"
#include "model/transformer.h"

using namespace attnlab;

namespace {

struct GoldenCase {
  const char* name;
  PosEncoding pos;
  MlpKind mlp;
  bool tied;
};

constexpr GoldenCase kCases[] = {
    {"rope_swiglu_untied", PosEncoding::kRope, MlpKind::kSwiGLU, false},
    {"sinusoidal_gelu_tied", PosEncoding::kSinusoidal, MlpKind::kGELU, true},
    {"none_swiglu_tied", PosEncoding::kNone, MlpKind::kSwiGLU, true},
};

ModelConfig golden_config(const GoldenCase& g) {
  ModelConfig c;  // only fields that exist in the core model are set; everything else stays default
  c.vocab = 23;
  c.d_model = 32;
  c.n_layer = 2;
  c.n_head = 4;
  c.seq_len = 16;  // a whole 16-float softmax vector plus the partial rows below it
  c.mlp = g.mlp;
  c.mlp_hidden = 40;
  c.pos = g.pos;
  c.tied_head = g.tied;
  c.init_std = 0.2f;  // well above the default so every gradient is far from float noise
  return c;
}

// What the bits depend on: the CPU model, the ISA oneDNN dispatches to, oneDNN's version, the compiler and
// the ISA it targets, and whether the build is sanitized.
std::string platform_key() {
  std::string cpu = "unknown-cpu";
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  const dnnl_version_t* v = dnnl_version();
  std::ostringstream os;
  os << cpu << " | dnnl " << v->major << "." << v->minor << "." << v->patch << " isa "
     << int(dnnl::get_effective_cpu_isa()) << " | " << __VERSION__ << " |"
#ifdef __AVX512F__
     << " avx512f"
#endif
#ifdef __AVX2__
     << " avx2"
#endif
#ifdef __FMA__
     << " fma"
#endif
#ifdef ATTNLAB_SANITIZED
     << " | sanitized"
#endif
      ;
  return os.str();
}

std::string field(const std::string& line, const std::string& key) {
  const size_t p = line.find(key + "=");
  if (p == std::string::npos) return "";
  const size_t b = p + key.size() + 1;
  return line.substr(b, line.find(' ', b) - b);
}

std::string golden_path() { return std::string(ATTNLAB_SOURCE_DIR) + "/tests/data/core_golden.txt"; }

std::string hex64(uint64_t x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%016llx", static_cast<unsigned long long>(x));
  return buf;
}

// One forward + backward; returns the golden line (without the name).
std::string run_case(DnnlContext& ctx, const GoldenCase& g) {
  const ModelConfig cfg = golden_config(g);
  const int B = 3;
  Transformer m(cfg, B, ctx);
  m.init_params(20240601);
  std::vector<int32_t> in(size_t(B) * cfg.seq_len), tg(in.size());
  Rng rng(99);
  for (auto& x : in) x = int32_t(rng.below(uint64_t(cfg.vocab)));
  for (auto& x : tg) x = int32_t(rng.below(uint64_t(cfg.vocab)));
  tg[5] = -1;  // an ignored target
  m.zero_grad();
  const double loss = m.forward(in.data(), tg.data());
  m.backward(1.0f);
  double sum = 0.0;
  uint64_t hash = 1469598103934665603ull;  // FNV-1a 64
  for (int64_t i = 0; i < m.n_params(); ++i) {
    const float gi = m.grads()[i];
    sum += double(gi);
    uint32_t bits;
    std::memcpy(&bits, &gi, sizeof(bits));
    for (int b = 0; b < 4; ++b) {
      hash ^= (bits >> (8 * b)) & 0xffu;
      hash *= 1099511628211ull;
    }
  }
  char buf[128];
  std::snprintf(buf, sizeof(buf), "loss=%.17g grad_sum=%.17g", loss, sum);
  return std::string(buf) + " grad_hash=" + hex64(hash);
}

}  // namespace

TEST_CASE("core model (every toggle off) is bitwise identical to the golden file", "[model][golden]") {
  omp_set_num_threads(2);
  DnnlContext ctx;
  std::map<std::string, std::string> got;
  for (const GoldenCase& g : kCases) got[g.name] = run_case(ctx, g);

  if (const char* gen = std::getenv("ATTNLAB_GOLDEN_GENERATE"); gen != nullptr && std::string(gen) == "1") {
    std::ofstream out(golden_path());
    REQUIRE(out.good());
    out << "# Core-model golden values; generated by tests/model/test_core_golden.cpp (see its header).\n";
    for (const GoldenCase& g : kCases) out << g.name << " " << got[g.name] << "\n";
    WARN("regenerated " << golden_path());
    return;
  }

  std::ifstream in(golden_path());
  REQUIRE(in.good());
  // platform key -> (case -> line); `order` keeps the sections in file order (the first is the reference).
  std::map<std::string, std::map<std::string, std::string>> sections;
  std::vector<std::string> order;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("platform: ", 0) == 0) {
      order.push_back(line.substr(10));
      continue;
    }
    REQUIRE(!order.empty());  // an entry before any platform header
    const size_t sp = line.find(' ');
    REQUIRE(sp != std::string::npos);
    sections[order.back()][line.substr(0, sp)] = line.substr(sp + 1);
  }
  REQUIRE(!order.empty());
  const std::string key = platform_key();
  INFO("this platform: " << key);
  const auto it = sections.find(key);
  if (it != sections.end()) {
    for (const GoldenCase& g : kCases) {
      INFO(g.name);
      REQUIRE(it->second.count(g.name) == 1);
      CHECK(got[g.name] == it->second[g.name]);
    }
    return;
  }
  WARN("no bitwise golden values for this platform (" << key << "): loss and grad_sum checked against the "
       "reference platform (" << order.front() << ") to 1e-6 / 1e-5 relative, hashes not checked; see the header of "
       "tests/model/test_core_golden.cpp to add this platform");
  auto& ref = sections[order.front()];
  for (const GoldenCase& g : kCases) {
    INFO(g.name << ": got " << got[g.name] << ", reference " << ref[g.name]);
    REQUIRE(ref.count(g.name) == 1);
    const double loss = std::stod(field(got[g.name], "loss")), want_loss = std::stod(field(ref[g.name], "loss"));
    const double sum = std::stod(field(got[g.name], "grad_sum")), want_sum = std::stod(field(ref[g.name], "grad_sum"));
    CHECK(loss == Approx(want_loss).epsilon(1e-6));
    CHECK(sum == Approx(want_sum).epsilon(1e-5));
  }
}
