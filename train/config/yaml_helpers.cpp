#include "train/config/yaml_helpers.h"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>
#include <sstream>

#include "train/config/config.h"

namespace attnlab::yaml {

std::string loc(const std::string& source, const YAML::Mark& m) {
  if (m.is_null() || m.line < 0) return source;
  return source + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

[[noreturn]] void fail(const std::string& where, const std::string& what) { throw ConfigError(where + ": " + what); }

namespace {
// Counts documents and remembers where each starts; everything else is ignored.
class DocumentCounter : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark& m) override { starts.push_back(m); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};
}  // namespace

DocumentScan scan_documents(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentCounter counter;
  for (int i = 0; i < 2 && parser.HandleNextDocument(counter); ++i) {
  }
  DocumentScan s;
  s.count = int(std::min<size_t>(counter.starts.size(), 2));
  if (s.count == 2) {
    s.second = counter.starts[1];
    s.stuck = counter.starts[1].pos == counter.starts[0].pos;
  }
  return s;
}

YAML::Node load(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    const DocumentScan docs = scan_documents(text);
    if (docs.stuck) fail(loc(source, docs.second), "YAML syntax error: unexpected content the parser cannot read");
    if (docs.count > 1)
      fail(loc(source, docs.second), "the file holds several YAML documents (separated by '---'); it must hold one");
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(loc(source, e.mark), "YAML syntax error: " + e.msg);
  }
  check_plain(root, source);
  return root;
}

namespace {
void check_plain_node(const YAML::Node& n, const std::string& source, int64_t* budget) {
  if (--*budget < 0)
    fail(loc(source, n.Mark()), "more than " + std::to_string(kMaxNodes) +
                                    " YAML nodes (counting every alias expansion); refusing to read it (an alias bomb?)");
  const std::string& tag = n.Tag();
  if (!(tag.empty() || tag == "?" || tag == "!" || tag == "tag:yaml.org,2002:str")) {
    const std::string shown = tag.rfind("tag:yaml.org,2002:", 0) == 0 ? "!!" + tag.substr(18) : tag;
    fail(loc(source, n.Mark()), "the YAML tag '" + shown +
                                    "' is not supported: write the plain value (quote it, or use !!str, for a string)");
  }
  if (n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it) {
      check_plain_node(it->first, source, budget);
      check_plain_node(it->second, source, budget);
    }
  } else if (n.IsSequence()) {
    for (auto it = n.begin(); it != n.end(); ++it) check_plain_node(*it, source, budget);
  }
}
}  // namespace

void check_plain(const YAML::Node& root, const std::string& source) {
  int64_t budget = kMaxNodes;
  check_plain_node(root, source, &budget);
}

bool is_string_tagged(const YAML::Node& v) { return v.Tag() == "!" || v.Tag() == "tag:yaml.org,2002:str"; }

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

std::string double_quoted(const std::string& s) {
  YAML::Emitter e;
  e << YAML::DoubleQuoted << s;
  return e.c_str();
}

bool parse_int_text(const std::string& s, bool* neg, uint64_t* mag, bool* overflow) {
  size_t i = 0;
  *neg = false;
  *overflow = false;
  *mag = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) *neg = s[i++] == '-';
  if (i == s.size()) return false;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    const uint64_t d = static_cast<uint64_t>(s[i] - '0');
    if (*mag > (UINT64_MAX - d) / 10) *overflow = true;
    else *mag = *mag * 10 + d;
  }
  return true;
}

bool is_int_text(const std::string& s) {
  bool neg = false, overflow = false;
  uint64_t mag = 0;
  return parse_int_text(s, &neg, &mag, &overflow);
}

bool is_float_text(const std::string& s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  size_t int_digits = 0, frac_digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++int_digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++frac_digits;
  }
  if (int_digits + frac_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exp_digits = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == s.size();
}

bool is_nonfinite_text(const std::string& s) {
  static const std::set<std::string> kNames = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
                                               "-.Inf", "-.INF", ".nan", ".NaN", ".NAN"};
  return kNames.count(s) > 0;
}

bool parse_number(const YAML::Node& v, double* out) {
  if (!v.IsScalar() || is_string_tagged(v) || !is_float_text(v.Scalar())) return false;
  *out = std::strtod(v.Scalar().c_str(), nullptr);
  return true;
}

bool parse_int(const YAML::Node& v, int64_t* out) {
  if (!v.IsScalar() || is_string_tagged(v) || !is_int_text(v.Scalar())) return false;
  *out = std::strtoll(v.Scalar().c_str(), nullptr, 10);
  return true;
}

std::vector<std::string> override_list(const YAML::Node& v, const std::string& source, const std::string& what,
                                       const std::string& expected, const ValueText& value_text) {
  std::vector<std::string> out;
  if (!v || v.IsNull()) return out;
  if (v.IsMap()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string key = it->first.Scalar();
      out.push_back(key + "=" + value_text(it->second, what + "." + key));
    }
    return out;
  }
  if (!v.IsSequence()) fail(loc(source, v.Mark()), what + ": expected " + expected);
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].IsScalar() || v[i].Scalar().find('=') == std::string::npos)
      fail(loc(source, v[i].Mark()), what + ": expected key=value (e.g. train.steps=300)");
    out.push_back(v[i].Scalar());
  }
  return out;
}

}  // namespace attnlab::yaml
