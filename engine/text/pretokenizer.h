// Byte-level BPE pre-tokenizers: the regular expressions llama.cpp splits
// text with before BPE, chosen by the file's tokenizer.ggml.pre, applied one
// after another (each splits the pieces the previous one made).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/text/pretokenizer_regex.h"

namespace qkv {

class PreTokenizer {
 public:
  // `pre` as tokenizer.ggml.pre names it ("" = none: llama.cpp's default
  // expressions). Throws Error naming `source` and listing the supported
  // names for any other.
  PreTokenizer(const std::string& pre, const std::string& source);

  // The words of `text`, each as code points [begin, end) of `cps`, where
  // `cps` is text's code points (decode_utf8).
  std::vector<size_t> split(const std::vector<uint32_t>& cps) const;

  bool ignore_merges() const { return ignore_merges_; }  // a word in the vocabulary is one token

 private:
  std::vector<std::shared_ptr<const PreRegex>> regexes_;
  bool ignore_merges_ = false;
};

// llama.cpp's add_bos default for this pre-tokenizer (Llama 3's adds one);
// throws as the constructor does for an unknown name.
bool pretokenizer_adds_bos(const std::string& pre, const std::string& source);

// "gpt-2, llama-bpe, ..." for messages.
std::string supported_pretokenizers();

}  // namespace qkv
