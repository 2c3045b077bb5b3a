// The chat formats qkv knows by name, for weights files without a
// tokenizer.chat_template (llama2.c models, old GGUFs): --chat-template NAME.
#pragma once

#include <string>
#include <vector>

namespace qkv {

// The Jinja source of a named format, or nullptr.
const char* builtin_chat_template(const std::string& name);
std::vector<std::string> builtin_chat_template_names();

}  // namespace qkv
