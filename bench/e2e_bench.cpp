// End-to-end speed, measured the way llama-bench does: pp = one prompt batch
// of P tokens, tg = N tokens generated one at a time (greedy, sampling
// excluded), mean and standard deviation over R runs after a warm-up.
//   build/bin/qkv_e2e_bench MODEL [TOKENIZER] [-p 128] [-n 128] [-t 1,2] [-r 5]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "engine/qkv.hpp"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void mean_sd(const std::vector<double>& v, double* mean, double* sd) {
  double s = 0, ss = 0;
  for (double x : v) s += x;
  *mean = s / double(v.size());
  for (double x : v) ss += (x - *mean) * (x - *mean);
  *sd = v.size() > 1 ? std::sqrt(ss / double(v.size() - 1)) : 0.0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: qkv_e2e_bench MODEL [TOKENIZER] [-p 128] [-n 128] [-t 1,2] [-r 5]\n");
    return 2;
  }
  std::string model_path = argv[1], tok_path;
  int p = 128, n = 128, reps = 5;
  std::vector<int> threads = {1, 2};
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-p" && i + 1 < argc) p = std::atoi(argv[++i]);
    else if (a == "-n" && i + 1 < argc) n = std::atoi(argv[++i]);
    else if (a == "-r" && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (a == "-t" && i + 1 < argc) {
      threads.clear();
      std::stringstream ss(argv[++i]);
      std::string t;
      while (std::getline(ss, t, ',')) threads.push_back(std::atoi(t.c_str()));
    } else tok_path = a;
  }
  try {
    const auto model = qkv::Model::load(model_path, qkv::LoadOptions{tok_path});
    const int V = model->info().vocab_size;
    std::printf("| model | isa | test | threads | tokens/s | stddev |\n|---|---|---|---:|---:|---:|\n");
    for (int t : threads) {
      qkv::SessionOptions so;
      so.n_threads = t;
      so.n_ctx = std::min(model->info().context_length, std::max(p, n) + 8);
      qkv::Session s(model, so);
      std::vector<int> prompt(static_cast<size_t>(p));
      for (int i = 0; i < p; ++i) prompt[size_t(i)] = 3 + (i * 37) % (V - 3);
      std::vector<double> pp, tg;
      for (int r = 0; r <= reps; ++r) {  // run 0 is the warm-up
        s.reset();
        auto t0 = std::chrono::steady_clock::now();
        s.eval(prompt);
        const double pp_s = seconds_since(t0);
        s.reset();
        int tok = model->bos_id();
        t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < n; ++i) {
          s.eval(&tok, 1);
          tok = 3 + (tok * 31 + i) % (V - 3);
        }
        const double tg_s = seconds_since(t0);
        if (r > 0) {
          pp.push_back(p / pp_s);
          tg.push_back(n / tg_s);
        }
      }
      double m, sd;
      mean_sd(pp, &m, &sd);
      std::printf("| %s | %s | pp%d | %d | %.1f | %.1f |\n", model_path.c_str(), qkv::active_isa().c_str(), p, t, m, sd);
      mean_sd(tg, &m, &sd);
      std::printf("| %s | %s | tg%d | %d | %.1f | %.1f |\n", model_path.c_str(), qkv::active_isa().c_str(), n, t, m, sd);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qkv_e2e_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
