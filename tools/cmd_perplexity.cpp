// qkv perplexity: llama.cpp's perplexity method (qkv::perplexity, qkv.hpp),
// printing the running estimate after each chunk and the final PPL +/- error.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <qkv/qkv.hpp>

#include "tools/args.h"

namespace qkv::cli {
namespace {

// The statistics as llama-perplexity lays them out.
void print_kl(const PerplexityResult& r) {
  const KlDivergence& k = r.kl;
  std::printf("\n====== Perplexity statistics ======\n");
  std::printf("Mean PPL(Q)                   : %10.6f +/- %10.6f\n", r.ppl, r.error);
  std::printf("Mean PPL(base)                : %10.6f\n", k.ppl_base);
  std::printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f +/- %10.6f\n", k.ln_ppl_ratio, k.ln_ppl_ratio_error);
  std::printf("Mean PPL(Q)/PPL(base)         : %10.6f +/- %10.6f\n", std::exp(k.ln_ppl_ratio),
              std::exp(k.ln_ppl_ratio) * k.ln_ppl_ratio_error);
  std::printf("\n====== KL divergence statistics ======\n");
  std::printf("Mean    KLD: %10.6f +/- %10.6f\n", k.kld, k.kld_error);
  std::printf("Maximum KLD: %10.6f\n", k.kld_max);
  std::printf("99.9%%   KLD: %10.6f\n", k.kld_p999);
  std::printf("99.0%%   KLD: %10.6f\n", k.kld_p99);
  std::printf("90.0%%   KLD: %10.6f\n", k.kld_p90);
  std::printf("Median  KLD: %10.6f\n", k.kld_median);
  std::printf("10.0%%   KLD: %10.6f\n", k.kld_p10);
  std::printf(" 5.0%%   KLD: %10.6f\n", k.kld_p5);
  std::printf(" 1.0%%   KLD: %10.6f\n", k.kld_p1);
  std::printf("Minimum KLD: %10.6f\n", k.kld_min);
  std::printf("\n====== Token probability statistics ======\n");
  std::printf("Mean    \xce\x94p: %8.3f +/- %.3f %%\n", 100 * k.dp_mean, 100 * k.dp_mean_error);
  std::printf("Maximum \xce\x94p: %8.3f%%\n", 100 * k.dp_max);
  std::printf("99.9%%   \xce\x94p: %8.3f%%\n", 100 * k.dp_p999);
  std::printf("99.0%%   \xce\x94p: %8.3f%%\n", 100 * k.dp_p99);
  std::printf("90.0%%   \xce\x94p: %8.3f%%\n", 100 * k.dp_p90);
  std::printf("Median  \xce\x94p: %8.3f%%\n", 100 * k.dp_median);
  std::printf("10.0%%   \xce\x94p: %8.3f%%\n", 100 * k.dp_p10);
  std::printf(" 1.0%%   \xce\x94p: %8.3f%%\n", 100 * k.dp_p1);
  std::printf(" 0.1%%   \xce\x94p: %8.3f%%\n", 100 * k.dp_p001);
  std::printf("Minimum \xce\x94p: %8.3f%%\n", 100 * k.dp_min);
  std::printf("RMS \xce\x94p    : %8.3f%%\n", 100 * k.dp_rms);
  std::printf("Same top p: %6.3f +/- %.3f %%\n", 100 * k.same_top, 100 * k.same_top_error);
}

}  // namespace

int cmd_perplexity(int argc, char** argv) {
  std::string model_path, tokenizer, file;
  PerplexityOptions o;  // n_ctx 128, n_batch 128 as llama-perplexity's -c 128 -b 128
  bool kl_compare = false, ctx_given = false;
  CacheTypes cache_types;
  try {
    ArgWalker a(argc, argv);
    while (a.next()) {
      const std::string f = a.flag();
      if (f == "-h" || f == "--help") {
        std::fputs("usage: qkv perplexity -m MODEL [-z TOKENIZER] -f TEXT [-c 128] [-b 128] [-t T] [--chunks N] [--kv-f32]\n"
                   "       qkv perplexity -m BASE_MODEL -f TEXT --kl-divergence-base FILE       (save the base)\n"
                   "       qkv perplexity -m MODEL --kl-divergence-base FILE --kl-divergence   (compare with it)\n"
                   "\n"
                   "llama-perplexity's method: chunks of -c tokens, each from an empty cache, the second half scored.\n"
                   "  --chunks N                   score only the first N chunks\n"
                   "  --kv-f32, -ctk f32 -ctv f32  keep the KV cache in f32 (the default is f16, as llama.cpp's)\n"
                   "  --kl-divergence-base FILE    without --kl-divergence: write the tokens and every scored\n"
                   "                               position's log-probabilities to FILE (qkv's own format, about\n"
                   "                               2 bytes x vocabulary per position)\n"
                   "  --kl-divergence              read FILE instead of -f and report KL divergence, delta p and\n"
                   "                               top-token agreement of MODEL against the saved model\n", stdout);
        return 0;
      } else if (f == "-m" || f == "--model") model_path = a.value();
      else if (f == "-z" || f == "--tokenizer") tokenizer = a.value();
      else if (f == "-f" || f == "--file") file = a.value();
      else if (f == "-c" || f == "--ctx-size") o.n_ctx = int(parse_int(f, a.value(), 4, 1 << 16)), ctx_given = true;
      else if (f == "-b" || f == "--batch-size") o.n_batch = int(parse_int(f, a.value(), 1, 1 << 16));
      else if (f == "-t" || f == "--threads") o.n_threads = int(parse_int(f, a.value(), 1, 512));
      else if (f == "--chunks") o.max_chunks = int(parse_int(f, a.value(), 1, 1 << 30));
      else if (f == "--kv-f16") o.kv_f16 = true;
      else if (f == "--kv-f32") o.kv_f16 = false;
      else if (cache_types.is_flag(f)) cache_types.take(f, a.value());
      else if (f == "--kl-divergence-base") o.kl_base = a.value();
      else if (f == "--kl-divergence") kl_compare = true;
      else throw UsageError("unknown option '" + f + "' (see qkv perplexity --help)");
    }
    cache_types.apply(&o.kv_f16);
    if (model_path.empty()) throw UsageError("-m MODEL is required");
    if (kl_compare && o.kl_base.empty()) throw UsageError("--kl-divergence needs --kl-divergence-base FILE (the saved base)");
    if (kl_compare && !file.empty()) throw UsageError("--kl-divergence scores the base file's tokens; drop -f");
    if (!kl_compare && file.empty()) throw UsageError("-f TEXT is required");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "qkv perplexity: %s\n", e.what());
    return 2;
  }
  std::string text;
  if (!kl_compare) {
    try {
      text = read_text_file("-f", file, size_t(1) << 30);
    } catch (const FileError& e) {  // a failure like an unreadable model, not a usage error
      std::fprintf(stderr, "qkv perplexity: %s\n", e.what());
      return 1;
    }
  }
  try {
    const auto model = Model::load(model_path, LoadOptions{tokenizer});
    o.kl = kl_compare ? PerplexityOptions::Kl::Compare
                      : o.kl_base.empty() ? PerplexityOptions::Kl::None : PerplexityOptions::Kl::SaveBase;
    // As llama-perplexity: the chunk count up front, an ETA after the first pass.
    ChunkEta eta("perplexity");
    o.on_start = [&](int n_chunks, int n_tokens) {
      if (kl_compare)  // the base file's chunks and n_ctx
        std::fprintf(stderr, "perplexity: %s: %d tokens; comparing over %d chunks\n", o.kl_base.c_str(), n_tokens, n_chunks);
      else
        std::fprintf(stderr, "perplexity: %s: %d tokens; calculating perplexity over %d chunks, n_ctx=%d, batch_size=%d\n",
                     model_path.c_str(), n_tokens, n_chunks, o.n_ctx, std::min(o.n_batch, o.n_ctx));
      eta.start(n_chunks);
    };
    o.on_chunk = [&](int i, double est) {
      eta.chunk_done(i);
      std::printf("[%d]%.4f,", i + 1, est);
      std::fflush(stdout);
    };
    const PerplexityResult r = perplexity(*model, text, o);
    if (kl_compare && ctx_given && o.n_ctx != r.n_ctx)
      std::fprintf(stderr, "qkv perplexity: warning: -c %d ignored: the base file was saved with n_ctx %d\n", o.n_ctx, r.n_ctx);
    std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.error);
    if (o.kl == PerplexityOptions::Kl::SaveBase)
      std::fprintf(stderr, "perplexity: saved %d chunks of %d tokens and their log-probabilities to %s\n", r.n_chunks, r.n_ctx,
                   o.kl_base.c_str());
    if (r.has_kl) print_kl(r);
    return stdout_ok("qkv perplexity") ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qkv: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace qkv::cli
