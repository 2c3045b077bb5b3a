// JSON text -> template values (a chat's messages, tools), as Python's
// json.loads reads it: numbers with a fraction or exponent are floats, others
// ints; objects keep their key order (a repeated key keeps its last value at
// its first place).
#pragma once

#include <string>

#include "engine/chat/value.h"

namespace qkv::jinja {

// Throws TemplateError("line L, column C: what was expected, what was found")
// on malformed text, on nesting deeper than 256 and on a number out of range.
Value parse_json(const std::string& text);

}  // namespace qkv::jinja
