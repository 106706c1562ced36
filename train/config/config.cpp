// config.cpp: YAML -> RunConfig, the only translation unit that decodes a run config (the YAML helpers it shares
// with the sweep and repro readers are in train/config/yaml_helpers.h).
//
// One table (fields()) lists every key once: its section, its name and how to read and print it. The
// file reader, the --set reader, the unknown-key suggestions and dump_config all walk that table, so they
// cannot disagree. Scalars are decoded here (not with YAML::Node::as<T>) to be strict in YAML 1.2 core
// schema terms: 2.5 is not an int, "4" (quoted) is a string, yes/no are not booleans, -1 is not unsigned.
#include "train/config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <unistd.h>

#include "model/layout.h"
#include "train/formats/files.h"
#include "train/config/yaml_helpers.h"

namespace attnlab {
namespace {

// The shared YAML helpers (train/config/yaml_helpers.h).
using yaml::is_float_text;
using yaml::is_nonfinite_text;
using yaml::is_string_tagged;
using yaml::parse_int_text;
using yaml::trim;

// ---------------------------------------------------------------------------------------------------
// Locations and the side table of where each key was set

// Where a value came from. `text` prefixes reader errors ("cfg.yaml:4:12" or "--set model.n_head=abc");
// `origin` is kept per key path for validate() ("line 4" or "--set model.n_head=3"); `line` is 1-based
// (0 for an override).
struct Loc {
  std::string text;
  std::string origin;
  int line = 0;
};

struct Origin {
  std::string text;  // "line 4" or "--set model.n_head=3"
  int line = 0;      // 1-based file line, 0 when set by an override
};
using Origins = std::map<std::string, Origin>;

Loc file_loc(const std::string& source, const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0) return {source, "", 0};
  const int line = mark.line + 1, col = mark.column + 1;
  return {source + ":" + std::to_string(line) + ":" + std::to_string(col), "line " + std::to_string(line),
          line};
}

// Errors point at the value when there is one; an empty value's mark is on the following line, so then
// the key is used.
Loc file_loc(const std::string& source, const YAML::Node& key, const YAML::Node& value) {
  Loc at_key = file_loc(source, key.Mark());
  if (value.IsNull() || value.Mark().is_null()) return at_key;
  Loc at_value = file_loc(source, value.Mark());
  at_value.origin = at_key.origin;  // the side table records the key's line
  at_value.line = at_key.line;
  return at_value;
}

[[noreturn]] void fail(const Loc& loc, const std::string& path, const std::string& what) {
  std::string msg = loc.text;
  if (!path.empty()) msg += (msg.empty() ? "" : ": ") + path;
  throw ConfigError(msg + ": " + what);
}

// ---------------------------------------------------------------------------------------------------
// Text helpers

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string quote(const std::string& s) {
  constexpr size_t kMax = 60;  // long values are cut in messages, never in dumps
  if (s.size() > kMax) return "'" + s.substr(0, kMax) + "...'";
  return "'" + s + "'";
}

// Optimal-string-alignment distance: Levenshtein plus adjacent transpositions ("n_haed" -> "n_head" is 1).
// Three rolling rows: O(|b|) memory. The distance is at least the length difference, so callers skip
// pairs whose lengths differ by more than they care about (a 50 MB typo costs nothing).
int edit_distance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<int> prev2(m + 1), prev(m + 1), cur(m + 1);
  for (size_t j = 0; j <= m; ++j) prev[j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i) {
    cur[0] = static_cast<int>(i);
    for (size_t j = 1; j <= m; ++j) {
      const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) cur[j] = std::min(cur[j], prev2[j - 2] + 1);
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[m];
}

// Candidates close to `typed`: the nearest ones within a small edit distance (case-insensitive), else
// those that contain it or are contained in it ("checkpoint" -> "checkpoint_every", "warmup_steps" ->
// "warmup").
std::vector<std::string> suggest(const std::string& typed, const std::vector<std::string>& candidates) {
  const std::string t = lower(typed);
  const int limit = t.size() <= 3 ? 1 : 2;
  const auto distance = [&](const std::string& c) {  // exact up to `limit`; anything farther is limit + 1
    const size_t gap = t.size() > c.size() ? t.size() - c.size() : c.size() - t.size();
    return gap > size_t(limit) ? limit + 1 : edit_distance(t, lower(c));
  };
  int best = INT_MAX;
  for (const auto& c : candidates) best = std::min(best, distance(c));
  std::vector<std::string> out;
  if (best <= limit) {
    for (const auto& c : candidates)
      if (distance(c) == best) out.push_back(c);
    return out;
  }
  if (t.size() >= 3) {
    for (const auto& c : candidates) {
      const std::string lc = lower(c);
      if (lc.find(t) != std::string::npos || (lc.size() >= 3 && t.find(lc) != std::string::npos))
        out.push_back(c);
    }
  }
  return out;
}

std::string join_or(const std::vector<std::string>& xs, const std::string& prefix = "") {
  std::string s;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (i > 0) s += i + 1 == xs.size() ? " or " : ", ";
    s += "'" + prefix + xs[i] + "'";
  }
  return s;
}

std::string join_comma(const std::vector<std::string>& xs) {
  std::string s;
  for (size_t i = 0; i < xs.size(); ++i) s += (i ? ", " : "") + xs[i];
  return s;
}

// ---------------------------------------------------------------------------------------------------
// Enum names: the one place where enum strings live

template <class E>
struct EnumName {
  E value;
  const char* name;
};

template <class E>
struct EnumTable;
template <>
struct EnumTable<MlpKind> {
  static constexpr EnumName<MlpKind> kNames[] = {
      {MlpKind::kSwiGLU, "swiglu"}, {MlpKind::kGELU, "gelu"}, {MlpKind::kNone, "none"}};
};
template <>
struct EnumTable<PosEncoding> {
  static constexpr EnumName<PosEncoding> kNames[] = {
      {PosEncoding::kNone, "none"}, {PosEncoding::kSinusoidal, "sinusoidal"}, {PosEncoding::kRope, "rope"}};
};
template <>
struct EnumTable<VScaleMode> {
  static constexpr EnumName<VScaleMode> kNames[] = {{VScaleMode::kOff, "off"},
                                                    {VScaleMode::kLearned, "learned"},
                                                    {VScaleMode::kFixed, "fixed"},
                                                    {VScaleMode::kBackwardOnly, "backward_only"}};
};
template <>
struct EnumTable<NormPosition> {
  static constexpr EnumName<NormPosition> kNames[] = {{NormPosition::kPre, "pre"}, {NormPosition::kPost, "post"}};
};
template <>
struct EnumTable<DataSource> {
  static constexpr EnumName<DataSource> kNames[] = {{DataSource::kFile, "file"},
                                                    {DataSource::kBigramBackcopy, "bigram_backcopy"},
                                                    {DataSource::kCopy, "copy"},
                                                    {DataSource::kUniform, "uniform"},
                                                    {DataSource::kCorpus, "corpus"},
                                                    {DataSource::kRecall, "recall"}};
};
template <>
struct EnumTable<Corpus> {
  static constexpr EnumName<Corpus> kNames[] = {{Corpus::kGutenberg, "gutenberg"}, {Corpus::kAlice, "alice"}};
};
template <>
struct EnumTable<DecayMode> {
  static constexpr EnumName<DecayMode> kNames[] = {{DecayMode::kCoupled, "coupled"},
                                                   {DecayMode::kIndependent, "independent"}};
};
template <>
struct EnumTable<ScheduleKind> {
  static constexpr EnumName<ScheduleKind> kNames[] = {
      {ScheduleKind::kCosine, "cosine"}, {ScheduleKind::kConstant, "constant"}, {ScheduleKind::kLinear, "linear"}};
};

