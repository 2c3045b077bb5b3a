#include "engine/chat/jinja_builtins.h"

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace qkv::jinja {

namespace {

// ---- argument access: positional index `pos` or keyword `name`

const Value* arg(const Args& a, size_t pos, const char* name) {
  if (pos < a.positional.size()) return &a.positional[pos];
  for (const auto& [k, v] : a.keyword)
    if (k == name) return &v;
  return nullptr;
}
Value arg_or(const Args& a, size_t pos, const char* name, Value dflt) {
  const Value* v = arg(a, pos, name);
  return v ? *v : dflt;
}
void check_known(const Args& a, const std::string& fn, size_t max_pos, std::initializer_list<const char*> names) {
  if (a.positional.size() > max_pos)
    throw TemplateError(fn + "() takes at most " + std::to_string(max_pos) + " arguments (" +
                        std::to_string(a.positional.size()) + " given)");
  for (const auto& [k, v] : a.keyword) {
    bool known = false;
    for (const char* n : names) known = known || k == n;
    if (!known) throw TemplateError(fn + "() got an unexpected keyword argument '" + k + "'");
  }
}
std::string str_arg(const Args& a, size_t pos, const char* name, const std::string& fn) {
  const Value* v = arg(a, pos, name);
  if (!v) throw TemplateError(fn + "() missing argument '" + name + "'");
  if (!v->is_string()) throw TemplateError(fn + "() argument '" + name + "' must be str, not " + type_name(*v));
  return v->s;
}
int64_t int_arg(const Args& a, size_t pos, const char* name, int64_t dflt, const std::string& fn) {
  const Value* v = arg(a, pos, name);
  if (!v || v->is_none()) return dflt;
  if (v->type == Value::Type::Int) return v->i;
  if (v->type == Value::Type::Bool) return v->b;
  throw TemplateError(fn + "() argument '" + name + "' must be an integer, not " + type_name(*v));
}

// ---- Python's whitespace (str.isspace) on code points

uint32_t decode(const std::string& ch) {
  const unsigned char c = static_cast<unsigned char>(ch[0]);
  if (ch.size() == 1) return c;
  uint32_t cp = ch.size() == 2 ? c & 0x1f : ch.size() == 3 ? c & 0x0f : c & 0x07;
  for (size_t k = 1; k < ch.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(ch[k]) & 0x3f);
  return cp;
}
bool py_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
         cp == 0x3000;
}

std::string ascii_map(std::string s, int (*f)(int)) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x80) c = char(f(static_cast<unsigned char>(c)));
  return s;
}
bool ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string py_title(const std::string& s) {
  std::string out = s;
  bool prev_cased = false;
  for (char& c : out) {
    if (ascii_alpha(c)) {
      c = prev_cased ? char(std::tolower(c)) : char(std::toupper(c));
      prev_cased = true;
    } else {
      prev_cased = static_cast<unsigned char>(c) >= 0x80 && prev_cased;
    }
  }
  return out;
}

std::string py_capitalize(const std::string& s) {
  std::string out = ascii_map(s, [](int c) { return std::tolower(c); });
  if (!out.empty() && static_cast<unsigned char>(out[0]) < 0x80) out[0] = char(std::toupper(out[0]));
  return out;
}

List py_split(const std::string& s, const Value& sep, int64_t maxsplit) {
  List out;
  if (sep.is_none() || sep.is_undefined()) {  // runs of whitespace, no empty parts
    const auto chars = utf8_chars(s);
    size_t k = 0;
    while (k < chars.size()) {
      while (k < chars.size() && py_space(decode(chars[k]))) ++k;
      if (k == chars.size()) break;
      std::string part;
      if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
        for (; k < chars.size(); ++k) part += chars[k];
        size_t e = part.size();
        while (e > 0 && py_space(uint8_t(part[e - 1]))) --e;
        part.resize(e);
        out.push_back(Value::string(part));
        break;
      }
      while (k < chars.size() && !py_space(decode(chars[k]))) part += chars[k++];
      out.push_back(Value::string(part));
    }
    return out;
  }
  if (!sep.is_string()) throw TemplateError("split() separator must be str or None, not " + type_name(sep));
  if (sep.s.empty()) throw TemplateError("empty separator");
  size_t b = 0;
  for (size_t p = s.find(sep.s); p != std::string::npos && (maxsplit < 0 || int64_t(out.size()) < maxsplit);
       p = s.find(sep.s, b)) {
    out.push_back(Value::string(s.substr(b, p - b)));
    b = p + sep.s.size();
  }
  out.push_back(Value::string(s.substr(b)));
  return out;
}

