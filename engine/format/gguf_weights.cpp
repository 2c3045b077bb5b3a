// A GGUF file as a WeightFile: its metadata as it is, the vocabulary from
// "tokenizer.ggml.*", tensors by their GGUF names.
#include <algorithm>
#include <cstring>

#include "engine/error.h"
#include "engine/format/gguf.h"
#include "engine/format/weight_file.h"
#include "engine/text/vocab.h"

namespace qkv {
namespace {

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
      add(gguf_.tensor(ti));
    }
    if (gguf_.has("tokenizer.ggml.model")) vocab_ = read_gguf_vocab(gguf_);
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
  GgufFile gguf_;
};

}  // namespace

std::unique_ptr<WeightFile> open_gguf(const std::string& path, bool use_mmap) {
  return std::make_unique<GgufWeights>(path, use_mmap);
}

}  // namespace qkv