template <>
struct EnumTable<FlightContents> {
  static constexpr EnumName<FlightContents> kNames[] = {{FlightContents::kDiagnosis, "diagnosis"},
                                                         {FlightContents::kEverything, "everything"}};
};

template <>
struct EnumTable<OnIncident> {
  static constexpr EnumName<OnIncident> kNames[] = {{OnIncident::kContinue, "continue"}, {OnIncident::kStop, "stop"}};
};

template <class E>
std::vector<std::string> enum_names() {
  std::vector<std::string> out;
  for (const auto& e : EnumTable<E>::kNames) out.push_back(e.name);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Printing values (dump_config and messages)

// Shortest text that reads back to the same float (std::to_chars guarantees the round trip), with a '.'
// in the mantissa and a signed exponent so YAML 1.1 readers (PyYAML) also see a float: 1.0e-05.
template <class F>
std::string format_float(F x) {
  if (std::isnan(x)) return ".nan";
  if (std::isinf(x)) return x > 0 ? ".inf" : "-.inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), x);
  std::string s(buf, r.ptr);
  const size_t e = s.find('e');
  std::string mant = s.substr(0, e), exp = e == std::string::npos ? "" : s.substr(e + 1);
  if (mant.find('.') == std::string::npos) mant += ".0";
  if (!exp.empty() && exp[0] != '+' && exp[0] != '-') exp = "+" + exp;
  return exp.empty() ? mant : mant + "e" + exp;
}

// A double-quoted YAML string; control bytes are escaped so any path survives the round trip.
std::string format_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string format_value(int v) { return std::to_string(v); }
std::string format_value(int64_t v) { return std::to_string(v); }
std::string format_value(uint64_t v) { return std::to_string(v); }
std::string format_value(float v) { return format_float(v); }
std::string format_value(double v) { return format_float(v); }
std::string format_value(bool v) { return v ? "true" : "false"; }
std::string format_value(const std::string& v) { return format_string(v); }
template <class E>
  requires std::is_enum_v<E>
std::string format_value(E v) {
  for (const auto& e : EnumTable<E>::kNames)
    if (e.value == v) return e.name;
  return "<invalid " + std::to_string(static_cast<int>(v)) + ">";
}

// ---------------------------------------------------------------------------------------------------
// Reading scalars

// A node's kind as a message fragment: "'abc'", "the quoted string \"4\"", "a map", ...
std::string describe(const YAML::Node& v) {
  switch (v.Type()) {
    case YAML::NodeType::Null:
      return "an empty value (null)";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Scalar:
      return is_string_tagged(v) ? "the quoted string " + format_string(v.Scalar()) : quote(v.Scalar());
    default:
      return "nothing";
  }
}

// The scalar text of a plain (unquoted) scalar, or an error naming what was found instead.
const std::string& plain_scalar(const YAML::Node& v, const std::string& path, const Loc& loc,
                                const std::string& expected) {
  if (!v.IsScalar() || is_string_tagged(v)) {
    const std::string hint = v.IsScalar() ? " (remove the quotes)" : "";
    fail(loc, path, "expected " + expected + ", got " + describe(v) + hint);
  }
  return v.Scalar();
}

template <class T>
void read_integer(const YAML::Node& v, const std::string& path, const Loc& loc, T* out, const char* type_name) {
  constexpr bool kUnsigned = std::is_unsigned_v<T>;
  const std::string expected = kUnsigned ? "a non-negative integer" : "an integer";
  const std::string& s = plain_scalar(v, path, loc, expected);
  bool neg = false, overflow = false;
  uint64_t mag = 0;
  if (!parse_int_text(s, &neg, &mag, &overflow)) {
    if (is_float_text(s) || is_nonfinite_text(s))
      fail(loc, path, "expected " + expected + ", got " + quote(s) + ", which is not a whole number");
    fail(loc, path, "expected " + expected + ", got " + quote(s));
  }
  const std::string range = std::string(" (") + type_name + ": " + std::to_string(std::numeric_limits<T>::min()) +
                            " to " + std::to_string(std::numeric_limits<T>::max()) + ")";
  if (kUnsigned && neg && mag != 0) fail(loc, path, "expected " + expected + ", got " + quote(s) + range);
  const uint64_t max_pos = static_cast<uint64_t>(std::numeric_limits<T>::max());
  const uint64_t max_neg = kUnsigned ? 0 : max_pos + 1;  // |min| of a two's-complement type
  if (overflow || (neg ? mag > max_neg : mag > max_pos)) fail(loc, path, quote(s) + " is out of range" + range);
  // Negation in uint64 then a modular conversion (C++20): exact for every value down to min().
  *out = static_cast<T>(neg ? uint64_t{0} - mag : mag);
}

void read_value(const YAML::Node& v, const std::string& path, const Loc& loc, int* out) {
  read_integer(v, path, loc, out, "32-bit signed integer");
}
void read_value(const YAML::Node& v, const std::string& path, const Loc& loc, int64_t* out) {
  read_integer(v, path, loc, out, "64-bit signed integer");
}
void read_value(const YAML::Node& v, const std::string& path, const Loc& loc, uint64_t* out) {
  read_integer(v, path, loc, out, "64-bit unsigned integer");
}

template <class F>
void read_real(const YAML::Node& v, const std::string& path, const Loc& loc, F* out, const char* type_name) {
  const std::string& s = plain_scalar(v, path, loc, "a number");
  if (is_nonfinite_text(s)) fail(loc, path, "expected a finite number, got " + quote(s));
  if (!is_float_text(s)) fail(loc, path, "expected a number, got " + quote(s));
  // from_chars rounds the decimal text straight to F (no double rounding through double for floats).
  const char* first = s.data() + (s[0] == '+' ? 1 : 0);
  F x{};
  const auto r = std::from_chars(first, s.data() + s.size(), x);
  if (r.ec == std::errc::result_out_of_range)
    fail(loc, path, quote(s) + " is out of range for a " + type_name);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || !std::isfinite(x))
    fail(loc, path, "expected a number, got " + quote(s));
  *out = x;
}

void read_value(const YAML::Node& v, const std::string& path, const Loc& loc, float* out) {
  read_real(v, path, loc, out, "32-bit float");
}
void read_value(const YAML::Node& v, const std::string& path, const Loc& loc, double* out) {
  read_real(v, path, loc, out, "64-bit float");
}

void read_value(const YAML::Node& v, const std::string& path, const Loc& loc, bool* out) {
  const std::string& s = plain_scalar(v, path, loc, "true or false");
  if (s == "true" || s == "True" || s == "TRUE") {
    *out = true;
  } else if (s == "false" || s == "False" || s == "FALSE") {
    *out = false;
  } else {
    static const std::set<std::string> kYaml11 = {"yes", "no", "on", "off", "y", "n"};
    std::string hint = kYaml11.count(lower(s)) ? " (YAML 1.1 words like yes/no/on/off are not booleans here)" : "";
    fail(loc, path, "expected true or false, got " + quote(s) + hint);
  }
}

void read_value(const YAML::Node& v, const std::string& path, const Loc& loc, std::string* out) {
  if (!v.IsScalar()) {
    std::string hint = v.IsNull() ? " (write \"\" for an empty string)" : "";
    fail(loc, path, "expected a string, got " + describe(v) + hint);
  }
  const size_t bad = find_invalid_utf8(v.Scalar());
  if (bad != std::string::npos)
    fail(loc, path, "the string is not valid UTF-8 (byte " + std::to_string(bad) +
                        "); run directories and checkpoints record it as text");
  *out = v.Scalar();
}

