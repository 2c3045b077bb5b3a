// Template text -> parse tree: a lexer that cuts the text into data and tag
// tokens with jinja2's whitespace rules (trim_blocks, lstrip_blocks, `-` and
// `+` markers), and a recursive-descent parser with jinja2's precedence.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "engine/chat/jinja_ast.h"

namespace qkv::jinja {

namespace {

enum class T { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  T type;
  std::string s;  // text, name, string value or operator
  int64_t i = 0;
  double f = 0;
  int line = 1;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }


class Lexer {
 public:
  explicit Lexer(const std::string& source) {
    // jinja2 reads every newline sequence as \n and drops one at the very end
    // (keep_trailing_newline=False).
    src_.reserve(source.size());
    for (size_t k = 0; k < source.size(); ++k) {
      if (source[k] == '\r') {
        src_ += '\n';
        if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
      } else {
        src_ += source[k];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  std::vector<Token> run() {
    bool line_starting = true;
    while (p_ < src_.size()) {
      const size_t start = next_tag(p_);
      std::string text = src_.substr(p_, (start == std::string::npos ? src_.size() : start) - p_);
      if (start == std::string::npos) {
        emit_text(text, p_);
        break;
      }
      const char kind = src_[start + 1];
      const char mod = start + 2 < src_.size() ? src_[start + 2] : 0;
      if (mod == '-') {
        size_t e = text.size();
        while (e > 0 && is_space(text[e - 1])) --e;
        text.resize(e);
      } else if (kind != '{' && mod != '+') {  // lstrip_blocks: blocks and comments alone on their line
        const size_t l = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        if ((l > 0 || line_starting) &&
            std::all_of(text.begin() + long(l), text.end(), [](char c) { return is_space(c); }))
          text.resize(l);
      }
      emit_text(text, p_);
      p_ = start + 2 + (mod == '-' || mod == '+' ? 1 : 0);
      if (kind == '#') {
        const size_t e = src_.find("#}", p_);
        if (e == std::string::npos) fail("the comment opened here is never closed (no '#}')", start);
        const bool strip = e > start + 2 && src_[e - 1] == '-' && e - 1 >= p_;
        p_ = e + 2;
        line_starting = after_tag(strip, false, true);
      } else if (kind == '%' && try_raw(start)) {
        line_starting = last_tag_ended_line_;
      } else {
        line_starting = tag(kind == '{', start);
      }
    }
    out_.push_back(Token{T::Eof, "", 0, 0, line_of(src_.size())});
    return std::move(out_);
  }

 private:
  std::string src_;
  size_t p_ = 0;
  std::vector<Token> out_;
  bool last_tag_ended_line_ = false;

  int line_of(size_t pos) const {
    return 1 + int(std::count(src_.begin(), src_.begin() + long(std::min(pos, src_.size())), '\n'));
  }
  [[noreturn]] void fail(const std::string& what, size_t pos) const { throw TemplateError(what, line_of(pos)); }

  size_t next_tag(size_t from) const {
    for (size_t k = src_.find('{', from); k != std::string::npos; k = src_.find('{', k + 1))
      if (k + 1 < src_.size() && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    return std::string::npos;
  }

  void emit_text(const std::string& text, size_t pos) {
    if (!text.empty()) out_.push_back(Token{T::Text, text, 0, 0, line_of(pos)});
  }

  // After a tag's closing delimiter: `-` eats all whitespace, otherwise a
  // block or comment eats one newline (trim_blocks) unless marked `+`.
  // Returns whether what the tag consumed ends a line (lstrip_blocks then
  // applies to the next tag even without a newline in between).
  bool after_tag(bool strip, bool plus, bool block) {
    const size_t end = p_;
    if (strip) {
      while (p_ < src_.size() && is_space(src_[p_])) ++p_;
    } else if (block && !plus && p_ < src_.size() && src_[p_] == '\n') {
      ++p_;
    }
    return p_ > end && src_[p_ - 1] == '\n';
  }

  // {% raw %}...{% endraw %}: the text between is data, tags and all.
  bool try_raw(size_t start) {
    size_t q = p_;
    while (q < src_.size() && is_space(src_[q])) ++q;
    if (src_.compare(q, 3, "raw") != 0) return false;
    q += 3;
    while (q < src_.size() && is_space(src_[q])) ++q;
    bool strip_after = false;
    if (src_.compare(q, 3, "-%}") == 0) {
      strip_after = true;
      q += 3;
    } else if (src_.compare(q, 2, "%}") == 0) {
      q += 2;
    } else {
      return false;
    }
    p_ = q;
    after_tag(strip_after, false, true);
    for (size_t k = src_.find("{%", p_); k != std::string::npos; k = src_.find("{%", k + 1)) {
      size_t r = k + 2;
      const bool strip_before = r < src_.size() && src_[r] == '-';
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) ++r;
      while (r < src_.size() && is_space(src_[r])) ++r;
      if (src_.compare(r, 6, "endraw") != 0) continue;
      r += 6;
      while (r < src_.size() && is_space(src_[r])) ++r;
      bool strip = false, plus = false;
      if (src_.compare(r, 3, "-%}") == 0) {
        strip = true;
        r += 3;
      } else if (src_.compare(r, 3, "+%}") == 0) {
        plus = true;
        r += 3;
      } else if (src_.compare(r, 2, "%}") == 0) {
        r += 2;
      } else {
        continue;
      }
      std::string text = src_.substr(p_, k - p_);
      if (strip_before) {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      }
      emit_text(text, p_);
      p_ = r;
      last_tag_ended_line_ = after_tag(strip, plus, true);
      return true;
    }
    fail("the raw block opened here is never closed (no '{% endraw %}')", start);
  }

  // The tokens of a {{ ... }} or {% ... %} tag, through its end delimiter.
  bool tag(bool variable, size_t start) {
    out_.push_back(Token{variable ? T::VarBegin : T::BlockBegin, "", 0, 0, line_of(start)});
    for (;;) {
      while (p_ < src_.size() && is_space(src_[p_])) ++p_;
      if (p_ >= src_.size())
        fail(std::string("the tag opened here is never closed (no '") + (variable ? "}}" : "%}") + "')", start);
      const int line = line_of(p_);
      const char c = src_[p_];
      const char* end = variable ? "}}" : "%}";
      if (src_.compare(p_, 2, end) == 0 || ((c == '-' || (c == '+' && !variable)) && src_.compare(p_ + 1, 2, end) == 0)) {
        const bool strip = c == '-', plus = c == '+';
        p_ += (strip || plus) ? 3 : 2;
        out_.push_back(Token{variable ? T::VarEnd : T::BlockEnd, "", 0, 0, line});
        return after_tag(strip, plus, !variable);
      }
      if (c == '\'' || c == '"') {
        out_.push_back(Token{T::String, string_literal(), 0, 0, line});
      } else if (is_digit(c)) {
        number(line);
      } else if (is_name_start(c)) {
        const size_t b = p_;
        while (p_ < src_.size() && (is_name_start(src_[p_]) || is_digit(src_[p_]))) ++p_;
        out_.push_back(Token{T::Name, src_.substr(b, p_ - b), 0, 0, line});
      } else {
        static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                                           "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "="};
        const char* op = nullptr;
        for (const char* o : kOps)
          if (src_.compare(p_, std::strlen(o), o) == 0) {
            op = o;
            break;
          }
        if (!op) fail(std::string("unexpected character '") + c + "' in a tag", p_);
        p_ += std::strlen(op);
        out_.push_back(Token{T::Op, op, 0, 0, line});
      }
    }
  }

  void number(int line) {
    const size_t b = p_;
    const auto digits = [&] {
      while (p_ < src_.size() && (is_digit(src_[p_]) || src_[p_] == '_')) ++p_;
    };
    digits();
    bool is_float = false;
    // "x.0" after an attribute dot is an index, not a float.
    const bool after_dot = !out_.empty() && out_.back().type == T::Op && out_.back().s == ".";
    if (!after_dot && p_ + 1 < src_.size() && src_[p_] == '.' && is_digit(src_[p_ + 1])) {
      is_float = true;
      ++p_;
      digits();
    }
    if (!after_dot && p_ < src_.size() && (src_[p_] == 'e' || src_[p_] == 'E')) {
      size_t q = p_ + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && is_digit(src_[q])) {
        is_float = true;
        p_ = q;
        digits();
      }
    }
    std::string text = src_.substr(b, p_ - b);
    text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
    Token t{is_float ? T::Float : T::Int, text, 0, 0, line};
    if (is_float) {
      t.f = std::strtod(text.c_str(), nullptr);
    } else {
      errno = 0;
      t.i = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) fail("integer literal " + text + " does not fit in 64 bits", b);
    }
    out_.push_back(t);
  }

  // A quoted string with Python's escapes (\n \t \\ \' \xHH \uXXXX ...); an
  // unknown escape keeps its backslash, as Python does.
  std::string string_literal() {
    const size_t b = p_;
    const char q = src_[p_++];
    std::string out;
    for (;;) {
      if (p_ >= src_.size()) fail("the string opened here is never closed", b);
      const char c = src_[p_++];
      if (c == q) return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (p_ >= src_.size()) fail("the string opened here is never closed", b);
      const char e = src_[p_++];
      const auto hex = [&](int n) {
        uint32_t v = 0;
        for (int k = 0; k < n; ++k) {
          if (p_ >= src_.size() || !std::isxdigit(static_cast<unsigned char>(src_[p_])))
            fail("a \\x, \\u or \\U escape needs " + std::to_string(n) + " hex digits", p_);
          const char h = src_[p_++];
          v = v * 16 + uint32_t(is_digit(h) ? h - '0' : (h | 0x20) - 'a' + 10);
        }
        return v;
      };
      switch (e) {
        case '\n': break;  // a line continuation
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x': append_utf8(hex(2), out); break;
        case 'u': append_utf8(hex(4), out); break;
        case 'U': {
          const uint32_t cp = hex(8);
          if (cp > 0x10ffff) fail("\\U escape beyond U+10FFFF", p_);
          append_utf8(cp, out);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = uint32_t(e - '0');
            for (int k = 0; k < 2 && p_ < src_.size() && src_[p_] >= '0' && src_[p_] <= '7'; ++k)
              v = v * 8 + uint32_t(src_[p_++] - '0');
            append_utf8(v, out);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
  }
};

// ------------------------------------------------------------------ parser

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  NodePtr parse() {
    std::string found;
    NodePtr body = parse_body({}, found);
    return body;
  }

 private:
  std::vector<Token> t_;
  size_t k_ = 0;

  const Token& cur() const { return t_[k_]; }
  const Token& peek(size_t n = 1) const { return t_[std::min(k_ + n, t_.size() - 1)]; }
  [[noreturn]] void fail(const std::string& what) const { throw TemplateError(what, cur().line); }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case T::Text: return "text";
      case T::VarBegin: return "'{{'";
      case T::VarEnd: return "'}}'";
      case T::BlockBegin: return "'{%'";
      case T::BlockEnd: return "'%}'";
      case T::Name: return "'" + t.s + "'";
      case T::String: return "a string";
      case T::Int:
      case T::Float: return "the number " + t.s;
      case T::Op: return "'" + t.s + "'";
      case T::Eof: return "the end of the template";
    }
    return "?";
  }
  bool is_op(const char* op) const { return cur().type == T::Op && cur().s == op; }
  bool is_name(const char* name) const { return cur().type == T::Name && cur().s == name; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    ++k_;
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    ++k_;
    return true;
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) fail(std::string("expected '") + op + "', found " + describe(cur()));
  }
  void expect_block_end(const std::string& tag) {
    if (cur().type != T::BlockEnd) fail("expected the end of the '" + tag + "' tag ('%}'), found " + describe(cur()));
    ++k_;
  }
  std::string expect_name(const std::string& what) {
    if (cur().type != T::Name) fail("expected " + what + ", found " + describe(cur()));
    return t_[k_++].s;
  }
  NodePtr node(Kind kind, int line) { return std::make_shared<Node>(kind, line); }

