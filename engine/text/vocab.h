// A SentencePiece-style vocabulary: pieces (with spaces as ' ', not U+2581),
// scores, token kinds and the special ids.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qkv {

enum class TokenKind : uint8_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct Vocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<TokenKind> kinds;
  int bos = 1, eos = 2, unk = 0;
  bool add_space_prefix = true;
  std::string source;  // file it came from, for messages

  int size() const { return int(pieces.size()); }
};

// llama2.c tokenizer.bin: int32 max_token_length, then per token f32 score,
// int32 length, bytes. n_vocab is the model's vocabulary size; the file must
// hold exactly that many tokens (n_vocab 0: as many as it holds).
Vocab load_llama2c_vocab(const std::string& path, int n_vocab);

// The tokenizer.ggml.* vocabulary of a GGUF file (model or vocabulary-only).
Vocab load_gguf_vocab(const std::string& path);

}  // namespace qkv
