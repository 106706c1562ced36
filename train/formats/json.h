// json.h: JSON text as the run files write and read it: escaping, numbers (non-finite values as the strings
// "nan", "inf", "-inf"), and a reader of the flat one-line objects of metrics.jsonl and events.jsonl.
// (The safetensors header has its own schema-directed reader: train/formats/safetensors.cpp.)
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace attnlab {

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
