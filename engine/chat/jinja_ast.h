// The parse tree of a template (engine/chat/jinja_parser.cpp makes it,
// jinja_render.cpp walks it). One node type; what `name`, `names`, `value`
// and `kids` hold depends on the kind, as listed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/chat/value.h"

namespace qkv::jinja {

struct Node;
using NodePtr = std::shared_ptr<Node>;

enum class Kind {
  // ---- expressions
  Literal,  // value
  Var,      // name
  List,     // kids: items (also tuples)
  Dict,     // kids: key, value, key, value, ...
  Attr,     // kids[0].name
  Item,     // kids[0][kids[1]]
  Slice,    // kids[0][kids[1]:kids[2]:kids[3]], an omitted part is null
  Call,     // kids[0](kids[1..]); the last names.size() arguments are keyword ones, named by names
  Filter,   // kids[0] | name(kids[1..]), keywords as for Call
  Test,     // kids[0] is [not] name(kids[1..]); negate
  Not,      // not kids[0]
  Negate,   // -kids[0]
  And,      // kids[0] and kids[1]
  Or,       // kids[0] or kids[1]
  Binary,   // kids[0] name kids[1], name one of + - * / // % ** ~
  Compare,  // kids[0] names[0] kids[1] names[1] kids[2] ...; names: == != < > <= >= in notin
  Cond,     // kids[0] if kids[1] else kids[2] (kids[2] null: undefined)
  // ---- statements
  Text,      // value.s, printed as is
  Output,    // {{ kids[0] }}
  Body,      // kids: statements in order
  If,        // kids: condition, body, condition, body, ... and, when has_else, the else body last
  For,       // for names in kids[0] if kids[1] (null: none): kids[2] else kids[3] (null: none)
  Set,       // set names = kids[0] (several names: unpacking); name != "": set names[0].name = kids[0]
  SetBlock,  // set names[0] %} kids[0] {% endset
  Macro,     // macro name(names) with kids[0] the body, kids[1..] defaults of the last parameters
  Break,
  Continue,
};

struct Node {
  Kind kind;
  int line = 0;
  std::string name;
  std::vector<std::string> names;
  Value value;
  std::vector<NodePtr> kids;
  bool negate = false;    // Test
  bool has_else = false;  // If

  Node(Kind k, int l) : kind(k), line(l) {}
};

// Parses a whole template (trim_blocks and lstrip_blocks on, one trailing
// newline dropped); TemplateError with the line on a syntax error.
NodePtr parse_template(const std::string& source);

}  // namespace qkv::jinja
