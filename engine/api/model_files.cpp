#include "engine/api/model_files.h"

#include <cctype>
#include <cstdio>
#include <vector>

#include "engine/error.h"

namespace qkv {
namespace {

using ops::Type;

// llama.cpp's LLAMA_FTYPE values.
enum Ftype {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ8_0 = 7, kQ5_0 = 8, kQ5_1 = 9, kQ2_K = 10, kQ3_K_S = 11, kQ3_K_M = 12,
  kQ3_K_L = 13, kQ4_K_S = 14, kQ4_K_M = 15, kQ5_K_S = 16, kQ5_K_M = 17, kQ6_K = 18, kIQ4_NL = 25, kIQ4_XS = 30, kBF16 = 32,
};

const FileType kFileTypes[] = {
    {"f32", kF32, Type::F32},          {"f16", kF16, Type::F16},          {"bf16", kBF16, Type::BF16},
    {"q8_0", kQ8_0, Type::Q8_0},       {"q4_0", kQ4_0, Type::Q4_0},       {"q4_1", kQ4_1, Type::Q4_1},
    {"q5_0", kQ5_0, Type::Q5_0},       {"q5_1", kQ5_1, Type::Q5_1},       {"q2_k", kQ2_K, Type::Q2_K},
    {"q3_k_s", kQ3_K_S, Type::Q3_K},   {"q3_k_m", kQ3_K_M, Type::Q3_K},   {"q3_k_l", kQ3_K_L, Type::Q3_K},
    {"q4_k_s", kQ4_K_S, Type::Q4_K},   {"q4_k_m", kQ4_K_M, Type::Q4_K},   {"q5_k_s", kQ5_K_S, Type::Q5_K},
    {"q5_k_m", kQ5_K_M, Type::Q5_K},   {"q6_k", kQ6_K, Type::Q6_K},       {"iq4_nl", kIQ4_NL, Type::IQ4_NL},
    {"iq4_xs", kIQ4_XS, Type::IQ4_XS},
};

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

enum class Category { TokenEmbd, AttnQ, AttnV, AttnK, AttnOutput, FfnUp, FfnGate, FfnDown, Output, Other };

// llama-quantize's tensor categories (attn_qkv and attn_kv_b count as attn_v).
Category category_of(const std::string& name) {
  if (name == "output.weight") return Category::Output;
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") return Category::TokenEmbd;
  if (contains(name, "attn_qkv.weight") || contains(name, "attn_kv_b.weight") || contains(name, "attn_v.weight"))
    return Category::AttnV;
  if (contains(name, "attn_k.weight")) return Category::AttnK;
  if (contains(name, "attn_q.weight")) return Category::AttnQ;
  if (contains(name, "attn_output.weight")) return Category::AttnOutput;
  if (contains(name, "ffn_up")) return Category::FfnUp;
  if (contains(name, "ffn_gate")) return Category::FfnGate;
  if (contains(name, "ffn_down")) return Category::FfnDown;
  return Category::Other;
}

// Which tensors llama-quantize quantizes at all: matrices named *weight,
// not norms, expert gates, position or token-type embeddings.
bool quantizable(const std::string& name, int n_dims) {
  if (n_dims < 2) return false;
  if (name.size() < 6 || name.compare(name.size() - 6, 6, "weight") != 0) return false;
  for (const char* no : {"_norm.weight", "ffn_gate_inp.weight", "altup", "laurel", "per_layer_model_proj",
                         "ssm_conv1d", "shortconv.conv.weight", "attn_rel_b.weight", ".position_embd"})
    if (contains(name, no)) return false;
  return name != "position_embd.weight" && name != "token_types.weight";
}

bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

int layer_of(const std::string& name) {
  int layer = -1;
  std::sscanf(name.c_str(), "blk.%d.", &layer);
  return layer;
}

// tensor_type_fallback: the type llama-quantize takes when `t`'s blocks do
// not fit rows of ne0 values (F16 when the fallback's do not either).
Type fallback(Type t, int64_t ne0, std::string* note, const std::string& name) {
  const int block = ops::type_info(t).block;
  if (ne0 % block == 0) return t;
  Type f;
  switch (t) {
    case Type::IQ4_XS: f = Type::IQ4_NL; break;
    case Type::Q2_K: case Type::Q3_K: f = Type::Q4_0; break;
    case Type::Q4_K: f = Type::Q5_0; break;
    case Type::Q5_K: f = Type::Q5_1; break;
    case Type::Q6_K: f = Type::Q8_0; break;
    default: f = Type::F16; break;
  }
  if (ne0 % ops::type_info(f).block != 0) f = Type::F16;
  if (note)
    *note = cat(name, ": rows of ", ne0, " values are not a multiple of ", block, " (", ops::type_name(t), "): written as ",
                ops::type_name(f));
  return f;
}

}  // namespace

std::string ftype_description(int ftype) {
  switch (ftype) {
    case kF32: return "all F32";
    case kF16: return "F16";
    case kBF16: return "BF16";
    case kQ4_0: return "Q4_0";
    case kQ4_1: return "Q4_1";
    case kQ5_0: return "Q5_0";
    case kQ5_1: return "Q5_1";
    case kQ8_0: return "Q8_0";
    case kQ2_K: return "Q2_K - Medium";
    case kQ3_K_S: return "Q3_K - Small";
    case kQ3_K_M: return "Q3_K - Medium";
    case kQ3_K_L: return "Q3_K - Large";
    case kQ4_K_S: return "Q4_K - Small";
    case kQ4_K_M: return "Q4_K - Medium";
    case kQ5_K_S: return "Q5_K - Small";
    case kQ5_K_M: return "Q5_K - Medium";
    case kQ6_K: return "Q6_K";
    case kIQ4_NL: return "IQ4_NL - 4.5 bpw";
    case kIQ4_XS: return "IQ4_XS - 4.25 bpw";
    default: return "";
  }
}

const FileType* find_file_type(const std::string& name) {
  std::string lower = name;
  for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "q3_k" || lower == "q4_k" || lower == "q5_k") lower += "_m";  // llama-quantize's aliases
  for (const FileType& f : kFileTypes)
    if (lower == f.name) return &f;
  return nullptr;
}

