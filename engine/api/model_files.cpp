#include "engine/api/model_files.h"

#include <cctype>
#include <cstdio>
#include <vector>

namespace qkv {
namespace {

const FileType kFileTypes[] = {
    {"f32", ops::Type::F32, false, 0},    {"f16", ops::Type::F16, false, 1},    {"q8_0", ops::Type::Q8_0, false, 7},
    {"q4_0", ops::Type::Q4_0, false, 2},  {"q4_k", ops::Type::Q4_K, false, 14}, {"q5_k", ops::Type::Q5_K, false, 16},
    {"q6_k", ops::Type::Q6_K, false, 18}, {"q4_k_m", ops::Type::Q4_K, true, 15},
};

}  // namespace

const FileType* find_file_type(const std::string& name) {
  std::string lower = name;
  for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
  for (const FileType& f : kFileTypes)
    if (lower == f.name) return &f;
  return nullptr;
}

std::string file_type_names() {
  std::string s;
  for (const FileType& f : kFileTypes) s += (s.empty() ? "" : ", ") + std::string(f.name);
  return s;
}

ops::Type matrix_type(const FileType& ft, const std::string& name, int n_layers) {
  if (!ft.q4_k_m) return ft.base;
  if (name == "output.weight") return ops::Type::Q6_K;
  int layer = -1;
  char part[64] = {};
  if (std::sscanf(name.c_str(), "blk.%d.%63[a-z_]", &layer, part) == 2 &&
      (std::string(part) == "attn_v" || std::string(part) == "ffn_down")) {
    const int n = n_layers;
    const bool more_bits = layer < n / 8 || layer >= 7 * n / 8 || (layer - n / 8) % 3 == 2;
    if (more_bits) return ops::Type::Q6_K;
  }
  return ft.base;
}

ops::Type fitting_type(ops::Type wanted, int64_t cols) {
  const int block = ops::type_info(wanted).block;
  if (cols % block == 0) return wanted;
  return block == 256 && cols % ops::type_info(ops::Type::Q8_0).block == 0 ? ops::Type::Q8_0 : ops::Type::F16;
}

void add_llama_metadata(GgufWriter& w, const ModelConfig& c, const std::string& name, int file_type) {
  w.add_string("general.architecture", "llama");
  w.add_string("general.name", name);
  w.add_u32("general.alignment", 32);
  w.add_u32("general.file_type", uint32_t(file_type));
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

}  // namespace qkv
