// Byte-level BPE encoding of one piece of text (llama.cpp's BPE session):
// the pre-tokenizer cuts it into words; each word, written in GPT-2's byte
// characters, starts as one symbol per character and merges the adjacent pair
// of lowest merge rank (leftmost on ties) until no pair has a rank. A word
// that is a token as a whole is that token when the pre-tokenizer says so
// (Llama 3's ignore_merges). A final symbol that is not a token falls back to
// the tokens of its single bytes.
#include <queue>

#include "engine/text/tokenizer.h"
#include "engine/text/unicode.h"

namespace qkv {
namespace {

size_t utf8_len(unsigned char c) {
  static const size_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lookup[c >> 4];
}

struct Symbol {
  int prev, next;
  size_t start, len;  // bytes of the word
};

struct Bigram {
  int left, right;
  int rank;
  size_t len;  // combined length when queued; stale if it changed since
  bool operator<(const Bigram& o) const {
    // priority_queue pops the largest: lowest rank first, leftmost on ties.
    return rank > o.rank || (rank == o.rank && left > o.left);
  }
};

}  // namespace

void Tokenizer::encode_bpe(std::string_view text, std::vector<int>& out) const {
  const std::vector<uint32_t> cps = decode_utf8(text);
  const std::vector<size_t> words = pre_->split(cps);
  std::string word, key;
  std::vector<Symbol> sym;
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
    sym.clear();
    for (size_t i = 0; i < word.size();) {
      const size_t len = std::min(utf8_len(static_cast<unsigned char>(word[i])), word.size() - i);
      sym.push_back({int(sym.size()) - 1, int(sym.size()) + 1, i, len});
      i += len;
    }
    if (sym.empty()) continue;
    sym.back().next = -1;

    std::priority_queue<Bigram> queue;
    auto try_pair = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      const Symbol& l = sym[size_t(left)];
      const Symbol& r = sym[size_t(right)];
      key.assign(word, l.start, l.len);
      key.push_back(' ');
      key.append(word, r.start, r.len);
      auto it = merge_rank_.find(key);
      if (it == merge_rank_.end()) return;
      queue.push({left, right, it->second, l.len + r.len});
    };
    for (size_t i = 1; i < sym.size(); ++i) try_pair(int(i) - 1, int(i));
    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& l = sym[size_t(b.left)];
      Symbol& r = sym[size_t(b.right)];
      if (l.len == 0 || r.len == 0 || l.len + r.len != b.len) continue;  // stale
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (r.next >= 0) sym[size_t(r.next)].prev = b.left;
      try_pair(l.prev, b.left);
      try_pair(b.left, l.next);
    }

    for (int i = 0; i != -1; i = sym[size_t(i)].next) {
      const Symbol& s = sym[size_t(i)];
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
