// Strict command-line parsing helpers shared by the qkv subcommands: every
// number is checked whole and in range, every error is one clear line.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace qkv::cli {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline long long parse_int(const std::string& flag, const std::string& s, long long lo, long long hi) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno == ERANGE)
    throw UsageError(flag + ": '" + s + "' is not an integer");
  if (v < lo || v > hi)
    throw UsageError(flag + ": " + s + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

inline double parse_float(const std::string& flag, const std::string& s, double lo, double hi) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || errno == ERANGE || v != v)
    throw UsageError(flag + ": '" + s + "' is not a number");
  if (v < lo || v > hi)
    throw UsageError(flag + ": " + s + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

// Walks argv; value() fetches the argument of the current flag.
class ArgWalker {
 public:
  ArgWalker(int argc, char** argv) : argc_(argc), argv_(argv) {}
  bool next() { return ++i_ < argc_; }
  std::string flag() const { return argv_[i_]; }
  std::string value() {
    if (i_ + 1 >= argc_) throw UsageError(std::string(argv_[i_]) + ": missing value");
    return argv_[++i_];
  }

 private:
  int argc_;
  char** argv_;
  int i_ = 0;
};

inline bool is_help(const std::string& flag) { return flag == "-h" || flag == "--help"; }
inline int print_help(const char* text) {
  std::fputs(text, stdout);
  return 0;
}

// Whether `type` is one of the comma-separated names in `names` ("a, b, c"), any case.
inline bool in_list(const std::string& type, const std::string& names) {
  std::string lower;
  for (char c : type) lower += char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  size_t start = 0;
  while (start <= names.size()) {
    size_t end = names.find(", ", start);
    if (end == std::string::npos) end = names.size();
    if (names.compare(start, end - start, lower) == 0 && !lower.empty()) return true;
    start = end + 2;
  }
  return false;
}

// Where the shared model files live: $QKV_MODELS_DIR, else ../shared/models.
inline std::string models_dir() {
  const char* env = std::getenv("QKV_MODELS_DIR");
  return env && *env ? env : "../shared/models";
}

}  // namespace qkv::cli