template <class E>
  requires std::is_enum_v<E>
void read_value(const YAML::Node& v, const std::string& path, const Loc& loc, E* out) {
  const std::vector<std::string> names = enum_names<E>();
  const std::string allowed = "allowed values: " + join_comma(names);
  if (!v.IsScalar()) fail(loc, path, "expected one of the names " + join_comma(names) + ", got " + describe(v));
  const std::string& s = v.Scalar();
  for (const auto& e : EnumTable<E>::kNames) {
    if (s == e.name) {
      *out = e.value;
      return;
    }
  }
  const std::vector<std::string> near = suggest(s, names);
  const std::string dym = near.empty() ? "" : " (did you mean " + join_or(near) + "?)";
  fail(loc, path, "unknown value " + quote(s) + dym + "; " + allowed);
}

// ---------------------------------------------------------------------------------------------------
// The table of keys

struct Field {
  std::string section, key;
  std::function<void(const YAML::Node&, const std::string&, const Loc&, RunConfig&)> read;
  std::function<std::string(const RunConfig&)> format;
  std::string path() const { return section + "." + key; }
};

template <class S, class T>
Field field(S RunConfig::*sec, const char* section, const char* key, T S::*member) {
  return {section, key,
          [sec, member](const YAML::Node& v, const std::string& path, const Loc& loc, RunConfig& c) {
            read_value(v, path, loc, &((c.*sec).*member));
          },
          [sec, member](const RunConfig& c) { return format_value((c.*sec).*member); }};
}

const std::vector<Field>& fields() {
  using R = RunConfig;
  using M = ModelConfig;
  using D = DataConfig;
  using O = OptimConfig;
  using S = ScheduleConfig;
  using T = TrainConfig;
  using I = InstrumentConfig;
  static const std::vector<Field> kFields = {
      field(&R::model, "model", "vocab", &M::vocab),
      field(&R::model, "model", "d_model", &M::d_model),
      field(&R::model, "model", "n_layer", &M::n_layer),
      field(&R::model, "model", "n_head", &M::n_head),
      field(&R::model, "model", "seq_len", &M::seq_len),
      field(&R::model, "model", "mlp", &M::mlp),
      field(&R::model, "model", "mlp_hidden", &M::mlp_hidden),
      field(&R::model, "model", "pos", &M::pos),
      field(&R::model, "model", "rope_base", &M::rope_base),
      field(&R::model, "model", "tied_head", &M::tied_head),
      field(&R::model, "model", "norm_eps", &M::norm_eps),
      field(&R::model, "model", "init_std", &M::init_std),
      // Mitigation and ablation toggles (model/TOGGLES.md).
      field(&R::model, "model", "v_scale", &M::v_scale),
      field(&R::model, "model", "v_scale_theta", &M::v_scale_theta),
      field(&R::model, "model", "qk_norm", &M::qk_norm),
      field(&R::model, "model", "z_loss", &M::z_loss),
      field(&R::model, "model", "softmax_plus_one", &M::softmax_plus_one),
      field(&R::model, "model", "sink_logit", &M::sink_logit),
      field(&R::model, "model", "attn_bias_kv", &M::attn_bias_kv),
      field(&R::model, "model", "sigmoid_attn", &M::sigmoid_attn),
      field(&R::model, "model", "sigmoid_attn_bias", &M::sigmoid_attn_bias),
      field(&R::model, "model", "attn_temperature", &M::attn_temperature),
      field(&R::model, "model", "attn_temperature_start", &M::attn_temperature_start),
      field(&R::model, "model", "attn_temperature_end", &M::attn_temperature_end),
      field(&R::model, "model", "residual_scale", &M::residual_scale),
      field(&R::model, "model", "skip", &M::skip),
      field(&R::model, "model", "embed_scale", &M::embed_scale),
      field(&R::model, "model", "norm_position", &M::norm_position),
      field(&R::model, "model", "sink_token", &M::sink_token),
      field(&R::model, "model", "sigma_reparam", &M::sigma_reparam),
      field(&R::data, "data", "source", &D::source),
      field(&R::data, "data", "path", &D::path),
      field(&R::data, "data", "corpus", &D::corpus),
      field(&R::data, "data", "corpus_dir", &D::corpus_dir),
      field(&R::data, "data", "val_fraction", &D::val_fraction),
      field(&R::data, "data", "bos", &D::bos),
      field(&R::data, "data", "bos_id", &D::bos_id),
      field(&R::data, "data", "bigram_branching", &D::bigram_branching),
      field(&R::data, "data", "n_triggers", &D::n_triggers),
      field(&R::data, "data", "copy_len", &D::copy_len),
      field(&R::data, "data", "recall_keys", &D::recall_keys),
      field(&R::data, "data", "recall_pairs", &D::recall_pairs),
      field(&R::data, "data", "recall_min_dist", &D::recall_min_dist),
      field(&R::data, "data", "recall_max_dist", &D::recall_max_dist),
      field(&R::data, "data", "recall_queries_only", &D::recall_queries_only),
      field(&R::data, "data", "data_seed", &D::data_seed),
      field(&R::optim, "optim", "lr", &O::lr),
      field(&R::optim, "optim", "beta1", &O::beta1),
      field(&R::optim, "optim", "beta2", &O::beta2),
      field(&R::optim, "optim", "eps", &O::eps),
      field(&R::optim, "optim", "weight_decay", &O::weight_decay),
      field(&R::optim, "optim", "decay_mode", &O::decay_mode),
      field(&R::optim, "optim", "grad_clip", &O::grad_clip),
      field(&R::schedule, "schedule", "kind", &S::kind),
      field(&R::schedule, "schedule", "warmup", &S::warmup),
      field(&R::schedule, "schedule", "min_lr_frac", &S::min_lr_frac),
      field(&R::train, "train", "batch", &T::batch),
      field(&R::train, "train", "accum", &T::accum),
      field(&R::train, "train", "steps", &T::steps),
      field(&R::train, "train", "seed", &T::seed),
      field(&R::train, "train", "threads", &T::threads),
      field(&R::train, "train", "eval_every", &T::eval_every),
      field(&R::train, "train", "eval_batches", &T::eval_batches),
      field(&R::train, "train", "recall_eval", &T::recall_eval),
      field(&R::train, "train", "recall_eval_len", &T::recall_eval_len),
      field(&R::train, "train", "log_every", &T::log_every),
      field(&R::train, "train", "checkpoint_every", &T::checkpoint_every),
      field(&R::train, "train", "keep_checkpoints", &T::keep_checkpoints),
      field(&R::instrument, "instrument", "enabled", &I::enabled),
      field(&R::instrument, "instrument", "step_every", &I::step_every),
      field(&R::instrument, "instrument", "probe_every", &I::probe_every),
      field(&R::instrument, "instrument", "dense_until", &I::dense_until),
      field(&R::instrument, "instrument", "dense_every", &I::dense_every),
      field(&R::instrument, "instrument", "probe_at_init", &I::probe_at_init),
      field(&R::instrument, "instrument", "attention", &I::attention),
      field(&R::instrument, "instrument", "residual", &I::residual),
      field(&R::instrument, "instrument", "gradients", &I::gradients),
      field(&R::instrument, "instrument", "weights", &I::weights),
      field(&R::instrument, "instrument", "tensor_stats", &I::tensor_stats),
      field(&R::instrument, "instrument", "probe_seed", &I::probe_seed),
      field(&R::instrument, "instrument", "warn_entropy", &I::warn_entropy),
      field(&R::instrument, "instrument", "warn_logit", &I::warn_logit),
      field(&R::instrument, "instrument", "warn_spike_z", &I::warn_spike_z),
      field(&R::instrument, "instrument", "warn_grad_norm", &I::warn_grad_norm),
      field(&R::instrument, "instrument", "warn_grad_vanish", &I::warn_grad_vanish),
      field(&R::instrument, "instrument", "warn_depth_ratio", &I::warn_depth_ratio),
      field(&R::instrument, "instrument", "warn_depth_window", &I::warn_depth_window),
      field(&R::instrument, "instrument", "warn_tok_cos", &I::warn_tok_cos),
      field(&R::instrument, "instrument", "warn_sink", &I::warn_sink),
      field(&R::instrument, "instrument", "warn_mass_ratio", &I::warn_mass_ratio),
      field(&R::instrument, "instrument", "spike_window", &I::spike_window),
      field(&R::instrument, "instrument", "spike_min_history", &I::spike_min_history),
      field(&R::instrument, "instrument", "flight_recorder", &I::flight_recorder),
      field(&R::instrument, "instrument", "flight_contents", &I::flight_contents),
      field(&R::instrument, "instrument", "flight_seqs", &I::flight_seqs),
      field(&R::instrument, "instrument", "on_spike", &I::on_spike),
  };
  return kFields;
}