  // Statements until a block tag named in `ends`, whose name is consumed and
  // returned in `found` (the rest of that tag is the caller's).
  NodePtr parse_body(const std::vector<std::string>& ends, std::string& found) {
    NodePtr body = node(Kind::Body, cur().line);
    for (;;) {
      const Token& t = cur();
      if (t.type == T::Eof) {
        if (!ends.empty()) {
          std::string list;
          for (const auto& e : ends) list += (list.empty() ? "'" : " or '") + e + "'";
          fail("unexpected end of template: expected " + list);
        }
        return body;
      }
      if (t.type == T::Text) {
        NodePtr n = node(Kind::Text, t.line);
        n->value = Value::string(t.s);
        body->kids.push_back(n);
        ++k_;
      } else if (t.type == T::VarBegin) {
        ++k_;
        NodePtr n = node(Kind::Output, t.line);
        n->kids.push_back(parse_tuple(true));
        if (cur().type != T::VarEnd) fail("expected the end of the expression ('}}'), found " + describe(cur()));
        ++k_;
        body->kids.push_back(n);
      } else if (t.type == T::BlockBegin) {
        const Token& name = peek();
        if (name.type == T::Name && std::find(ends.begin(), ends.end(), name.s) != ends.end()) {
          k_ += 2;
          found = name.s;
          return body;
        }
        ++k_;
        if (NodePtr s = statement()) body->kids.push_back(s);
      } else {
        fail("unexpected " + describe(t));
      }
    }
  }

