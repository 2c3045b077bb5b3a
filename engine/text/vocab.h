// A tokenizer vocabulary as the weight file gives it: the pieces, scores and
// token kinds, the special ids, and for byte-level BPE the merges and the
// pre-tokenizer name. SentencePiece pieces of kind Normal keep plain spaces,
// not U+2581 (as llama2.c's tokenizer.bin has them).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qkv {

class GgufFile;

enum class TokenKind : uint8_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

enum class VocabModel : uint8_t {
  Spm,  // SentencePiece: merges by score, byte fallback (tokenizer.ggml.model "llama")
  Bpe,  // byte-level BPE: pre-tokenizer, merges by rank (tokenizer.ggml.model "gpt2")
};

struct Vocab {
  VocabModel model = VocabModel::Spm;
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<TokenKind> kinds;
  std::vector<std::string> merges;  // Bpe: "left right", by rank
  std::string pre;                  // Bpe: tokenizer.ggml.pre ("" when the file has none)
  int bos = 1, eos = 2, unk = 0;    // -1: none
  std::vector<int> end_of_generation;  // eos, eot and the end-of-turn tokens llama.cpp stops at
  bool add_bos = true, add_eos = false;
  bool add_space_prefix = true;
  bool match_special = true;   // special and user-defined tokens are matched in the text (not llama2.c's)
  bool rstrip_special = false; // whitespace after a special token is dropped (Phi-3, as llama.cpp does)
  std::string chat_template;  // tokenizer.chat_template (Jinja), "" when the file has none
  std::string source;  // file it came from, for messages

  int size() const { return int(pieces.size()); }
};

// llama2.c tokenizer.bin: int32 max_token_length, then per token f32 score,
// int32 length, bytes. n_vocab is the model's vocabulary size; the file must
// hold exactly that many tokens (n_vocab 0: as many as it holds).
Vocab load_llama2c_vocab(const std::string& path, int n_vocab);

// The tokenizer.ggml.* vocabulary of a GGUF file (model or vocabulary-only),
// with llama.cpp's defaults and fix-ups (engine/text/gguf_vocab.cpp).
Vocab load_gguf_vocab(const std::string& path);
Vocab read_gguf_vocab(const GgufFile& file);

}  // namespace qkv
