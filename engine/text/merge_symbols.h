// The merge loop both tokenizer models share: a word starts as one symbol per
// UTF-8 character (a doubly linked list over its bytes); the adjacent pair
// with the best priority is merged, again and again, until no pair has one.
// SentencePiece's priority is the merged piece's score (highest first),
// byte-level BPE's the pair's merge rank (lowest first); ties go to the
// leftmost pair, as in llama.cpp.
#pragma once

#include <algorithm>
#include <queue>
#include <string_view>
#include <vector>

namespace qkv {

struct MergeSymbol {
  int prev, next;
  size_t start, len;  // bytes of the text
};

// Length of the UTF-8 sequence that starts with byte c (1 for stray bytes).
inline size_t utf8_sequence_length(unsigned char c) {
  static const size_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lookup[c >> 4];
}

// Merges `text`'s symbols; priority(left, right) gives a pair's priority
// (larger merges first) or false when the pair does not merge. Returns the
// symbols; the merged ones are those reached from index 0 through next.
template <typename Priority>
std::vector<MergeSymbol> merge_symbols(std::string_view text, Priority priority) {
  std::vector<MergeSymbol> sym;
  sym.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t len = std::min(utf8_sequence_length(static_cast<unsigned char>(text[i])), text.size() - i);
    sym.push_back({int(sym.size()) - 1, int(sym.size()) + 1, i, len});
    i += len;
  }
  if (sym.empty()) return sym;
  sym.back().next = -1;

  struct Pair {
    int left, right;
    double priority;
    size_t len;  // combined length when queued; stale if it changed since
    bool operator<(const Pair& o) const { return priority < o.priority || (priority == o.priority && left > o.left); }
  };
  std::priority_queue<Pair> queue;
  auto try_pair = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    double p;
    if (priority(sym[size_t(left)], sym[size_t(right)], p))
      queue.push({left, right, p, sym[size_t(left)].len + sym[size_t(right)].len});
  };
  for (size_t i = 1; i < sym.size(); ++i) try_pair(int(i) - 1, int(i));
  while (!queue.empty()) {
    const Pair b = queue.top();
    queue.pop();
    MergeSymbol& l = sym[size_t(b.left)];
    MergeSymbol& r = sym[size_t(b.right)];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.len) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[size_t(r.next)].prev = b.left;
    try_pair(l.prev, b.left);
    try_pair(b.left, l.next);
  }
  return sym;
}

}  // namespace qkv
