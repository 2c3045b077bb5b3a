#include "tools/gguf_meta.h"

#include <cstdio>
#include <vector>

#include "engine/quantize.h"
#include "ops/quant.h"

namespace qkv::cli {

uint32_t file_type_of(uint32_t t) {
  switch (t) {
    case 0: return 0;   // ALL_F32
    case 1: return 1;   // MOSTLY_F16
    case 2: return 2;   // MOSTLY_Q4_0
    case 8: return 7;   // MOSTLY_Q8_0
    case 12: return 14; // MOSTLY_Q4_K_S (every matrix Q4_K)
    case 13: return 16; // MOSTLY_Q5_K_S
    case 14: return 18; // MOSTLY_Q6_K
    case kMixQ4_K_M: return 15;  // MOSTLY_Q4_K_M
    default: return 0;
  }
}

uint32_t weight_type_id(const std::string& t) {
  if (t == "f32") return 0;
  if (t == "f16") return 1;
  if (t == "q8_0") return 8;
  if (t == "q4_0") return 2;
  if (t == "q4_k") return 12;
  if (t == "q5_k") return 13;
  if (t == "q6_k") return 14;
  if (t == "q4_k_m") return kMixQ4_K_M;
  return ~0u;
}

uint32_t matrix_type(uint32_t wanted, const std::string& name, int n_layers) {
  if (wanted != kMixQ4_K_M) return wanted;
  if (name == "output.weight") return 14;
  int layer = -1;
  char part[64] = {};
  if (std::sscanf(name.c_str(), "blk.%d.%63[a-z_]", &layer, part) == 2 &&
      (std::string(part) == "attn_v" || std::string(part) == "ffn_down")) {
    const int n = n_layers;
    const bool more_bits = layer < n / 8 || layer >= 7 * n / 8 || (layer - n / 8) % 3 == 2;
    if (more_bits) return 14;
  }
  return 12;
}

uint32_t fitting_type(uint32_t wanted, int64_t cols) {
  if (cols % quant_block_size(wanted) == 0) return wanted;
  return quant_block_size(wanted) == ops::kQK_K && cols % ops::kQK8_0 == 0 ? 8 : 1;
}

void add_llama_metadata(GgufWriter& w, const ModelConfig& c, const std::string& name, uint32_t file_type) {
  w.add_string("general.architecture", "llama");
  w.add_string("general.name", name);
  w.add_u32("general.alignment", 32);
  w.add_u32("general.file_type", file_type);
  w.add_u32("general.quantization_version", 2);
  w.add_u32("llama.context_length", uint32_t(c.context_length));
  w.add_u32("llama.embedding_length", uint32_t(c.dim));
  w.add_u32("llama.block_count", uint32_t(c.n_layers));
  w.add_u32("llama.feed_forward_length", uint32_t(c.hidden_dim));
  w.add_u32("llama.rope.dimension_count", uint32_t(c.head_dim));
  w.add_u32("llama.attention.head_count", uint32_t(c.n_heads));
  w.add_u32("llama.attention.head_count_kv", uint32_t(c.n_kv_heads));
  w.add_f32("llama.attention.layer_norm_rms_epsilon", c.rms_eps);
  w.add_f32("llama.rope.freq_base", c.rope_base);
}

void add_vocab_metadata(GgufWriter& w, const Vocab& v) {
  w.add_string("tokenizer.ggml.model", "llama");
  std::vector<std::string> pieces;
  std::vector<int32_t> types;
  for (int i = 0; i < v.size(); ++i) {
    std::string p = v.pieces[size_t(i)];
    const TokenKind kind = v.kinds[size_t(i)];
    // llama2.c's exporter wrote BOS/EOS as "\n<s>\n" and "\n</s>\n".
    if (kind == TokenKind::Control) p = i == v.bos ? "<s>" : i == v.eos ? "</s>" : p;
    if (kind == TokenKind::Normal)  // SentencePiece marks spaces with U+2581
      for (size_t pos = p.find(' '); pos != std::string::npos; pos = p.find(' ', pos + 3)) p.replace(pos, 1, "\xe2\x96\x81");
    pieces.push_back(p);
    types.push_back(int32_t(kind));
  }
  w.add_string_array("tokenizer.ggml.tokens", pieces);
  w.add_f32_array("tokenizer.ggml.scores", v.scores);
  w.add_i32_array("tokenizer.ggml.token_type", types);
  w.add_u32("tokenizer.ggml.bos_token_id", uint32_t(v.bos));
  w.add_u32("tokenizer.ggml.eos_token_id", uint32_t(v.eos));
  w.add_u32("tokenizer.ggml.unknown_token_id", uint32_t(v.unk));
  w.add_bool("tokenizer.ggml.add_bos_token", true);
}

}  // namespace qkv::cli
