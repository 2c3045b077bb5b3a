#include "engine/chat/json_parse.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace qkv::jinja {

namespace {

class JsonReader {
 public:
  explicit JsonReader(const std::string& text) : t_(text) {}

  Value document() {
    Value v = value(0);
    skip_space();
    if (p_ != t_.size()) fail("end of text", describe_here());
    return v;
  }

 private:
  const std::string& t_;
  size_t p_ = 0;

  [[noreturn]] void fail(const std::string& expected, const std::string& found) const {
    int line = 1, col = 1;
    for (size_t k = 0; k < p_ && k < t_.size(); ++k) {
      if (t_[k] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw TemplateError("line " + std::to_string(line) + ", column " + std::to_string(col) + ": expected " + expected +
                        ", found " + found);
  }
  std::string describe_here() const {
    if (p_ >= t_.size()) return "the end of the text";
    const unsigned char c = static_cast<unsigned char>(t_[p_]);
    if (c >= 0x20 && c < 0x7f) return std::string("'") + char(c) + "'";
    char buf[16];
    std::snprintf(buf, sizeof buf, "byte 0x%02x", c);
    return buf;
  }
  void skip_space() {
    while (p_ < t_.size() && (t_[p_] == ' ' || t_[p_] == '\t' || t_[p_] == '\n' || t_[p_] == '\r')) ++p_;
  }
  bool take(const char* word) {
    size_t n = 0;
    while (word[n]) ++n;
    if (t_.compare(p_, n, word) != 0) return false;
    p_ += n;
    return true;
  }

  Value value(int depth) {
    if (depth > 256) fail("at most 256 levels of nesting", "more");
    skip_space();
    if (p_ >= t_.size()) fail("a value", "the end of the text");
    const char c = t_[p_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') return Value::string(string());
    if (take("true")) return Value::boolean(true);
    if (take("false")) return Value::boolean(false);
    if (take("null")) return Value::none();
    if (take("NaN")) return Value::number(NAN);
    if (take("Infinity")) return Value::number(INFINITY);
    if (take("-Infinity")) return Value::number(-INFINITY);
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    fail("a value", describe_here());
  }

  Value object(int depth) {
    ++p_;  // {
    Dict items;
    skip_space();
    if (p_ < t_.size() && t_[p_] == '}') {
      ++p_;
      return Value::make_dict(std::move(items));
    }
    for (;;) {
      skip_space();
      if (p_ >= t_.size() || t_[p_] != '"') fail("a string key", describe_here());
      std::string key = string();
      skip_space();
      if (p_ >= t_.size() || t_[p_] != ':') fail("':'", describe_here());
      ++p_;
      Value v = value(depth + 1);
      bool replaced = false;
      for (auto& kv : items)
        if (kv.first == key) {
          kv.second = v;
          replaced = true;
        }
      if (!replaced) items.emplace_back(std::move(key), std::move(v));
      skip_space();
      if (p_ < t_.size() && t_[p_] == ',') {
        ++p_;
        continue;
      }
      if (p_ < t_.size() && t_[p_] == '}') {
        ++p_;
        return Value::make_dict(std::move(items));
      }
      fail("',' or '}'", describe_here());
    }
  }

  Value array(int depth) {
    ++p_;  // [
    List items;
    skip_space();
    if (p_ < t_.size() && t_[p_] == ']') {
      ++p_;
      return Value::make_list(std::move(items));
    }
    for (;;) {
      items.push_back(value(depth + 1));
      skip_space();
      if (p_ < t_.size() && t_[p_] == ',') {
        ++p_;
        continue;
      }
      if (p_ < t_.size() && t_[p_] == ']') {
        ++p_;
        return Value::make_list(std::move(items));
      }
      fail("',' or ']'", describe_here());
    }
  }

  Value number() {
    const size_t start = p_;
    if (t_[p_] == '-') ++p_;
    const auto digits = [&] {
      const size_t d = p_;
      while (p_ < t_.size() && t_[p_] >= '0' && t_[p_] <= '9') ++p_;
      return p_ - d;
    };
    if (digits() == 0) fail("a digit", describe_here());
    bool is_float = false;
    if (p_ < t_.size() && t_[p_] == '.') {
      ++p_;
      is_float = true;
      if (digits() == 0) fail("a digit after '.'", describe_here());
    }
    if (p_ < t_.size() && (t_[p_] == 'e' || t_[p_] == 'E')) {
      ++p_;
      is_float = true;
      if (p_ < t_.size() && (t_[p_] == '+' || t_[p_] == '-')) ++p_;
      if (digits() == 0) fail("a digit in the exponent", describe_here());
    }
    const std::string text = t_.substr(start, p_ - start);
    errno = 0;
    if (is_float) return Value::number(std::strtod(text.c_str(), nullptr));
    const long long v = std::strtoll(text.c_str(), nullptr, 10);
    if (errno == ERANGE) {
      p_ = start;
      fail("an integer within 64 bits", text);
    }
    return Value::integer(v);
  }

  unsigned hex4() {
    if (p_ + 4 > t_.size()) fail("4 hex digits", "the end of the text");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = t_[p_];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') v |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= unsigned(c - 'A' + 10);
      else fail("a hex digit", describe_here());
      ++p_;
    }
    return v;
  }


  std::string string() {
    ++p_;  // "
    std::string out;
    for (;;) {
      if (p_ >= t_.size()) fail("'\"' closing the string", "the end of the text");
      const char c = t_[p_];
      if (c == '"') {
        ++p_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) fail("no control character inside a string", describe_here());
      if (c != '\\') {
        out += c;
        ++p_;
        continue;
      }
      ++p_;
      if (p_ >= t_.size()) fail("an escape", "the end of the text");
      const char e = t_[p_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xd800 && cp < 0xdc00 && t_.compare(p_, 2, "\\u") == 0) {
            const size_t save = p_;
            p_ += 2;
            const unsigned lo = hex4();
            if (lo >= 0xdc00 && lo < 0xe000) cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            else p_ = save;
          }
          if (cp >= 0xd800 && cp < 0xe000) cp = 0xfffd;  // a lone surrogate has no UTF-8 form
          append_utf8(cp, out);
          break;
        }
        default:
          --p_;
          fail("an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)", describe_here());
      }
    }
  }
};

}  // namespace

Value parse_json(const std::string& text) { return JsonReader(text).document(); }

}  // namespace qkv::jinja