  NodePtr statement() {
    const int line = cur().line;
    const std::string tag = expect_name("a statement name");
    std::string found;
    if (tag == "if") {
      NodePtr n = node(Kind::If, line);
      n->kids.push_back(parse_tuple(true));
      expect_block_end("if");
      for (;;) {
        n->kids.push_back(parse_body({"elif", "else", "endif"}, found));
        if (found == "elif") {
          n->kids.push_back(parse_tuple(true));
          expect_block_end("elif");
          continue;
        }
        if (found == "else") {
          expect_block_end("else");
          n->kids.push_back(parse_body({"endif"}, found));
          n->has_else = true;
        }
        expect_block_end("endif");
        return n;
      }
    }
    if (tag == "for") {
      NodePtr n = node(Kind::For, line);
      do {
        n->names.push_back(expect_name("a loop variable"));
      } while (skip_op(","));
      if (!skip_name("in")) fail("expected 'in' in the for tag, found " + describe(cur()));
      n->kids.push_back(parse_tuple(false));
      n->kids.push_back(skip_name("if") ? parse_tuple(true) : nullptr);
      if (is_name("recursive")) fail("recursive for loops are not supported");
      expect_block_end("for");
      n->kids.push_back(parse_body({"else", "endfor"}, found));
      n->kids.push_back(nullptr);
      if (found == "else") {
        expect_block_end("else");
        n->kids[3] = parse_body({"endfor"}, found);
      }
      expect_block_end("endfor");
      return n;
    }
    if (tag == "set") {
      const std::string first = expect_name("a variable name");
      if (cur().type == T::BlockEnd) {
        ++k_;
        NodePtr n = node(Kind::SetBlock, line);
        n->names.push_back(first);
        n->kids.push_back(parse_body({"endset"}, found));
        expect_block_end("endset");
        return n;
      }
      NodePtr n = node(Kind::Set, line);
      n->names.push_back(first);
      if (skip_op(".")) {
        n->name = expect_name("an attribute name");
      } else {
        while (skip_op(",")) n->names.push_back(expect_name("a variable name"));
      }
      expect_op("=");
      n->kids.push_back(parse_tuple(true));
      expect_block_end("set");
      return n;
    }
    if (tag == "macro") {
      NodePtr n = node(Kind::Macro, line);
      n->name = expect_name("the macro's name");
      expect_op("(");
      std::vector<NodePtr> defaults;
      while (!is_op(")")) {
        n->names.push_back(expect_name("a parameter name"));
        if (skip_op("=")) {
          defaults.push_back(parse_expression(true));
        } else if (!defaults.empty()) {
          fail("parameter '" + n->names.back() + "' without a default follows one with a default");
        }
        if (!skip_op(",")) break;
      }
      expect_op(")");
      expect_block_end("macro");
      n->kids.push_back(parse_body({"endmacro"}, found));
      expect_block_end("endmacro");
      for (auto& d : defaults) n->kids.push_back(d);
      return n;
    }
    if (tag == "break" || tag == "continue") {
      expect_block_end(tag);
      return node(tag == "break" ? Kind::Break : Kind::Continue, line);
    }
    if (tag == "generation") {  // transformers' marker of assistant text: renders its body
      expect_block_end(tag);
      NodePtr body = parse_body({"endgeneration"}, found);
      expect_block_end("endgeneration");
      return body;
    }
    fail("unknown or misplaced tag '" + tag + "'");
  }