const std::vector<std::string>& section_names() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> out;
    for (const auto& f : fields())
      if (std::find(out.begin(), out.end(), f.section) == out.end()) out.push_back(f.section);
    return out;
  }();
  return kNames;
}

bool is_section(const std::string& name) {
  const auto& s = section_names();
  return std::find(s.begin(), s.end(), name) != s.end();
}

std::vector<std::string> keys_of(const std::string& section) {
  std::vector<std::string> out;
  for (const auto& f : fields())
    if (f.section == section) out.push_back(f.key);
  return out;
}

const Field* find_field(const std::string& section, const std::string& key) {
  for (const auto& f : fields())
    if (f.section == section && f.key == key) return &f;
  return nullptr;
}

// Full paths of keys named `key` in any section ("lr" -> "optim.lr").
std::vector<std::string> paths_named(const std::string& key) {
  std::vector<std::string> out;
  for (const auto& f : fields())
    if (f.key == key) out.push_back(f.path());
  return out;
}

// "unknown key 'model.n_heads'; did you mean 'n_head'?" In a file the suggestion is the bare key (what
// goes on that line); after --set it is the full path (what goes on the command line).
[[noreturn]] void fail_unknown_key(const Loc& loc, const std::string& section, const std::string& key,
                                   bool full_paths) {
  const std::string path = section + "." + key;
  const std::vector<std::string> keys = keys_of(section);
  const std::vector<std::string> near = suggest(key, keys);
  std::string msg = "unknown key " + quote(path);
  if (!near.empty()) {
    msg += "; did you mean " + join_or(near, full_paths ? section + "." : "") + "?";
  } else if (const auto elsewhere = paths_named(key); !elsewhere.empty()) {
    msg += "; " + quote(key) + " belongs to another section: " + join_or(elsewhere);
  } else {
    msg += "; valid keys in '" + section + "': " + join_comma(keys);
  }
  fail(loc, "", msg);
}

[[noreturn]] void fail_unknown_section(const Loc& loc, const std::string& name) {
  std::string msg = "unknown section " + quote(name);
  if (const auto near = suggest(name, section_names()); !near.empty()) {
    msg += "; did you mean " + join_or(near) + "?";
  } else if (const auto elsewhere = paths_named(name); !elsewhere.empty()) {
    msg += "; keys go inside their section: did you mean " + join_or(elsewhere) + "?";
  } else {
    msg += "; valid sections: " + join_comma(section_names());
  }
  fail(loc, "", msg);
}

// ---------------------------------------------------------------------------------------------------
// Reading a document and the overrides

std::string key_text(const std::string& source, const YAML::Node& key, const std::string& where) {
  if (!key.IsScalar())
    fail(file_loc(source, key.Mark()), where, "keys must be plain names, got " + describe(key) + " as a key");
  return key.Scalar();
}

void read_document(const YAML::Node& root, const std::string& source, RunConfig* cfg, Origins* origins) {
  if (root.IsNull()) return;  // an empty file (or only comments): all defaults
  if (!root.IsMap())
    fail(file_loc(source, root.Mark()), "",
         "the top level must be a map of sections (" + join_comma(section_names()) + "), got " + describe(root));
  std::map<std::string, int> seen_sections;
  // Nodes are copied (cheap handles): yaml-cpp's iterator-> returns a temporary proxy.
  for (auto it = root.begin(); it != root.end(); ++it) {
    const YAML::Node k = it->first;
    const YAML::Node v = it->second;
    const std::string name = key_text(source, k, "");
    const Loc kloc = file_loc(source, k.Mark());
    if (!is_section(name)) fail_unknown_section(kloc, name);
    if (auto [pos, fresh] = seen_sections.emplace(name, kloc.line); !fresh)
      fail(kloc, name, "duplicate section (first at line " + std::to_string(pos->second) + ")");
    if (v.IsNull()) continue;  // "model:" with every key commented out
    if (!v.IsMap())
      fail(file_loc(source, k, v), name,
           "expected a map of keys (e.g. " + name + ": {" + keys_of(name)[0] + ": ...}), got " + describe(v));
    std::map<std::string, int> seen_keys;
    for (auto jt = v.begin(); jt != v.end(); ++jt) {
      const YAML::Node k2 = jt->first;
      const YAML::Node v2 = jt->second;
      const std::string key = key_text(source, k2, name);
      const Loc loc = file_loc(source, k2, v2);
      const Field* f = find_field(name, key);
      if (f == nullptr) fail_unknown_key(file_loc(source, k2.Mark()), name, key, false);
      if (auto [pos, fresh] = seen_keys.emplace(key, loc.line); !fresh)
        fail(file_loc(source, k2.Mark()), f->path(), "duplicate key (first at line " + std::to_string(pos->second) + ")");
      f->read(v2, f->path(), loc, *cfg);
      (*origins)[f->path()] = {loc.origin, loc.line};
    }
  }
}

void apply_override(const std::string& text, RunConfig* cfg, Origins* origins) {
  const std::string where = "--set " + text;
  const Loc loc{where, where, 0};
  const size_t eq = text.find('=');
  if (eq == std::string::npos) fail(loc, "", "expected section.key=value, e.g. --set model.n_head=8 (no '=')");
  const std::string path = trim(text.substr(0, eq));
  const std::string value = text.substr(eq + 1);
  if (path.empty()) fail(loc, "", "expected section.key=value, e.g. --set model.n_head=8 (empty key)");
  const size_t dot = path.find('.');
  if (dot == std::string::npos) {
    if (is_section(path))
      fail(loc, "", "expected section.key=value; " + quote(path) + " is a whole section, set its keys one at a time (e.g. " + path + "." + keys_of(path)[0] + "=...)");
    fail_unknown_section(loc, path);
  }
  const std::string section = path.substr(0, dot), key = path.substr(dot + 1);
  if (section.empty() || key.empty()) fail(loc, "", "expected section.key=value, got the key " + quote(path));
  if (!is_section(section)) fail_unknown_section(loc, section);
  if (key.find('.') != std::string::npos)
    fail(loc, "", quote(path) + " is nested too deeply; keys are section.key (e.g. model.n_head)");
  const Field* f = find_field(section, key);
  if (f == nullptr) fail_unknown_key(loc, section, key, true);
  YAML::Node node;
  try {
    const yaml::DocumentScan docs = yaml::scan_documents(value);
    if (docs.stuck) fail(loc, path, "cannot parse the value " + quote(value) + " as YAML");
    if (docs.count > 1)
      fail(loc, path, "the value " + quote(value) + " holds several YAML documents (separated by '---'); a value is one");
    node = YAML::Load(value);
  } catch (const YAML::Exception& e) {
    fail(loc, path, "cannot parse the value " + quote(value) + " as YAML: " + e.msg);
  }
  yaml::check_plain(node, where);
  f->read(node, path, loc, *cfg);
  (*origins)[path] = {loc.origin, 0};
}

