// qkv perplexity: llama.cpp's perplexity method (qkv::perplexity, qkv.hpp),
// printing the running estimate after each chunk and the final PPL +/- error.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <qkv/qkv.hpp>

#include "tools/args.h"

namespace qkv::cli {

int cmd_perplexity(int argc, char** argv) {
  std::string model_path, tokenizer, file;
  int n_ctx = 128, n_batch = 128, threads = 0;
  try {
    ArgWalker a(argc, argv);
    while (a.next()) {
      const std::string f = a.flag();
      if (f == "-h" || f == "--help") {
        std::fputs("usage: qkv perplexity -m MODEL [-z TOKENIZER] -f TEXT [-c 128] [-b 128] [-t T]\n", stdout);
        return 0;
      } else if (f == "-m" || f == "--model") model_path = a.value();
      else if (f == "-z" || f == "--tokenizer") tokenizer = a.value();
      else if (f == "-f" || f == "--file") file = a.value();
      else if (f == "-c" || f == "--ctx-size") n_ctx = int(parse_int(f, a.value(), 4, 1 << 16));
      else if (f == "-b" || f == "--batch-size") n_batch = int(parse_int(f, a.value(), 1, 1 << 16));
      else if (f == "-t" || f == "--threads") threads = int(parse_int(f, a.value(), 1, 512));
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
    std::fprintf(stderr, "perplexity: %s, chunks of %d tokens, scoring the second half of each\n", model_path.c_str(), n_ctx);
    const PerplexityResult r = perplexity(*model, text, n_ctx, n_batch, threads, [](int i, double est) {
      std::printf("[%d]%.4f,", i + 1, est);
      std::fflush(stdout);
    });
    std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.error);
    return stdout_ok("qkv perplexity") ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qkv: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace qkv::cli
