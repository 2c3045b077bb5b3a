// Text <-> token ids, as llama.cpp tokenizes:
//  1. special tokens are cut out of the text first, longest first: control
//     tokens when parse_special is set, user-defined tokens always;
//  2. each remaining piece goes through the vocabulary's model:
//     SentencePiece (tokenizer_spm.cpp: merge the best-scoring adjacent pair
//     first, byte fallback <0xNN>) or byte-level BPE (tokenizer_bpe.cpp:
//     pre-tokenizer, then merges by rank over GPT-2's byte characters);
//  3. BOS/EOS around it when add_special is set and the vocabulary says so.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/text/pretokenizer.h"
#include "engine/text/vocab.h"

namespace qkv {

class Tokenizer {
 public:
  explicit Tokenizer(Vocab vocab);

  const Vocab& vocab() const { return vocab_; }
  int size() const { return vocab_.size(); }

  // Any bytes in, never fails: invalid UTF-8 goes through byte fallback
  // (SentencePiece) or becomes U+FFFD (BPE), as in llama.cpp.
  std::vector<int> encode(std::string_view text, bool add_special, bool parse_special = false) const;

  // The bytes token `id` stands for, after token `prev` (-1 if none).
  // Control tokens decode to nothing.
  std::string decode(int prev, int id) const;

  // llama.cpp's token_to_piece: the bytes of `id` on its own; control and
  // unknown tokens give their text only when `special` is set.
  std::string piece(int id, bool special) const;

  bool is_end_of_generation(int id) const;

 private:
  struct Fragment {
    int token;  // -1: text [begin, begin + length)
    size_t begin, length;
  };
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;
  void encode_spm(std::string_view text, std::vector<int>& out) const;
  void encode_bpe(std::string_view text, std::vector<int>& out) const;
  int find(const std::string& piece) const;  // -1 if not a token

  Vocab vocab_;
  std::unordered_map<std::string, int> piece_to_id_;  // SentencePiece: control tokens left out
  std::unordered_map<std::string, int> merge_rank_;   // BPE: "left right" -> rank
  std::unique_ptr<PreTokenizer> pre_;                 // BPE
  std::vector<int> specials_;                         // matched in the text, longest first
  int byte_to_id_[256];
};

}  // namespace qkv
