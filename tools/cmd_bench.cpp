// qkv bench: prompt processing (pp: one batch of P tokens) and generation
// (tg: N tokens one at a time) in tokens/s, like llama-bench: mean and
// standard deviation over R runs after a warm-up; tokenization and sampling
// are not timed. -o json carries llama-bench's keys.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <qkv/qkv.hpp>
#include "tools/args.h"

namespace qkv::cli {
namespace {

const char* kHelp =
    "usage: qkv bench -m FILE [-m FILE ...] [-z TOKENIZER] [-p 128] [-n 128] [-t 1,2] [-r 5]\n"
    "                 [--depth D] [-o md|csv|json]\n"
    "\n"
    "  -p N        prompt tokens evaluated as one batch (pp test; 0: skip)\n"
    "  -n N        tokens generated one at a time (tg test; 0: skip)\n"
    "  -t LIST     thread counts, comma-separated\n"
    "  -r N        timed repetitions (after one warm-up)\n"
    "  --depth D   tokens already in the KV cache when each test starts\n"
    "  --profile   run with the per-op profiler recording (to measure what it costs)\n"
    "  --kv-f16    keep the KV cache in f16\n"
    "  -o FORMAT   md (default), csv or json (llama-bench's keys: n_prompt, n_gen, n_threads, avg_ts, stddev_ts, ...)\n";

struct Row {
  std::string model, test, isa;
  uint64_t size = 0;
  int64_t params = 0;
  int threads = 0, n_prompt = 0, n_gen = 0, depth = 0;
  std::vector<double> ts;  // tokens/s of each repetition
  double mean() const {
    double s = 0;
    for (double x : ts) s += x;
    return ts.empty() ? 0 : s / double(ts.size());
  }
  double sd() const {
    if (ts.size() < 2) return 0;
    const double m = mean();
    double ss = 0;
    for (double x : ts) ss += (x - m) * (x - m);
    return std::sqrt(ss / double(ts.size() - 1));
  }
};

std::vector<int> parse_list(const std::string& flag, const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) v.push_back(int(parse_int(flag, item, 1, 512)));
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

// Deterministic token ids that avoid the special tokens (0-2) when the
// vocabulary has any other (speed does not depend on which ids they are).
std::vector<int> filler(int n, int vocab, int salt) {
  const int first = vocab > 3 ? 3 : 0;
  std::vector<int> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    t[size_t(i)] = first + int((uint64_t(i) * 2654435761u + uint64_t(salt)) % uint64_t(vocab - first));
  return t;
}

double run_once(Session& s, const std::vector<int>& depth_tokens, const std::vector<int>& tokens, bool batch) {
  using clock = std::chrono::steady_clock;
  s.reset();
  if (!depth_tokens.empty()) s.eval(depth_tokens);
  const auto t0 = clock::now();
  if (batch) {
    s.eval(tokens);
  } else {
    for (int t : tokens) s.eval(&t, 1);
  }
  const double secs = std::chrono::duration<double>(clock::now() - t0).count();
  return double(tokens.size()) / secs;
}

void print(const std::vector<Row>& rows, const std::string& format) {
  if (format == "json") {
    std::printf("[\n");
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::printf("  {\"model_filename\": \"%s\", \"model_size\": %llu, \"model_n_params\": %lld, \"backend\": \"CPU\", "
                  "\"isa\": \"%s\", \"n_threads\": %d, \"n_prompt\": %d, \"n_gen\": %d, \"n_depth\": %d, "
                  "\"test\": \"%s\", \"avg_ns\": %.0f, \"stddev_ns\": %.0f, \"avg_ts\": %.6f, \"stddev_ts\": %.6f, "
                  "\"samples_ts\": [",
                  r.model.c_str(), (unsigned long long)r.size, (long long)r.params, r.isa.c_str(), r.threads,
                  r.n_prompt, r.n_gen, r.depth, r.test.c_str(),
                  1e9 * double(r.n_prompt + r.n_gen) / std::max(r.mean(), 1e-9),
                  r.mean() > 0 ? 1e9 * double(r.n_prompt + r.n_gen) * r.sd() / (r.mean() * r.mean()) : 0.0,
                  r.mean(), r.sd());
      for (size_t j = 0; j < r.ts.size(); ++j) std::printf("%s%.6f", j ? ", " : "", r.ts[j]);
      std::printf("]}%s\n", i + 1 < rows.size() ? "," : "");
    }
    std::printf("]\n");
  } else if (format == "csv") {
    std::printf("model_filename,model_size,model_n_params,isa,n_threads,n_prompt,n_gen,n_depth,test,avg_ts,stddev_ts\n");
    for (const Row& r : rows)
      std::printf("\"%s\",%llu,%lld,%s,%d,%d,%d,%d,%s,%.6f,%.6f\n", r.model.c_str(), (unsigned long long)r.size,
                  (long long)r.params, r.isa.c_str(), r.threads, r.n_prompt, r.n_gen, r.depth, r.test.c_str(), r.mean(),
                  r.sd());
  } else {
    std::printf("| model | size | params | backend | threads | test | t/s |\n");
    std::printf("| --- | ---: | ---: | --- | ---: | ---: | ---: |\n");
    for (const Row& r : rows)
      std::printf("| %s | %.2f MiB | %.2f M | CPU (%s) | %d | %s | %.2f ± %.2f |\n", r.model.c_str(),
                  double(r.size) / (1 << 20), double(r.params) * 1e-6, r.isa.c_str(), r.threads, r.test.c_str(),
                  r.mean(), r.sd());
  }
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  std::vector<std::string> models;
  std::string tokenizer, format = "md";
  int p = 128, n = 128, reps = 5, depth = 0;
  bool profile = false, kv_f16 = false;
  std::vector<int> threads = {1, 2};
  try {
    ArgWalker a(argc, argv);
    while (a.next()) {
      const std::string f = a.flag();
      if (is_help(f)) return print_help(kHelp);
      else if (f == "-m" || f == "--model") models.push_back(a.value());
      else if (f == "-z" || f == "--tokenizer") tokenizer = a.value();
      else if (f == "-p" || f == "--n-prompt") p = int(parse_int(f, a.value(), 0, 1 << 16));
      else if (f == "-n" || f == "--n-gen") n = int(parse_int(f, a.value(), 0, 1 << 16));
      else if (f == "-r" || f == "--repetitions") reps = int(parse_int(f, a.value(), 1, 1000));
      else if (f == "-t" || f == "--threads") threads = parse_list(f, a.value());
      else if (f == "--depth") depth = int(parse_int(f, a.value(), 0, 1 << 20));
      else if (f == "--profile") profile = true;
      else if (f == "--kv-f16") kv_f16 = true;
      else if (f == "-o" || f == "--output") {
        format = a.value();
        if (format != "md" && format != "csv" && format != "json") throw UsageError("-o: expected md, csv or json");
      } else throw UsageError("unknown option '" + f + "' (see qkv bench --help)");
    }
    if (models.empty()) throw UsageError("-m FILE is required");
    if (p == 0 && n == 0) throw UsageError("nothing to measure: -p and -n are both 0");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "qkv bench: %s\n", e.what());
    return 2;
  }

