// json.h: JSON as the run files write and read it. Documents (run.json, sweep.json, verdict.json) are built
// and parsed with nlohmann-json (Debian: nlohmann-json3-dev); the hot lines of metrics.jsonl and events.jsonl
// keep the hand-written writer and reader below, which are several times faster (README.md, "Run directory",
// has the measurement). Either way a non-finite number is written as the string "nan", "inf" or "-inf":
// JSON has no literal for it, and nlohmann would write null, which reads back as a missing value.
// (The safetensors header has its own schema-directed reader: train/formats/safetensors.cpp.)
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace attnlab {

// Members in the order they were added (run.json reads top to bottom as before).
using Json = nlohmann::ordered_json;

// `v` as a JSON number, or the string "nan", "inf", "-inf" when it is not finite.
Json json_double(double v);
// The text of `j`: compact with indent < 0, else pretty; invalid UTF-8 in strings (a host name, a path) is
// replaced by U+FFFD instead of throwing. No trailing newline.
std::string json_dump(const Json& j, int indent = -1);
// Parses `text` (a document named `what` in the error); throws IoError naming it and the byte offset.
Json json_parse(const std::string& text, const std::string& what);

// The contents of a JSON string literal for `s` (no quotes): quotes, backslashes and control bytes escaped.
std::string json_escape(const std::string& s);
// `v` with 17 significant digits (reads back to the same double); NaN and infinities as quoted strings.
std::string json_number(double v);

// ---------------------------------------------------------------------------------------------------
// metrics.jsonl: flat JSON objects, one per line, written by train/formats/run_files.cpp. A small reader is
// enough (and fast: a long run has a million lines): string keys; string, number, bool or null values.

struct JsonValue {
  std::string_view text;  // the string's content (escapes kept) or the literal
  bool is_string = false;
};

class FlatJson {
 public:
  explicit FlatJson(std::string_view s) : s_(s) {}

  // Calls f(key, value) for each member; false on malformed input.
  template <class F>
  bool parse(F&& f) {
    skip_ws();
    if (!eat('{')) return false;
    skip_ws();
    if (eat('}')) return at_end();
    while (true) {
      skip_ws();
      std::string_view key;
      if (!string(&key)) return false;
      skip_ws();
      if (!eat(':')) return false;
      skip_ws();
      JsonValue v;
      if (peek() == '"') {
        v.is_string = true;
        if (!string(&v.text)) return false;
      } else {
        const size_t b = i_;
        while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != '}' && s_[i_] != ' ' && s_[i_] != '\t') ++i_;
        v.text = s_.substr(b, i_ - b);
        if (v.text.empty() || v.text[0] == '{' || v.text[0] == '[') return false;
      }
      f(key, v);
      skip_ws();
      if (eat(',')) continue;
      if (eat('}')) return at_end();
      return false;
    }
  }

 private:
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++i_;
    return true;
  }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  bool at_end() {
    skip_ws();
    return i_ == s_.size();
  }
  bool string(std::string_view* out) {
    if (!eat('"')) return false;
    const size_t b = i_;
    while (i_ < s_.size() && s_[i_] != '"') i_ += s_[i_] == '\\' ? 2 : 1;
    if (i_ >= s_.size()) return false;
    *out = s_.substr(b, i_ - b);
    ++i_;
    return true;
  }
  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace attnlab