std::string py_replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  if (from.empty()) {
    std::string out;
    int64_t n = 0;
    const auto chars = utf8_chars(s);
    for (const auto& c : chars) {
      if (count < 0 || n < count) {
        out += to;
        ++n;
      }
      out += c;
    }
    if (count < 0 || n < count) out += to;
    return out;
  }
  std::string out;
  size_t b = 0;
  int64_t n = 0;
  for (size_t p = s.find(from); p != std::string::npos && (count < 0 || n < count); p = s.find(from, b), ++n) {
    out.append(s, b, p - b);
    out += to;
    b = p + from.size();
  }
  out.append(s, b, std::string::npos);
  return out;
}

bool affix_matches(const std::string& s, const Value& affix, bool prefix, const std::string& fn) {
  const auto one = [&](const Value& v) {
    if (!v.is_string()) throw TemplateError(fn + "() argument must be str or a tuple of str, not " + type_name(v));
    if (v.s.size() > s.size()) return false;
    return prefix ? s.compare(0, v.s.size(), v.s) == 0 : s.compare(s.size() - v.s.size(), v.s.size(), v.s) == 0;
  };
  if (affix.is_list()) {
    for (const Value& v : *affix.list)
      if (one(v)) return true;
    return false;
  }
  return one(affix);
}

Value bind(std::function<Value(Args&)> fn) { return Value::function(std::move(fn)); }

Value string_method(const std::string& s, const std::string& name) {
  const std::string fn = "str." + name;
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return bind([s, name, fn](Args& a) {
      check_known(a, fn, 1, {});
      return Value::string(py_strip(s, arg_or(a, 0, "chars", Value::none()), name != "rstrip", name != "lstrip"));
    });
  if (name == "split")
    return bind([s, fn](Args& a) {
      check_known(a, fn, 2, {"sep", "maxsplit"});
      return Value::make_list(py_split(s, arg_or(a, 0, "sep", Value::none()), int_arg(a, 1, "maxsplit", -1, fn)));
    });
  if (name == "startswith" || name == "endswith")
    return bind([s, name, fn](Args& a) {
      check_known(a, fn, 1, {});
      const Value* affix = arg(a, 0, "prefix");
      if (!affix) throw TemplateError(fn + "() takes one argument");
      return Value::boolean(affix_matches(s, *affix, name == "startswith", fn));
    });
  if (name == "replace")
    return bind([s, fn](Args& a) {
      check_known(a, fn, 3, {});
      return Value::string(py_replace(s, str_arg(a, 0, "old", fn), str_arg(a, 1, "new", fn), int_arg(a, 2, "count", -1, fn)));
    });
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize")
    return bind([s, name, fn](Args& a) {
      check_known(a, fn, 0, {});
      if (name == "upper") return Value::string(ascii_map(s, [](int c) { return std::toupper(c); }));
      if (name == "lower") return Value::string(ascii_map(s, [](int c) { return std::tolower(c); }));
      if (name == "title") return Value::string(py_title(s));
      return Value::string(py_capitalize(s));
    });
  if (name == "find" || name == "rfind" || name == "count")
    return bind([s, name, fn](Args& a) {
      check_known(a, fn, 1, {});
      const std::string sub = str_arg(a, 0, "sub", fn);
      if (name == "count") {
        if (sub.empty()) return Value::integer(int64_t(utf8_chars(s).size()) + 1);
        int64_t n = 0;
        for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
        return Value::integer(n);
      }
      const size_t p = name == "find" ? s.find(sub) : s.rfind(sub);
      return Value::integer(p == std::string::npos ? -1 : int64_t(utf8_chars(s.substr(0, p)).size()));
    });
  if (name == "join")
    return bind([s, fn](Args& a) {
      check_known(a, fn, 1, {});
      const Value* seq = arg(a, 0, "iterable");
      if (!seq) throw TemplateError(fn + "() takes one argument");
      std::string out;
      bool first = true;
      for (const Value& v : iterate(*seq)) {
        if (!v.is_string()) throw TemplateError("sequence item: expected str instance, " + type_name(v) + " found");
        if (!first) out += s;
        out += v.s;
        first = false;
      }
      return Value::string(out);
    });
  if (name == "splitlines")
    return bind([s, fn](Args& a) {
      check_known(a, fn, 0, {});
      List out;
      size_t b = 0;
      for (size_t k = 0; k < s.size(); ++k)
        if (s[k] == '\n' || s[k] == '\r') {
          out.push_back(Value::string(s.substr(b, k - b)));
          if (s[k] == '\r' && k + 1 < s.size() && s[k + 1] == '\n') ++k;
          b = k + 1;
        }
      if (b < s.size()) out.push_back(Value::string(s.substr(b)));
      return Value::make_list(std::move(out));
    });
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "islower" ||
      name == "isupper")
    return bind([s, name, fn](Args& a) {
      check_known(a, fn, 0, {});
      if (s.empty()) return Value::boolean(false);
      bool all = true, cased = false;
      for (const auto& ch : utf8_chars(s)) {
        const uint32_t cp = decode(ch);
        const bool digit = cp >= '0' && cp <= '9';
        const bool alpha = cp < 0x80 ? ascii_alpha(char(cp)) : cp >= 0xc0;
        if (name == "isdigit") all = all && digit;
        else if (name == "isalpha") all = all && alpha;
        else if (name == "isalnum") all = all && (alpha || digit);
        else if (name == "isspace") all = all && py_space(cp);
        else if (name == "islower") { all = all && !(cp >= 'A' && cp <= 'Z'); cased = cased || (cp >= 'a' && cp <= 'z'); }
        else { all = all && !(cp >= 'a' && cp <= 'z'); cased = cased || (cp >= 'A' && cp <= 'Z'); }
      }
      return Value::boolean(all && (name == "islower" || name == "isupper" ? cased : true));
    });
  return Value::undefined();
}

