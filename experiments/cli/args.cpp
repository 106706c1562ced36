// args.cpp: the option kinds of the subcommands (values that must not be empty, repeated --set, integer
// lists such as --threads 1,2) and the edit distance behind "did you mean".
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "experiments/cli/commands.h"

namespace attnlab::cli {

namespace {

std::string non_empty(const std::string& name, const std::string& s) {
  if (s.empty()) throw UsageError(name + " needs a value, got an empty string");
  return s;
}

template <class T>
std::string join(const std::vector<T>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ",";
    if constexpr (std::is_same_v<T, std::string>) s += v[i];
    else s += std::to_string(v[i]);
  }
  return s;
}

}  // namespace

// The values reach the targets through callbacks (add_option_function) so that the checks run, and throw
// UsageError, during the parse; CLI11 lets those exceptions through to main.cpp.
CLI::Option* add_value(CLI::App* app, const std::string& name, std::string* target, const std::string& help) {
  return app->add_option_function<std::string>(name, [name, target](const std::string& s) { *target = non_empty(name, s); },
                                                help)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)  // given twice, the last wins (as before CLI11)
      ->default_str(*target);
}

CLI::Option* add_repeated(CLI::App* app, const std::string& name, std::vector<std::string>* target,
                          const std::string& help) {
  return app->add_option_function<std::string>(name, [name, target](const std::string& s) {
               target->push_back(non_empty(name, s));
             }, help)
      ->allow_extra_args(false)  // one value per occurrence: `--set a=1 CONFIG.yaml` leaves CONFIG.yaml alone
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->trigger_on_parse();      // in command-line order
}

CLI::Option* add_count(CLI::App* app, const std::string& name, int* target, const std::string& help) {
  return app->add_option_function<std::string>(name, [name, target](const std::string& s) {
               *target = parse_int_list(name, non_empty(name, s)).at(0);
             }, help)
      ->default_str(std::to_string(*target))
      ->type_name("N");
}

CLI::Option* add_int_list(CLI::App* app, const std::string& name, std::vector<int>* target, const std::string& help) {
  return app->add_option_function<std::string>(name, [name, target](const std::string& s) {
               *target = parse_int_list(name, non_empty(name, s));
             }, help)
      ->default_str(join(*target))
      ->type_name("N,...");
}

CLI::Option* add_list(CLI::App* app, const std::string& name, std::vector<std::string>* target,
                      const std::string& help) {
  return app->add_option_function<std::string>(name, [name, target](const std::string& s) {
               *target = split_list(non_empty(name, s));
             }, help)
      ->default_str(join(*target))
      ->type_name("A,...");
}

std::vector<int> parse_int_list(const std::string& flag, const std::string& s) {
  std::vector<int> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    const std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    char* end = nullptr;
    const long x = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || x <= 0 || x > 1024)
      throw UsageError(flag + " expects positive integers separated by commas, got '" + s + "'");
    out.push_back(int(x));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

namespace {
// Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}
}  // namespace

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;  // further than this is not a typo
  for (const std::string& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_d) best = c, best_d = d;
  }
  return best;
}

}  // namespace attnlab::cli
