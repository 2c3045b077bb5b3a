// Metadata that qkv synth and qkv quantize write into new GGUF files: the
// llama hyper-parameters and a SentencePiece vocabulary, under the keys
// llama.cpp reads.
#pragma once

#include <string>

#include "engine/gguf_writer.h"
#include "engine/model_config.h"
#include "engine/vocab.h"

namespace qkv::cli {

void add_llama_metadata(GgufWriter& w, const ModelConfig& c, const std::string& name, uint32_t file_type);
void add_vocab_metadata(GgufWriter& w, const Vocab& v);

// GGML's general.file_type for a file whose matrices are all of one type.
uint32_t file_type_of(uint32_t ggml_type);

// The GGML type id of a --type name (f32 f16 q8_0 q4_0 q4_k q5_k q6_k); 0
// for f32, kMixQ4_K_M for q4_k_m, and ~0u for a name that is none of these.
constexpr uint32_t kMixQ4_K_M = 1000;  // not a GGML type: a mix of Q4_K and Q6_K
uint32_t weight_type_id(const std::string& name);

// The type of matrix `name` in a file of n_layers layers written as `wanted`:
// `wanted` itself, except for the mix kMixQ4_K_M, which follows
// llama-quantize's main Q4_K_M rules: Q6_K for output.weight and for
// attn_v / ffn_down in the layers where more bits pay most (the first and
// last eighth, and every third between), Q4_K elsewhere.
uint32_t matrix_type(uint32_t wanted, const std::string& name, int n_layers);

// The type a matrix with rows of `cols` values is written in when `wanted`
// does not fit them (rows not a multiple of its block): Q8_0 for a K-quant
// when 32-value blocks fit, else F16; `wanted` itself when it fits.
uint32_t fitting_type(uint32_t wanted, int64_t cols);

}  // namespace qkv::cli