Value dict_method(const Value& d, const std::string& name) {
  const std::string fn = "dict." + name;
  if (name == "items" || name == "keys" || name == "values")
    return bind([d, name, fn](Args& a) {
      check_known(a, fn, 0, {});
      List out;
      for (const auto& [k, v] : *d.dict) {
        if (name == "items") out.push_back(Value::make_list({Value::string(k), v}));
        else if (name == "keys") out.push_back(Value::string(k));
        else out.push_back(v);
      }
      return Value::make_list(std::move(out));
    });
  if (name == "get")
    return bind([d, fn](Args& a) {
      check_known(a, fn, 2, {});
      const Value* key = arg(a, 0, "key");
      if (!key) throw TemplateError(fn + "() takes at least one argument");
      if (key->is_string())
        if (const Value* v = d.find(key->s)) return *v;
      return arg_or(a, 1, "default", Value::none());
    });
  return Value::undefined();
}

// ---- filters

Value attribute_of(const Value& v, const std::string& path) {
  Value cur = v;
  size_t b = 0;
  for (;;) {
    const size_t e = path.find('.', b);
    const std::string part = path.substr(b, e == std::string::npos ? std::string::npos : e - b);
    if (cur.is_mapping()) {
      const Value* x = cur.find(part);
      cur = x ? *x : Value::undefined("no attribute '" + part + "'");
    } else if (cur.is_list() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      const size_t k = std::stoul(part);
      cur = k < cur.list->size() ? (*cur.list)[k] : Value::undefined();
    } else {
      cur = Value::undefined("no attribute '" + part + "'");
    }
    if (e == std::string::npos) return cur;
    b = e + 1;
  }
}

// select/reject/selectattr/rejectattr: which items pass `test`.
List select_items(const Value& seq, Args& a, bool by_attr, bool keep_if, const std::string& fn) {
  size_t next = 0;
  std::string attr;
  if (by_attr) {
    attr = str_arg(a, 0, "attribute", fn);
    next = 1;
  }
  std::string test = "truthy";
  if (next < a.positional.size()) {
    if (!a.positional[next].is_string()) throw TemplateError(fn + "(): the test name must be a string");
    test = a.positional[next].s;
  }
  Args targs;
  for (size_t k = next + 1; k < a.positional.size(); ++k) targs.positional.push_back(a.positional[k]);
  targs.keyword = a.keyword;
  List out;
  for (const Value& v : iterate(seq)) {
    const Value x = by_attr ? attribute_of(v, attr) : v;
    Args copy = targs;
    const bool pass = test == "truthy" ? x.truthy() : apply_test(test, x, copy);
    if (pass == keep_if) out.push_back(v);
  }
  return out;
}

