// What the library's file writers share (api/quantize.cpp, api/synth.cpp):
// the metadata of new GGUF files under the keys llama.cpp reads, and
// llama-quantize's choice of a type for each matrix.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/format/gguf_writer.h"
#include "engine/runtime/model_config.h"
#include "engine/text/vocab.h"
#include "ops/types.h"

namespace qkv {

// The llama hyper-parameters of c, and a SentencePiece vocabulary.
void add_llama_metadata(GgufWriter& w, const ModelConfig& c, const std::string& name, int file_type);
void add_vocab_metadata(GgufWriter& w, const Vocab& v);

// A file type as `qkv quantize` and `qkv synth --type` name it: one of
// llama-quantize's presets (its name in lowercase, its LLAMA_FTYPE, and the
// type of most matrices).
struct FileType {
  const char* name;  // "q4_k_m"
  int ftype;         // llama.cpp's general.file_type
  ops::Type base;    // llama_ftype_get_default_type
};
// llama.cpp's description of a general.file_type ("Q4_K - Medium"), as
// llama-bench's model column prints it; "" for a value it does not know.
std::string ftype_description(int ftype);
// The file type called `name` (any case; "q3_k", "q4_k", "q5_k" are
// llama-quantize's aliases of the _M presets), or null.
const FileType* find_file_type(const std::string& name);
// "f32, f16, q8_0, ...": every preset find_file_type knows.
std::string file_type_names();

// llama-quantize's order of a file's tensors (llama_model_loader's
// weight_name_comparer): by layer number, the tensors outside blk.N first,
// then by name. Its per-layer rules count tensors in this order.
bool llama_tensor_before(const std::string& a, const std::string& b);

// llama-quantize's choice of a type for each tensor (llama_tensor_get_type:
// the preset's mix rules for llama-like models without experts, no
// importance matrix, then the fallback of a type whose blocks do not fit the
// rows). Ask for the tensors in llama_tensor_before's order.
class TypePlanner {
 public:
  struct Options {
    bool pure = false;                            // no mix rules: every matrix in the base type
    const ops::TypeInfo* output_type = nullptr;   // --output-tensor-type
    const ops::TypeInfo* embedding_type = nullptr; // --token-embedding-type
  };
  // names: every tensor of the file; n_layers, n_gqa: the model's block
  // count and query heads per KV head.
  TypePlanner(const FileType& ft, const std::vector<std::string>& names, int n_layers, int n_gqa, Options options);
  // The same from what it counts in the names: attn_v-like tensors, and
  // whether an output.weight exists.
  TypePlanner(const FileType& ft, int n_attn_v, bool has_output, int n_layers, int n_gqa, Options options)
      : ft_(ft), opt_(options), n_layers_(n_layers), n_gqa_(n_gqa), tied_(!has_output), n_attn_v_(n_attn_v) {}
  // The type tensor `name` (n_dims dimensions, rows of ne0 values, now of
  // type `source`) is written in; *note receives a line when its preset's
  // type does not fit its rows and another is taken.
  ops::Type next(const std::string& name, int n_dims, int64_t ne0, ops::Type source, std::string* note);

 private:
  ops::Type mix(const std::string& name, ops::Type type, int64_t ne0);
  const FileType& ft_;
  Options opt_;
  int n_layers_, n_gqa_;
  bool tied_ = true;  // no output.weight: token_embd serves as the classifier
  int n_attn_v_ = 0, i_attn_v_ = 0, i_ffn_down_ = 0;
};

}  // namespace qkv