  // ---- expressions, lowest precedence first (jinja2's order)

  NodePtr parse_tuple(bool with_condexpr) {
    const int line = cur().line;
    NodePtr first = parse_expression(with_condexpr);
    if (!is_op(",")) return first;
    NodePtr n = node(Kind::List, line);
    n->kids.push_back(first);
    while (skip_op(",")) {
      if (cur().type == T::BlockEnd || cur().type == T::VarEnd || is_op(")") || is_op("=")) break;
      n->kids.push_back(parse_expression(with_condexpr));
    }
    return n;
  }

  NodePtr parse_expression(bool with_condexpr) {
    NodePtr e = parse_or();
    if (!with_condexpr) return e;
    while (is_name("if")) {
      const int line = cur().line;
      ++k_;
      NodePtr n = node(Kind::Cond, line);
      n->kids.push_back(e);
      n->kids.push_back(parse_or());
      n->kids.push_back(skip_name("else") ? parse_expression(true) : nullptr);
      e = n;
    }
    return e;
  }

  NodePtr binary(Kind kind, NodePtr a, NodePtr b, int line, const std::string& op = "") {
    NodePtr n = node(kind, line);
    n->name = op;
    n->kids = {std::move(a), std::move(b)};
    return n;
  }

  NodePtr parse_or() {
    NodePtr e = parse_and();
    while (is_name("or")) {
      const int line = cur().line;
      ++k_;
      e = binary(Kind::Or, e, parse_and(), line);
    }
    return e;
  }
  NodePtr parse_and() {
    NodePtr e = parse_not();
    while (is_name("and")) {
      const int line = cur().line;
      ++k_;
      e = binary(Kind::And, e, parse_not(), line);
    }
    return e;
  }
  NodePtr parse_not() {
    if (is_name("not")) {
      NodePtr n = node(Kind::Not, cur().line);
      ++k_;
      n->kids.push_back(parse_not());
      return n;
    }
    return parse_compare();
  }
  NodePtr parse_compare() {
    const int line = cur().line;
    NodePtr first = parse_math1();
    NodePtr n;
    for (;;) {
      std::string op;
      if (cur().type == T::Op && (cur().s == "==" || cur().s == "!=" || cur().s == "<" || cur().s == ">" ||
                                  cur().s == "<=" || cur().s == ">=")) {
        op = cur().s;
        ++k_;
      } else if (is_name("in")) {
        op = "in";
        ++k_;
      } else if (is_name("not") && peek().type == T::Name && peek().s == "in") {
        op = "notin";
        k_ += 2;
      } else {
        break;
      }
      if (!n) {
        n = node(Kind::Compare, line);
        n->kids.push_back(first);
      }
      n->names.push_back(op);
      n->kids.push_back(parse_math1());
    }
    return n ? n : first;
  }
  NodePtr parse_math1() {
    NodePtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = cur().s;
      const int line = cur().line;
      ++k_;
      e = binary(Kind::Binary, e, parse_concat(), line, op);
    }
    return e;
  }
  NodePtr parse_concat() {
    NodePtr e = parse_math2();
    while (is_op("~")) {
      const int line = cur().line;
      ++k_;
      e = binary(Kind::Binary, e, parse_math2(), line, "~");
    }
    return e;
  }
  NodePtr parse_math2() {
    NodePtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = cur().s;
      const int line = cur().line;
      ++k_;
      e = binary(Kind::Binary, e, parse_pow(), line, op);
    }
    return e;
  }
  NodePtr parse_pow() {
    NodePtr e = parse_unary(true);
    while (is_op("**")) {
      const int line = cur().line;
      ++k_;
      e = binary(Kind::Binary, e, parse_unary(true), line, "**");
    }
    return e;
  }
  NodePtr parse_unary(bool with_filter) {
    const int line = cur().line;
    NodePtr e;
    if (skip_op("-")) {
      e = node(Kind::Negate, line);
      e->kids.push_back(parse_unary(false));
    } else if (skip_op("+")) {
      e = parse_unary(false);
    } else {
      e = parse_primary();
    }
    e = parse_postfix(e);
    if (with_filter) e = parse_filter_expr(e);
    return e;
  }

