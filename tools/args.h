// Strict command-line parsing helpers shared by the qkv subcommands: every
// number is checked whole and in range, every error is one clear line.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

// A text the user named (a prompt, a perplexity corpus): a regular file or a
// stream (a FIFO, a pipe, /dev/stdin may wait for their writer), never a
// directory, and at most max_bytes of it (/dev/zero never ends). Throws
// FileError, one line naming the flag, the file and what went wrong.
struct FileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
inline std::string read_text_file(const std::string& flag, const std::string& path, size_t max_bytes) {
  auto fail = [&](const std::string& why) { return FileError(flag + ": cannot read '" + path + "': " + why); };
  if (path.empty()) throw fail("empty file name");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw fail(std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw fail("is a directory, not a file");
  }
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      throw fail(std::string("read failed: ") + std::strerror(e));
    }
    if (n == 0) break;
    if (text.size() + size_t(n) > max_bytes) {
      ::close(fd);
      throw fail("longer than " + std::to_string(max_bytes >> 20) + " MiB; refusing to read more");
    }
    text.append(buf, size_t(n));
  }
  ::close(fd);
  return text;
}

// After a command wrote its output: an error if stdout could not take it
// (a full disk, a closed pipe), so that no failure exits 0.
inline bool stdout_ok(const char* name) {
  if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return true;
  std::fprintf(stderr, "%s: error: writing to stdout failed: %s\n", name, std::strerror(errno ? errno : EIO));
  return false;
}

// Where the shared model files live: $QKV_MODELS_DIR, else ../shared/models.
inline std::string models_dir() {
  const char* env = std::getenv("QKV_MODELS_DIR");
  return env && *env ? env : "../shared/models";
}

}  // namespace qkv::cli
