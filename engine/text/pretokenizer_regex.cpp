#include "engine/text/pretokenizer_regex.h"

#include <algorithm>

#include "engine/error.h"
#include "engine/text/unicode.h"

namespace qkv {
namespace {

constexpr uint32_t kUnbounded = UINT32_MAX;

uint8_t class_bit(CharClass c) { return uint8_t(1u << unsigned(c)); }

bool is_hex(uint32_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
uint32_t hex_value(uint32_t c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

}  // namespace

bool PreRegex::CharSet::matches(uint32_t cp) const {
  bool in = (space && is_whitespace(cp)) || (classes & class_bit(char_class(cp))) != 0;
  for (size_t i = 0; !in && i < ranges.size(); ++i) in = cp >= ranges[i].first && cp <= ranges[i].second;
  return in != negate;
}

void PreRegex::fail(const char* what, size_t at) const {
  throw Error(cat("pre-tokenizer expression '", pattern_, "': ", what, " at character ", at));
}

PreRegex::PreRegex(std::string_view pattern) : pattern_(pattern) {
  const std::vector<uint32_t> p = decode_utf8(pattern);
  size_t i = 0;
  alternatives_ = parse_alternation(p, i, 0);
  if (i != p.size()) fail("unbalanced ')'", i);
  for (Seq& s : alternatives_)
    for (Item& it : s) it.id = uint32_t(n_items_++);
}

// One escape after '\' (p[i] is the character after the backslash). Adds it
// to `set`; returns true when it was a single character (usable in a range).
bool PreRegex::parse_escape(const std::vector<uint32_t>& p, size_t& i, CharSet& set, bool in_class) const {
  if (i >= p.size()) fail("'\\' at the end", i);
  const uint32_t c = p[i++];
  auto single = [&](uint32_t cp) {
    set.ranges.push_back({cp, cp});
    return true;
  };
  switch (c) {
    case 's': set.space = true; return false;
    case 'S':
      if (in_class) fail("\\S inside a class", i);
      set.space = true;
      set.negate = true;
      return false;
    case 'd': set.ranges.push_back({'0', '9'}); return false;
    case 'r': return single('\r');
    case 'n': return single('\n');
    case 't': return single('\t');
    case 'f': return single('\f');
    case 'v': return single('\v');
    case 'p': {
      if (i >= p.size() || p[i] != '{') fail("\\p without {", i);
      const size_t close = size_t(std::find(p.begin() + long(i), p.end(), uint32_t('}')) - p.begin());
      if (close >= p.size()) fail("\\p{ without }", i);
      std::string name;
      for (size_t k = i + 1; k < close; ++k) name.push_back(char(p[k]));
      i = close + 1;
      // \p{Lu} and the other letter subcategories count as letters, as llama.cpp has them.
      static const struct { const char* name; CharClass cls; } kClasses[] = {
          {"L", CharClass::Letter},      {"N", CharClass::Number}, {"P", CharClass::Punctuation},
          {"S", CharClass::Symbol},      {"M", CharClass::Mark},   {"Lu", CharClass::Letter},
          {"Ll", CharClass::Letter},     {"Lt", CharClass::Letter}, {"Lm", CharClass::Letter},
          {"Lo", CharClass::Letter}};
      for (const auto& k : kClasses)
        if (name == k.name) {
          set.classes |= class_bit(k.cls);
          return false;
        }
      fail(cat("unknown class \\p{", name, "}").c_str(), i);
    }
    case 'x':
    case 'u': {
      const size_t digits = c == 'x' ? 2 : 4;
      uint32_t v = 0;
      for (size_t k = 0; k < digits; ++k, ++i) {
        if (i >= p.size() || !is_hex(p[i])) fail("bad hexadecimal escape", i);
        v = v * 16 + hex_value(p[i]);
      }
      return single(v);
    }
    default:
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        fail("unsupported escape", i - 1);
      return single(c);  // an escaped punctuation character stands for itself
  }
}

PreRegex::CharSet PreRegex::parse_class(const std::vector<uint32_t>& p, size_t& i) const {
  CharSet set;
  if (i < p.size() && p[i] == '^') {
    set.negate = true;
    ++i;
  }
  bool first = true;
  while (true) {
    if (i >= p.size()) fail("'[' without ']'", i);
    if (p[i] == ']' && !first) {
      ++i;
      return set;
    }
    first = false;
    uint32_t lo;
    if (p[i] == '\\') {
      ++i;
      if (!parse_escape(p, i, set, true)) continue;
      lo = set.ranges.back().first;
      set.ranges.pop_back();
    } else {
      lo = p[i++];
    }
    uint32_t hi = lo;
    if (i + 1 < p.size() && p[i] == '-' && p[i + 1] != ']') {
      ++i;
      if (p[i] == '\\') {
        ++i;
        CharSet tmp;
        if (!parse_escape(p, i, tmp, true)) fail("a class escape as a range end", i);
        hi = tmp.ranges.back().first;
      } else {
        hi = p[i++];
      }
      if (hi < lo) fail("range out of order", i);
    }
    set.ranges.push_back({lo, hi});
  }
}

std::vector<PreRegex::Seq> PreRegex::parse_alternation(const std::vector<uint32_t>& p, size_t& i, int depth) const {
  if (depth > 8) fail("groups nested too deeply", i);
  std::vector<Seq> result;
  std::vector<Seq> current(1);  // the alternatives of the sequence being read
  auto append = [&](const Item& item) {
    for (Seq& s : current) s.push_back(item);
  };
  while (i < p.size() && p[i] != ')') {
    const uint32_t c = p[i];
    if (c == '|') {
      ++i;
      result.insert(result.end(), current.begin(), current.end());
      current.assign(1, Seq());
      continue;
    }
    if (c == '(') {
      bool negative_lookahead = false;
      i++;
      if (i + 1 < p.size() && p[i] == '?' && p[i + 1] == ':') {
        i += 2;
      } else if (i + 1 < p.size() && p[i] == '?' && p[i + 1] == '!') {
        i += 2;
        negative_lookahead = true;
      } else if (i < p.size() && p[i] == '?') {
        fail("unsupported group kind", i);
      }
      std::vector<Seq> inner = parse_alternation(p, i, depth + 1);
      if (i >= p.size() || p[i] != ')') fail("'(' without ')'", i);
      ++i;
      if (i < p.size() && (p[i] == '?' || p[i] == '*' || p[i] == '+' || p[i] == '{')) fail("a repeated group", i);
      if (negative_lookahead) {
        Item look;
        look.kind = Kind::NotFollowedBy;
        for (const Seq& s : inner) {
          if (s.size() != 1 || s[0].kind != Kind::Set || s[0].min != 1 || s[0].max != 1)
            fail("a lookahead that is not one character class", i);
          look.ahead.push_back(s[0].set);
        }
        append(look);
        continue;
      }
      // A group is spliced into the alternatives: a|b after a fixed prefix
      // keeps the order a backtracking matcher would try them in.
      for (const Seq& s : current)
        for (const Item& it : s)
          if (it.min != it.max) fail("a group after a repeat", i);
      std::vector<Seq> next;
      for (const Seq& s : current)
        for (const Seq& g : inner) {
          Seq joined = s;
          joined.insert(joined.end(), g.begin(), g.end());
          next.push_back(std::move(joined));
        }
      current = std::move(next);
      continue;
    }
    if (c == '$') {
      ++i;
      Item end;
      end.kind = Kind::End;
      end.min = end.max = 0;
      append(end);
      continue;
    }
    if (c == '.' || c == '^' || c == '*' || c == '+' || c == '?' || c == '{') fail("unsupported syntax", i);
    Item item;
    if (c == '[') {
      ++i;
      item.set = parse_class(p, i);
    } else if (c == '\\') {
      ++i;
      parse_escape(p, i, item.set, false);
    } else {
      item.set.ranges.push_back({c, c});
      ++i;
    }
    // quantifier
    if (i < p.size()) {
      if (p[i] == '?') {
        item.min = 0, item.max = 1, ++i;
      } else if (p[i] == '*') {
        item.min = 0, item.max = kUnbounded, ++i;
      } else if (p[i] == '+') {
        item.min = 1, item.max = kUnbounded, ++i;
      } else if (p[i] == '{') {
        auto number = [&]() {
          if (i >= p.size() || p[i] < '0' || p[i] > '9') fail("bad {n,m}", i);
          uint32_t v = 0;
          while (i < p.size() && p[i] >= '0' && p[i] <= '9' && v < 100000) v = v * 10 + (p[i++] - '0');
          return v;
        };
        ++i;
        item.min = item.max = number();
        if (i < p.size() && p[i] == ',') {
          ++i;
          item.max = i < p.size() && p[i] == '}' ? kUnbounded : number();
        }
        if (i >= p.size() || p[i] != '}' || item.max < item.min) fail("bad {n,m}", i);
        ++i;
      }
      if (i < p.size() && p[i] == '?' && item.max != item.min) fail("lazy quantifiers", i);
    }
    append(item);
  }
  result.insert(result.end(), current.begin(), current.end());
  return result;
}

long PreRegex::match_from(const Seq& s, size_t k, const uint32_t* text, size_t pos, size_t end,
                          RunCache& runs) const {
  if (k == s.size()) return long(pos);
  const Item& item = s[k];
  switch (item.kind) {
    case Kind::End:
      return pos == end ? match_from(s, k + 1, text, pos, end, runs) : -1;
    case Kind::NotFollowedBy:
      if (pos < end)
        for (const CharSet& set : item.ahead)
          if (set.matches(text[pos])) return -1;
      return match_from(s, k + 1, text, pos, end, runs);
    case Kind::Set:
      break;
  }
  size_t n = 0;
  if (item.max == 1) {
    n = pos < end && item.set.matches(text[pos]) ? 1 : 0;
  } else {
    std::pair<size_t, size_t>& run = runs[item.id];
    if (!(run.first <= pos && pos <= run.second && run.second <= end)) {
      size_t e = pos;
      while (e < end && item.set.matches(text[e])) ++e;
      run = {pos, e};
    }
    n = std::min<size_t>(run.second - pos, item.max);
  }
  if (n < item.min) return -1;
  // Followed by $: only the longest run can end at the end.
  if (k + 1 < s.size() && s[k + 1].kind == Kind::End && item.min != item.max)
    return pos + n == end ? match_from(s, k + 1, text, pos + n, end, runs) : -1;
  for (size_t c = n + 1; c-- > item.min;) {
    const long r = match_from(s, k + 1, text, pos + c, end, runs);
    if (r >= 0) return r;
  }
  return -1;
}

long PreRegex::match_at(const uint32_t* text, size_t pos, size_t end, RunCache& runs) const {
  for (const Seq& s : alternatives_) {
    const long r = match_from(s, 0, text, pos, end, runs);
    if (r > long(pos)) return r;  // an empty match never splits anything
  }
  return -1;
}

std::vector<size_t> PreRegex::split(const std::vector<uint32_t>& text, const std::vector<size_t>& pieces) const {
  std::vector<size_t> out;
  out.reserve(pieces.size());
  RunCache runs(n_items_);
  size_t start = 0;
  for (const size_t len : pieces) {
    const size_t end = start + len;
    std::fill(runs.begin(), runs.end(), std::pair<size_t, size_t>(1, 0));  // empty: matches no pos
    size_t emitted = start;  // text before this is in `out`
    for (size_t pos = start; pos < end;) {
      const long m = match_at(text.data(), pos, end, runs);
      if (m < 0) {
        ++pos;
        continue;
      }
      if (pos > emitted) out.push_back(pos - emitted);
      out.push_back(size_t(m) - pos);
      emitted = pos = size_t(m);
    }
    if (end > emitted) out.push_back(end - emitted);
    start = end;
  }
  return out;
}

}  // namespace qkv
