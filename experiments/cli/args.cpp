// args.cpp: the list arguments of the subcommands (--threads 1,2, --preset A,B).
#include <cstdlib>
#include <string>
#include <vector>

#include "experiments/cli/commands.h"

namespace attnlab::cli {

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

}  // namespace attnlab::cli