// ---------------------------------------------------------------------------------------------------
// Validation

// Collects every problem, so one run of the config reports them all. Each message names the key paths and
// values; with origins (the config was parsed) it also says where each key was set.
class Problems {
 public:
  Problems(const Origins* origins, std::string source) : origins_(origins), source_(std::move(source)) {}

  void add(std::initializer_list<const char*> keys, const std::string& msg) {
    std::string text = msg;
    int line = 0;
    if (origins_ != nullptr) {
      std::vector<std::string> notes;
      for (const char* k : keys) {
        const auto it = origins_->find(k);
        if (it == origins_->end()) {
          notes.push_back(std::string(k) + ": default");
        } else {
          notes.push_back(std::string(k) + ": " + it->second.text);
          if (line == 0) line = it->second.line;
        }
      }
      text += " [" + join_semicolon(notes) + "]";
    }
    std::string prefix = source_;
    if (!prefix.empty() && line > 0) prefix += ":" + std::to_string(line);
    msgs_.push_back(prefix.empty() ? text : prefix + ": " + text);
  }

  void throw_if_any() const {
    if (msgs_.empty()) return;
    if (msgs_.size() == 1) throw ConfigError(msgs_[0]);
    std::string all = (source_.empty() ? std::string("configuration") : source_) + ": " +
                      std::to_string(msgs_.size()) + " invalid settings:";
    for (const auto& m : msgs_) all += "\n  " + m;
    throw ConfigError(all);
  }

 private:
  static std::string join_semicolon(const std::vector<std::string>& xs) {
    std::string s;
    for (size_t i = 0; i < xs.size(); ++i) s += (i ? "; " : "") + xs[i];
    return s;
  }
  const Origins* origins_;
  std::string source_;
  std::vector<std::string> msgs_;
};

template <class T>
std::string kv(const char* path, const T& v) {
  return std::string(path) + "=" + format_value(v);
}

// The model toggles (model/TOGGLES.md): ranges, and combinations that cannot work together.
// A dependent key is an error only when it differs from its default, never merely for being present: a
// resolved config (dump_config) lists every key and must load back.
void validate_toggles(Problems& p, const RunConfig& c) {
  const ModelConfig& m = c.model;
  // V-scale
  if (!std::isfinite(m.v_scale_theta) || std::fabs(m.v_scale_theta) > 50.0f)
    p.add({"model.v_scale_theta"}, kv("model.v_scale_theta", m.v_scale_theta) +
                                       " must be in [-50, 50] (C = d_model·d_head·init_std²·exp(θ) must stay a finite positive float)");
  if (m.v_scale == VScaleMode::kOff && m.v_scale_theta != 0.0f)
    p.add({"model.v_scale_theta", "model.v_scale"},
          kv("model.v_scale_theta", m.v_scale_theta) + " is only used when model.v_scale is learned, fixed or backward_only, but " +
              kv("model.v_scale", m.v_scale));
  // z-loss
  if (!(std::isfinite(m.z_loss) && m.z_loss >= 0.0f))
    p.add({"model.z_loss"}, kv("model.z_loss", m.z_loss) + " must be >= 0 (the z-loss coefficient; 0 disables it)");
  // The extra key: one mechanism at a time (they are alternative forms of the same always-visible key).
  const int n_extra = int(m.softmax_plus_one) + int(m.sink_logit) + int(m.attn_bias_kv);
  if (n_extra > 1)
    p.add({"model.softmax_plus_one", "model.sink_logit", "model.attn_bias_kv"},
          kv("model.softmax_plus_one", m.softmax_plus_one) + ", " + kv("model.sink_logit", m.sink_logit) + " and " +
              kv("model.attn_bias_kv", m.attn_bias_kv) +
              ": at most one may be true (each adds the same always-visible extra key in a different form)");
  if (m.sigmoid_attn && n_extra > 0)
    p.add({"model.sigmoid_attn", "model.softmax_plus_one", "model.sink_logit", "model.attn_bias_kv"},
          "model.sigmoid_attn=true has no softmax normaliser for an extra key to absorb; it cannot be combined with " +
              kv("model.softmax_plus_one", m.softmax_plus_one) + ", " + kv("model.sink_logit", m.sink_logit) +
              " or " + kv("model.attn_bias_kv", m.attn_bias_kv));
  if (m.sigmoid_attn_bias && !m.sigmoid_attn)
    p.add({"model.sigmoid_attn_bias", "model.sigmoid_attn"},
          "model.sigmoid_attn_bias=true is only used with model.sigmoid_attn=true, but " +
              kv("model.sigmoid_attn", m.sigmoid_attn));
  // Attention temperature window
  if (!(std::isfinite(m.attn_temperature) && m.attn_temperature > 0.0f))
    p.add({"model.attn_temperature"}, kv("model.attn_temperature", m.attn_temperature) + " must be > 0 (1 disables it)");
  if (m.attn_temperature_start < 0)
    p.add({"model.attn_temperature_start"}, kv("model.attn_temperature_start", m.attn_temperature_start) + " must be >= 0");
  if (m.attn_temperature_end != 0 && m.attn_temperature_end <= m.attn_temperature_start)
    p.add({"model.attn_temperature_end", "model.attn_temperature_start"},
          kv("model.attn_temperature_end", m.attn_temperature_end) + " must be > " +
              kv("model.attn_temperature_start", m.attn_temperature_start) + " (the window is [start, end); 0 means no end)");
  if (m.attn_temperature == 1.0f && (m.attn_temperature_start != 0 || m.attn_temperature_end != 0))
    p.add({"model.attn_temperature_start", "model.attn_temperature_end", "model.attn_temperature"},
          "model.attn_temperature_start/end set a window, but " + kv("model.attn_temperature", m.attn_temperature) +
              " leaves the logits unchanged; set model.attn_temperature (τ != 1)");
  // Residual branches
  if (!(std::isfinite(m.residual_scale) && m.residual_scale >= 0.0f))
    p.add({"model.residual_scale"}, kv("model.residual_scale", m.residual_scale) +
                                        " must be >= 0 (α in x + α·f(N(x)); 1 is the plain model, 0 makes every block the identity)");
}

