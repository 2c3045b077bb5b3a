// qkv quantize: GGUF (F32/F16/BF16/Q8_0/Q4_0/K-quants) or llama2.c .bin in,
// GGUF out, every matrix in the asked type (GGML's reference quantizers, so
// the bytes match llama-quantize's without an importance matrix), vectors
// kept in F32, tokenizer and metadata carried over. A matrix whose rows do
// not fill whole blocks falls back to a type that fits (K-quants: Q8_0, the
// next type up that qkv writes; otherwise F16), and the tool says which.
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/gguf.h"
#include "engine/gguf_writer.h"
#include "engine/quantize.h"
#include "engine/vocab.h"
#include "engine/weight_file.h"
#include "tools/args.h"
#include "tools/gguf_meta.h"

namespace qkv::cli {
namespace {

const char* kHelp =
    "usage: qkv quantize -m INPUT [-z TOKENIZER] --type f32|f16|q8_0|q4_0|q4_k|q5_k|q6_k|q4_k_m -o OUTPUT.gguf\n"
    "\n"
    "  -m INPUT     a GGUF file (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) or a llama2.c .bin (with -z)\n"
    "  --type T     the type of every matrix (f32: dequantize); vectors (norms) stay F32. Rows that do not fill\n"
    "               whole blocks (32 values; 256 for the K-quants) fall back to Q8_0 or F16.\n"
    "               q4_k_m: Q4_K, with Q6_K for output.weight and for attn_v / ffn_down in the\n"
    "               first and last eighth of the layers and every third between (llama-quantize's rules)\n"
    "  -o OUTPUT    the GGUF to write (llama.cpp reads it)\n";

struct Source {  // one tensor to write
  std::string name;
  std::vector<int64_t> ne;
  uint32_t src_type;
  const void* data;
  uint32_t dst_type;
};

}  // namespace

int cmd_quantize(int argc, char** argv) {
  std::string in, out, tokenizer, type;
  try {
    ArgWalker a(argc, argv);
    while (a.next()) {
      const std::string f = a.flag();
      if (is_help(f)) return print_help(kHelp);
      else if (f == "-m" || f == "--model") in = a.value();
      else if (f == "-o" || f == "--output") out = a.value();
      else if (f == "-z" || f == "--tokenizer") tokenizer = a.value();
      else if (f == "--type") type = a.value();
      else throw UsageError("unknown option '" + f + "' (see qkv quantize --help)");
    }
    if (in.empty() || out.empty() || type.empty()) throw UsageError("-m INPUT, --type and -o OUTPUT are required");
    if (weight_type_id(type) == ~0u)
      throw UsageError("--type must be f32, f16, q8_0, q4_0, q4_k, q5_k, q6_k or q4_k_m (not '" + type + "')");
    if (in == out) throw UsageError("the output must not overwrite the input");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "qkv quantize: %s\n", e.what());
    return 2;
  }

