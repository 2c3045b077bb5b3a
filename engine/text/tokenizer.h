// SentencePiece-style BPE: text -> token ids by merging the best-scoring
// adjacent pair first, with byte fallback (<0xNN>) for anything not in the
// vocabulary; ids -> text, dropping the space after BOS as llama2.c does.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/text/vocab.h"

namespace qkv {

class Tokenizer {
 public:
  explicit Tokenizer(Vocab vocab);

  const Vocab& vocab() const { return vocab_; }
  int size() const { return vocab_.size(); }

  // Any bytes in, never fails: invalid UTF-8 goes through byte fallback.
  std::vector<int> encode(std::string_view text, bool add_bos) const;

  // The bytes token `id` stands for, after token `prev` (-1 if none).
  // Control tokens decode to nothing.
  std::string decode(int prev, int id) const;

 private:
  Vocab vocab_;
  std::unordered_map<std::string, int> piece_to_id_;  // control tokens left out
  int byte_to_id_[256];
};

}  // namespace qkv