Value sort_keys_deep(const Value& v) {
  if (v.is_list()) {
    List out;
    for (const Value& x : *v.list) out.push_back(sort_keys_deep(x));
    return Value::make_list(std::move(out));
  }
  if (v.type == Value::Type::Dict) {
    Dict out;
    for (const auto& [k, x] : *v.dict) out.emplace_back(k, sort_keys_deep(x));
    std::stable_sort(out.begin(), out.end(), [](const auto& p, const auto& q) { return p.first < q.first; });
    return Value::make_dict(std::move(out));
  }
  return v;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

std::string py_strip(const std::string& s, const Value& chars, bool left, bool right) {
  const auto chs = utf8_chars(s);
  std::vector<std::string> set;
  const bool whitespace = chars.is_none() || chars.is_undefined();
  if (!whitespace) {
    if (!chars.is_string()) throw TemplateError("strip arg must be None or str, not " + type_name(chars));
    set = utf8_chars(chars.s);
  }
  const auto strip_this = [&](const std::string& c) {
    return whitespace ? py_space(decode(c)) : std::find(set.begin(), set.end(), c) != set.end();
  };
  size_t b = 0, e = chs.size();
  if (left)
    while (b < e && strip_this(chs[b])) ++b;
  if (right)
    while (e > b && strip_this(chs[e - 1])) --e;
  std::string out;
  for (size_t k = b; k < e; ++k) out += chs[k];
  return out;
}

Value method(const Value& object, const std::string& name) {
  if (object.is_string()) return string_method(object.s, name);
  if (object.type == Value::Type::Dict) return dict_method(object, name);
  return Value::undefined();
}

Value apply_filter(const std::string& name, const Value& v, Args& a) {
  const std::string fn = name;
  const auto need_defined = [&] {
    if (v.is_undefined()) throw TemplateError(v.s.empty() ? "a value is undefined" : v.s);
  };
  if (name == "default" || name == "d") {
    check_known(a, fn, 2, {"default_value", "boolean"});
    const bool boolean = arg_or(a, 1, "boolean", Value::boolean(false)).truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) return arg_or(a, 0, "default_value", Value::string(""));
    return v;
  }
  if (name == "length" || name == "count") return Value::integer(length(v));
  if (name == "string") return Value::string(to_str(v));
  if (name == "safe") return v;
  if (name == "escape" || name == "e" || name == "forceescape") return Value::string(html_escape(to_str(v)));
  if (name == "trim") {
    check_known(a, fn, 1, {"chars"});
    return Value::string(py_strip(to_str(v), arg_or(a, 0, "chars", Value::none()), true, true));
  }
  if (name == "upper") return Value::string(ascii_map(to_str(v), [](int c) { return std::toupper(c); }));
  if (name == "lower") return Value::string(ascii_map(to_str(v), [](int c) { return std::tolower(c); }));
  if (name == "title") return Value::string(py_title(to_str(v)));
  if (name == "capitalize") return Value::string(py_capitalize(to_str(v)));
  if (name == "replace") {
    check_known(a, fn, 3, {"old", "new", "count"});
    return Value::string(py_replace(to_str(v), str_arg(a, 0, "old", fn), str_arg(a, 1, "new", fn),
                                    int_arg(a, 2, "count", -1, fn)));
  }
  if (name == "tojson") {
    check_known(a, fn, 1, {"indent", "ensure_ascii", "separators", "sort_keys"});
    const Value* ea = arg(a, 99, "ensure_ascii");
    const Value* sep = arg(a, 99, "separators");
    if ((ea && ea->truthy()) || (sep && !sep->is_none()))
      throw TemplateError("tojson: ensure_ascii and separators are not supported here");
    const int64_t indent = int_arg(a, 0, "indent", -1, fn);
    const bool sort = arg_or(a, 99, "sort_keys", Value::boolean(false)).truthy();
    return Value::string(to_json(sort ? sort_keys_deep(v) : v, int(std::min<int64_t>(indent, 64))));
  }
  if (name == "list") {
    need_defined();
    return Value::make_list(iterate(v));
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::make_list();
    if (!v.is_mapping()) throw TemplateError("items: expected a mapping, got " + type_name(v));
    List out;
    for (const auto& [k, x] : *v.dict) out.push_back(Value::make_list({Value::string(k), x}));
    return Value::make_list(std::move(out));
  }
  if (name == "join") {
    check_known(a, fn, 2, {"d", "attribute"});
    const std::string sep = arg(a, 0, "d") ? to_str(*arg(a, 0, "d")) : "";
    const Value* attr = arg(a, 1, "attribute");
    std::string out;
    bool first = true;
    for (const Value& x : iterate(v)) {
      if (!first) out += sep;
      out += to_str(attr ? attribute_of(x, to_str(*attr)) : x);
      first = false;
    }
    return Value::string(out);
  }
  if (name == "first" || name == "last") {
    const List items = iterate(v);
    if (items.empty()) return Value::undefined("No " + name + " item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    if (v.is_string()) {
      auto chars = utf8_chars(v.s);
      std::string out;
      for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += *it;
      return Value::string(out);
    }
    List items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::make_list(std::move(items));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr")
    return Value::make_list(select_items(v, a, name.find("attr") != std::string::npos, name[0] == 's', fn));
  if (name == "map") {
    List out;
    const Value* attr = arg(a, 99, "attribute");
    if (attr) {
      const Value dflt = arg_or(a, 99, "default", Value::undefined());
      for (const Value& x : iterate(v)) {
        Value y = attribute_of(x, to_str(*attr));
        out.push_back(y.is_undefined() && !dflt.is_undefined() ? dflt : y);
      }
      return Value::make_list(std::move(out));
    }
    if (a.positional.empty() || !a.positional[0].is_string()) throw TemplateError("map() needs a filter name or attribute=");
    const std::string filter = a.positional[0].s;
    Args rest;
    rest.positional.assign(a.positional.begin() + 1, a.positional.end());
    rest.keyword = a.keyword;
    for (const Value& x : iterate(v)) {
      Args copy = rest;
      out.push_back(apply_filter(filter, x, copy));
    }
    return Value::make_list(std::move(out));
  }
  if (name == "unique") {
    List out;
    for (const Value& x : iterate(v)) {
      bool seen = false;
      for (const Value& y : out) seen = seen || equal(x, y);
      if (!seen) out.push_back(x);
    }
    return Value::make_list(std::move(out));
  }
  if (name == "sort" || name == "dictsort") {
    check_known(a, fn, 3, {"reverse", "case_sensitive", "attribute", "by"});
    Args none;
    List items = name == "dictsort" ? *apply_filter("items", v, none).list : iterate(v);
    const bool rev = arg_or(a, 0, "reverse", Value::boolean(false)).truthy();
    const Value* attr = name == "sort" ? arg(a, 2, "attribute") : nullptr;
    const auto key = [&](const Value& x) {
      if (name == "dictsort") return (*x.list)[0];
      return attr ? attribute_of(x, to_str(*attr)) : x;
    };
    std::stable_sort(items.begin(), items.end(),
                     [&](const Value& p, const Value& q) { return rev ? less(key(q), key(p)) : less(key(p), key(q)); });
    return Value::make_list(std::move(items));
  }
  if (name == "min" || name == "max") {
    const List items = iterate(v);
    if (items.empty()) return Value::undefined("No " + name + " item, sequence was empty.");
    Value best = items[0];
    for (const Value& x : items)
      if (name == "min" ? less(x, best) : less(best, x)) best = x;
    return best;
  }
  if (name == "sum") {
    Value total = arg_or(a, 1, "start", Value::integer(0));
    const Value* attr = arg(a, 0, "attribute");
    for (const Value& x : iterate(v)) {
      const Value y = attr ? attribute_of(x, to_str(*attr)) : x;
      if (!y.is_number() || !total.is_number()) throw TemplateError("sum: items must be numbers");
      if (y.type == Value::Type::Float || total.type == Value::Type::Float)
        total = Value::number((total.type == Value::Type::Float ? total.f : double(total.i)) +
                              (y.type == Value::Type::Float ? y.f : double(y.type == Value::Type::Int ? y.i : y.b)));
      else
        total = Value::integer(total.i + (y.type == Value::Type::Int ? y.i : y.b));
    }
    return total;
  }
  if (name == "int") {
    if (v.type == Value::Type::Int) return v;
    if (v.type == Value::Type::Bool) return Value::integer(v.b);
    if (v.type == Value::Type::Float) return Value::integer(int64_t(v.f));
    if (v.is_string()) {
      char* end = nullptr;
      const long long x = std::strtoll(v.s.c_str(), &end, 10);
      if (!v.s.empty() && *end == '\0') return Value::integer(x);
    }
    return arg_or(a, 0, "default", Value::integer(0));
  }
  if (name == "float") {
    if (v.is_number()) return Value::number(v.type == Value::Type::Float ? v.f : double(v.type == Value::Type::Int ? v.i : v.b));
    if (v.is_string()) {
      char* end = nullptr;
      const double x = std::strtod(v.s.c_str(), &end);
      if (!v.s.empty() && *end == '\0') return Value::number(x);
    }
    return arg_or(a, 0, "default", Value::number(0));
  }
  if (name == "abs") {
    if (v.type == Value::Type::Int) return Value::integer(v.i < 0 ? -v.i : v.i);
    if (v.type == Value::Type::Float) return Value::number(std::fabs(v.f));
    throw TemplateError("bad operand type for abs(): '" + type_name(v) + "'");
  }
  if (name == "round") {
    check_known(a, fn, 2, {"precision", "method"});
    const int64_t precision = int_arg(a, 0, "precision", 0, fn);
    const std::string method = arg(a, 1, "method") ? to_str(*arg(a, 1, "method")) : "common";
    const double x = v.type == Value::Type::Float ? v.f : v.type == Value::Type::Int ? double(v.i) : double(v.b);
    const double scale = std::pow(10.0, double(precision));
    double r = method == "ceil" ? std::ceil(x * scale) : method == "floor" ? std::floor(x * scale) : std::round(x * scale);
    return Value::number(r / scale);
  }
  if (name == "indent") {
    check_known(a, fn, 3, {"width", "first", "blank"});
    const Value w = arg_or(a, 0, "width", Value::integer(4));
    const std::string pad = w.is_string() ? w.s : std::string(size_t(std::max<int64_t>(0, std::min<int64_t>(w.i, 256))), ' ');
    const bool first = arg_or(a, 1, "first", Value::boolean(false)).truthy();
    const bool blank = arg_or(a, 2, "blank", Value::boolean(false)).truthy();
    const std::string s = to_str(v);
    std::string out;
    size_t b = 0;
    bool is_first = true;
    for (;;) {
      const size_t e = s.find('\n', b);
      const std::string line = s.substr(b, e == std::string::npos ? std::string::npos : e - b);
      if ((!is_first || first) && (blank || !line.empty())) out += pad;
      out += line;
      if (e == std::string::npos) break;
      out += '\n';
      b = e + 1;
      is_first = false;
    }
    return Value::string(out);
  }
  if (name == "wordcount") return Value::integer(int64_t(py_split(to_str(v), Value::none(), -1).size()));
  if (name == "attr") return attribute_of(v, str_arg(a, 0, "name", fn));
  throw TemplateError("unknown filter '" + name + "'");
}

bool apply_test(const std::string& name, const Value& v, Args& a) {
  const auto other = [&]() -> const Value& {
    if (a.positional.empty()) throw TemplateError("test '" + name + "' needs an argument");
    return a.positional[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.type == Value::Type::Bool;
  if (name == "true") return v.type == Value::Type::Bool && v.b;
  if (name == "false") return v.type == Value::Type::Bool && !v.b;
  if (name == "integer") return v.type == Value::Type::Int;
  if (name == "float") return v.type == Value::Type::Float;
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_mapping();
  if (name == "iterable") return v.is_list() || v.is_mapping() || v.is_string() || v.is_undefined();
  if (name == "sequence") return v.is_list() || v.is_mapping() || v.is_string();
  if (name == "callable") return v.type == Value::Type::Function;
  if (name == "sameas") {
    const Value& o = other();
    if (v.type != o.type) return false;
    if (v.type == Value::Type::List) return v.list == o.list;
    if (v.is_mapping()) return v.dict == o.dict;
    return equal(v, o);
  }
  if (name == "eq" || name == "equalto" || name == "==") return equal(v, other());
  if (name == "ne" || name == "!=") return !equal(v, other());
  if (name == "lt" || name == "lessthan" || name == "<") return less(v, other());
  if (name == "gt" || name == "greaterthan" || name == ">") return less(other(), v);
  if (name == "le" || name == "<=") return !less(other(), v);
  if (name == "ge" || name == ">=") return !less(v, other());
  if (name == "in") {
    const Value& c = other();
    if (c.is_string()) return v.is_string() && c.s.find(v.s) != std::string::npos;
    if (c.is_mapping()) return v.is_string() && c.find(v.s);
    for (const Value& x : iterate(c))
      if (equal(x, v)) return true;
    return false;
  }
  if (name == "divisibleby") {
    const Value& d = other();
    if (v.type != Value::Type::Int || d.type != Value::Type::Int || d.i == 0)
      throw TemplateError("divisibleby needs non-zero integers");
    return v.i % d.i == 0;
  }
  if (name == "even" || name == "odd") {
    if (v.type != Value::Type::Int) throw TemplateError("test '" + name + "' needs an integer");
    return (v.i % 2 == 0) == (name == "even");
  }
  if (name == "lower") return v.is_string() && ascii_map(v.s, [](int c) { return std::tolower(c); }) == v.s;
  if (name == "upper") return v.is_string() && ascii_map(v.s, [](int c) { return std::toupper(c); }) == v.s;
  if (name == "escaped") return false;
  throw TemplateError("unknown test '" + name + "'");
}

Value global(const std::string& name, std::time_t now) {
  if (name == "raise_exception")
    return bind([](Args& a) -> Value {
      throw TemplateError(a.positional.empty() ? std::string("raise_exception() called") : to_str(a.positional[0]), 0, true);
    });
  if (name == "namespace" || name == "dict")
    return bind([name](Args& a) {
      Dict items;
      for (const Value& p : a.positional) {
        if (!p.is_mapping()) throw TemplateError(name + "() positional arguments must be mappings");
        for (const auto& kv : *p.dict) items.push_back(kv);
      }
      for (const auto& kv : a.keyword) {
        bool replaced = false;
        for (auto& it : items)
          if (it.first == kv.first) {
            it.second = kv.second;
            replaced = true;
          }
        if (!replaced) items.push_back(kv);
      }
      return name == "dict" ? Value::make_dict(std::move(items)) : Value::make_namespace(std::move(items));
    });
  if (name == "range")
    return bind([](Args& a) {
      check_known(a, "range", 3, {});
      int64_t start = 0, stop = 0, stp = 1;
      if (a.positional.size() == 1) {
        stop = int_arg(a, 0, "stop", 0, "range");
      } else if (a.positional.size() >= 2) {
        start = int_arg(a, 0, "start", 0, "range");
        stop = int_arg(a, 1, "stop", 0, "range");
        stp = int_arg(a, 2, "step", 1, "range");
      } else {
        throw TemplateError("range() takes 1 to 3 arguments");
      }
      if (stp == 0) throw TemplateError("range() arg 3 must not be zero");
      List out;
      for (int64_t k = start; stp > 0 ? k < stop : k > stop; k += stp) {
        if (out.size() >= 100000) throw TemplateError("range() of more than 100000 items");  // jinja2's sandbox limit
        out.push_back(Value::integer(k));
      }
      return Value::make_list(std::move(out));
    });
  if (name == "strftime_now")
    return bind([now](Args& a) {
      check_known(a, "strftime_now", 1, {});
      const std::string fmt = str_arg(a, 0, "format", "strftime_now");
      std::tm tm{};
      gmtime_r(&now, &tm);
      std::string buf(256, '\0');
      for (;;) {
        const size_t n = std::strftime(&buf[0], buf.size(), fmt.c_str(), &tm);
        if (n > 0 || buf.size() > 64 * fmt.size() + 256) {
          buf.resize(n);
          return Value::string(buf);
        }
        buf.resize(buf.size() * 2);
      }
    });
  return Value::undefined();
}

}  // namespace qkv::jinja
