// What a template can call: jinja2's filters and tests, the methods of
// Python's str and dict that chat templates use, and the global functions
// (range, namespace, dict, raise_exception, strftime_now).
#pragma once

#include <ctime>
#include <string>

#include "engine/chat/value.h"

namespace qkv::jinja {

// `operand | name(args)`; TemplateError for an unknown filter or bad arguments.
Value apply_filter(const std::string& name, const Value& operand, Args& args);
// `operand is name(args)`.
bool apply_test(const std::string& name, const Value& operand, Args& args);
// `object.name` for a str or dict method (a function bound to `object`), or
// undefined when `object` has no such method.
Value method(const Value& object, const std::string& name);
// The global names every template sees; strftime_now formats `now` (UTC).
Value global(const std::string& name, std::time_t now);

// Python's str methods the templates call.
std::string py_strip(const std::string& s, const Value& chars, bool left, bool right);

}  // namespace qkv::jinja
