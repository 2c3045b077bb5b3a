// libFuzzer target: any bytes as a chat template (the text a hostile GGUF's
// tokenizer.chat_template may hold), parsed and rendered over a fixed
// conversation. Every outcome is a prompt or a TemplateError: no crash, no
// hang (the step and output limits stop runaway loops), no unbounded memory.
#include <string>

#include "engine/chat/jinja.h"
#include "engine/chat/json_parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const qkv::jinja::Value vars = qkv::jinja::parse_json(
      R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi {{ x }}"},)"
      R"( {"role": "assistant", "content": "<think>t</think>A"}, {"role": "user", "content": ""}],)"
      R"( "add_generation_prompt": true, "tools": null, "bos_token": "<s>", "eos_token": "</s>"})");
  const std::string source(reinterpret_cast<const char*>(data), size);
  qkv::jinja::RenderOptions opt;
  opt.max_steps = 20000;
  opt.max_output = size_t(1) << 20;
  try {
    qkv::jinja::Template t(source);
    t.render(vars, opt);
  } catch (const qkv::jinja::TemplateError&) {
  }
  // The same bytes as a messages file.
  try {
    qkv::jinja::parse_json(source);
  } catch (const qkv::jinja::TemplateError&) {
  }
  return 0;
}
