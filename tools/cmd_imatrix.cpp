// qkv imatrix: llama-imatrix's importance matrix of a model on a text
// (qkv::compute_imatrix, qkv.hpp), for qkv quantize --imatrix.
#include <algorithm>
#include <cstdio>
#include <string>

#include <qkv/qkv.hpp>

#include "tools/args.h"

namespace qkv::cli {

int cmd_imatrix(int argc, char** argv) {
  std::string model_path, tokenizer, file, out = "imatrix.gguf";
  ImatrixOptions o;  // -c 512, as llama-imatrix
  bool show_ppl = true, ctx_given = false;
  CacheTypes cache_types;
  try {
    ArgWalker a(argc, argv);
    while (a.next()) {
      const std::string f = a.flag();
      if (f == "-h" || f == "--help") {
        std::fputs("usage: qkv imatrix -m MODEL [-z TOKENIZER] -f TEXT [-o imatrix.gguf] [-c 512] [-b 512] [-t T]\n"
                   "                   [--chunks N] [--chunk N] [--in-file FILE ...] [--output-frequency 10]\n"
                   "                   [--save-frequency 0] [--process-output] [--parse-special] [--output-format gguf|dat]\n"
                   "                   [--no-ppl]\n"
                   "       qkv imatrix --in-file FILE [--in-file FILE ...] [-o imatrix.gguf] [-c 512] [--output-format F]\n"
                   "\n"
                   "llama-imatrix's importance matrix: the model runs TEXT in chunks of -c tokens (at least two), each\n"
                   "from an empty cache, and every matrix of the layers gets the sums of its inputs' squares; qkv\n"
                   "quantize --imatrix FILE (and llama-quantize) then weigh each column's rounding error by them.\n"
                   "  -o, --output FILE        where to write it (default imatrix.gguf; replaced whole)\n"
                   "  --chunks N               only the first N chunks\n"
                   "  --chunk N                skip the text's first N chunks (to go on from an earlier run)\n"
                   "  --in-file FILE           add an earlier importance matrix (GGUF or .dat; several allowed): its\n"
                   "                           sums, counts and datasets; without -f, the files are only combined\n"
                   "                           (chunks of -c tokens; combining, the first file's chunk size unless -c)\n"
                   "  --output-frequency N     also write the output after every N chunks (default 10)\n"
                   "  --save-frequency N       also write a copy OUTPUT.at_CHUNKS after every N chunks (default 0: none)\n"
                   "  --process-output         also output.weight (not collected by default, as llama-imatrix)\n"
                   "  --parse-special          read control tokens' text in TEXT (\"<s>\") as those tokens\n"
                   "  --output-format gguf|dat GGUF (NAME.in_sum2, NAME.counts, NAME.in_sum; the default) or the\n"
                   "                           legacy .dat\n"
                   "  --no-ppl                 do not print the perplexity of the chunks' second halves\n"
                   "  --kv-f32, -ctk f32 -ctv f32  keep the KV cache in f32 (the default is f16, as llama.cpp's)\n"
                   "Products of fewer than 16 tokens are not collected (as llama-imatrix), so -c and -b are at least 16.\n",
                   stdout);
        return 0;
      } else if (f == "-m" || f == "--model") model_path = a.value();
      else if (f == "-z" || f == "--tokenizer") tokenizer = a.value();
      else if (f == "-f" || f == "--file") file = a.value();
      else if (f == "-o" || f == "--output" || f == "--output-file") out = a.value();
      else if (f == "-c" || f == "--ctx-size") o.n_ctx = int(parse_int(f, a.value(), 16, 1 << 16)), ctx_given = true;
      else if (f == "-b" || f == "--batch-size") o.n_batch = int(parse_int(f, a.value(), 16, 1 << 16));
      else if (f == "-t" || f == "--threads") o.n_threads = int(parse_int(f, a.value(), 1, 512));
      else if (f == "--chunks") o.max_chunks = int(parse_int(f, a.value(), 1, 1 << 30));
      else if (f == "--chunk") o.skip_chunks = int(parse_int(f, a.value(), 0, 1 << 30));
      else if (f == "--in-file") o.in_files.push_back(a.value());
      else if (f == "--output-frequency" || f == "-ofreq") o.output_frequency = int(parse_int(f, a.value(), 1, 1 << 30));
      else if (f == "--save-frequency") o.save_frequency = int(parse_int(f, a.value(), 0, 1 << 30));
      else if (f == "--process-output") o.process_output = true;
      else if (f == "--parse-special") o.parse_special = true;
      else if (f == "--no-ppl") show_ppl = false;
      else if (f == "--output-format") {
        const std::string v = a.value();
        if (v != "gguf" && v != "dat") throw UsageError("--output-format '" + v + "': gguf or dat");
        o.legacy_format = v == "dat";
      } else if (f == "--kv-f16") o.kv_f16 = true;
      else if (f == "--kv-f32") o.kv_f16 = false;
      else if (cache_types.is_flag(f)) cache_types.take(f, a.value());
      else throw UsageError("unknown option '" + f + "' (see qkv imatrix --help)");
    }
    cache_types.apply(&o.kv_f16);
    if (file.empty() && o.in_files.empty()) throw UsageError("-f TEXT is required (or --in-file FILE to combine)");
    if (!file.empty() && model_path.empty()) throw UsageError("-m MODEL is required");
    if (out.empty()) throw UsageError("-o: empty file name");
    for (const std::string& in : o.in_files)
      if (in.empty()) throw UsageError("--in-file: empty file name");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "qkv imatrix: %s\n", e.what());
    return 2;
  }
  if (file.empty()) {  // llama-imatrix without a prompt: the --in-file matrices combined
    try {
      if (!ctx_given) o.n_ctx = 0;  // the files' own chunk size
      const ImatrixResult r = combine_imatrix(out, o);
      std::fprintf(stderr, "imatrix: combined %zu file%s: %d entries, %d chunks of %d tokens, saved to %s\n",
                   o.in_files.size(), o.in_files.size() == 1 ? "" : "s", r.n_entries, r.n_chunks, r.n_ctx, out.c_str());
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "qkv: error: %s\n", e.what());
      return 1;
    }
  }
  std::string text;
  try {
    text = read_text_file("-f", file, size_t(1) << 30);
  } catch (const FileError& e) {
    std::fprintf(stderr, "qkv imatrix: %s\n", e.what());
    return 1;
  }
  try {
    const auto model = Model::load(model_path, LoadOptions{tokenizer});
    o.dataset = file;
    ChunkEta eta("imatrix");
    o.on_start = [&](int n_chunks, int n_tokens) {
      std::fprintf(stderr, "imatrix: %s: %d tokens; computing over %d chunks, n_ctx=%d, batch_size=%d\n", model_path.c_str(),
                   n_tokens, n_chunks, o.n_ctx, std::min(o.n_batch, o.n_ctx));
      eta.start(n_chunks);
    };
    o.on_chunk = [&](int i, double est) {
      eta.chunk_done(i);
      if (show_ppl) std::printf("[%d]%.4f,", i + 1, est), std::fflush(stdout);
    };
    const ImatrixResult r = compute_imatrix(*model, text, out, o);
    if (show_ppl) std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.error);
    std::fprintf(stderr, "imatrix: saved %d entries from %d chunks of %d tokens to %s\n", r.n_entries, r.n_chunks, o.n_ctx,
                 out.c_str());
    return stdout_ok("qkv imatrix") ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qkv: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace qkv::cli