// Sizes: the row count B·T must fit the kernels' 32-bit row index, and the whole model (parameters,
// gradients, AdamW's two moments, activations) must fit this machine's memory — refused here, naming the
// keys, before anything is allocated.
void validate_sizes(Problems& p, const RunConfig& c) {
  const ModelConfig& m = c.model;
  if (m.seq_len < 2 || c.train.batch < 1 || m.d_model < 1 || m.n_head < 1 || m.n_layer < 1 || m.vocab < 2) return;
  const int64_t ctx = int64_t(m.seq_len) + (m.sink_token ? 1 : 0);
  if (int64_t(c.train.batch) * ctx > int64_t(INT_MAX)) {
    if (m.sink_token)
      p.add({"train.batch", "model.seq_len", "model.sink_token"},
            "model.sink_token=true makes the context model.seq_len + 1 = " + std::to_string(ctx) + " positions, and " +
                kv("train.batch", c.train.batch) + " × that no longer fits the row count limit " + std::to_string(INT_MAX));
    else
      p.add({"train.batch", "model.seq_len"}, kv("train.batch", c.train.batch) + " × " + kv("model.seq_len", m.seq_len) +
                                                  " rows do not fit the row count limit " + std::to_string(INT_MAX));
    return;
  }
  const LayoutEstimate e = estimate_layout(m, c.train.batch);
  const double bytes = 4.0 * (4.0 * e.params + e.activations + e.sigma);  // params, grads, AdamW m, v; the rest
  const double phys = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
  if (phys > 0 && bytes > phys) {
    const auto gib = [](double b) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), b >= 1024.0 * (1 << 30) ? "%.3g TiB" : "%.3g GiB",
                    b >= 1024.0 * (1 << 30) ? b / (1024.0 * (1 << 30)) : b / double(1 << 30));
      return std::string(buf);
    };
    p.add({"model.d_model", "model.n_layer", "model.vocab", "model.mlp_hidden", "model.seq_len", "model.n_head",
           "train.batch"},
          "the model does not fit in memory: about " + gib(bytes) + " (parameters, gradients and AdamW state " +
              gib(16.0 * e.params) + " for ~" + format_float(float(e.params)) + " parameters; activations " +
              gib(4.0 * e.activations) + " at " + kv("train.batch", c.train.batch) + ", " +
              kv("model.seq_len", m.seq_len) + ") against this machine's " + gib(phys) + "; " +
              kv("model.d_model", m.d_model) + ", " + kv("model.n_layer", m.n_layer) + ", " +
              kv("model.n_head", m.n_head) + ", " + kv("model.vocab", m.vocab) + ", " +
              kv("model.mlp_hidden", m.mlp_hidden));
  }
}

