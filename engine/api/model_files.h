// What the library's file writers share (api/quantize.cpp, api/synth.cpp):
// the metadata of new GGUF files under the keys llama.cpp reads, and
// llama-quantize's choice of a type for each matrix.
#pragma once

#include <cstdint>
#include <string>

#include "engine/format/gguf_writer.h"
#include "engine/runtime/model_config.h"
#include "engine/text/vocab.h"
#include "ops/types.h"

namespace qkv {

// The llama hyper-parameters of c, and a SentencePiece vocabulary.
void add_llama_metadata(GgufWriter& w, const ModelConfig& c, const std::string& name, int file_type);
void add_vocab_metadata(GgufWriter& w, const Vocab& v);

// A file type as `qkv quantize --type` and `qkv synth --type` name it: one
// weight type for every matrix, or a mix of types (llama-quantize's presets).
struct FileType {
  const char* name;     // "q4_k_m"
  ops::Type base;       // the type of most matrices
  bool q4_k_m;          // Q6_K for output.weight and the use_more_bits layers' attn_v / ffn_down
  int file_type;        // llama.cpp's general.file_type
};
// The file type called `name` (any case), or null.
const FileType* find_file_type(const std::string& name);
// "f32, f16, q8_0, ...": every name find_file_type knows.
std::string file_type_names();

// The type matrix `name` of a file of n_layers layers is written in: the
// file type's own, or its mix's choice (Q4_K_M: Q6_K for output.weight and
// for attn_v / ffn_down in the layers where more bits pay most, the first
// and last eighth and every third between).
ops::Type matrix_type(const FileType& ft, const std::string& name, int n_layers);

// The type a matrix with rows of `cols` values is written in when `wanted`
// does not fit them (rows not a multiple of its block): Q8_0 for a 256-value
// type when 32-value blocks fit, else F16; `wanted` itself when it fits.
ops::Type fitting_type(ops::Type wanted, int64_t cols);

}  // namespace qkv