  NodePtr parse_primary() {
    const Token& t = cur();
    NodePtr n;
    switch (t.type) {
      case T::Name: {
        n = node(Kind::Literal, t.line);
        if (t.s == "true" || t.s == "True") n->value = Value::boolean(true);
        else if (t.s == "false" || t.s == "False") n->value = Value::boolean(false);
        else if (t.s == "none" || t.s == "None") n->value = Value::none();
        else {
          n = node(Kind::Var, t.line);
          n->name = t.s;
        }
        ++k_;
        return n;
      }
      case T::String: {
        n = node(Kind::Literal, t.line);
        std::string s;
        while (cur().type == T::String) s += t_[k_++].s;  // adjacent literals join
        n->value = Value::string(std::move(s));
        return n;
      }
      case T::Int:
        n = node(Kind::Literal, t.line);
        n->value = Value::integer(t.i);
        ++k_;
        return n;
      case T::Float:
        n = node(Kind::Literal, t.line);
        n->value = Value::number(t.f);
        ++k_;
        return n;
      case T::Op:
        if (t.s == "(") {
          ++k_;
          if (skip_op(")")) return node(Kind::List, t.line);  // ()
          NodePtr e = parse_tuple(true);
          expect_op(")");
          return e;
        }
        if (t.s == "[") {
          ++k_;
          n = node(Kind::List, t.line);
          while (!is_op("]")) {
            n->kids.push_back(parse_expression(true));
            if (!skip_op(",")) break;
          }
          expect_op("]");
          return n;
        }
        if (t.s == "{") {
          ++k_;
          n = node(Kind::Dict, t.line);
          while (!is_op("}")) {
            n->kids.push_back(parse_expression(true));
            expect_op(":");
            n->kids.push_back(parse_expression(true));
            if (!skip_op(",")) break;
          }
          expect_op("}");
          return n;
        }
        break;
      default: break;
    }
    fail("unexpected " + describe(t) + " in an expression");
  }