  try {
    std::vector<Row> rows;
    for (const std::string& path : models) {
      const auto model = Model::load(path, LoadOptions{tokenizer});
      const int V = model->info().vocab_size;
      const int need = depth + std::max(p, n);
      for (int t : threads) {
        SessionOptions so;
        so.n_threads = t;
        so.n_ctx = need;
        so.n_batch = std::min(std::max(std::max(p, depth), 1), 65536);  // the depth tokens go in batches of it
        so.kv_f16 = kv_f16;
        Session s(model, so);
        if (profile) s.profile_start();
        const std::vector<int> depth_tokens = filler(depth, V, 7);
        for (int test = 0; test < 2; ++test) {
          const bool pp = test == 0;
          const int count = pp ? p : n;
          if (count == 0) continue;
          Row r;
          r.model = path;
          r.size = file_size(path);
          r.params = model->info().n_params;
          r.isa = active_isa();
          r.threads = t;
          r.n_prompt = pp ? p : 0;
          r.n_gen = pp ? 0 : n;
          r.depth = depth;
          r.test = (pp ? "pp" : "tg") + std::to_string(count) + (depth ? "@d" + std::to_string(depth) : "") +
                   (profile ? " (profiled)" : "");
          const std::vector<int> tokens = filler(count, V, pp ? 1 : 2);
          run_once(s, depth_tokens, tokens, pp);  // warm-up
          for (int i = 0; i < reps; ++i) r.ts.push_back(run_once(s, depth_tokens, tokens, pp));
          rows.push_back(r);
        }
      }
    }
    print(rows, format);
    return stdout_ok("qkv bench") ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qkv: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace qkv::cli
