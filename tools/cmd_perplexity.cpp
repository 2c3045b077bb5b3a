// qkv perplexity: llama.cpp's perplexity method (qkv::perplexity, qkv.hpp),
// printing the running estimate after each chunk and the final PPL +/- error.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <qkv/qkv.hpp>

#include "tools/args.h"

namespace qkv::cli {

int cmd_perplexity(int argc, char** argv) {
  std::string model_path, tokenizer, file;
  int n_ctx = 128, n_batch = 128, threads = 0, chunks = 0;
  bool kv_f16 = false;
  try {
    ArgWalker a(argc, argv);
    while (a.next()) {
      const std::string f = a.flag();
      if (f == "-h" || f == "--help") {
        std::fputs("usage: qkv perplexity -m MODEL [-z TOKENIZER] -f TEXT [-c 128] [-b 128] [-t T] [--chunks N] [--kv-f16]\n"
                   "\n"
                   "llama-perplexity's method: chunks of -c tokens, each from an empty cache, the second half scored.\n"
                   "  --chunks N   score only the first N chunks\n"
                   "  --kv-f16     keep the KV cache in f16 (llama.cpp's default cache type)\n", stdout);
        return 0;
      } else if (f == "-m" || f == "--model") model_path = a.value();
      else if (f == "-z" || f == "--tokenizer") tokenizer = a.value();
      else if (f == "-f" || f == "--file") file = a.value();
      else if (f == "-c" || f == "--ctx-size") n_ctx = int(parse_int(f, a.value(), 4, 1 << 16));
      else if (f == "-b" || f == "--batch-size") n_batch = int(parse_int(f, a.value(), 1, 1 << 16));
      else if (f == "-t" || f == "--threads") threads = int(parse_int(f, a.value(), 1, 512));
      else if (f == "--chunks") chunks = int(parse_int(f, a.value(), 1, 1 << 30));
      else if (f == "--kv-f16") kv_f16 = true;
      else throw UsageError("unknown option '" + f + "' (see qkv perplexity --help)");
    }
    if (model_path.empty() || file.empty()) throw UsageError("-m MODEL and -f TEXT are required");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "qkv perplexity: %s\n", e.what());
    return 2;
  }
  std::string text;
  try {
    text = read_text_file("-f", file, size_t(1) << 30);
  } catch (const FileError& e) {  // a failure like an unreadable model, not a usage error
    std::fprintf(stderr, "qkv perplexity: %s\n", e.what());
    return 1;
  }
  try {
    const auto model = Model::load(model_path, LoadOptions{tokenizer});
    // As llama-perplexity: the chunk count up front, an ETA after the first pass.
    const int n_tokens = int(model->tokenize(text, true).size());
    const int n_chunks = chunks > 0 ? std::min(chunks, n_tokens / n_ctx) : n_tokens / n_ctx;
    std::fprintf(stderr, "perplexity: %s: %d tokens; calculating perplexity over %d chunks, n_ctx=%d, batch_size=%d\n",
                 model_path.c_str(), n_tokens, n_chunks, n_ctx, std::min(n_batch, n_ctx));
    const auto t0 = std::chrono::steady_clock::now();
    const PerplexityResult r = perplexity(
        *model, text, n_ctx, n_batch, threads,
        [&](int i, double est) {
          if (i == 0) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            std::fprintf(stderr, "perplexity: %.2f seconds per pass - ETA %.2f minutes\n", s, s * n_chunks / 60.0);
          }
          std::printf("[%d]%.4f,", i + 1, est);
          std::fflush(stdout);
        },
        chunks, kv_f16);
    std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.error);
    return stdout_ok("qkv perplexity") ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qkv: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace qkv::cli
