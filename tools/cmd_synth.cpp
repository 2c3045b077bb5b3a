// qkv synth: the library's synth_model (qkv.hpp) on the command line:
// random-weight models of exact real shapes and architectures, as standard
// GGUF files that llama.cpp loads too, so both engines can be timed on the
// same file.
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>

#include <qkv/qkv.hpp>

#include "tools/args.h"

namespace qkv::cli {
namespace {

const char* kHelp =
    "usage: qkv synth --shape NAME --type TYPE -o FILE.gguf [--seed S] [--arch NAME]\n"
    "                 [--dim N --hidden N --layers N --heads N --kv-heads N --head-dim N --vocab N --ctx N]\n"
    "\n"
    "Writes a GGUF with weights ~ N(0, 0.02) and norms of 1, laid out as llama.cpp's converter writes\n"
    "the architecture (tensor names, metadata keys).\n"
    "  --shape NAME   llama: stories15M (288, 768, 6 layers, 6 heads, ctx 256), stories42M (512, 1376, 8, 8,\n"
    "                 1024), stories110M (768, 2048, 12, 12, 1024), tinyllama-1.1b (2048, 5632, 22, 32 heads,\n"
    "                 4 KV heads, 2048), smollm2-135m, llama3.2-1b; qwen2.5-0.5b (qwen2), qwen3-0.6b (qwen3),\n"
    "                 gemma3-270m (gemma3), gpt2-124m (gpt2): the real models' hyper-parameters; the flags\n"
    "                 below override any field, or give a shape alone\n"
    "  --arch NAME    llama, qwen2, qwen3, phi3, gemma2, gemma3, gpt2 (default: the shape's, else llama)\n"
    "  --type TYPE    one of qkv quantize's types (f32, f16, q8_0, q4_k_m, ...)\n"
    "  -z FILE        the vocabulary: a llama2.c tokenizer.bin; --vocab defaults to its size and must match it\n"
    "                 (without -z: $QKV_MODELS_DIR/llama2-tokenizer.bin, the Llama-2 32000-token vocabulary,\n"
    "                 or for another size a made-up vocabulary of that size: byte tokens and placeholders)\n";

}  // namespace

int cmd_synth(int argc, char** argv) {
  std::string shape_name, out, tokenizer, arch;
  SynthParams s;
  try {
    ArgWalker a(argc, argv);
    std::map<std::string, int*> fields = {{"--dim", &s.dim},     {"--hidden", &s.hidden}, {"--layers", &s.layers},
                                          {"--heads", &s.heads}, {"--kv-heads", &s.kv_heads},
                                          {"--head-dim", &s.head_dim},
                                          {"--vocab", &s.vocab}, {"--ctx", &s.ctx}};
    std::map<std::string, int> overrides;
    while (a.next()) {
      const std::string f = a.flag();
      if (is_help(f)) return print_help(kHelp);
      else if (f == "--shape") shape_name = a.value();
      else if (f == "--type") s.type = a.value();
      else if (f == "--arch") arch = a.value();
      else if (f == "-o" || f == "--output") out = a.value();
      else if (f == "--seed") s.seed = uint64_t(parse_int(f, a.value(), 0, 1ll << 62));
      else if (f == "-z" || f == "--tokenizer") tokenizer = a.value();
      else if (fields.count(f)) overrides[f] = int(parse_int(f, a.value(), 1, 1 << 20));
      else throw UsageError("unknown option '" + f + "' (see qkv synth --help)");
    }
    if (out.empty()) throw UsageError("-o FILE.gguf is required");
    if (!shape_name.empty() && !synth_shape(shape_name, s)) {
      std::string known;
      for (const std::string& n : synth_shape_names()) known += (known.empty() ? "" : ", ") + n;
      throw UsageError("unknown shape '" + shape_name + "' (" + known + ")");
    }
    for (const auto& [f, v] : overrides) *fields[f] = v;
    if (!arch.empty()) {
      const std::vector<std::string> archs = synth_arch_names();
      if (std::find(archs.begin(), archs.end(), arch) == archs.end()) {
        std::string known;
        for (const std::string& n : archs) known += (known.empty() ? "" : ", ") + n;
        throw UsageError("unknown architecture '" + arch + "' (" + known + ")");
      }
      s.arch = arch;
    }
    // An explicit -z is always used (its size, or --vocab checked against it);
    // without one, the default vocabulary or a made-up one of --vocab tokens.
    const bool vocab_given = overrides.count("--vocab") > 0;
    const bool made_up_vocab = tokenizer.empty() && s.vocab != 32000;
    if (!tokenizer.empty() && !vocab_given) s.vocab = 0;
    if (!overrides.count("--kv-heads") && shape_name.empty()) s.kv_heads = s.heads;
    if (!s.dim || !s.hidden || !s.layers || !s.heads) throw UsageError("give --shape, or --dim --hidden --layers --heads");
    const int head_dim = s.head_dim ? s.head_dim : s.dim / s.heads;
    if ((!s.head_dim && s.dim % s.heads) || s.heads % s.kv_heads || head_dim % 2)
      throw UsageError("--dim must be a multiple of --heads (or --head-dim given), --heads of --kv-heads, and the head "
                       "size even");
    if (!is_quantize_type(s.type)) throw UsageError("--type must be one of " + quantize_type_names());
    if (made_up_vocab && s.vocab < 259) throw UsageError("--vocab must be at least 259 (3 special and 256 byte tokens)");
    s.tokenizer_path = made_up_vocab ? "" : tokenizer.empty() ? models_dir() + "/llama2-tokenizer.bin" : tokenizer;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "qkv synth: %s\n", e.what());
    return 2;
  }

  try {
    synth_model(out, s, [](const std::string& line) { std::fprintf(stderr, "qkv synth: %s\n", line.c_str()); });
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qkv: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace qkv::cli
