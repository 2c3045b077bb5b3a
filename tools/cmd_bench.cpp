// qkv bench: prompt processing (pp: one batch of P tokens), generation (tg:
// N tokens one at a time) and both in a row (pg), in tokens/s, like
// llama-bench: mean and standard deviation over R runs after a warm-up;
// tokenization and sampling are not timed. Every numeric flag takes a comma
// list and every combination is run; rows print as each test finishes.
// -o json / jsonl / csv carry llama-bench's 42 keys (with honest values for a
// CPU engine) and qkv's own `isa`.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <sstream>
#include <string>
#include <vector>

#include <qkv/qkv.hpp>

#include "tools/args.h"
#include "tools/json.h"

namespace qkv::cli {
namespace {

const char* kHelp =
    "usage: qkv bench -m FILE [-m FILE ...] [-z TOKENIZER] [-p 128] [-n 128] [-pg P,N] [-b 512] [-d 0]\n"
    "                 [-t 1,2] [-r 5] [-o md|csv|json|jsonl]\n"
    "\n"
    "  -p LIST       prompt tokens evaluated as one batch (pp tests; 0: none)\n"
    "  -n LIST       tokens generated one at a time (tg tests; 0: none)\n"
    "  -pg P,N       a prompt of P tokens, then N generated: one pg test (repeatable)\n"
    "  -b LIST       batch size: most tokens per forward pass (default 512)\n"
    "  -d, --depth LIST  tokens already in the KV cache when each test starts\n"
    "  -t LIST       thread counts\n"
    "  -r N          timed repetitions (after one warm-up)\n"
    "  --profile     run with the per-op profiler recording (to measure what it costs)\n"
    "  --kv-f32      keep the KV cache in f32 (-ctk f32 -ctv f32, llama-bench's flags, say the same;\n"
    "                the default is f16, as llama-bench's)\n"
    "  -o FORMAT     md (default), csv, json or jsonl: llama-bench's keys, and isa\n"
    "  LIST is a comma-separated list (-p 128,512); every combination is run.\n";

struct Test {
  int n_prompt = 0, n_gen = 0;
};

struct Row {
  std::string model, model_type, isa, test_time, type_kv;
  uint64_t size = 0;
  int64_t params = 0;
  int threads = 0, n_batch = 0, n_prompt = 0, n_gen = 0, depth = 0;
  std::vector<double> ns;  // nanoseconds of each repetition
  double tokens() const { return double(n_prompt + n_gen); }
  std::vector<double> ts() const {
    std::vector<double> v;
    for (double t : ns) v.push_back(tokens() * 1e9 / std::max(t, 1.0));
    return v;
  }
  static double mean(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0 : s / double(v.size());
  }
  static double sd(const std::vector<double>& v) {
    if (v.size() < 2) return 0;
    const double m = mean(v);
    double ss = 0;
    for (double x : v) ss += (x - m) * (x - m);
    return std::sqrt(ss / double(v.size() - 1));
  }
  // llama-bench's test name: pp512, tg128, pp512+tg128, with " @ d1024" at a depth.
  std::string test() const {
    std::string t = n_gen == 0 ? "pp" + std::to_string(n_prompt)
                    : n_prompt == 0 ? "tg" + std::to_string(n_gen)
                                    : "pp" + std::to_string(n_prompt) + "+tg" + std::to_string(n_gen);
    return depth ? t + " @ d" + std::to_string(depth) : t;
  }
};

std::vector<int> parse_list(const std::string& flag, const std::string& s, long long lo, long long hi) {
  std::vector<int> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) v.push_back(int(parse_int(flag, item, lo, hi)));
  if (v.empty()) throw UsageError(flag + ": empty list");
  return v;
}

uint64_t file_size(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return 0;
  std::fseek(f, 0, SEEK_END);
  const long n = std::ftell(f);
  std::fclose(f);
  return n > 0 ? uint64_t(n) : 0;
}

// "290K", "24M", "1.1B": the parameter count, as in llama.cpp's model type.
std::string size_label(int64_t params) {
  char buf[32];
  if (params >= 1000000000) std::snprintf(buf, sizeof buf, "%.1fB", double(params) * 1e-9);
  else if (params >= 1000000) std::snprintf(buf, sizeof buf, "%.0fM", double(params) * 1e-6);
  else std::snprintf(buf, sizeof buf, "%.0fK", double(params) * 1e-3);
  return buf;
}

// Deterministic token ids that avoid the special tokens (0-2) when the
// vocabulary has any other (speed does not depend on which ids they are).
std::vector<int> filler(int n, int vocab, int salt) {
  const int first = vocab > 3 ? 3 : 0;
  std::vector<int> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    t[size_t(i)] = first + int((uint64_t(i) * 2654435761u + uint64_t(salt)) % uint64_t(vocab - first));
  return t;
}

// One run: the depth filled first (not timed), then the prompt as batches
// and the generated tokens one at a time; returns the timed nanoseconds.
double run_once(Session& s, const std::vector<int>& depth_tokens, const std::vector<int>& prompt,
                const std::vector<int>& gen) {
  using clock = std::chrono::steady_clock;
  s.reset();
  if (!depth_tokens.empty()) s.eval(depth_tokens);
  const auto t0 = clock::now();
  if (!prompt.empty()) s.eval(prompt);
  for (int t : gen) s.eval(&t, 1);
  return double(std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - t0).count());
}

