// Strict command-line parsing helpers shared by the qkv subcommands: every
// number is checked whole and in range, every error is one clear line.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
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

// Walks argv; value() fetches the argument of the current flag. "--flag=value"
// is the same as "--flag value"; a flag that takes no value refuses "=value".
class ArgWalker {
 public:
  ArgWalker(int argc, char** argv) : argc_(argc), argv_(argv) {}
  bool next() {
    if (inline_) throw UsageError(flag_ + ": takes no value (got '" + flag_ + "=" + *inline_ + "')");
    if (++i_ >= argc_) return false;
    flag_ = argv_[i_];
    inline_.reset();
    const size_t eq = flag_.find('=');
    if (flag_.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_ = flag_.substr(eq + 1);
      flag_.resize(eq);
    }
    return true;
  }
  const std::string& flag() const { return flag_; }
  std::string value() {
    if (inline_) {
      std::string v = *inline_;
      inline_.reset();
      return v;
    }
    if (i_ + 1 >= argc_) throw UsageError(flag_ + ": missing value");
    return argv_[++i_];
  }

 private:
  int argc_;
  char** argv_;
  int i_ = 0;
  std::string flag_;
  std::optional<std::string> inline_;  // the "=value" part of "--flag=value", until value() takes it
};

inline bool is_help(const std::string& flag) { return flag == "-h" || flag == "--help"; }
inline int print_help(const char* text) {
  std::fputs(text, stdout);
  return 0;
}

// llama.cpp's cache-type flags (-ctk/--cache-type-k, -ctv/--cache-type-v):
// qkv keeps K and V in f32 or f16, in one type. Call for each such flag;
// *kv_f16 is set; other types, or K and V apart, are usage errors.
struct CacheTypes {
  std::string k, v;
  bool is_flag(const std::string& f) const {
    return f == "-ctk" || f == "--cache-type-k" || f == "-ctv" || f == "--cache-type-v";
  }
  void take(const std::string& f, const std::string& value) {
    if (value != "f32" && value != "f16")
      throw UsageError(f + " " + value + ": qkv keeps the KV cache in f32 or f16 (quantized caches are not supported yet)");
    (f == "-ctk" || f == "--cache-type-k" ? k : v) = value;
  }
  // Applies the flags given to *kv_f16 (left as it is when none was).
  void apply(bool* kv_f16) const {
    if (!k.empty() && !v.empty() && k != v)
      throw UsageError("-ctk " + k + " -ctv " + v + ": qkv keeps K and V in the same type");
    const std::string t = !k.empty() ? k : v;
    if (!t.empty()) *kv_f16 = t == "f16";
  }
};

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
// Where the shared model files live: $QKV_MODELS_DIR, else shared/models
// beside the checkout the executable was built in (build/bin/qkv ->
// ../../../shared/models), else ../shared/models from the working directory.
inline std::string models_dir() {
  const char* env = std::getenv("QKV_MODELS_DIR");
  if (env && *env) return env;
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string dir(exe, size_t(n));
    for (int up = 0; up < 4 && dir.rfind('/') != std::string::npos; ++up) {
      dir.resize(dir.rfind('/'));
      if (up >= 2) {
        const std::string candidate = dir + "/shared/models";
        struct stat st;
        if (::stat(candidate.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return candidate;
      }
    }
  }
  return "../shared/models";
}

// llama.cpp's -e: \n \r \t \\ \' \" \a \b \f \v \0 and \xHH in a prompt
// become the characters they name; any other backslash stays as it is.
inline std::string process_escapes(const std::string& s) {
  std::string o;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      o += s[i];
      continue;
    }
    const char c = s[++i];
    switch (c) {
      case 'n': o += '\n'; break;
      case 'r': o += '\r'; break;
      case 't': o += '\t'; break;
      case 'a': o += '\a'; break;
      case 'b': o += '\b'; break;
      case 'f': o += '\f'; break;
      case 'v': o += '\v'; break;
      case '0': o += '\0'; break;
      case '\\': case '\'': case '"': o += c; break;
      case 'x':
        if (i + 2 < s.size() + 0 && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
          o += char(std::stoi(s.substr(i + 1, 2), nullptr, 16));
          i += 2;
          break;
        }
        o += "\\x";
        break;
      default: o += '\\'; o += c;
    }
  }
  return o;
}

// llama-perplexity's and llama-imatrix's progress line: after the first
// chunk's pass, its seconds and the minutes all the chunks will take.
class ChunkEta {
 public:
  explicit ChunkEta(const char* tool) : tool_(tool) {}
  void start(int n_chunks) {
    total_ = n_chunks;
    t0_ = std::chrono::steady_clock::now();
  }
  void chunk_done(int i) const {
    if (i != 0) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    std::fprintf(stderr, "%s: %.2f seconds per pass - ETA %.2f minutes\n", tool_, s, s * total_ / 60.0);
  }

 private:
  const char* tool_;
  int total_ = 0;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace qkv::cli
