// Helpers for the tests: where the shared files are, and the reference cases
// written by llama2.c and llama.cpp (../shared/reference/README.md).
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/api/qkv.hpp"
#include "engine/error.h"

// QKV_UNDER_ASAN: built with AddressSanitizer (whose shadow memory an
// address-space cap would break).
#if defined(__SANITIZE_ADDRESS__)
#define QKV_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QKV_UNDER_ASAN 1
#endif
#endif

namespace qkv::test {

// n values ~ N(0, scale^2), the same for the same seed.
inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Greedy decoding, no filters or penalties.
inline SamplerParams greedy_params() { return SamplerParams{0.0f, 0, 1.0f, 0.0f, 1.0f, 0, 0}; }

inline std::string models_dir() {
  const char* env = std::getenv("QKV_MODELS_DIR");
  return env && *env ? env : QKV_DEFAULT_MODELS_DIR;
}
inline std::string model_path(const std::string& name) { return models_dir() + "/" + name; }
inline std::string reference_path(const std::string& name) {
  const char* env = std::getenv("QKV_REFERENCE_DIR");
  return std::string(env && *env ? env : QKV_DEFAULT_REFERENCE_DIR) + "/" + name;
}

#ifdef QKV_CLI_PATH
// `qkv ARGS` run through the shell (ARGS may redirect stdin), with the
// test's models folder: exit status, stdout, stderr.
struct CliResult {
  int code = -1;
  std::string out, err;
};
inline std::string read_file(const std::string& path);
inline CliResult run_cli(const std::string& args) {
  const std::string err_file = "/tmp/qkv-cli-test-" + std::to_string(::getpid()) + ".err";
  const std::string cmd = "QKV_MODELS_DIR='" + models_dir() + "' '" + QKV_CLI_PATH + "' " + args + " 2>" + err_file;
  CliResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = read_file(err_file);
  std::remove(err_file.c_str());
  return r;
}
#endif

// A temporary file holding the given bytes; removed when it goes out of scope.
class TempFile {
 public:
  explicit TempFile(const std::string& bytes, const std::string& suffix = ".bin") {
    char tmpl[] = "/tmp/qkv-test-XXXXXX";
    const int fd = mkstemp(tmpl);
    ::close(fd);
    path_ = std::string(tmpl) + suffix;
    std::rename(tmpl, path_.c_str());
    std::ofstream(path_, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  }
  ~TempFile() { std::remove(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Undo the case files' escapes: \n, \r, \\.
inline std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char c = s[++i];
      out += c == 'n' ? '\n' : c == 'r' ? '\r' : c;
    } else {
      out += s[i];
    }
  }
  return out;
}

template <class T>
std::vector<T> parse_list(const std::string& s) {
  std::vector<T> v;
  std::istringstream in(s);
  T x;
  while (in >> x) v.push_back(x);
  return v;
}

// A test name from a case file name: "stories260K-once.txt" -> "stories260K_once".
inline std::string case_test_name(const std::string& file) {
  std::string s = file.substr(0, file.rfind('.'));
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

struct ReferenceCase {
  std::string file;
  std::map<std::string, std::string> kv;
  std::string model, tokenizer, prompt, engine;
  std::vector<int> prompt_ids, generated_ids;
  std::map<int, std::vector<float>> logits_at;  // position -> (vocab)
  int positions = 0;
};

inline ReferenceCase load_case(const std::string& name) {
  ReferenceCase c;
  c.file = reference_path(name);
  std::ifstream f(c.file);
  std::string line;
  while (std::getline(f, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon), value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    if (key.rfind("logits_at_", 0) == 0) c.logits_at[std::atoi(key.c_str() + 10)] = parse_list<float>(value);
    c.kv[key] = value;
  }
  c.model = c.kv["model"];
  c.tokenizer = c.kv["tokenizer"];
  c.engine = c.kv["engine"];
  c.prompt = unescape(c.kv["prompt"]);
  c.prompt_ids = parse_list<int>(c.kv["prompt_ids"]);
  c.generated_ids = parse_list<int>(c.kv["generated_ids"]);
  c.positions = std::atoi(c.kv["positions"].c_str());
  return c;
}

struct PplRef {
  std::string model;
  double ppl = 0, err = 0;
  std::vector<double> chunks;
};

// The llama-perplexity figures of a reference file (perplexity.txt and its kin).
inline std::vector<PplRef> load_perplexity_refs(const std::string& name) {
  std::ifstream f(reference_path(name));
  std::vector<PplRef> refs;
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model: ", 0) == 0) {
      refs.push_back({});
      refs.back().model = line.substr(7);
    } else if (line.rfind("ppl: ", 0) == 0) {
      std::sscanf(line.c_str(), "ppl: %lf +/- %lf", &refs.back().ppl, &refs.back().err);
    } else if (line.rfind("chunks: ", 0) == 0) {
      refs.back().chunks = parse_list<double>(line.substr(8));
    }
  }
  return refs;
}

// Our greedy ids; at the first token where they part from llama.cpp's,
// *margin receives our top logit minus the logit of llama.cpp's token.
inline std::vector<int> greedy_run(const std::shared_ptr<const Model>& model, const ReferenceCase& c, bool kv_f16,
                            float* margin = nullptr) {
  SessionOptions so;
  so.kv_f16 = kv_f16;
  Session s(model, so);
  Sampler greedy(model->info().vocab_size, greedy_params());
  std::vector<int> ids;
  s.eval(c.prompt_ids);
  for (size_t i = 0; i < c.generated_ids.size(); ++i) {
    const int t = greedy.sample(s.logits());
    if (margin && t != c.generated_ids[i] && ids.size() == i && std::equal(ids.begin(), ids.end(), c.generated_ids.begin()))
      *margin = s.logits()[t] - s.logits()[c.generated_ids[i]];
    ids.push_back(t);
    s.eval(&t, 1);
  }
  return ids;
}

inline size_t common_prefix(const std::vector<int>& a, const std::vector<int>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

// The message of the qkv::Error fn throws ("" and a test failure if none).
template <class Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

}  // namespace qkv::test