std::string join(const std::vector<double>& v, const char* fmt) {
  std::string s;
  char buf[64];
  for (size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof buf, fmt, v[i]);
    s += (i ? ", " : "") + std::string(buf);
  }
  return s;
}

// llama-bench's keys and qkv's `isa`, in one order for json, jsonl and csv.
std::vector<std::pair<std::string, std::string>> fields(const Row& r) {
  const std::vector<double> ts = r.ts();
  auto str = [](const std::string& s) { return json_string(s); };
  auto num = [](double x, const char* fmt = "%.0f") {
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, x);
    return std::string(buf);
  };
  return {
      {"build_commit", str(build_commit())},
      {"build_number", std::to_string(build_number())},
      {"cpu_info", str(cpu_name())},
      {"gpu_info", str("")},
      {"backends", str("CPU")},
      {"devices", str("CPU")},
      {"isa", str(r.isa)},
      {"model_filename", str(r.model)},
      {"model_type", str(r.model_type)},
      {"model_size", std::to_string(r.size)},
      {"model_n_params", std::to_string(r.params)},
      {"n_batch", std::to_string(r.n_batch)},
      {"n_ubatch", std::to_string(r.n_batch)},
      {"n_threads", std::to_string(r.threads)},
      {"cpu_mask", str("0x0")},
      {"cpu_strict", "false"},
      {"poll", "50"},
      {"type_k", str(r.type_kv)},
      {"type_v", str(r.type_kv)},
      {"n_gpu_layers", "0"},
      {"n_cpu_moe", "0"},
      {"split_mode", str("none")},
      {"main_gpu", "0"},
      {"no_kv_offload", "false"},
      {"flash_attn", "false"},
      {"tensor_split", str("0.00")},
      {"tensor_buft_overrides", str("none")},
      {"load_mode", str("mmap")},
      {"embeddings", "false"},
      {"no_op_offload", "0"},
      {"no_host", "false"},
      {"fit_target", "0"},
      {"fit_min_ctx", "0"},
      {"n_prompt", std::to_string(r.n_prompt)},
      {"n_gen", std::to_string(r.n_gen)},
      {"n_depth", std::to_string(r.depth)},
      {"test_time", str(r.test_time)},
      {"avg_ns", num(Row::mean(r.ns))},
      {"stddev_ns", num(Row::sd(r.ns))},
      {"avg_ts", num(Row::mean(ts), "%.6f")},
      {"stddev_ts", num(Row::sd(ts), "%.6f")},
      {"samples_ns", "[" + join(r.ns, "%.0f") + "]"},
      {"samples_ts", "[" + join(ts, "%.6f") + "]"},
  };
}

// Prints rows as they come: a header before the first, a footer at the end.
class Printer {
 public:
  explicit Printer(std::string format) : format_(std::move(format)) {}
  void row(const Row& r) {
    const auto f = fields(r);
    if (format_ == "md") {
      if (n_ == 0) {
        std::printf("| model | size | params | backend | threads | n_batch | test | t/s |\n");
        std::printf("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |\n");
      }
      const std::vector<double> ts = r.ts();
      std::printf("| %s | %.2f MiB | %.2f M | CPU (%s) | %d | %d | %s | %.2f ± %.2f |\n", r.model_type.c_str(),
                  double(r.size) / (1 << 20), double(r.params) * 1e-6, r.isa.c_str(), r.threads, r.n_batch,
                  r.test().c_str(), Row::mean(ts), Row::sd(ts));
    } else if (format_ == "csv") {
      if (n_ == 0)
        for (size_t i = 0; i < f.size(); ++i) std::printf("%s%s", i ? "," : "", f[i].first.c_str());
      if (n_ == 0) std::printf("\n");
      for (size_t i = 0; i < f.size(); ++i) {
        std::string v = f[i].second;
        if (!v.empty() && v[0] == '[') v = "\"" + v.substr(1, v.size() - 2) + "\"";  // a list: one quoted cell
        std::printf("%s%s", i ? "," : "", v.c_str());
      }
      std::printf("\n");
    } else {
      const bool lines = format_ == "jsonl";
      std::string obj = "{";
      for (size_t i = 0; i < f.size(); ++i)
        obj += (i ? ", \"" : "\"") + f[i].first + "\": " + f[i].second;
      obj += "}";
      if (lines) std::printf("%s\n", obj.c_str());
      else std::printf("%s  %s", n_ == 0 ? "[\n" : ",\n", obj.c_str());
    }
    std::fflush(stdout);
    ++n_;
  }
  void finish() {
    if (format_ == "md") std::printf("\nbuild: %s (%d)\n", build_commit().c_str(), build_number());
    else if (format_ == "json") std::printf(n_ ? "\n]\n" : "[]\n");
  }

