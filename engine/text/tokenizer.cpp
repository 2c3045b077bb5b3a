#include "engine/text/tokenizer.h"

#include <algorithm>

#include <cstdio>
#include <queue>

#include "engine/error.h"

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

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {
  const int n = vocab_.size();
  if (n == 0) throw Error(cat(vocab_.source, ": empty vocabulary"));
  if (int(vocab_.scores.size()) != n || int(vocab_.kinds.size()) != n)
    throw Error(cat(vocab_.source, ": vocabulary arrays have different lengths"));
  // A vocabulary of nothing but control (or unused, unknown) tokens could
  // never write a character: refused rather than generating silence.
  const bool writable = std::any_of(vocab_.kinds.begin(), vocab_.kinds.end(), [](TokenKind k) {
    return k == TokenKind::Normal || k == TokenKind::Byte || k == TokenKind::UserDefined;
  });
  if (!writable)
    throw Error(cat(vocab_.source, ": none of the vocabulary's ", n,
                    " tokens is a normal, byte or user-defined token: the model could not write any text"));
  piece_to_id_.reserve(size_t(n));
  for (int i = 0; i < n; ++i) {
    if (vocab_.kinds[size_t(i)] == TokenKind::Control) continue;
    piece_to_id_.emplace(vocab_.pieces[size_t(i)], i);  // first id wins on duplicates
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto it = piece_to_id_.find(name);
    byte_to_id_[b] = it != piece_to_id_.end() ? it->second : vocab_.unk;
  }
}

std::vector<int> Tokenizer::encode(std::string_view input, bool add_bos) const {
  std::vector<int> out;
  if (add_bos) out.push_back(vocab_.bos);
  if (input.empty()) return out;

  std::string text;
  text.reserve(input.size() + 1);
  if (vocab_.add_space_prefix) text.push_back(' ');
  text.append(input);

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
  auto try_pair = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const std::string_view piece(text.data() + sym[size_t(left)].start, sym[size_t(left)].len + sym[size_t(right)].len);
    auto it = piece_to_id_.find(std::string(piece));
    if (it == piece_to_id_.end()) return;
    queue.push({left, right, vocab_.scores[size_t(it->second)], piece.size()});
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
    auto it = piece_to_id_.find(std::string(text.data() + s.start, s.len));
    if (it != piece_to_id_.end()) {
      out.push_back(it->second);
    } else {
      for (size_t j = 0; j < s.len; ++j) out.push_back(byte_to_id_[static_cast<unsigned char>(text[s.start + j])]);
    }
  }
  return out;
}

std::string Tokenizer::decode(int prev, int id) const {
  if (id < 0 || id >= size()) return std::string();
  const TokenKind kind = vocab_.kinds[size_t(id)];
  if (kind == TokenKind::Control || kind == TokenKind::Unused) return std::string();
  const std::string& piece = vocab_.pieces[size_t(id)];
  if (kind == TokenKind::Byte) {
    unsigned v = 0;
    if (std::sscanf(piece.c_str(), "<0x%02X>", &v) == 1) return std::string(1, char(v));
    return piece;
  }
  if (kind == TokenKind::Unknown) return piece;
  // SentencePiece drops the dummy prefix space of the first word.
  if (prev == vocab_.bos && !piece.empty() && piece[0] == ' ') return piece.substr(1);
  return piece;
}

}  // namespace qkv
