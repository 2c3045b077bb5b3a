// A Jinja subset interpreter, enough for the chat templates models ship
// (tokenizer.chat_template): the environment transformers' apply_chat_template
// sets up, i.e. jinja2 with trim_blocks and lstrip_blocks, loop controls, the
// {% generation %} tag, raise_exception() and strftime_now().
//
//   jinja::Template t(source);                 // parse once; throws TemplateError with the line
//   std::string prompt = t.render(variables);  // variables: messages, add_generation_prompt, ...
//
// Statements: if/elif/else, for (tuple targets, `if` filter, else, loop.*),
// set (names, namespace attributes, blocks), macro, break/continue, raw,
// generation. Expressions: literals (strings, numbers, lists, dicts, tuples),
// arithmetic, comparisons, `in`, `and/or/not`, `~`, `x if c else y`,
// attributes, subscripts, slices, calls, filters and tests, with the
// methods of Python's str and dict the templates call. What it does not
// know is an error naming the line, never a silently different prompt.
#pragma once

#include <ctime>
#include <memory>
#include <string>

#include "engine/chat/value.h"

namespace qkv::jinja {

struct Node;

struct RenderOptions {
  // The clock strftime_now() formats (seconds since the epoch, read as UTC).
  std::time_t now = 0;
  // Longest output and most loop iterations + calls before the render is
  // stopped with an error (a template that would run for ever).
  size_t max_output = size_t(64) << 20;
  size_t max_steps = size_t(4) << 20;
};

class Template {
 public:
  explicit Template(const std::string& source);
  // The text `variables` (a dict) renders to; TemplateError on failure.
  std::string render(const Value& variables, const RenderOptions& options) const;

 private:
  std::shared_ptr<const Node> root_;
};

}  // namespace qkv::jinja