void validate_impl(const RunConfig& c, const Origins* origins, const std::string& source) {
  Problems p(origins, source);
  const ModelConfig& m = c.model;
  const DataConfig& d = c.data;
  const OptimConfig& o = c.optim;
  const ScheduleConfig& s = c.schedule;
  const TrainConfig& t = c.train;

  auto at_least = [&](const char* path, int64_t v, int64_t lo, const char* why = "") {
    if (v < lo) p.add({path}, std::string(path) + "=" + std::to_string(v) + " must be >= " + std::to_string(lo) + why);
  };
  // NaN fails every comparison, so each test is written as !(ok).
  auto real_check = [&](const char* path, auto v, bool ok, const char* rule) {
    if (!ok || !std::isfinite(v)) p.add({path}, std::string(path) + "=" + format_float(v) + " " + rule);
  };

  // model
  at_least("model.vocab", m.vocab, 2, " (a model over one token has nothing to predict)");
  at_least("model.d_model", m.d_model, 1);
  at_least("model.n_layer", m.n_layer, 1);
  at_least("model.n_head", m.n_head, 1);
  at_least("model.seq_len", m.seq_len, 2, " (attention over a single position has nothing to attend to)");
  at_least("model.mlp_hidden", m.mlp_hidden, 0, " (0 means 4 * model.d_model)");
  if (m.mlp == MlpKind::kNone && m.mlp_hidden != 0)
    p.add({"model.mlp_hidden", "model.mlp"},
          kv("model.mlp_hidden", m.mlp_hidden) + " is only used by an MLP, but " + kv("model.mlp", m.mlp) +
              " (attention-only blocks); leave model.mlp_hidden at 0");
  if (m.d_model >= 1 && m.n_head >= 1) {
    if (m.d_model % m.n_head != 0) {
      p.add({"model.d_model", "model.n_head"},
            kv("model.d_model", m.d_model) + " is not divisible by " + kv("model.n_head", m.n_head) +
                " (d_head = d_model / n_head must be a whole number)");
    } else if (m.pos == PosEncoding::kRope && m.d_head() % 2 != 0) {
      p.add({"model.pos", "model.d_model", "model.n_head"},
            "model.pos=rope rotates pairs of dimensions and needs an even d_head, but d_head = " +
                kv("model.d_model", m.d_model) + " / " + kv("model.n_head", m.n_head) + " = " +
                std::to_string(m.d_head()) + " is odd");
    }
  }
  if (m.pos == PosEncoding::kSinusoidal && m.d_model >= 1 && m.d_model % 2 != 0)
    p.add({"model.pos", "model.d_model"},
          "model.pos=sinusoidal pairs sin/cos over the width and needs an even model.d_model, got " +
              kv("model.d_model", m.d_model));
  if (m.mlp_hidden == 0 && m.d_model > INT_MAX / 4)
    p.add({"model.d_model", "model.mlp_hidden"},
          kv("model.d_model", m.d_model) + " is too large for the default model.mlp_hidden = 4 * d_model");
  real_check("model.rope_base", m.rope_base, m.rope_base > 1.0f, "must be > 1");
  real_check("model.norm_eps", m.norm_eps, m.norm_eps > 0.0f, "must be > 0");
  real_check("model.init_std", m.init_std, m.init_std > 0.0f, "must be > 0");
  validate_toggles(p, c);
  validate_sizes(p, c);

  // optim and schedule
  real_check("optim.lr", o.lr, o.lr > 0.0f, "must be > 0");
  real_check("optim.beta1", o.beta1, o.beta1 >= 0.0f && o.beta1 < 1.0f, "must be in [0, 1)");
  real_check("optim.beta2", o.beta2, o.beta2 >= 0.0f && o.beta2 < 1.0f, "must be in [0, 1)");
  real_check("optim.eps", o.eps, o.eps > 0.0f, "must be > 0");
  real_check("optim.weight_decay", o.weight_decay, o.weight_decay >= 0.0f, "must be >= 0");
  real_check("optim.grad_clip", o.grad_clip, o.grad_clip >= 0.0f, "must be >= 0 (0 disables clipping)");
  at_least("schedule.warmup", s.warmup, 0);
  real_check("schedule.min_lr_frac", s.min_lr_frac, s.min_lr_frac >= 0.0f && s.min_lr_frac <= 1.0f,
             "must be in [0, 1]");

  // data
  real_check("data.val_fraction", d.val_fraction, d.val_fraction > 0.0 && d.val_fraction < 1.0,
             "must be in (0, 1)");
  const std::string source_kv = kv("data.source", d.source);
  const bool bytes_source = d.source == DataSource::kFile || d.source == DataSource::kCorpus;
  if (d.source == DataSource::kFile) {
    if (d.path.empty()) p.add({"data.source", "data.path"}, "data.source=file needs data.path (the file to read)");
  } else if (!d.path.empty()) {
    p.add({"data.path", "data.source"},
          kv("data.path", d.path) + " is only read when data.source=file, but " + source_kv);
  }
  if (bytes_source && m.vocab < 256)
    p.add({"data.source", "model.vocab"},
          source_kv + " reads bytes (token = byte value 0..255), so model.vocab must be >= 256, got " +
              kv("model.vocab", m.vocab));
  if (d.source != DataSource::kCorpus && !d.corpus_dir.empty())
    p.add({"data.corpus_dir", "data.source"},
          kv("data.corpus_dir", d.corpus_dir) + " is only read when data.source=corpus, but " + source_kv);
  if (d.bos_id < -1) {
    p.add({"data.bos_id"}, kv("data.bos_id", d.bos_id) + " must be -1 (meaning model.vocab - 1) or a token id >= 0");
  } else if (d.bos && m.vocab >= 1) {
    const int64_t id = d.bos_id == -1 ? int64_t{m.vocab} - 1 : d.bos_id;
    const std::string id_text =
        d.bos_id == -1 ? "the BOS id " + std::to_string(id) + " (data.bos_id=-1 means " + kv("model.vocab", m.vocab) + " - 1)"
                       : "the BOS id " + kv("data.bos_id", d.bos_id);
    if (id >= m.vocab) {
      p.add({"data.bos_id", "model.vocab"},
            "data.bos=true but " + id_text + " is outside the vocabulary [0, " + kv("model.vocab", m.vocab) + ")");
    } else if (bytes_source && id < 256) {
      p.add({"data.bos", "data.bos_id", "model.vocab", "data.source"},
            "data.bos=true with " + source_kv + ": " + id_text +
                " collides with a byte value (0..255); use model.vocab >= 257 so the BOS id is past the bytes, "
                "or set data.bos_id >= 256");
    }
  }
  at_least("data.bigram_branching", d.bigram_branching, 1);
  at_least("data.n_triggers", d.n_triggers, 1);
  at_least("data.copy_len", d.copy_len, 0, " (0 means model.seq_len / 2)");
  if (d.source == DataSource::kBigramBackcopy) {
    if (d.bigram_branching >= 1 && d.bigram_branching >= m.vocab)
      p.add({"data.bigram_branching", "model.vocab"},
            kv("data.bigram_branching", d.bigram_branching) + " must be < " + kv("model.vocab", m.vocab) +
                " (successors per token are distinct tokens)");
    if (d.n_triggers >= 1 && d.n_triggers >= m.vocab / 2)
      p.add({"data.n_triggers", "model.vocab"},
            kv("data.n_triggers", d.n_triggers) + " must be < model.vocab / 2 = " + std::to_string(m.vocab / 2) +
                " (" + kv("model.vocab", m.vocab) + ")");
  }
  if (d.source == DataSource::kCopy && m.seq_len >= 1 && d.copy_len >= 0) {
    if (d.copy_len >= m.seq_len) {
      p.add({"data.copy_len", "model.seq_len"},
            kv("data.copy_len", d.copy_len) + " must be < " + kv("model.seq_len", m.seq_len));
    } else if (d.copy_len == 0 && m.seq_len / 2 < 1) {
      p.add({"data.copy_len", "model.seq_len"},
            "data.copy_len=0 means model.seq_len / 2, which is 0 for " + kv("model.seq_len", m.seq_len) +
                "; the copy task needs model.seq_len >= 2");
    }
  }

  if (d.source != DataSource::kRecall) {
    // The recall task's keys are only read by it: a value other than the default elsewhere is a mistake.
    const DataConfig def;
    const std::pair<const char*, bool> set_keys[] = {
        {"data.recall_keys", d.recall_keys != def.recall_keys},
        {"data.recall_pairs", d.recall_pairs != def.recall_pairs},
        {"data.recall_min_dist", d.recall_min_dist != def.recall_min_dist},
        {"data.recall_max_dist", d.recall_max_dist != def.recall_max_dist},
        {"data.recall_queries_only", d.recall_queries_only != def.recall_queries_only}};
    for (const auto& [key, set] : set_keys)
      if (set) p.add({key, "data.source"}, std::string(key) + " is only read when data.source=recall, but " + source_kv);
  }
  if (d.source == DataSource::kRecall && m.seq_len >= 1 && m.vocab >= 1) {
    const int content = m.vocab - (d.bos ? 1 : 0), n = m.seq_len + (d.bos ? 0 : 1);
    if (d.recall_keys < 1 || d.recall_keys > content - 2)
      p.add({"data.recall_keys", "model.vocab"},
            kv("data.recall_keys", d.recall_keys) + " must be in [1, " + std::to_string(content - 2) +
                "]: the content tokens (" + kv("model.vocab", m.vocab) + (d.bos ? " minus BOS" : "") +
                ") minus at least 2 values");
    if (d.recall_pairs < 1 || d.recall_pairs > d.recall_keys)
      p.add({"data.recall_pairs", "data.recall_keys"},
            kv("data.recall_pairs", d.recall_pairs) + " must be in [1, " + kv("data.recall_keys", d.recall_keys) +
                "] (the keys of a row are distinct)");
    if (d.recall_min_dist < 1 || d.recall_min_dist > n - 3)
      p.add({"data.recall_min_dist", "model.seq_len"},
            kv("data.recall_min_dist", d.recall_min_dist) + " must be in [1, " + std::to_string(n - 3) + "] for " +
                kv("model.seq_len", m.seq_len) + " (" + std::to_string(n) + " tokens per row)");
    if (d.recall_max_dist != 0 && (d.recall_max_dist < d.recall_min_dist || d.recall_max_dist > n - 3))
      p.add({"data.recall_max_dist", "data.recall_min_dist", "model.seq_len"},
            kv("data.recall_max_dist", d.recall_max_dist) + " must be 0 (the longest that fits) or in [" +
                kv("data.recall_min_dist", d.recall_min_dist) + ", " + std::to_string(n - 3) + "] for " +
                kv("model.seq_len", m.seq_len));
  }

  // train
  at_least("train.batch", t.batch, 1);
  at_least("train.accum", t.accum, 1);
  // Bounds against typos: past them a step (accum) or an evaluation would run for hours to days.
  constexpr int kMaxRepeats = 65536;
  if (t.accum > kMaxRepeats)
    p.add({"train.accum"}, kv("train.accum", t.accum) + " must be <= " + std::to_string(kMaxRepeats) +
                               " (micro-batches per step; each step would take that many forward/backward passes)");
  if (t.eval_batches > kMaxRepeats)
    p.add({"train.eval_batches"}, kv("train.eval_batches", t.eval_batches) + " must be <= " +
                                      std::to_string(kMaxRepeats) + " (forward passes per evaluation)");
  at_least("train.steps", t.steps, 1);
  at_least("train.threads", t.threads, 0, " (0 means all cores)");
  at_least("train.eval_every", t.eval_every, 0, " (0 disables evaluation)");
  if (t.eval_every > 0 && t.eval_batches < 1)
    p.add({"train.eval_batches", "train.eval_every"},
          kv("train.eval_batches", t.eval_batches) + " must be >= 1 when " + kv("train.eval_every", t.eval_every) +
              " (set train.eval_every=0 to disable evaluation)");
  else
    at_least("train.eval_batches", t.eval_batches, 0);
  at_least("train.recall_eval_len", t.recall_eval_len, 0, " (0: only at model.seq_len)");
  if (t.recall_eval && !(d.source == DataSource::kRecall || d.source == DataSource::kCopy ||
                         d.source == DataSource::kBigramBackcopy))
    p.add({"train.recall_eval", "data.source"},
          "train.recall_eval=true needs a data source whose targets copy earlier tokens (recall, copy or "
          "bigram_backcopy), but " + source_kv);
  if (t.recall_eval_len > 0 && t.recall_eval_len <= m.seq_len)
    p.add({"train.recall_eval_len", "model.seq_len"},
          kv("train.recall_eval_len", t.recall_eval_len) + " must be 0 or longer than the training window " +
              kv("model.seq_len", m.seq_len));
  if (t.recall_eval_len > 0 && !t.recall_eval)
    p.add({"train.recall_eval_len", "train.recall_eval"},
          kv("train.recall_eval_len", t.recall_eval_len) + " is only used with train.recall_eval=true");
  if (t.recall_eval && t.eval_every == 0)
    p.add({"train.recall_eval", "train.eval_every"},
          "train.recall_eval=true runs at the evaluation cadence, but train.eval_every=0 disables it");
  if (t.recall_eval_len > 0 && m.sink_token)
    p.add({"train.recall_eval_len", "model.sink_token"},
          kv("train.recall_eval_len", t.recall_eval_len) + " is not supported with model.sink_token=true");
  at_least("train.log_every", t.log_every, 1);
  at_least("train.checkpoint_every", t.checkpoint_every, 0, " (0 means only at the end)");
  at_least("train.keep_checkpoints", t.keep_checkpoints, 0, " (0 keeps every checkpoint)");

  // instrument
  const InstrumentConfig& in = c.instrument;
  at_least("instrument.step_every", in.step_every, 1);
  at_least("instrument.probe_every", in.probe_every, 0, " (0 disables probes)");
  at_least("instrument.dense_until", in.dense_until, 0);
  at_least("instrument.dense_every", in.dense_every, 1);
  at_least("instrument.spike_window", in.spike_window, 2);
  at_least("instrument.spike_min_history", in.spike_min_history, 2);
  at_least("instrument.flight_seqs", in.flight_seqs, 1, " (sequences of the batch in a diagnosis flight record)");
  if (in.spike_min_history > in.spike_window)
    p.add({"instrument.spike_min_history", "instrument.spike_window"},
          kv("instrument.spike_min_history", in.spike_min_history) + " must be <= " +
              kv("instrument.spike_window", in.spike_window));
  // Thresholds are documented as floats; those on quantities in [0, 1] (normalised entropy, a cosine, a
  // probability) must lie there too, or the warning could never fire.
  const double kFloatMax = double(std::numeric_limits<float>::max());
  for (const auto& [path, v] : {std::pair<const char*, double>{"instrument.warn_logit", in.warn_logit},
                                {"instrument.warn_spike_z", in.warn_spike_z},
                                {"instrument.warn_grad_norm", in.warn_grad_norm},
                                {"instrument.warn_grad_vanish", in.warn_grad_vanish},
                                {"instrument.warn_mass_ratio", in.warn_mass_ratio}})
    real_check(path, v, v >= 0.0 && v <= kFloatMax, "must be in [0, 3.4e38] (a float; 0 disables the warning)");
  for (const auto& [path, v] : {std::pair<const char*, double>{"instrument.warn_entropy", in.warn_entropy},
                                {"instrument.warn_tok_cos", in.warn_tok_cos},
                                {"instrument.warn_sink", in.warn_sink}})
    real_check(path, v, v >= 0.0 && v <= 1.0, "must be in [0, 1] (the metric lies there; 0 disables the warning)");
  // A ratio band [1/r, r]: r must exceed 1, or both warnings would fire on every ratio.
  real_check("instrument.warn_depth_ratio", in.warn_depth_ratio,
             in.warn_depth_ratio == 0.0 || (in.warn_depth_ratio > 1.0 && in.warn_depth_ratio <= kFloatMax),
             "must be 0 (disables the warning) or in (1, 3.4e38] (the band is [1/r, r])");
  at_least("instrument.warn_depth_window", in.warn_depth_window, 0, " (steps; 0 fires at the first probe beyond the band)");

  p.throw_if_any();
}

}  // namespace

