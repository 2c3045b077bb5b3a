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

}  // namespace qkv::cli
