// SentencePiece encoding of one piece of text: start from one symbol per
// UTF-8 character, merge the adjacent pair whose merged text is the
// best-scoring token (leftmost on ties) until no pair is a token; symbols that
// are not tokens fall back to their bytes (<0xNN>).
#include <algorithm>
#include <queue>

#include "engine/text/tokenizer.h"

namespace qkv {
namespace {

// Length of the UTF-8 sequence that starts with byte c (1 for stray bytes).
size_t utf8_len(unsigned char c) {
  static const size_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lookup[c >> 4];
}

// A run of text that may merge with its neighbours (a doubly linked list).
struct Symbol {
  int prev, next;
  size_t start, len;  // bytes of the text
};

struct Bigram {
  int left, right;
  float score;
  size_t len;  // combined length when queued; stale if it changed since
  bool operator<(const Bigram& o) const {
    // priority_queue pops the largest: best score first, leftmost on ties.
    return score < o.score || (score == o.score && left > o.left);
  }
};

}  // namespace

void Tokenizer::encode_spm(std::string_view text, std::vector<int>& out) const {
  if (text.empty()) return;
  // One symbol per UTF-8 character.
  std::vector<Symbol> sym;
  sym.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t len = std::min(utf8_len(static_cast<unsigned char>(text[i])), text.size() - i);
    sym.push_back({int(sym.size()) - 1, int(sym.size()) + 1, i, len});
    i += len;
  }
  sym.back().next = -1;

  std::priority_queue<Bigram> queue;
  std::string piece;
  auto try_pair = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    piece.assign(text.data() + sym[size_t(left)].start, sym[size_t(left)].len + sym[size_t(right)].len);
    const int id = find(piece);
    if (id < 0) return;
    queue.push({left, right, vocab_.scores[size_t(id)], piece.size()});
  };
  for (size_t i = 1; i < sym.size(); ++i) try_pair(int(i) - 1, int(i));

  // Merge the best pair until none is left.
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
    piece.assign(text.data() + s.start, s.len);
    const int id = find(piece);
    if (id >= 0) {
      out.push_back(id);
    } else {
      for (size_t j = 0; j < s.len; ++j) out.push_back(byte_to_id_[static_cast<unsigned char>(text[s.start + j])]);
    }
  }
}

}  // namespace qkv
