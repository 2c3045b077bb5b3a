// qkv quantize: the library's quantize_model (qkv.hpp) on the command line.
#include <cstdio>
#include <string>
#include <vector>

#include <qkv/qkv.hpp>

#include "tools/args.h"

namespace qkv::cli {
namespace {

const char* kHelp =
    "usage: qkv quantize -m INPUT [-z TOKENIZER] --type PRESET -o OUTPUT.gguf\n"
    "       qkv quantize [options] INPUT OUTPUT PRESET [NTHREADS]      (llama-quantize's form; any case)\n"
    "\n"
    "  -m INPUT     a GGUF file (any type qkv reads) or a llama2.c .bin (with -z)\n"
    "  --type P     llama-quantize's presets: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k_s,\n"
    "               q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k, iq4_nl, iq4_xs (q3_k, q4_k,\n"
    "               q5_k: the _m ones), each with its per-tensor rules (output.weight in Q6_K, more bits\n"
    "               for attn_v / ffn_down in some layers, ...) and its fallbacks where rows do not fill\n"
    "               256-value blocks (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K -> Q4_0).\n"
    "               From a GGUF, the file equals llama-quantize's byte for byte (no importance matrix).\n"
    "  -o OUTPUT    the GGUF to write (llama.cpp reads it)\n"
    "  --pure       every matrix in the preset's main type (no mix rules)\n"
    "  --output-tensor-type T, --token-embedding-type T   those two tensors' type\n"
    "  --allow-requantize   quantize matrices that are quantized already (loses precision)\n"
    "  --imatrix FILE  an importance matrix (llama-imatrix's output, GGUF or legacy .dat): the matrices it\n"
    "               covers are quantized with GGML's importance-weighted quantizers (all types but Q8_0\n"
    "               and the float ones), as llama-quantize --imatrix; optional, and not compared byte\n"
    "               for byte with llama-quantize's output (none was at hand)\n";

}  // namespace

int cmd_quantize(int argc, char** argv) {
  std::string in, out, tokenizer, type;
  QuantizeParams qp;
  try {
    ArgWalker a(argc, argv);
    std::vector<std::string> positional;
    while (a.next()) {
      const std::string f = a.flag();
      if (is_help(f)) return print_help(kHelp);
      else if (f == "-m" || f == "--model") in = a.value();
      else if (f == "-o" || f == "--output") out = a.value();
      else if (f == "-z" || f == "--tokenizer") tokenizer = a.value();
      else if (f == "--type") type = a.value();
      else if (f == "--pure") qp.pure = true;
      else if (f == "--allow-requantize") qp.allow_requantize = true;
      else if (f == "--imatrix") qp.imatrix_path = a.value();
      else if (f == "--output-tensor-type") qp.output_tensor_type = a.value();
      else if (f == "--token-embedding-type") qp.token_embedding_type = a.value();
      else if (!f.empty() && f[0] != '-') positional.push_back(f);
      else throw UsageError("unknown option '" + f + "' (see qkv quantize --help)");
    }
    // llama-quantize's form: INPUT OUTPUT TYPE [NTHREADS] (qkv quantizes on one thread: NTHREADS is checked, then unused).
    if (!positional.empty()) {
      if (!in.empty() || !out.empty() || !type.empty() || positional.size() < 3 || positional.size() > 4)
        throw UsageError("give INPUT OUTPUT TYPE [NTHREADS], or -m, -o and --type, not both");
      in = positional[0];
      out = positional[1];
      type = positional[2];
      if (positional.size() == 4) parse_int("NTHREADS", positional[3], 1, 512);
    }
    if (in.empty() || out.empty() || type.empty()) throw UsageError("-m INPUT, --type and -o OUTPUT are required");
    if (!is_quantize_type(type)) throw UsageError("--type must be one of " + quantize_type_names() + " (not '" + type + "')");
    if (in == out) throw UsageError("the output must not overwrite the input");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "qkv quantize: %s\n", e.what());
    return 2;
  }

  try {
    qp.type = type;
    qp.tokenizer_path = tokenizer;
    quantize_model(in, out, qp,
                   [](const std::string& line) { std::fprintf(stderr, "qkv quantize: %s\n", line.c_str()); });
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qkv: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace qkv::cli
