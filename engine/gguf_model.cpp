// A GGUF file as a WeightFile: hyper-parameters from "{arch}.*" metadata,
// the vocabulary from "tokenizer.ggml.*", tensors by their GGUF names.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/error.h"
#include "engine/gguf.h"
#include "engine/weight_file.h"
#include "ops/ops.h"

namespace qkv {
namespace {

int positive_int(const GgufFile& g, const std::string& key, std::optional<uint64_t> v) {
  if (!v) throw Error(cat(g.path(), ": missing metadata key ", key));
  if (*v == 0 || *v > (1u << 30)) throw Error(cat(g.path(), ": key ", key, " = ", *v, " is out of range"));
  return int(*v);
}

Vocab read_vocab(const GgufFile& g) {
  const std::string model = g.get_string("tokenizer.ggml.model");
  if (model != "llama")
    throw Error(cat(g.path(), ": tokenizer model '", model, "' is not supported (supported: llama)"));
  Vocab v;
  v.source = g.path();
  v.pieces = g.get_string_array("tokenizer.ggml.tokens");
  const size_t n = v.pieces.size();
  if (n == 0) throw Error(cat(g.path(), ": tokenizer.ggml.tokens is empty"));
  if (g.has("tokenizer.ggml.scores")) {
    v.scores = g.get_float_array("tokenizer.ggml.scores");
    if (v.scores.size() != n)
      throw Error(cat(g.path(), ": tokenizer.ggml.scores has ", v.scores.size(), " entries, expected ", n));
  } else {
    v.scores.assign(n, 0.0f);
  }
  v.kinds.assign(n, TokenKind::Normal);
  if (g.has("tokenizer.ggml.token_type")) {
    const std::vector<int64_t> types = g.get_int_array("tokenizer.ggml.token_type");
    if (types.size() != n)
      throw Error(cat(g.path(), ": tokenizer.ggml.token_type has ", types.size(), " entries, expected ", n));
    for (size_t i = 0; i < n; ++i) {
      if (types[i] < 1 || types[i] > 6)
        throw Error(cat(g.path(), ": tokenizer.ggml.token_type[", i, "] = ", types[i], " is not a token type"));
      v.kinds[i] = TokenKind(types[i]);
    }
  }
  auto id = [&](const char* key, int def) {
    const std::optional<uint64_t> x = g.get_uint(key);
    const uint64_t val = x ? *x : uint64_t(def);
    if (val >= n) throw Error(cat(g.path(), ": ", key, " = ", val, " is outside the vocabulary of ", n, " tokens"));
    return int(val);
  };
  v.bos = id("tokenizer.ggml.bos_token_id", 1);
  v.eos = id("tokenizer.ggml.eos_token_id", 2);
  v.unk = id("tokenizer.ggml.unknown_token_id", 0);
  if (const GgufValue* sp = g.find("tokenizer.ggml.add_space_prefix"))
    if (sp->type == GgufType::BOOL) v.add_space_prefix = sp->u != 0;
  // SentencePiece marks spaces with U+2581; we keep plain spaces, as llama2.c does.
  static const std::string kSpace = "\xe2\x96\x81";
  for (std::string& p : v.pieces) {
    for (size_t pos = p.find(kSpace); pos != std::string::npos; pos = p.find(kSpace, pos + 1))
      p.replace(pos, kSpace.size(), " ");
  }
  return v;
}

class GgufWeights : public WeightFile {
 public:
  GgufWeights(const std::string& path, bool use_mmap) : gguf_(path, use_mmap) {
    path_ = path;
    mapped_ = gguf_.mapped();
    format_ = cat("GGUF v", gguf_.version());
    const std::string arch = gguf_.get_string("general.architecture");
    if (arch != "llama")
      throw Error(cat(path, ": architecture '", arch, "' is not supported (supported: llama)"));
    ModelConfig& c = config_;
    c.arch = arch;
    auto key = [&](const char* k) { return arch + "." + k; };
    c.dim = positive_int(gguf_, key("embedding_length"), gguf_.get_uint(key("embedding_length")));
    c.hidden_dim = positive_int(gguf_, key("feed_forward_length"), gguf_.get_uint(key("feed_forward_length")));
    c.n_layers = positive_int(gguf_, key("block_count"), gguf_.get_uint(key("block_count")));
    c.n_heads = positive_int(gguf_, key("attention.head_count"), gguf_.get_uint(key("attention.head_count")));
    const auto kvh = gguf_.get_uint(key("attention.head_count_kv"));
    c.n_kv_heads = kvh ? positive_int(gguf_, key("attention.head_count_kv"), kvh) : c.n_heads;
    c.context_length = positive_int(gguf_, key("context_length"), gguf_.get_uint(key("context_length")));
    if (c.dim % c.n_heads != 0)
      throw Error(cat(path, ": embedding_length ", c.dim, " is not divisible by head_count ", c.n_heads));
    if (c.n_kv_heads > c.n_heads || c.n_heads % c.n_kv_heads != 0)
      throw Error(cat(path, ": head_count ", c.n_heads, " is not a multiple of head_count_kv ", c.n_kv_heads));
    c.head_dim = c.dim / c.n_heads;
    if (auto rd = gguf_.get_uint(key("rope.dimension_count"))) {
      if (int64_t(*rd) != c.head_dim)
        throw Error(cat(path, ": rope.dimension_count ", *rd, " differs from the head size ", c.head_dim,
                        " (partial RoPE is not supported)"));
    }
    if (c.head_dim % 2 != 0) throw Error(cat(path, ": head size ", c.head_dim, " is odd; RoPE needs pairs"));
    if (auto base = gguf_.get_float(key("rope.freq_base"))) c.rope_base = float(*base);
    if (auto eps = gguf_.get_float(key("attention.layer_norm_rms_epsilon"))) c.rms_eps = float(*eps);
    if (!(c.rope_base > 0.0f) || !std::isfinite(c.rope_base))
      throw Error(cat(path, ": rope.freq_base ", c.rope_base, " is not a positive number"));
    if (!(c.rms_eps >= 0.0f) || !std::isfinite(c.rms_eps))
      throw Error(cat(path, ": layer_norm_rms_epsilon ", c.rms_eps, " is not a non-negative number"));

    for (const GgufTensorInfo& ti : gguf_.tensors()) {
      // Tensors of types we cannot compute with are refused when the model
      // asks for them (find() leaves them out; require() names them).
      static const uint32_t kComputable[] = {0, 1, 2, 8, 12, 13, 14, 30};
      if (std::find(std::begin(kComputable), std::end(kComputable), ti.ggml_type) == std::end(kComputable)) {
        unsupported_[ti.name] = ti.ggml_type;
        continue;
      }
      Tensor t = gguf_.tensor(ti);
      if (t.type == DType::BF16) t = widen_bf16(t);
      add(std::move(t));
    }
    if (gguf_.has("tokenizer.ggml.model")) vocab_ = read_vocab(gguf_);
    const Tensor* emb = find("token_embd.weight");
    c.vocab_size = emb ? int(emb->ne[1]) : vocab_ ? vocab_->size() : 0;
    if (vocab_ && vocab_->size() != c.vocab_size)
      throw Error(cat(path, ": tokenizer has ", vocab_->size(), " tokens but token_embd.weight has ", c.vocab_size, " rows"));
    // Only llama2.c-trained story models use BOS as a story separator, but
    // emitting BOS mid-text ends a story in any llama model.
    c.stop_on_bos = true;
    if (auto it = unsupported_.find("token_embd.weight"); it != unsupported_.end())
      throw Error(cat(path, ": tensor token_embd.weight has type ", dtype_name(it->second),
                      ", which qkv cannot compute with yet (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)"));
    for (const auto& [name, type] : unsupported_)
      throw Error(cat(path, ": tensor ", name, " has type ", dtype_name(type),
                      ", which qkv cannot compute with yet (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)"));
  }

 private:
  // BF16 is widened to F32 once at load (kept in owned memory).
  Tensor widen_bf16(Tensor t) {
    const size_t n = size_t(t.n_elements());
    owned_.emplace_back(new float[n]);
    const uint16_t* src = static_cast<const uint16_t*>(t.data);
    for (size_t i = 0; i < n; ++i) owned_.back()[i] = ops::bf16_to_f32(src[i]);
    t.type = DType::F32;
    t.data = owned_.back().get();
    return t;
  }

  GgufFile gguf_;
  std::map<std::string, uint32_t> unsupported_;
  std::vector<std::unique_ptr<float[]>> owned_;
};

}  // namespace

std::unique_ptr<WeightFile> open_gguf(const std::string& path, bool use_mmap) {
  return std::make_unique<GgufWeights>(path, use_mmap);
}

}  // namespace qkv

namespace qkv {

Vocab load_gguf_vocab(const std::string& path) {
  GgufFile g(path);
  if (!g.has("tokenizer.ggml.model")) throw Error(cat(path, ": no tokenizer.ggml.* metadata in this GGUF file"));
  return read_vocab(g);
}

}  // namespace qkv