  try {
    const uint32_t target = weight_type_id(type);
    GgufWriter w;
    std::vector<Source> tensors;
    std::unique_ptr<GgufFile> gguf;
    std::unique_ptr<WeightFile> bin;
    int n_layers = 0;  // for the mixes that treat layers differently
    auto plan = [&](const std::string& name, std::vector<int64_t> ne, uint32_t src_type, const void* data) {
      uint32_t dst = ne.size() >= 2 ? matrix_type(target, name, n_layers) : 0;  // vectors stay F32
      if (ne.size() >= 2 && fitting_type(dst, ne[0]) != dst) {
        const uint32_t fallback = fitting_type(dst, ne[0]);
        std::fprintf(stderr, "qkv quantize: %s has rows of %lld values, not a multiple of %d: written as %s\n",
                     name.c_str(), (long long)ne[0], quant_block_size(dst), dtype_name(fallback));
        dst = fallback;
      }
      if (src_type != 0 && ne.size() < 2) dst = src_type;  // a non-F32 vector is copied as it is
      tensors.push_back({name, ne, src_type, data, dst});
    };

    uint8_t magic[4] = {};
    if (std::FILE* f = std::fopen(in.c_str(), "rb")) {
      (void)!std::fread(magic, 1, 4, f);
      std::fclose(f);
    }
    if (std::string(reinterpret_cast<char*>(magic), 4) == "GGUF") {
      gguf = std::make_unique<GgufFile>(in);
      for (const auto& [key, v] : gguf->metadata()) {
        if (key == "general.file_type" || key == "general.quantization_version" || key == "general.alignment") continue;
        w.add_value(key, v);
      }
      w.add_u32("general.alignment", 32);
      w.add_u32("general.file_type", file_type_of(target));
      w.add_u32("general.quantization_version", 2);
      const std::string arch = gguf->has("general.architecture") ? gguf->get_string("general.architecture") : "llama";
      n_layers = int(gguf->get_uint(arch + ".block_count").value_or(0));
      for (const GgufTensorInfo& ti : gguf->tensors()) {
        static const uint32_t kReadable[] = {0, 1, 2, 8, 12, 13, 14, 30};
        if (std::find(std::begin(kReadable), std::end(kReadable), ti.ggml_type) == std::end(kReadable))
          throw Error(cat(in, ": tensor ", ti.name, " has type ", dtype_name(ti.ggml_type), ", which qkv cannot read"));
        const Tensor t = gguf->tensor(ti);
        plan(ti.name, std::vector<int64_t>(ti.ne, ti.ne + ti.n_dims), ti.ggml_type, t.data);
      }
    } else {
      bin = open_llama2c_bin(in);
      if (tokenizer.empty()) throw Error(cat(in, ": a llama2.c model needs its tokenizer (-z)"));
      const Vocab vocab = load_llama2c_vocab(tokenizer, bin->config().vocab_size);
      add_llama_metadata(w, bin->config(), "converted by qkv quantize", file_type_of(target));
      add_vocab_metadata(w, vocab);
      n_layers = bin->config().n_layers;
      // GGUF's order: the embedding, each layer, then the final norm and classifier.
      std::vector<std::string> names = {"token_embd.weight"};
      for (int l = 0; l < bin->config().n_layers; ++l)
        for (const char* n : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                              "ffn_down"})
          names.push_back(cat("blk.", l, ".", n, ".weight"));
      names.push_back("output_norm.weight");
      if (bin->find("output.weight")) names.push_back("output.weight");
      for (const std::string& n : names) {
        const Tensor& t = *bin->find(n);
        plan(n, std::vector<int64_t>(t.ne, t.ne + t.n_dims), 0, t.data);
      }
    }

    for (const Source& s : tensors) {
      int64_t rows = 1;
      for (size_t d = 1; d < s.ne.size(); ++d) rows *= s.ne[d];
      w.add_tensor(s.name, s.dst_type, s.ne, quant_row_bytes(s.dst_type, s.ne[0]) * uint64_t(rows));
    }
    std::vector<float> row;
    w.write(out, [&](size_t i, std::vector<uint8_t>& bytes) {
      const Source& s = tensors[i];
      const int64_t n = s.ne[0];
      int64_t rows = 1;
      for (size_t d = 1; d < s.ne.size(); ++d) rows *= s.ne[d];
      const uint64_t src_rb = quant_row_bytes(s.src_type, n), dst_rb = quant_row_bytes(s.dst_type, n);
      bytes.resize(size_t(dst_rb * uint64_t(rows)));
      row.resize(size_t(n));
      const uint8_t* src = static_cast<const uint8_t*>(s.data);
      for (int64_t r = 0; r < rows; ++r) {
        if (s.src_type == s.dst_type) {
          std::copy(src + r * src_rb, src + (r + 1) * src_rb, bytes.data() + r * dst_rb);
          continue;
        }
        dequantize_row(s.src_type, src + r * src_rb, row.data(), n);
        quantize_rows(s.dst_type, row.data(), bytes.data() + r * dst_rb, 1, n);
      }
    });
    std::fprintf(stderr, "qkv quantize: wrote %s (%zu tensors, matrices as %s)\n", out.c_str(), tensors.size(),
                 target == kMixQ4_K_M ? "Q4_K_M (Q4_K and Q6_K)" : dtype_name(target));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qkv: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace qkv::cli
