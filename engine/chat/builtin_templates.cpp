#include "engine/chat/builtin_templates.h"

namespace qkv {

namespace {

struct Builtin {
  const char* name;
  const char* source;
};

// Written for qkv in each family's format (the same text the models'
// own templates render for plain role/content conversations).
const Builtin kBuiltins[] = {
    {"chatml",
     "{%- for message in messages -%}\n"
     "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}\n"
     "{%- endfor -%}\n"
     "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}\n"},
    {"llama3",
     "{{- bos_token -}}\n"
     "{%- for message in messages -%}\n"
     "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' -}}\n"
     "{%- endfor -%}\n"
     "{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}\n"},
    // Gemma has no system role: a system message opens the first user turn.
    {"gemma",
     "{{- bos_token -}}\n"
     "{%- if messages and messages[0]['role'] == 'system' -%}\n"
     "{%- set prefix = messages[0]['content'] + '\\n\\n' -%}{%- set loop_messages = messages[1:] -%}\n"
     "{%- else -%}{%- set prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}\n"
     "{%- for message in loop_messages -%}\n"
     "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}\n"
     "{{- '<start_of_turn>' + role + '\\n' + (prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\\n' -}}\n"
     "{%- endfor -%}\n"
     "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}\n"},
    {"phi3",
     "{%- for message in messages -%}\n"
     "{%- if message['role'] in ['system', 'user', 'assistant'] and message['content'] -%}\n"
     "{{- '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' -}}\n"
     "{%- endif -%}\n"
     "{%- endfor -%}\n"
     "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- else -%}{{- eos_token -}}{%- endif -%}\n"},
    // Mistral Instruct v0.1/v0.2: [INST] turns, a system message joins the next user turn.
    {"mistral",
     "{{- bos_token -}}\n"
     "{%- set ns = namespace(system='') -%}\n"
     "{%- for message in messages -%}\n"
     "{%- if message['role'] == 'system' -%}{%- set ns.system = message['content'] + '\\n\\n' -%}\n"
     "{%- elif message['role'] == 'user' -%}{{- '[INST] ' + ns.system + message['content'] + ' [/INST]' -}}{%- set ns.system = '' -%}\n"
     "{%- elif message['role'] == 'assistant' -%}{{- message['content'] + eos_token -}}\n"
     "{%- endif -%}\n"
     "{%- endfor -%}\n"},
    // Llama 2 chat: <<SYS>> inside the first [INST].
    {"llama2",
     "{%- set ns = namespace(system='') -%}\n"
     "{%- for message in messages -%}\n"
     "{%- if message['role'] == 'system' -%}{%- set ns.system = '<<SYS>>\\n' + message['content'] + '\\n<</SYS>>\\n\\n' -%}\n"
     "{%- elif message['role'] == 'user' -%}{{- bos_token + '[INST] ' + ns.system + message['content'] | trim + ' [/INST]' -}}"
     "{%- set ns.system = '' -%}\n"
     "{%- elif message['role'] == 'assistant' -%}{{- ' ' + message['content'] | trim + ' ' + eos_token -}}\n"
     "{%- endif -%}\n"
     "{%- endfor -%}\n"},
    {"zephyr",
     "{%- for message in messages -%}\n"
     "{{- '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' -}}\n"
     "{%- endfor -%}\n"
     "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}\n"},
};

}  // namespace

const char* builtin_chat_template(const std::string& name) {
  for (const auto& b : kBuiltins)
    if (name == b.name) return b.source;
  return nullptr;
}

std::vector<std::string> builtin_chat_template_names() {
  std::vector<std::string> names;
  for (const auto& b : kBuiltins) names.push_back(b.name);
  return names;
}

}  // namespace qkv