 private:
  std::string format_;
  int n_ = 0;
};

std::string now_iso8601() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  std::vector<std::string> models;
  std::string tokenizer, format = "md";
  std::vector<int> prompts = {128}, gens = {128}, batches = {512}, depths = {0}, threads = {1, 2};
  std::vector<Test> pg;
  int reps = 5;
  bool profile = false, kv_f16 = true;
  CacheTypes cache_types;
  try {
    ArgWalker a(argc, argv);
    while (a.next()) {
      const std::string f = a.flag();
      if (is_help(f)) return print_help(kHelp);
      else if (f == "-m" || f == "--model") models.push_back(a.value());
      else if (f == "-z" || f == "--tokenizer") tokenizer = a.value();
      else if (f == "-p" || f == "--n-prompt") prompts = parse_list(f, a.value(), 0, 1 << 16);
      else if (f == "-n" || f == "--n-gen") gens = parse_list(f, a.value(), 0, 1 << 16);
      else if (f == "-b" || f == "--batch-size") batches = parse_list(f, a.value(), 1, 1 << 16);
      else if (f == "-d" || f == "--depth" || f == "--n-depth") depths = parse_list(f, a.value(), 0, 1 << 20);
      else if (f == "-t" || f == "--threads") threads = parse_list(f, a.value(), 1, 512);
      else if (f == "-pg") {
        const std::vector<int> v = parse_list(f, a.value(), 0, 1 << 16);
        if (v.size() != 2 || v[0] + v[1] == 0) throw UsageError("-pg: expected P,N (a prompt and a generation length)");
        pg.push_back({v[0], v[1]});
      } else if (f == "-r" || f == "--repetitions") reps = int(parse_int(f, a.value(), 1, 1000));
      else if (f == "--profile") profile = true;
      else if (f == "--kv-f16") kv_f16 = true;
      else if (f == "--kv-f32") kv_f16 = false;
      else if (cache_types.is_flag(f)) cache_types.take(f, a.value());
      else if (f == "-o" || f == "--output") {
        format = a.value();
        if (format != "md" && format != "csv" && format != "json" && format != "jsonl")
          throw UsageError("-o: expected md, csv, json or jsonl");
      } else throw UsageError("unknown option '" + f + "' (see qkv bench --help)");
    }
    cache_types.apply(&kv_f16);
    if (models.empty()) throw UsageError("-m FILE is required");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "qkv bench: %s\n", e.what());
    return 2;
  }
  std::vector<Test> tests;
  for (int p : prompts)
    if (p > 0) tests.push_back({p, 0});
  for (int n : gens)
    if (n > 0) tests.push_back({0, n});
  tests.insert(tests.end(), pg.begin(), pg.end());
  if (tests.empty()) {
    std::fprintf(stderr, "qkv bench: nothing to measure: every -p and -n is 0\n");
    return 2;
  }

  Printer out(format);
  try {
    for (const std::string& path : models) {
      const auto model = Model::load(path, LoadOptions{tokenizer});
      const ModelInfo& info = model->info();
      const int V = info.vocab_size;
      for (int b : batches)
        for (int d : depths)
          for (int t : threads)
            for (const Test& test : tests) {
              SessionOptions so;
              so.n_threads = t;
              so.n_ctx = d + test.n_prompt + test.n_gen;
              so.n_batch = b;
              so.kv_f16 = kv_f16;
              Session s(model, so);
              if (profile) s.profile_start();
              Row r;
              r.model = path;
              r.model_type = info.arch + " " + size_label(info.n_params) + " " +
                             (info.file_type.empty() ? info.weight_type : info.file_type);
              r.size = file_size(path);
              r.params = info.n_params;
              r.isa = active_isa();
              r.threads = t;
              r.n_batch = b;
              r.n_prompt = test.n_prompt;
              r.n_gen = test.n_gen;
              r.depth = d;
              r.type_kv = kv_f16 ? "f16" : "f32";
              r.test_time = now_iso8601();
              const std::vector<int> depth_tokens = filler(d, V, 7), prompt = filler(test.n_prompt, V, 1),
                                     gen = filler(test.n_gen, V, 2);
              run_once(s, depth_tokens, prompt, gen);  // warm-up
              for (int i = 0; i < reps; ++i) r.ns.push_back(run_once(s, depth_tokens, prompt, gen));
              out.row(r);
            }
    }
    out.finish();
    return stdout_ok("qkv bench") ? 0 : 1;
  } catch (const std::exception& e) {
    out.finish();
    std::fflush(stdout);
    std::fprintf(stderr, "qkv: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace qkv::cli