  NodePtr parse_postfix(NodePtr e) {
    for (;;) {
      const int line = cur().line;
      if (skip_op(".")) {
        if (cur().type == T::Int) {
          NodePtr n = node(Kind::Item, line);
          NodePtr index = node(Kind::Literal, line);
          index->value = Value::integer(t_[k_++].i);
          n->kids = {e, index};
          e = n;
        } else {
          NodePtr n = node(Kind::Attr, line);
          n->name = expect_name("an attribute name after '.'");
          n->kids.push_back(e);
          e = n;
        }
      } else if (skip_op("[")) {
        e = subscript(e, line);
      } else if (is_op("(")) {
        e = call(e, line);
      } else {
        return e;
      }
    }
  }

  NodePtr subscript(NodePtr e, int line) {
    NodePtr start, stop, step;
    if (!is_op(":")) {
      start = parse_expression(true);
      if (skip_op("]")) {
        NodePtr n = node(Kind::Item, line);
        n->kids = {e, start};
        return n;
      }
    }
    expect_op(":");
    if (!is_op("]") && !is_op(":")) stop = parse_expression(true);
    if (skip_op(":") && !is_op("]")) step = parse_expression(true);
    expect_op("]");
    NodePtr n = node(Kind::Slice, line);
    n->kids = {e, start, stop, step};
    return n;
  }

  // (args, name=value, ...) into n->kids (from index 1) and n->names.
  void call_args(NodePtr& n) {
    expect_op("(");
    while (!is_op(")")) {
      if (cur().type == T::Name && peek().type == T::Op && peek().s == "=") {
        n->names.push_back(t_[k_].s);
        k_ += 2;
        n->kids.push_back(parse_expression(true));
      } else {
        if (!n->names.empty()) fail("a positional argument follows a keyword argument");
        n->kids.push_back(parse_expression(true));
      }
      if (!skip_op(",")) break;
    }
    expect_op(")");
  }

  NodePtr call(NodePtr callee, int line) {
    NodePtr n = node(Kind::Call, line);
    n->kids.push_back(callee);
    call_args(n);
    return n;
  }

  std::string dotted_name(const std::string& what) {
    std::string name = expect_name(what);
    while (is_op(".") && peek().type == T::Name) {
      ++k_;
      name += "." + t_[k_++].s;
    }
    return name;
  }

  NodePtr parse_filter_expr(NodePtr e) {
    for (;;) {
      const int line = cur().line;
      if (skip_op("|")) {
        NodePtr n = node(Kind::Filter, line);
        n->name = dotted_name("a filter name after '|'");
        n->kids.push_back(e);
        if (is_op("(")) call_args(n);
        e = n;
      } else if (is_name("is")) {
        ++k_;
        NodePtr n = node(Kind::Test, line);
        n->negate = skip_name("not");
        n->name = dotted_name("a test name after 'is'");
        n->kids.push_back(e);
        if (is_op("(")) {
          call_args(n);
        } else if ((cur().type == T::Name || cur().type == T::String || cur().type == T::Int ||
                    cur().type == T::Float || is_op("(") || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          if (is_name("is")) fail("tests cannot be chained with 'is'");
          n->kids.push_back(parse_postfix(parse_primary()));
        }
        e = n;
      } else if (is_op("(")) {
        e = call(e, line);
      } else {
        return e;
      }
    }
  }
};

}  // namespace

NodePtr parse_template(const std::string& source) { return Parser(Lexer(source).run()).parse(); }

}  // namespace qkv::jinja