// -----------------------------------------------------------------------------------------------------
// Public API

namespace {

// Relative data paths: one written in a config file is relative to that file's folder (so a config can sit
// next to its data), one given with --set to the working directory. Both become absolute, so the resolved
// config in a run directory still finds the data from anywhere (resume, sweeps).
void resolve_paths(RunConfig* cfg, const Origins& origins, const std::string& base_dir) {
  namespace fs = std::filesystem;
  const auto resolve = [&](const char* key, std::string* value) {
    if (value->empty() || fs::path(*value).is_absolute()) return;
    const auto it = origins.find(key);
    const bool from_file = it != origins.end() && it->second.line > 0;
    std::error_code ec;
    const fs::path p = from_file ? fs::path(base_dir) / *value : fs::absolute(*value, ec);
    if (!ec) *value = p.lexically_normal().string();
  };
  resolve("data.path", &cfg->data.path);
  resolve("data.corpus_dir", &cfg->data.corpus_dir);
}

RunConfig parse_config_in(const std::string& yaml_text, const std::string& source_name,
                          const std::vector<std::string>& overrides, const std::string& base_dir) {
  RunConfig cfg;
  Origins origins;
  std::vector<YAML::Node> docs;  // zero or one
  try {
    const yaml::DocumentScan scan = yaml::scan_documents(yaml_text);
    if (scan.stuck) fail(file_loc(source_name, scan.second), "", "YAML syntax error: unexpected content the parser cannot read");
    if (scan.count > 1)
      fail(file_loc(source_name, scan.second), "",
           "the file holds several YAML documents (separated by '---'); a config is one");
    if (scan.count == 1) docs.push_back(YAML::Load(yaml_text));
  } catch (const YAML::Exception& e) {
    fail(file_loc(source_name, e.mark), "", "YAML syntax error: " + e.msg);
  }
  if (docs.size() == 1) yaml::check_plain(docs[0], source_name);
  try {
    if (docs.size() == 1) read_document(docs[0], source_name, &cfg, &origins);
    for (const auto& ov : overrides) apply_override(ov, &cfg, &origins);
  } catch (const YAML::Exception& e) {  // not expected: the reader checks node types before using them
    fail(file_loc(source_name, e.mark), "", std::string("YAML error: ") + e.msg);
  }
  if (!base_dir.empty()) resolve_paths(&cfg, origins, base_dir);
  validate_impl(cfg, &origins, source_name);
  return cfg;
}

}  // namespace

RunConfig parse_config(const std::string& yaml_text, const std::string& source_name,
                       const std::vector<std::string>& overrides) {
  return parse_config_in(yaml_text, source_name, overrides, "");
}

// A config is a few kilobytes; anything past this is not one (and would only cost time to parse).
constexpr uint64_t kMaxConfigBytes = uint64_t(16) << 20;

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw ConfigError(path + ": cannot read the config file: no such file");
  std::string text, why;
  if (!read_regular_file(path, &text, &why, kMaxConfigBytes))
    throw ConfigError(path + ": cannot read the config file: " + why);
  std::error_code aec;
  const std::string base_dir = fs::absolute(fs::path(path), aec).parent_path().string();
  return parse_config_in(text, path, overrides, aec ? std::string(".") : base_dir);
}

void validate(const RunConfig& cfg) { validate_impl(cfg, nullptr, ""); }

std::vector<ConfigDifference> config_differences(const RunConfig& a, const RunConfig& b) {
  std::vector<ConfigDifference> out;
  for (const auto& f : fields()) {
    std::string x = f.format(a), y = f.format(b);
    if (x != y) out.push_back({f.path(), std::move(x), std::move(y)});
  }
  return out;
}

std::string dump_config(const RunConfig& cfg, const std::vector<std::string>& overrides) {
  std::string out = "# attnlab resolved configuration: every key, defaults filled in (configs/README.md)\n";
  std::string section;
  for (const auto& f : fields()) {
    if (f.section != section) {
      section = f.section;
      out += section + ":\n";
    }
    out += "  " + f.key + ": " + f.format(cfg) + "\n";
  }
  if (overrides.empty()) {
    out += "# overrides: none\n";
  } else {
    out += "# overrides (applied in order after the file):\n";
    for (const auto& ov : overrides) {
      std::string line;
      for (char ch : ov) line += ch == '\n' ? std::string("\\n") : ch == '\r' ? std::string("\\r") : std::string(1, ch);
      out += "#   --set " + line + "\n";
    }
  }
  return out;
}

}  // namespace attnlab
