// The small regular-expression engine behind the BPE pre-tokenizers: the
// subset of ECMAScript syntax that llama.cpp's pre-tokenizer expressions use
// (alternation, non-capturing groups, character classes with ranges, \s, \S,
// \p{L}/\p{N}/\p{P}/\p{S}/\p{M}, quantifiers ? * + {n} {n,m}, a negative
// lookahead of one character class, and $), matched leftmost-first and
// greedily as std::regex does, over code points.
//
// Matching is a backtracking search whose depth is bounded by the pattern
// (every repeat is of a single character class, counted in a loop), so no
// text, however long, can exhaust the stack.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qkv {

class PreRegex {
 public:
  // Throws Error naming the pattern for syntax outside the subset.
  explicit PreRegex(std::string_view pattern);

  // Splits every piece [start, start + length) of `text` further, as
  // llama.cpp's unicode_regex_split does: each match becomes a piece and so
  // does the text between matches. `pieces` holds lengths in code points.
  std::vector<size_t> split(const std::vector<uint32_t>& text, const std::vector<size_t>& pieces) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct CharSet {
    bool negate = false;
    bool space = false;      // \s
    uint8_t classes = 0;     // bit per CharClass (\p{...})
    std::vector<std::pair<uint32_t, uint32_t>> ranges;
    bool matches(uint32_t cp) const;
  };
  enum class Kind : uint8_t { Set, NotFollowedBy, End };
  struct Item {
    Kind kind = Kind::Set;
    CharSet set;                 // Set
    std::vector<CharSet> ahead;  // NotFollowedBy: fails if the next char is in any
    uint32_t min = 1, max = 1;
    uint32_t id = 0;  // index into a RunCache
  };
  using Seq = std::vector<Item>;

  // Parser (recursive over the pattern's nesting only).
  std::vector<Seq> parse_alternation(const std::vector<uint32_t>& p, size_t& i, int depth) const;
  CharSet parse_class(const std::vector<uint32_t>& p, size_t& i) const;
  bool parse_escape(const std::vector<uint32_t>& p, size_t& i, CharSet& set, bool in_class) const;
  [[noreturn]] void fail(const char* what, size_t at) const;

  // Where the run of each repeated class that was last counted ends
  // (first, end): a search that starts again inside it (as one that fails
  // at every position of a long run does) does not count it again.
  using RunCache = std::vector<std::pair<size_t, size_t>>;

  // Match of alternative `s` from item k at pos within [.., end): its end, or -1.
  long match_from(const Seq& s, size_t k, const uint32_t* text, size_t pos, size_t end, RunCache& runs) const;
  long match_at(const uint32_t* text, size_t pos, size_t end, RunCache& runs) const;

  std::string pattern_;
  std::vector<Seq> alternatives_;
  size_t n_items_ = 0;
};

}  // namespace qkv
