// The values a chat template computes with, with Python's semantics (the
// templates are written for jinja2, which runs on Python): truthiness, str(),
// repr(), ==, ordering, and json.dumps as transformers' tojson calls it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace qkv::jinja {

// A failure while parsing or rendering a template: `line` is the template's
// line (1-based, 0: unknown). `raised` marks the template's own
// raise_exception(message).
struct TemplateError : std::runtime_error {
  TemplateError(const std::string& message, int line_ = 0, bool raised_ = false)
      : std::runtime_error(message), line(line_), raised(raised_) {}
  int line;
  bool raised;
};

struct Value;
using List = std::vector<Value>;
// A dict keeps its insertion order (as Python's); keys are strings.
using Dict = std::vector<std::pair<std::string, Value>>;

// Positional and keyword arguments of a call.
struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};
using Function = std::function<Value(Args&)>;

struct Value {
  enum class Type { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Function };

  Type type = Type::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                   // String; Undefined: the name that was looked up
  std::shared_ptr<List> list;      // List
  std::shared_ptr<Dict> dict;      // Dict, Namespace (shared: namespace attributes are assigned in place)
  std::shared_ptr<Function> func;  // Function

  static Value undefined(std::string name = "") { Value v; v.s = std::move(name); return v; }
  static Value none() { Value v; v.type = Type::None; return v; }
  static Value boolean(bool x) { Value v; v.type = Type::Bool; v.b = x; return v; }
  static Value integer(int64_t x) { Value v; v.type = Type::Int; v.i = x; return v; }
  static Value number(double x) { Value v; v.type = Type::Float; v.f = x; return v; }
  static Value string(std::string x) { Value v; v.type = Type::String; v.s = std::move(x); return v; }
  static Value make_list(List items = {}) {
    Value v; v.type = Type::List; v.list = std::make_shared<List>(std::move(items)); return v;
  }
  static Value make_dict(Dict items = {}) {
    Value v; v.type = Type::Dict; v.dict = std::make_shared<Dict>(std::move(items)); return v;
  }
  static Value make_namespace(Dict items = {}) {
    Value v = make_dict(std::move(items)); v.type = Type::Namespace; return v;
  }
  static Value function(Function fn) {
    Value v; v.type = Type::Function; v.func = std::make_shared<Function>(std::move(fn)); return v;
  }

  bool is_undefined() const { return type == Type::Undefined; }
  bool is_none() const { return type == Type::None; }
  bool is_string() const { return type == Type::String; }
  bool is_number() const { return type == Type::Int || type == Type::Float || type == Type::Bool; }
  bool is_list() const { return type == Type::List; }
  bool is_mapping() const { return type == Type::Dict || type == Type::Namespace; }

  // Python's bool(): false for undefined, none, false, 0, "", [] and {}.
  bool truthy() const;
  // The dict's value for `key`, or nullptr.
  const Value* find(const std::string& key) const;
};

// Python's type name ("str", "int", "list", "dict", "NoneType", ...).
std::string type_name(const Value& v);
// str(v) (undefined: ""), as {{ v }} and the string filter print it.
std::string to_str(const Value& v);
// repr(v): 'text' with Python's quoting, [1, 'a'], {'k': True}.
std::string to_repr(const Value& v);
// json.dumps(v, ensure_ascii=False, indent=indent (< 0: None)): ", " and ": "
// separators without indent, "," and ": " with it; undefined is an error.
std::string to_json(const Value& v, int indent = -1);
// Python's repr of a float: the shortest text that reads back the same.
std::string float_repr(double x);
// Python's ==.
bool equal(const Value& a, const Value& b);
// Python's <: numbers, strings (by code point), lists; an error otherwise.
bool less(const Value& a, const Value& b);
// The elements a for loop visits: a list's items, a dict's keys, a string's
// characters; undefined gives none. An error for other types.
List iterate(const Value& v);
// len(v): strings count code points.
int64_t length(const Value& v);

// A string's characters (UTF-8 sequences; a stray byte is one character).
std::vector<std::string> utf8_chars(const std::string& s);
// Appends code point `cp` (<= U+10FFFF) as UTF-8.
void append_utf8(uint32_t cp, std::string& out);

}  // namespace qkv::jinja