std::string file_type_names() {
  std::string s;
  for (const FileType& f : kFileTypes) s += (s.empty() ? "" : ", ") + std::string(f.name);
  return s;
}

bool llama_tensor_before(const std::string& a, const std::string& b) {
  const int la = layer_of(a), lb = layer_of(b);
  return la != lb ? la < lb : a < b;
}

TypePlanner::TypePlanner(const FileType& ft, const std::vector<std::string>& names, int n_layers, int n_gqa, Options options)
    : ft_(ft), opt_(options), n_layers_(n_layers), n_gqa_(n_gqa) {
  for (const std::string& n : names) {
    if (category_of(n) == Category::AttnV) ++n_attn_v_;
    if (category_of(n) == Category::Output) tied_ = false;
  }
}

Type TypePlanner::next(const std::string& name, int n_dims, int64_t ne0, Type source, std::string* note) {
  if (!quantizable(name, n_dims)) return source;
  const Category c = category_of(name);
  if (opt_.embedding_type && c == Category::TokenEmbd) return opt_.embedding_type->type;
  if (opt_.output_type && c == Category::Output) return opt_.output_type->type;
  if (ops::type_info(ft_.base).compute != ops::Compute::Integer) return ft_.base;  // F32, F16, BF16: every matrix
  const Type t = opt_.pure ? ft_.base : mix(name, ft_.base, ne0);
  return fallback(t, ne0, note, name);
}

// llama_tensor_get_type_impl for the presets above.
Type TypePlanner::mix(const std::string& name, Type t, int64_t ne0) {
  const int f = ft_.ftype;
  const Category c = category_of(name);
  if (c == Category::Output || (tied_ && c == Category::TokenEmbd)) {
    if (ne0 % ops::type_info(t).block != 0) return Type::Q8_0;
    return t == Type::Q8_0 ? t : Type::Q6_K;
  }
  if (c == Category::AttnV) {
    const int i = i_attn_v_++;
    if (f == kQ2_K) return n_gqa_ >= 4 ? Type::Q4_K : Type::Q3_K;
    if (f == kQ3_K_M) return i < 2 ? Type::Q5_K : Type::Q4_K;
    if (f == kQ3_K_L) return Type::Q5_K;
    if ((f == kIQ4_NL || f == kIQ4_XS) && n_gqa_ >= 4) return Type::Q5_K;
    if ((f == kQ4_K_M || f == kQ5_K_M) && use_more_bits(i, n_attn_v_)) return Type::Q6_K;
    if (f == kQ4_K_S && i < 4) return Type::Q5_K;
    return t;
  }
  if (c == Category::FfnDown) {
    const int i = i_ffn_down_++, n = n_layers_;
    if (f == kQ2_K) return Type::Q3_K;
    if (f == kQ3_K_M) return i < n / 16 ? Type::Q5_K : Type::Q4_K;
    if (f == kQ3_K_L) return Type::Q5_K;
    if (f == kQ4_K_M) return use_more_bits(i, n) ? Type::Q6_K : t;
    if (i < n / 8 && (f == kIQ4_NL || f == kIQ4_XS)) return Type::Q5_K;
    if (f == kQ5_K_M && use_more_bits(i, n)) return Type::Q6_K;
    if (f == kQ4_K_S && i < n / 8) return Type::Q5_K;
    return t;
  }
  if (c == Category::AttnOutput) {
    if (f == kQ2_K) return Type::Q3_K;
    if (f == kQ3_K_M) return Type::Q4_K;
    if (f == kQ3_K_L) return Type::Q5_K;
  }
  return t;
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
