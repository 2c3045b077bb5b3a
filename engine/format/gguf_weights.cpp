// A GGUF file as a WeightFile: its metadata as it is, the vocabulary from
// "tokenizer.ggml.*", tensors by their GGUF names.
#include <algorithm>
#include <cstring>

#include "engine/error.h"
#include "engine/format/gguf.h"
#include "engine/format/weight_file.h"

namespace qkv {
namespace {

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
    arch_ = gguf_.get_string("general.architecture");
    for (size_t i = arch_.find('\0'); i != std::string::npos; i = arch_.find('\0', i))
      arch_.replace(i, 1, "\\0");  // shown, not cut, in messages
    std::map<std::string, uint32_t> unsupported;
    for (const GgufTensorInfo& ti : gguf_.tensors()) {
      // Tensors of types we cannot compute with are refused below, after the
      // embedding's (the first a user would ask about).
      const ops::TypeInfo* type = ops::find_type(ti.ggml_type);
      if (!type || !type->computable()) {
        unsupported[ti.name] = ti.ggml_type;
        continue;
      }
      Tensor t = gguf_.tensor(ti);
      if (type->compute == ops::Compute::WidenF32) t = widen_to_f32(t);
      add(std::move(t));
    }
    if (gguf_.has("tokenizer.ggml.model")) vocab_ = read_vocab(gguf_);
    if (auto it = unsupported.find("token_embd.weight"); it != unsupported.end())
      throw Error(cat(path, ": tensor token_embd.weight has type ", ops::type_name(it->second),
                      ", which qkv cannot compute with yet (supported: ", ops::computable_type_names(), ")"));
    for (const auto& [name, type] : unsupported)
      throw Error(cat(path, ": tensor ", name, " has type ", ops::type_name(type),
                      ", which qkv cannot compute with yet (supported: ", ops::computable_type_names(), ")"));
  }

  std::optional<uint64_t> get_uint(const std::string& key) const override { return gguf_.get_uint(key); }
  std::optional<double> get_float(const std::string& key) const override { return gguf_.get_float(key); }

 private:
  // Types computed as F32 (BF16) are widened once at load (kept in owned memory).
  Tensor widen_to_f32(Tensor t) {
    const size_t n = size_t(t.n_elements());
    owned_.emplace_back(new float[n]);
    t.info().to_float(t.data, owned_.back().get(), n);
    t.type = Type::F32;
    t.data = owned_.back().get();
    return t;
  }

  GgufFile gguf_;
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
