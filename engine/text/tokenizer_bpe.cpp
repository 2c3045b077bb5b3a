// Byte-level BPE encoding of one piece of text (llama.cpp's BPE session):
// the pre-tokenizer cuts it into words; each word, written in GPT-2's byte
// characters, starts as one symbol per character and merges the adjacent pair
// of lowest merge rank (leftmost on ties) until no pair has a rank. A word
// that is a token as a whole is that token when the pre-tokenizer says so
// (Llama 3's ignore_merges). A final symbol that is not a token falls back to
// the tokens of its single bytes.
#include "engine/text/merge_symbols.h"
#include "engine/text/tokenizer.h"
#include "engine/text/unicode.h"

namespace qkv {

void Tokenizer::encode_bpe(std::string_view text, std::vector<int>& out) const {
  const std::vector<uint32_t> cps = decode_utf8(text);
  const std::vector<size_t> words = pre_->split(cps);
  std::string word, key;
  size_t at = 0;
  for (const size_t n_cps : words) {
    // The word's bytes (invalid UTF-8 already became U+FFFD), as GPT-2's characters.
    std::string bytes;
    for (size_t i = at; i < at + n_cps; ++i) append_utf8(bytes, cps[i]);
    at += n_cps;
    word.clear();
    for (const char c : bytes) append_utf8(word, byte_to_char(static_cast<uint8_t>(c)));

    if (pre_->ignore_merges()) {
      const int id = find(word);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
    }
    // Lower rank merges first: the priority is minus the rank.
    const std::vector<MergeSymbol> sym =
        merge_symbols(word, [&](const MergeSymbol& l, const MergeSymbol& r, double& priority) {
          key.assign(word, l.start, l.len);
          key.push_back(' ');
          key.append(word, r.start, r.len);
          auto it = merge_rank_.find(key);
          if (it == merge_rank_.end()) return false;
          priority = -double(it->second);
          return true;
        });
    if (sym.empty()) continue;
    for (int i = 0; i != -1; i = sym[size_t(i)].next) {
      const MergeSymbol& s = sym[size_t(i)];
      key.assign(word, s.start, s.len);
      const int id = find(key);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      // llama.cpp looks up each byte of the symbol's text on its own.
      for (size_t j = 0; j < s.len; ++j) {
        const int b = find(std::string(1, word[s.start + j]));
        if (b >= 0) out.push_back(b);
      }
    }
  }
}

}  // namespace qkv
