// Walks a template's parse tree with jinja2's semantics: scopes (a for
// loop's body, a macro's body, and nothing else, open one), lenient undefined
// values, Python arithmetic and comparisons, loop variables.
#include <algorithm>
#include <cmath>
#include <map>

#include "engine/chat/jinja.h"
#include "engine/chat/jinja_ast.h"
#include "engine/chat/jinja_builtins.h"

namespace qkv::jinja {

namespace {

enum class Flow { Normal, Break, Continue };

// The message jinja2 gives when an undefined value is used as a real one.
std::string undefined_message(const Value& v) { return v.s.empty() ? "a value is undefined" : v.s; }

int64_t as_int(const Value& v) { return v.type == Value::Type::Bool ? int64_t(v.b) : v.i; }
double as_double(const Value& v) {
  return v.type == Value::Type::Float ? v.f : v.type == Value::Type::Int ? double(v.i) : double(v.b);
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// Python's list[start:stop:step] indices.
std::vector<size_t> slice_indices(int64_t n, const Value& start, const Value& stop, const Value& step) {
  const auto given = [](const Value& v) { return !v.is_undefined() && !v.is_none(); };
  for (const Value* v : {&start, &stop, &step})
    if (given(*v) && v->type != Value::Type::Int && v->type != Value::Type::Bool)
      throw TemplateError("slice indices must be integers or None, not " + type_name(*v));
  const int64_t st = given(step) ? as_int(step) : 1;
  if (st == 0) throw TemplateError("slice step cannot be zero");
  const auto clamp = [&](const Value& v, int64_t dflt) {
    if (!given(v)) return dflt;
    int64_t x = as_int(v);
    if (x < 0) x += n;
    if (st > 0) return std::min(std::max<int64_t>(x, 0), n);
    return std::min(std::max<int64_t>(x, -1), n - 1);
  };
  const int64_t b = clamp(start, st > 0 ? 0 : n - 1);
  const int64_t e = clamp(stop, st > 0 ? n : -1);
  std::vector<size_t> out;
  for (int64_t k = b; st > 0 ? k < e : k > e; k += st) out.push_back(size_t(k));
  return out;
}

class Renderer {
 public:
  Renderer(const RenderOptions& options, const Value& variables) : opt_(options) {
    frames_.emplace_back();
    if (variables.is_mapping())
      for (const auto& [k, v] : *variables.dict) frames_.back()[k] = v;
  }

  std::string run(const Node& root) {
    std::string out;
    try {
      if (render(root, out) != Flow::Normal) throw TemplateError("'break' or 'continue' outside a loop", line_);
    } catch (TemplateError& e) {
      if (e.line == 0) e.line = line_;
      throw;
    }
    return out;
  }

 private:
  const RenderOptions& opt_;
  std::vector<std::map<std::string, Value>> frames_;
  int line_ = 0;
  size_t steps_ = 0;
  int depth_ = 0;

  void step() {
    if (++steps_ > opt_.max_steps)
      throw TemplateError("the template ran for more than " + std::to_string(opt_.max_steps) +
                          " loop iterations and calls; stopped");
  }

  Value lookup(const std::string& name) const {
    for (auto f = frames_.rbegin(); f != frames_.rend(); ++f) {
      auto it = f->find(name);
      if (it != f->end()) return it->second;
    }
    Value g = global(name, opt_.now);
    if (!g.is_undefined()) return g;
    return Value::undefined("'" + name + "' is undefined");
  }

  // ------------------------------------------------------------ statements

  Flow render(const Node& n, std::string& out) {
    line_ = n.line;
    switch (n.kind) {
      case Kind::Body:
        for (const auto& s : n.kids) {
          const Flow f = render(*s, out);
          if (f != Flow::Normal) return f;
        }
        return Flow::Normal;
      case Kind::Text: append(out, n.value.s); return Flow::Normal;
      case Kind::Output: append(out, to_str(eval(*n.kids[0]))); return Flow::Normal;
      case Kind::If: {
        const size_t pairs = (n.kids.size() - (n.has_else ? 1 : 0)) / 2;
        for (size_t k = 0; k < pairs; ++k)
          if (eval(*n.kids[2 * k]).truthy()) return render(*n.kids[2 * k + 1], out);
        if (n.has_else) return render(*n.kids.back(), out);
        return Flow::Normal;
      }
      case Kind::For: return render_for(n, out);
      case Kind::Set: {
        Value v = eval(*n.kids[0]);
        line_ = n.line;
        if (!n.name.empty()) {
          Value target = lookup(n.names[0]);
          if (target.type != Value::Type::Namespace)
            throw TemplateError("cannot assign attribute '" + n.name + "' of '" + n.names[0] + "': not a namespace()");
          for (auto& kv : *target.dict)
            if (kv.first == n.name) {
              kv.second = std::move(v);
              return Flow::Normal;
            }
          target.dict->emplace_back(n.name, std::move(v));
          return Flow::Normal;
        }
        assign(n.names, v);
        return Flow::Normal;
      }
      case Kind::SetBlock: {
        std::string text;
        if (render(*n.kids[0], text) != Flow::Normal) throw TemplateError("'break' or 'continue' outside a loop");
        frames_.back()[n.names[0]] = Value::string(std::move(text));
        return Flow::Normal;
      }
      case Kind::Macro: frames_.back()[n.name] = macro(n); return Flow::Normal;
      case Kind::Break: return Flow::Break;
      case Kind::Continue: return Flow::Continue;
      default: throw TemplateError("internal: not a statement");
    }
  }

  void append(std::string& out, const std::string& s) {
    if (out.size() + s.size() > opt_.max_output)
      throw TemplateError("the template's output passed " + std::to_string(opt_.max_output) + " bytes; stopped");
    out += s;
  }

  void assign(const std::vector<std::string>& names, const Value& v) {
    if (names.size() == 1) {
      frames_.back()[names[0]] = v;
      return;
    }
    const List items = iterate(v);
    if (items.size() != names.size())
      throw TemplateError("cannot unpack " + std::to_string(items.size()) + " values into " +
                          std::to_string(names.size()) + " names");
    for (size_t k = 0; k < names.size(); ++k) frames_.back()[names[k]] = items[k];
  }

  Flow render_for(const Node& n, std::string& out) {
    const Value seq = eval(*n.kids[0]);
    List items = iterate(seq);
    if (n.kids[1]) {  // for x in xs if cond: the loop sees only the items that pass
      List kept;
      for (const Value& item : items) {
        step();
        frames_.emplace_back();
        assign(n.names, item);
        const bool keep = eval(*n.kids[1]).truthy();
        frames_.pop_back();
        if (keep) kept.push_back(item);
      }
      items = std::move(kept);
    }
    const int64_t len = int64_t(items.size());
    for (int64_t k = 0; k < len; ++k) {
      step();
      frames_.emplace_back();
      assign(n.names, items[size_t(k)]);
      Dict loop = {
          {"index", Value::integer(k + 1)},
          {"index0", Value::integer(k)},
          {"revindex", Value::integer(len - k)},
          {"revindex0", Value::integer(len - k - 1)},
          {"first", Value::boolean(k == 0)},
          {"last", Value::boolean(k == len - 1)},
          {"length", Value::integer(len)},
          {"depth", Value::integer(1)},
          {"depth0", Value::integer(0)},
          {"previtem", k > 0 ? items[size_t(k - 1)] : Value::undefined("there is no previous item")},
          {"nextitem", k + 1 < len ? items[size_t(k + 1)] : Value::undefined("there is no next item")},
      };
      loop.emplace_back("cycle", Value::function([k](Args& a) {
        if (a.positional.empty()) throw TemplateError("loop.cycle() needs at least one value");
        return a.positional[size_t(k) % a.positional.size()];
      }));
      frames_.back()["loop"] = Value::make_dict(std::move(loop));
      const Flow f = render(*n.kids[2], out);
      frames_.pop_back();
      if (f == Flow::Break) break;
    }
    if (len == 0 && n.kids[3]) return render(*n.kids[3], out);
    return Flow::Normal;
  }

  Value macro(const Node& n) {
    const Node* def = &n;
    return Value::function([this, def](Args& args) {
      step();
      if (++depth_ > 64) throw TemplateError("macro calls nested deeper than 64");
      const size_t n_params = def->names.size();
      const size_t n_defaults = def->kids.size() - 1;
      std::map<std::string, Value> frame;
      if (args.positional.size() > n_params)
        throw TemplateError("macro '" + def->name + "' takes " + std::to_string(n_params) + " arguments");
      for (size_t k = 0; k < n_params; ++k) {
        if (k < args.positional.size()) {
          frame[def->names[k]] = args.positional[k];
        } else if (k >= n_params - n_defaults) {
          frame[def->names[k]] = eval(*def->kids[1 + k - (n_params - n_defaults)]);
        } else {
          frame[def->names[k]] = Value::undefined("'" + def->names[k] + "' is undefined");
        }
      }
      for (auto& [key, v] : args.keyword) {
        if (std::find(def->names.begin(), def->names.end(), key) == def->names.end())
          throw TemplateError("macro '" + def->name + "' has no parameter '" + key + "'");
        frame[key] = v;
      }
      // A macro sees the template's top level and its parameters, not its caller's loop variables.
      std::vector<std::map<std::string, Value>> saved;
      saved.swap(frames_);
      frames_.push_back(saved.front());
      frames_.push_back(std::move(frame));
      std::string text;
      try {
        render(*def->kids[0], text);
      } catch (...) {
        frames_.swap(saved);
        --depth_;
        throw;
      }
      saved.front() = frames_.front();
      frames_.swap(saved);
      --depth_;
      return Value::string(std::move(text));
    });
  }

  // ------------------------------------------------------------ expressions

  Args eval_args(const Node& n, size_t first) {
    Args args;
    const size_t n_kw = n.names.size();
    const size_t n_pos = n.kids.size() - first - n_kw;
    for (size_t k = 0; k < n_pos; ++k) args.positional.push_back(eval(*n.kids[first + k]));
    for (size_t k = 0; k < n_kw; ++k) args.keyword.emplace_back(n.names[k], eval(*n.kids[first + n_pos + k]));
    return args;
  }

  Value eval(const Node& n) {
    line_ = n.line;
    switch (n.kind) {
      case Kind::Literal: return n.value;
      case Kind::Var: return lookup(n.name);
      case Kind::List: {
        List items;
        for (const auto& k : n.kids) items.push_back(eval(*k));
        return Value::make_list(std::move(items));
      }
      case Kind::Dict: {
        Dict items;
        for (size_t k = 0; k + 1 < n.kids.size(); k += 2) {
          const Value key = eval(*n.kids[k]);
          if (!key.is_string()) throw TemplateError("dict keys must be strings here, not " + type_name(key));
          Value v = eval(*n.kids[k + 1]);
          bool replaced = false;
          for (auto& kv : items)
            if (kv.first == key.s) {
              kv.second = v;
              replaced = true;
            }
          if (!replaced) items.emplace_back(key.s, std::move(v));
        }
        return Value::make_dict(std::move(items));
      }
      case Kind::Attr: return attribute(eval(*n.kids[0]), n.name);
      case Kind::Item: return item(eval(*n.kids[0]), eval(*n.kids[1]));
      case Kind::Slice: {
        const Value obj = eval(*n.kids[0]);
        const auto part = [&](size_t k) { return n.kids[k] ? eval(*n.kids[k]) : Value::none(); };
        const Value start = part(1), stop = part(2), stp = part(3);
        line_ = n.line;
        if (obj.is_undefined()) throw TemplateError(undefined_message(obj));
        if (obj.is_list()) {
          List out;
          for (size_t k : slice_indices(int64_t(obj.list->size()), start, stop, stp)) out.push_back((*obj.list)[k]);
          return Value::make_list(std::move(out));
        }
        if (obj.is_string()) {
          const auto chars = utf8_chars(obj.s);
          std::string out;
          for (size_t k : slice_indices(int64_t(chars.size()), start, stop, stp)) out += chars[k];
          return Value::string(std::move(out));
        }
        throw TemplateError("'" + type_name(obj) + "' object cannot be sliced");
      }
      case Kind::Call: {
        const Value callee = eval(*n.kids[0]);
        Args args = eval_args(n, 1);
        line_ = n.line;
        if (callee.is_undefined()) throw TemplateError(undefined_message(callee));
        if (callee.type != Value::Type::Function) throw TemplateError("'" + type_name(callee) + "' object is not callable");
        step();
        return (*callee.func)(args);
      }
      case Kind::Filter: {
        const Value operand = eval(*n.kids[0]);
        Args args = eval_args(n, 1);
        line_ = n.line;
        return apply_filter(n.name, operand, args);
      }
      case Kind::Test: {
        const Value operand = eval(*n.kids[0]);
        Args args = eval_args(n, 1);
        line_ = n.line;
        return Value::boolean(apply_test(n.name, operand, args) != n.negate);
      }
      case Kind::Not: return Value::boolean(!eval(*n.kids[0]).truthy());
      case Kind::Negate: {
        const Value v = eval(*n.kids[0]);
        if (v.type == Value::Type::Int || v.type == Value::Type::Bool) return Value::integer(-as_int(v));
        if (v.type == Value::Type::Float) return Value::number(-v.f);
        if (v.is_undefined()) throw TemplateError(undefined_message(v));
        throw TemplateError("bad operand type for unary -: '" + type_name(v) + "'");
      }
      case Kind::And: {
        Value a = eval(*n.kids[0]);
        return a.truthy() ? eval(*n.kids[1]) : a;
      }
      case Kind::Or: {
        Value a = eval(*n.kids[0]);
        return a.truthy() ? a : eval(*n.kids[1]);
      }
      case Kind::Binary: {
        const Value a = eval(*n.kids[0]);
        const Value b = eval(*n.kids[1]);
        line_ = n.line;
        return binary(n.name, a, b);
      }
      case Kind::Compare: {
        Value left = eval(*n.kids[0]);
        for (size_t k = 0; k < n.names.size(); ++k) {
          Value right = eval(*n.kids[k + 1]);
          line_ = n.line;
          if (!compare(n.names[k], left, right)) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
      case Kind::Cond:
        if (eval(*n.kids[1]).truthy()) return eval(*n.kids[0]);
        return n.kids[2] ? eval(*n.kids[2]) : Value::undefined("the condition was false and there is no else");
      default: throw TemplateError("internal: not an expression");
    }
  }

  static Value attribute(const Value& obj, const std::string& name) {
    if (obj.is_undefined()) throw TemplateError(undefined_message(obj));
    Value m = method(obj, name);
    if (!m.is_undefined()) return m;
    if (const Value* v = obj.find(name)) return *v;
    return Value::undefined("'" + type_name(obj) + " object' has no attribute '" + name + "'");
  }

  static Value item(const Value& obj, const Value& key) {
    if (obj.is_undefined()) throw TemplateError(undefined_message(obj));
    if (obj.is_mapping() && key.is_string()) {
      if (const Value* v = obj.find(key.s)) return *v;
      Value m = method(obj, key.s);
      if (!m.is_undefined()) return m;
      return Value::undefined("'" + type_name(obj) + " object' has no attribute '" + key.s + "'");
    }
    if ((obj.is_list() || obj.is_string()) && (key.type == Value::Type::Int || key.type == Value::Type::Bool)) {
      if (obj.is_list()) {
        int64_t k = as_int(key);
        const int64_t n = int64_t(obj.list->size());
        if (k < 0) k += n;
        if (k >= 0 && k < n) return (*obj.list)[size_t(k)];
        return Value::undefined("list index " + std::to_string(as_int(key)) + " is out of range");
      }
      const auto chars = utf8_chars(obj.s);
      int64_t k = as_int(key);
      const int64_t n = int64_t(chars.size());
      if (k < 0) k += n;
      if (k >= 0 && k < n) return Value::string(chars[size_t(k)]);
      return Value::undefined("string index " + std::to_string(as_int(key)) + " is out of range");
    }
    if (key.is_string()) {
      Value m = method(obj, key.s);
      if (!m.is_undefined()) return m;
    }
    return Value::undefined("'" + type_name(obj) + " object' has no item " + to_repr(key));
  }

  // Strings and lists a template builds stay below this (a doubling loop would take all memory).
  static constexpr size_t kMaxValueSize = size_t(64) << 20;
  static void check_size(size_t n) {
    if (n > kMaxValueSize)
      throw TemplateError("a value of more than " + std::to_string(kMaxValueSize) + " bytes or items; stopped");
  }

  static Value binary(const std::string& op, const Value& a, const Value& b) {
    if (op == "~") {
      std::string sa = to_str(a), sb = to_str(b);
      check_size(sa.size() + sb.size());
      return Value::string(sa + sb);
    }
    if (a.is_undefined()) throw TemplateError(undefined_message(a));
    if (b.is_undefined()) throw TemplateError(undefined_message(b));
    const bool ints = (a.type == Value::Type::Int || a.type == Value::Type::Bool) &&
                      (b.type == Value::Type::Int || b.type == Value::Type::Bool);
    const bool nums = a.is_number() && b.is_number();
    const auto unsupported = [&]() -> TemplateError {
      if (op == "+" && a.is_string())
        return TemplateError("can only concatenate str (not \"" + type_name(b) + "\") to str");
      return TemplateError("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
    };
    if (op == "+") {
      if (ints) return Value::integer(as_int(a) + as_int(b));
      if (nums) return Value::number(as_double(a) + as_double(b));
      if (a.is_string() && b.is_string()) {
        check_size(a.s.size() + b.s.size());
        return Value::string(a.s + b.s);
      }
      if (a.is_list() && b.is_list()) {
        check_size(a.list->size() + b.list->size());
        List out = *a.list;
        out.insert(out.end(), b.list->begin(), b.list->end());
        return Value::make_list(std::move(out));
      }
      throw unsupported();
    }
    if (op == "-") {
      if (ints) return Value::integer(as_int(a) - as_int(b));
      if (nums) return Value::number(as_double(a) - as_double(b));
      throw unsupported();
    }
    if (op == "*") {
      if (ints) return Value::integer(as_int(a) * as_int(b));
      if (nums) return Value::number(as_double(a) * as_double(b));
      const Value* seq = a.is_string() || a.is_list() ? &a : &b;
      const Value* count = seq == &a ? &b : &a;
      if ((seq->is_string() || seq->is_list()) && (count->type == Value::Type::Int || count->type == Value::Type::Bool)) {
        const int64_t times = as_int(*count);
        const size_t unit = seq->is_string() ? seq->s.size() : seq->list->size();
        if (times > 0 && unit > 0 && uint64_t(times) > (uint64_t(1) << 26) / unit)
          throw TemplateError("repetition of a " + type_name(*seq) + " " + std::to_string(times) + " times is too long");
        if (seq->is_string()) {
          std::string out;
          for (int64_t k = 0; k < times; ++k) out += seq->s;
          return Value::string(std::move(out));
        }
        List out;
        for (int64_t k = 0; k < times; ++k) out.insert(out.end(), seq->list->begin(), seq->list->end());
        return Value::make_list(std::move(out));
      }
      throw unsupported();
    }
    if (!nums) throw unsupported();
    if (op == "/") {
      if (as_double(b) == 0) throw TemplateError("division by zero");
      return Value::number(as_double(a) / as_double(b));
    }
    if (op == "//" || op == "%") {
      if (ints) {
        if (as_int(b) == 0) throw TemplateError("integer division or modulo by zero");
        const int64_t q = floor_div(as_int(a), as_int(b));
        return Value::integer(op == "//" ? q : as_int(a) - q * as_int(b));
      }
      if (as_double(b) == 0) throw TemplateError("float division or modulo by zero");
      const double q = std::floor(as_double(a) / as_double(b));
      return Value::number(op == "//" ? q : as_double(a) - q * as_double(b));
    }
    if (op == "**") {
      if (ints && as_int(b) >= 0) {
        int64_t r = 1;
        for (int64_t k = 0; k < as_int(b) && k < 64; ++k) r *= as_int(a);
        return Value::integer(r);
      }
      return Value::number(std::pow(as_double(a), as_double(b)));
    }
    throw TemplateError("unknown operator " + op);
  }

  static bool contains(const Value& container, const Value& x) {
    switch (container.type) {
      case Value::Type::Undefined: return false;
      case Value::Type::String:
        if (!x.is_string()) throw TemplateError("'in <string>' requires string as left operand, not " + type_name(x));
        return container.s.find(x.s) != std::string::npos;
      case Value::Type::List:
        for (const Value& v : *container.list)
          if (equal(v, x)) return true;
        return false;
      case Value::Type::Dict:
      case Value::Type::Namespace: return x.is_string() && container.find(x.s) != nullptr;
      default: throw TemplateError("argument of type '" + type_name(container) + "' is not iterable");
    }
  }

  static bool compare(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equal(a, b);
    if (op == "!=") return !equal(a, b);
    if (op == "in") return contains(b, a);
    if (op == "notin") return !contains(b, a);
    if (a.is_undefined()) throw TemplateError(undefined_message(a));
    if (b.is_undefined()) throw TemplateError(undefined_message(b));
    if (op == "<") return less(a, b);
    if (op == ">") return less(b, a);
    if (op == "<=") return !less(b, a);
    if (op == ">=") return !less(a, b);
    throw TemplateError("unknown comparison " + op);
  }
};

}  // namespace

Template::Template(const std::string& source) : root_(parse_template(source)) {}

std::string Template::render(const Value& variables, const RenderOptions& options) const {
  Renderer r(options, variables);
  return r.run(*root_);
}

}  // namespace qkv::jinja
