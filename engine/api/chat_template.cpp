// qkv::ChatTemplate: a conversation -> the prompt text, with the engine's
// Jinja interpreter (engine/chat/) and transformers' apply_chat_template
// conventions around it.
#include <ctime>

#include "engine/api/qkv.hpp"
#include "engine/chat/builtin_templates.h"
#include "engine/chat/jinja.h"
#include "engine/chat/jinja_builtins.h"
#include "engine/chat/json_parse.h"
#include "engine/error.h"

namespace qkv {

struct ChatTemplate::Impl {
  std::string name, source;
  jinja::Template tmpl;
  Impl(std::string n, std::string s) : name(std::move(n)), source(std::move(s)), tmpl(source) {}
};

namespace {

std::string where(const std::string& name, int line) {
  return line > 0 ? cat(name, ", line ", line, ": ") : cat(name, ": ");
}

// transformers marks the end of the final message with this before cutting
// the rendered text there (continue_final_message).
const char kContinueTag[] = "CONTINUE_FINAL_MESSAGE_TAG ";

jinja::Value messages_value(const std::vector<ChatMessage>& messages) {
  jinja::List list;
  for (const auto& m : messages)
    list.push_back(jinja::Value::make_dict({{"role", jinja::Value::string(m.role)},
                                            {"content", jinja::Value::string(m.content)}}));
  return jinja::Value::make_list(std::move(list));
}

std::string render(const ChatTemplate::Impl& impl, jinja::Value messages, const ChatTemplateParams& p) {
  jinja::Dict vars;
  if (!messages.is_list()) throw Error(cat(impl.name, ": the messages must be a JSON list"), Errc::InvalidArgument);
  std::string final_content;
  if (p.continue_final_message) {
    if (messages.list->empty())
      throw Error(cat(impl.name, ": continue_final_message needs a final message"), Errc::InvalidArgument);
    // Copy the list and its last message before marking it.
    messages = jinja::Value::make_list(*messages.list);
    jinja::Value& last = messages.list->back();
    const jinja::Value* content = last.find("content");
    if (!content || !content->is_string())
      throw Error(cat(impl.name, ": continue_final_message needs a final message whose content is text"),
                  Errc::InvalidArgument);
    final_content = content->s;
    last = jinja::Value::make_dict(*last.dict);
    for (auto& kv : *last.dict)
      if (kv.first == "content") kv.second = jinja::Value::string(final_content + kContinueTag);
  }
  vars.emplace_back("messages", messages);
  vars.emplace_back("add_generation_prompt", jinja::Value::boolean(p.add_generation_prompt && !p.continue_final_message));
  vars.emplace_back("tools", jinja::Value::none());
  vars.emplace_back("documents", jinja::Value::none());
  if (p.bos_token) vars.emplace_back("bos_token", jinja::Value::string(*p.bos_token));
  if (p.eos_token) vars.emplace_back("eos_token", jinja::Value::string(*p.eos_token));
  if (!p.variables_json.empty()) {
    jinja::Value extra;
    try {
      extra = jinja::parse_json(p.variables_json);
    } catch (const jinja::TemplateError& e) {
      throw Error(cat(impl.name, ": the extra variables are not valid JSON: ", e.what()), Errc::InvalidArgument);
    }
    if (extra.type != jinja::Value::Type::Dict)
      throw Error(cat(impl.name, ": the extra variables must be a JSON object"), Errc::InvalidArgument);
    for (const auto& [k, v] : *extra.dict) {
      bool replaced = false;
      for (auto& kv : vars)
        if (kv.first == k) {
          kv.second = v;
          replaced = true;
        }
      if (!replaced) vars.emplace_back(k, v);
    }
  }
  jinja::RenderOptions opt;
  opt.now = p.now >= 0 ? std::time_t(p.now) : std::time(nullptr);
  std::string text;
  try {
    text = impl.tmpl.render(jinja::Value::make_dict(std::move(vars)), opt);
  } catch (const jinja::TemplateError& e) {
    throw Error(where(impl.name, e.line) + e.what(), Errc::InvalidArgument);
  }
  if (!p.continue_final_message) return text;
  // As transformers: the final message must be in the text; cut after it.
  const std::string tag = kContinueTag;
  const std::string bare_tag = tag.substr(0, tag.size() - 1);
  if (text.find(jinja::py_strip(final_content, jinja::Value::none(), true, true)) == std::string::npos ||
      text.find(bare_tag) == std::string::npos)
    throw Error(cat(impl.name, ": continue_final_message: the final message does not appear in the rendered text"),
                Errc::InvalidArgument);
  const size_t at = text.rfind(tag);
  if (at != std::string::npos) return text.substr(0, at);
  std::string cut = text.substr(0, text.rfind(bare_tag));
  return jinja::py_strip(cut, jinja::Value::none(), false, true);
}

}  // namespace

ChatTemplate::ChatTemplate(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

ChatTemplate::ChatTemplate(const std::string& source, const std::string& name) {
  try {
    impl_ = std::make_shared<const Impl>(name, source);
  } catch (const jinja::TemplateError& e) {
    throw Error(where(name, e.line) + e.what(), Errc::InvalidArgument);
  }
}

ChatTemplate::~ChatTemplate() = default;

ChatTemplate ChatTemplate::builtin(const std::string& name) {
  const char* source = builtin_chat_template(name);
  if (!source) {
    std::string names;
    for (const auto& n : builtin_chat_template_names()) names += (names.empty() ? "" : ", ") + n;
    throw Error(cat("no built-in chat template '", name, "' (known: ", names, ")"), Errc::InvalidArgument);
  }
  return ChatTemplate(source, name);
}

std::vector<std::string> ChatTemplate::builtin_names() { return builtin_chat_template_names(); }

std::string ChatTemplate::apply(const std::vector<ChatMessage>& messages, const ChatTemplateParams& params) const {
  return render(*impl_, messages_value(messages), params);
}

std::string ChatTemplate::apply_json(const std::string& messages_json, const ChatTemplateParams& params) const {
  jinja::Value messages;
  try {
    messages = jinja::parse_json(messages_json);
  } catch (const jinja::TemplateError& e) {
    throw Error(cat("the messages are not valid JSON: ", e.what()), Errc::InvalidArgument);
  }
  if (!messages.is_list()) throw Error("the messages must be a JSON list of objects", Errc::InvalidArgument);
  for (size_t k = 0; k < messages.list->size(); ++k) {
    const jinja::Value& m = (*messages.list)[k];
    const jinja::Value* role = m.find("role");
    if (m.type != jinja::Value::Type::Dict || !role || !role->is_string())
      throw Error(cat("message ", k, " is not an object with a \"role\" string"), Errc::InvalidArgument);
  }
  return render(*impl_, messages, params);
}

bool ChatTemplate::supports_system_role() const {
  const std::string probe = "qkv-system-role-probe";
  ChatTemplateParams p;
  p.bos_token = "";
  p.eos_token = "";
  p.now = 0;
  try {
    return apply({{"system", probe}, {"user", "hello"}}, p).find(probe) != std::string::npos;
  } catch (const Error&) {
    return false;
  }
}

const std::string& ChatTemplate::source() const { return impl_->source; }
const std::string& ChatTemplate::name() const { return impl_->name; }

std::vector<ChatMessage> merge_system_message(const std::vector<ChatMessage>& messages) {
  std::vector<ChatMessage> out;
  std::string pending;
  bool have_pending = false;
  for (const auto& m : messages) {
    if (m.role == "system") {
      pending = have_pending ? pending + "\n" + m.content : m.content;
      have_pending = true;
      continue;
    }
    out.push_back(m);
    if (have_pending) {
      out.back().content = pending + "\n" + m.content;
      have_pending = false;
    }
  }
  if (have_pending) out.push_back({"user", pending});
  return out;
}

}  // namespace qkv
