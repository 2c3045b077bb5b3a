// qkv::Chat: a conversation over one session (see qkv.hpp).
#include <algorithm>

#include "engine/api/qkv.hpp"
#include "engine/error.h"

namespace qkv {

namespace {

ChatTemplate template_of(const Session& session, std::optional<ChatTemplate> tmpl) {
  if (tmpl) return *tmpl;
  const std::string source = session.model().chat_template();
  if (source.empty()) {
    std::string names;
    for (const auto& n : ChatTemplate::builtin_names()) names += (names.empty() ? "" : ", ") + n;
    throw Error(cat(session.model().info().path, ": the model has no chat template (tokenizer.chat_template); name a ",
                    "format (", names, ") or give a template file"),
                Errc::InvalidArgument);
  }
  return ChatTemplate(source, session.model().info().path + " (tokenizer.chat_template)");
}

// The prompt of a conversation that the assistant answers next; a system
// message joins the next one for templates without a system role.
std::string render_for_reply(const ChatTemplate& t, ChatTemplateParams p, bool system_role,
                             const std::vector<ChatMessage>& messages) {
  p.add_generation_prompt = true;
  return t.apply(system_role ? messages : merge_system_message(messages), p);
}

// The text a template puts after an assistant message: its end of turn.
std::string find_end_of_turn(const ChatTemplate& t, const ChatTemplateParams& params) {
  const std::string probe = "qkv-reply-probe";
  ChatTemplateParams p = params;
  p.add_generation_prompt = false;
  p.continue_final_message = false;
  std::string text;
  try {
    text = t.apply({{"user", "x"}, {"assistant", probe}}, p);
  } catch (const Error&) {
    return "";
  }
  const size_t at = text.rfind(probe);
  if (at == std::string::npos) return "";
  std::string after = text.substr(at + probe.size());
  size_t b = 0;
  while (b < after.size() && (after[b] == ' ' || after[b] == '\n')) ++b;
  size_t e = b;
  while (e < after.size() && after[e] != ' ' && after[e] != '\n') ++e;
  return after.substr(b, e - b);
}

}  // namespace

Chat::Chat(Session& session, std::optional<ChatTemplate> tmpl, ChatOptions options)
    : session_(session), tmpl_(template_of(session, std::move(tmpl))), opt_(std::move(options)) {
  const Model& m = session_.model();
  if (!opt_.template_params.bos_token && m.bos_id() >= 0) opt_.template_params.bos_token = m.token_text(m.bos_id());
  if (!opt_.template_params.eos_token && m.eos_id() >= 0) opt_.template_params.eos_token = m.token_text(m.eos_id());
  system_role_ = tmpl_.supports_system_role();
  end_of_turn_ = find_end_of_turn(tmpl_, opt_.template_params);
  if (!end_of_turn_.empty() &&
      std::find(opt_.generate.stop.begin(), opt_.generate.stop.end(), end_of_turn_) == opt_.generate.stop.end())
    opt_.generate.stop.push_back(end_of_turn_);
  opt_.generate.context_shift = opt_.context_shift;
  opt_.generate.n_keep = m.adds_bos() ? 1 : 0;  // the BOS stays, as llama.cpp keeps it
  reset();
}

void Chat::reset() {
  messages_.clear();
  if (!opt_.system.empty()) messages_.push_back({"system", opt_.system});
}

std::vector<int> Chat::prompt_tokens(const std::vector<ChatMessage>& messages) const {
  std::string text = render_for_reply(tmpl_, opt_.template_params, system_role_, messages);
  // As llama.cpp: the tokenizer adds BOS itself, so a BOS the template wrote goes.
  const Model& m = session_.model();
  const std::string bos = m.bos_id() >= 0 ? m.token_text(m.bos_id()) : "";
  if (m.adds_bos() && !bos.empty() && text.compare(0, bos.size(), bos) == 0) text.erase(0, bos.size());
  return m.tokenize(text, true, true);
}

std::string Chat::render(const std::string& user_message) const {
  std::vector<ChatMessage> next = messages_;
  next.push_back({"user", user_message});
  return render_for_reply(tmpl_, opt_.template_params, system_role_, next);
}

std::string Chat::say(const std::string& user_message, Sampler& sampler, const TokenInfoCallback& on_token) {
  std::vector<ChatMessage> next = messages_;
  next.push_back({"user", user_message});
  std::vector<int> tokens = prompt_tokens(next);
  // A conversation grown past the context loses its oldest turns (the
  // system message and the new message stay).
  const int room = session_.n_ctx() - std::min(session_.n_ctx() / 4, 256);  // leave some for the reply
  const size_t first = !next.empty() && next[0].role == "system" ? 1 : 0;
  while (int(tokens.size()) > room && opt_.context_shift && next.size() > first + 1) {
    next.erase(next.begin() + long(first));
    tokens = prompt_tokens(next);
  }
  if (int(tokens.size()) >= session_.n_ctx())
    throw Error(cat("the message makes a prompt of ", tokens.size(), " tokens; the context holds ", session_.n_ctx()),
                Errc::ContextFull);
  // Evaluate only what the cache does not hold yet.
  std::vector<int> history = session_.tokens();
  if (session_.pending_token() >= 0) history.push_back(session_.pending_token());
  size_t common = 0;
  while (common < history.size() && common < tokens.size() && history[common] == tokens[common]) ++common;
  common = std::min({common, tokens.size() - 1, size_t(session_.n_past())});
  session_.truncate(int(common));
  const std::vector<int> fresh(tokens.begin() + long(common), tokens.end());
  last_ = generate(session_, sampler, fresh, opt_.generate, on_token);
  messages_ = std::move(next);
  messages_.push_back({"assistant", last_.text});
  return last_.text;
}

}  // namespace qkv
