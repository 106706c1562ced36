// yaml_helpers.h: the small helpers shared by every reader of a YAML file: run configs (config.cpp, the only
// reader of run configs) and the experiment files, sweep files and repro.yaml (experiments/engine/). Places are
// written "file:line:column"; every error is a ConfigError (exit code 2).
#pragma once
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace attnlab::yaml {

// "file:line:column" of a mark (1-based), or the file alone when the mark is unknown.
std::string loc(const std::string& source, const YAML::Mark& m);
// Throws ConfigError("where: what").
[[noreturn]] void fail(const std::string& where, const std::string& what);
// One YAML document from `text`; a syntax error, a second document ('---') or a tag (check_plain) is a
// ConfigError at its place in `source`.
YAML::Node load(const std::string& text, const std::string& source);
// How many documents `text` holds, counting to 2 with yaml-cpp's event parser. Never YAML::LoadAll:
// yaml-cpp 0.7's LoadAll never returns on some malformed input (a lone ',' at the top level yields an
// endless stream of empty documents; found by fuzzing, tests/fuzz/crashes/). `stuck` is that case: a
// second "document" that starts where the first did. Throws YAML::Exception on a syntax error.
struct DocumentScan {
  int count = 0;
  YAML::Mark second;  // where the second document starts (count == 2)
  bool stuck = false;
};
DocumentScan scan_documents(const std::string& text);
// Throws ConfigError at the first node carrying a YAML tag other than a string's (`!`, `!!str`): the readers
// give tags no meaning, and ignoring one (`!!float 1` read as an integer, `!custom`) would be a silent
// surprise. Also refuses documents of more than kMaxNodes nodes counting every alias expansion (an alias
// bomb), before any reader walks them.
inline constexpr int64_t kMaxNodes = 1000000;
void check_plain(const YAML::Node& root, const std::string& source);

// A quoted scalar ("4", '4') or one tagged !!str: a string even when it reads as a number.
bool is_string_tagged(const YAML::Node& v);
// `s` without leading and trailing blanks and tabs.
std::string trim(const std::string& s);
// `s` as a double-quoted YAML scalar, so that the config reader still sees a string ("0.1" stays text).
std::string double_quoted(const std::string& s);

// YAML 1.2 core schema integer: [-+]?[0-9]+. Magnitude is kept unsigned so that 2^64-1 parses;
// *overflow is set when it does not fit in 64 bits.
bool parse_int_text(const std::string& s, bool* neg, uint64_t* mag, bool* overflow);

// [-+]?[0-9]+ (any magnitude).
bool is_int_text(const std::string& s);

// YAML 1.2 core schema float, minus .inf/.nan: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?.
// Integers match too (floats accept ints); 1e-5 is accepted without the YAML 1.1 dot.
bool is_float_text(const std::string& s);

// .inf, -.inf, .nan and their other YAML spellings (.Inf, +.INF, .NaN, ...).
bool is_nonfinite_text(const std::string& s);

// A plain (unquoted) number or whole number: false, with *out untouched, for anything else.
bool parse_number(const YAML::Node& v, double* out);
bool parse_int(const YAML::Node& v, int64_t* out);

// Overrides ("key=value", as after --set) from a list of such strings or from a map of key: value.
// `value_text(node, what)` turns one map value into the text after '=' (and names what is wrong with it);
// `expected` says what `what` should have been when it is neither a list nor a map.
using ValueText = std::function<std::string(const YAML::Node& value, const std::string& what)>;
std::vector<std::string> override_list(const YAML::Node& v, const std::string& source, const std::string& what,
                                       const std::string& expected, const ValueText& value_text);

}  // namespace attnlab::yaml
