// The C API (qkv.h) over the C++ API (qkv.hpp): every exception becomes a
// status code and, on handles that have one, a last-error message.
#include <cstring>
#include <new>
#include <optional>
#include <string>

#include "engine/api/qkv.h"
#include "engine/api/qkv.hpp"

struct qkv_model {
  std::shared_ptr<const qkv::Model> model;
  std::string error;
};

struct qkv_session {
  std::unique_ptr<qkv::Session> session;
  std::string error;
};

struct qkv_sampler {
  std::unique_ptr<qkv::Sampler> sampler;
  int32_t vocab = 0;
  std::string error;
};

struct qkv_chat {
  std::unique_ptr<qkv::Chat> chat;
  std::string reply, error;
};

namespace {

constexpr size_t kMaxTextBytes = size_t(1) << 32;  // 4 GiB: longer lengths are a caller's mistake

qkv_status status_of(qkv::Errc c) {
  switch (c) {
    case qkv::Errc::InvalidArgument: return QKV_ERR_INVALID_ARGUMENT;
    case qkv::Errc::Io: return QKV_ERR_IO;
    case qkv::Errc::BadFile: return QKV_ERR_BAD_FILE;
    case qkv::Errc::ContextFull: return QKV_ERR_CONTEXT_FULL;
    case qkv::Errc::OutOfMemory: return QKV_ERR_OUT_OF_MEMORY;
    case qkv::Errc::Internal: return QKV_ERR_INTERNAL;
    case qkv::Errc::Cancelled: return QKV_ERR_CANCELLED;
  }
  return QKV_ERR_INTERNAL;
}

// Runs fn, turning any exception into a status (and a message in *error).
template <class F>
qkv_status guarded(std::string* error, F&& fn) {
  try {
    fn();
    if (error) error->clear();
    return QKV_OK;
  } catch (const qkv::Error& e) {
    if (error) *error = e.what();
    return status_of(e.code());
  } catch (const std::bad_alloc&) {
    if (error) *error = "out of memory";
    return QKV_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    if (error) *error = e.what();
    return QKV_ERR_INTERNAL;
  } catch (...) {
    if (error) *error = "unknown error";
    return QKV_ERR_INTERNAL;
  }
}

// Copies bytes into a caller's buffer, or reports the size needed.
qkv_status copy_out(const std::string& s, char* buf, size_t capacity, size_t* length) {
  if (length) *length = s.size();
  if (s.size() > capacity) return QKV_ERR_BUFFER_TOO_SMALL;
  if (!s.empty()) std::memcpy(buf, s.data(), s.size());
  return QKV_OK;
}

template <class Handle, class Make>
qkv_status create(Handle** out, Make&& make) {
  if (!out) return QKV_ERR_INVALID_ARGUMENT;
  *out = new (std::nothrow) Handle();
  if (!*out) return QKV_ERR_OUT_OF_MEMORY;
  return guarded(&(*out)->error, [&] { make(**out); });
}

}  // namespace

extern "C" {

const char* qkv_version(void) { return "0.1.0"; }
int qkv_abi_version(void) { return QKV_ABI_VERSION; }

const char* qkv_status_string(qkv_status s) {
  switch (s) {
    case QKV_OK: return "ok";
    case QKV_ERR_INVALID_ARGUMENT: return "invalid argument";
    case QKV_ERR_IO: return "input/output error";
    case QKV_ERR_BAD_FILE: return "bad or unsupported file";
    case QKV_ERR_CONTEXT_FULL: return "context full";
    case QKV_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case QKV_ERR_OUT_OF_MEMORY: return "out of memory";
    case QKV_ERR_CANCELLED: return "cancelled";
    case QKV_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

// ---------------------------------------------------------------- models

qkv_model_params qkv_model_default_params(void) { return qkv_model_params{nullptr, 1}; }

qkv_status qkv_model_load(const char* path, const qkv_model_params* params, qkv_model** out) {
  return create(out, [&](qkv_model& m) {
    if (!path) throw qkv::Error("qkv_model_load: path is NULL", qkv::Errc::InvalidArgument);
    const qkv_model_params p = params ? *params : qkv_model_default_params();
    qkv::LoadOptions lo;
    if (p.tokenizer_path) lo.tokenizer_path = p.tokenizer_path;
    lo.use_mmap = p.use_mmap != 0;
    m.model = qkv::Model::load(path, lo);
  });
}

void qkv_model_free(qkv_model* m) { delete m; }
const char* qkv_model_last_error(const qkv_model* m) { return m ? m->error.c_str() : "no model"; }

int32_t qkv_model_n_vocab(const qkv_model* m) { return m && m->model ? m->model->info().vocab_size : 0; }
int32_t qkv_model_n_ctx_train(const qkv_model* m) { return m && m->model ? m->model->info().context_length : 0; }
int32_t qkv_model_bos(const qkv_model* m) { return m && m->model ? m->model->bos_id() : -1; }
int32_t qkv_model_eos(const qkv_model* m) { return m && m->model ? m->model->eos_id() : -1; }
int qkv_model_is_end_of_text(const qkv_model* m, int32_t t) { return m && m->model && m->model->is_end_of_text(t); }

qkv_status qkv_tokenize_special(const qkv_model* m, const char* text, size_t text_len, int add_special,
                                int parse_special, int32_t* tokens, size_t capacity, size_t* n_tokens) {
  if (!m || !m->model || (!text && text_len) || (!tokens && capacity)) return QKV_ERR_INVALID_ARGUMENT;
  if (text_len > kMaxTextBytes) return QKV_ERR_INVALID_ARGUMENT;  // no string that long exists
  qkv_status st = QKV_OK;
  const qkv_status g = guarded(nullptr, [&] {
    const std::vector<int> ids = m->model->tokenize(std::string(text ? text : "", text_len), add_special != 0,
                                                      parse_special != 0);
    if (n_tokens) *n_tokens = ids.size();
    if (ids.size() > capacity) {
      st = QKV_ERR_BUFFER_TOO_SMALL;
      return;
    }
    for (size_t i = 0; i < ids.size(); ++i) tokens[i] = ids[i];
  });
  return g != QKV_OK ? g : st;
}

qkv_status qkv_tokenize(const qkv_model* m, const char* text, size_t text_len, int add_bos, int32_t* tokens,
                        size_t capacity, size_t* n_tokens) {
  return qkv_tokenize_special(m, text, text_len, add_bos, 0, tokens, capacity, n_tokens);
}

qkv_status qkv_token_to_piece(const qkv_model* m, int32_t token, int32_t prev, char* buf, size_t capacity,
                              size_t* length) {
  if (!m || !m->model || (!buf && capacity)) return QKV_ERR_INVALID_ARGUMENT;
  if (token < 0 || token >= m->model->info().vocab_size) return QKV_ERR_INVALID_ARGUMENT;
  return copy_out(m->model->token_to_piece(token, prev), buf, capacity, length);
}

qkv_status qkv_detokenize(const qkv_model* m, const int32_t* tokens, size_t n, char* buf, size_t capacity,
                          size_t* length) {
  if (!m || !m->model || (!tokens && n) || (!buf && capacity)) return QKV_ERR_INVALID_ARGUMENT;
  const int V = m->model->info().vocab_size;
  for (size_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= V) return QKV_ERR_INVALID_ARGUMENT;
  return copy_out(m->model->detokenize(std::vector<int>(tokens, tokens + n)), buf, capacity, length);
}

// ---------------------------------------------------------------- sessions

qkv_session_params qkv_session_default_params(void) { return qkv_session_params{0, 0, 0, 512, 1}; }

qkv_status qkv_session_new(const qkv_model* m, const qkv_session_params* params, qkv_session** out) {
  return create(out, [&](qkv_session& s) {
    if (!m || !m->model) throw qkv::Error("qkv_session_new: no model", qkv::Errc::InvalidArgument);
    const qkv_session_params p = params ? *params : qkv_session_default_params();
    qkv::SessionOptions so;
    so.n_ctx = p.n_ctx;
    so.n_threads = p.n_threads;
    so.n_threads_batch = p.n_threads_batch;
    so.n_batch = p.n_batch;
    so.kv_f16 = p.kv_f16 != 0;
    s.session = std::make_unique<qkv::Session>(m->model, so);
  });
}

void qkv_session_free(qkv_session* s) { delete s; }
const char* qkv_session_last_error(const qkv_session* s) { return s ? s->error.c_str() : "no session"; }

qkv_status qkv_eval(qkv_session* s, const int32_t* tokens, size_t n) {
  if (!s || !s->session) return QKV_ERR_INVALID_ARGUMENT;
  return guarded(&s->error, [&] {
    if (!tokens || n == 0) throw qkv::Error("qkv_eval: no tokens", qkv::Errc::InvalidArgument);
    if (n > size_t(1) << 30) throw qkv::Error("qkv_eval: too many tokens", qkv::Errc::InvalidArgument);
    static_assert(sizeof(int32_t) == sizeof(int), "token ids are int");
    s->session->eval(reinterpret_cast<const int*>(tokens), int(n));
  });
}

const float* qkv_logits(const qkv_session* s) {
  return s && s->session && s->session->has_logits() ? s->session->logits() : nullptr;
}
int32_t qkv_session_n_past(const qkv_session* s) { return s && s->session ? s->session->n_past() : 0; }
int32_t qkv_session_n_ctx(const qkv_session* s) { return s && s->session ? s->session->n_ctx() : 0; }
void qkv_session_reset(qkv_session* s) {
  if (s && s->session) s->session->reset();
}
qkv_status qkv_session_truncate(qkv_session* s, int32_t n_past) {
  if (!s || !s->session) return QKV_ERR_INVALID_ARGUMENT;
  return guarded(&s->error, [&] { s->session->truncate(n_past); });
}

void qkv_session_cancel(qkv_session* s, int request) {
  if (s && s->session) s->session->cancel(request != 0);
}

qkv_status qkv_session_save_file(qkv_session* s, const char* path) {
  if (!s || !s->session || !path) return QKV_ERR_INVALID_ARGUMENT;
  return guarded(&s->error, [&] { s->session->save_state_file(path); });
}

qkv_status qkv_session_load_file(qkv_session* s, const char* path) {
  if (!s || !s->session || !path) return QKV_ERR_INVALID_ARGUMENT;
  return guarded(&s->error, [&] { s->session->load_state_file(path); });
}

// ---------------------------------------------------------------- sampling

qkv_sampler_params qkv_sampler_default_params(void) {
  const qkv::SamplerParams d;
  return qkv_sampler_params{d.temperature, d.top_k, d.top_p, d.min_p, d.repeat_penalty, d.repeat_last_n, d.seed};
}

qkv_status qkv_sampler_new(const qkv_model* m, const qkv_sampler_params* params, qkv_sampler** out) {
  return create(out, [&](qkv_sampler& s) {
    if (!m || !m->model) throw qkv::Error("qkv_sampler_new: no model", qkv::Errc::InvalidArgument);
    const qkv_sampler_params p = params ? *params : qkv_sampler_default_params();
    s.vocab = m->model->info().vocab_size;
    s.sampler = std::make_unique<qkv::Sampler>(
        s.vocab, qkv::SamplerParams{p.temperature, p.top_k, p.top_p, p.min_p, p.repeat_penalty, p.repeat_last_n, p.seed});
  });
}

void qkv_sampler_free(qkv_sampler* s) { delete s; }
const char* qkv_sampler_last_error(const qkv_sampler* s) { return s ? s->error.c_str() : "no sampler"; }

qkv_status qkv_sampler_sample(qkv_sampler* s, const float* logits, int32_t* token) {
  if (!s || !s->sampler) return QKV_ERR_INVALID_ARGUMENT;
  return guarded(&s->error, [&] {
    if (!logits || !token) throw qkv::Error("qkv_sampler_sample: NULL logits or token", qkv::Errc::InvalidArgument);
    *token = s->sampler->sample(logits);
  });
}

void qkv_sampler_accept(qkv_sampler* s, int32_t token) {
  if (s && s->sampler) s->sampler->accept(token);
}
void qkv_sampler_reset(qkv_sampler* s) {
  if (s && s->sampler) s->sampler->reset();
}

// ---------------------------------------------------------------- generation

qkv_status qkv_generate(qkv_session* s, qkv_sampler* sp, const int32_t* prompt, size_t n_prompt, int32_t n_predict,
                        qkv_token_callback cb, void* user, qkv_generate_result* result) {
  if (!s || !s->session) return QKV_ERR_INVALID_ARGUMENT;
  return guarded(&s->error, [&] {
    if (!sp || !sp->sampler) throw qkv::Error("qkv_generate: no sampler", qkv::Errc::InvalidArgument);
    if ((!prompt || n_prompt == 0) && s->session->pending_token() < 0)
      throw qkv::Error("qkv_generate: empty prompt (and nothing to continue)", qkv::Errc::InvalidArgument);
    if (!prompt && n_prompt) throw qkv::Error("qkv_generate: NULL prompt", qkv::Errc::InvalidArgument);
    if (n_prompt > size_t(1) << 30) throw qkv::Error("qkv_generate: prompt too long", qkv::Errc::InvalidArgument);
    const std::vector<int> p(prompt, prompt + (prompt ? n_prompt : 0));
    const qkv::GenerateResult r = qkv::generate(*s->session, *sp->sampler, p, n_predict, [&](int t, const std::string& piece) {
      return cb ? cb(user, t, piece.data(), piece.size()) != 0 : true;
    });
    if (result) {
      result->n_prompt = r.n_prompt;
      result->n_generated = int32_t(r.tokens.size());
      result->stop = qkv_stop_reason(int(r.stop));
      result->prompt_ms = r.prompt_ms;
      result->gen_ms = r.gen_ms;
    }
  });
}

// ---------------------------------------------------------------- chat

namespace {

// NULL: the model's own; a built-in name; else Jinja text.
std::optional<qkv::ChatTemplate> template_arg(const char* chat_template) {
  if (!chat_template) return std::nullopt;
  const auto names = qkv::ChatTemplate::builtin_names();
  for (const auto& n : names)
    if (n == chat_template) return qkv::ChatTemplate::builtin(n);
  return qkv::ChatTemplate(chat_template, "the chat template");
}

}  // namespace

qkv_status qkv_chat_new(qkv_session* session, const char* chat_template, const char* system, int32_t n_predict,
                        qkv_chat** out) {
  if (!session || !session->session) return QKV_ERR_INVALID_ARGUMENT;
  return create(out, [&](qkv_chat& c) {
    qkv::ChatOptions o;
    if (system) o.system = system;
    o.generate.n_predict = n_predict;
    c.chat = std::make_unique<qkv::Chat>(*session->session, template_arg(chat_template), o);
  });
}

void qkv_chat_free(qkv_chat* c) { delete c; }
const char* qkv_chat_last_error(const qkv_chat* c) { return c ? c->error.c_str() : "no chat (NULL handle)"; }

qkv_status qkv_chat_say(qkv_chat* c, qkv_sampler* sp, const char* message, size_t message_len,
                        qkv_token_callback cb, void* user) {
  if (!c || !c->chat) return QKV_ERR_INVALID_ARGUMENT;
  return guarded(&c->error, [&] {
    if (!sp || !sp->sampler) throw qkv::Error("qkv_chat_say: no sampler", qkv::Errc::InvalidArgument);
    if (!message && message_len) throw qkv::Error("qkv_chat_say: NULL message", qkv::Errc::InvalidArgument);
    if (message_len > kMaxTextBytes) throw qkv::Error("qkv_chat_say: message too long", qkv::Errc::InvalidArgument);
    c->reply.clear();
    c->reply = c->chat->say(std::string(message ? message : "", message_len), *sp->sampler,
                            [&](const qkv::TokenInfo& t) {
                              return cb ? cb(user, t.token, t.text.data(), t.text.size()) != 0 : true;
                            });
  });
}

const char* qkv_chat_reply(const qkv_chat* c, size_t* length) {
  if (length) *length = c ? c->reply.size() : 0;
  return c ? c->reply.c_str() : "";
}

void qkv_chat_reset(qkv_chat* c) {
  if (c && c->chat) c->chat->reset();
}

qkv_status qkv_chat_apply_template(qkv_model* m, const char* chat_template, const char* messages_json,
                                   int add_generation_prompt, char* buf, size_t capacity, size_t* length) {
  if (!m || !m->model || !messages_json || (!buf && capacity)) return QKV_ERR_INVALID_ARGUMENT;
  qkv_status st = QKV_OK;
  const qkv_status g = guarded(&m->error, [&] {
    std::optional<qkv::ChatTemplate> t = template_arg(chat_template);
    if (!t) {
      const std::string source = m->model->chat_template();
      if (source.empty())
        throw qkv::Error("the model has no chat template (tokenizer.chat_template); name one", qkv::Errc::InvalidArgument);
      t = qkv::ChatTemplate(source, "the model's chat template");
    }
    qkv::ChatTemplateParams p;
    p.add_generation_prompt = add_generation_prompt != 0;
    if (m->model->bos_id() >= 0) p.bos_token = m->model->token_text(m->model->bos_id());
    if (m->model->eos_id() >= 0) p.eos_token = m->model->token_text(m->model->eos_id());
    st = copy_out(t->apply_json(messages_json, p), buf, capacity, length);
  });
  return g != QKV_OK ? g : st;
}

// ---------------------------------------------------------------- profiler

qkv_status qkv_profile_start(qkv_session* s) {
  if (!s || !s->session) return QKV_ERR_INVALID_ARGUMENT;
  return guarded(&s->error, [&] { s->session->profile_start(); });
}

qkv_status qkv_profile_stop(qkv_session* s) {
  if (!s || !s->session) return QKV_ERR_INVALID_ARGUMENT;
  return guarded(&s->error, [&] { s->session->profile_stop(); });
}

qkv_status qkv_profile_read(qkv_session* s, qkv_profile_op* ops, size_t capacity, size_t* n_ops) {
  if (!s || !s->session || (!ops && capacity)) return QKV_ERR_INVALID_ARGUMENT;
  qkv_status st = QKV_OK;
  const qkv_status g = guarded(&s->error, [&] {
    const qkv::ProfileReport r = s->session->profile_report();
    if (n_ops) *n_ops = r.ops.size();
    if (r.ops.size() > capacity) {
      st = QKV_ERR_BUFFER_TOO_SMALL;
      return;
    }
    for (size_t i = 0; i < r.ops.size(); ++i) {
      qkv_profile_op& o = ops[i];
      std::memset(&o, 0, sizeof o);
      std::strncpy(o.phase, r.ops[i].phase.c_str(), sizeof o.phase - 1);
      std::strncpy(o.op, r.ops[i].op.c_str(), sizeof o.op - 1);
      o.calls = r.ops[i].calls;
      o.total_ms = r.ops[i].total_ms;
      o.mean_us = r.ops[i].mean_us;
      o.max_us = r.ops[i].max_us;
      o.gflops = r.ops[i].gflops;
      o.gbps = r.ops[i].gbps;
    }
  });
  return g != QKV_OK ? g : st;
}

qkv_status qkv_profile_text(qkv_session* s, char* buf, size_t capacity, size_t* length) {
  if (!s || !s->session || (!buf && capacity)) return QKV_ERR_INVALID_ARGUMENT;
  std::string text;
  const qkv_status g = guarded(&s->error, [&] { text = s->session->profile_report().to_text(); });
  return g != QKV_OK ? g : copy_out(text, buf, capacity, length);
}

qkv_status qkv_profile_trace_json(qkv_session* s, char* buf, size_t capacity, size_t* length) {
  if (!s || !s->session || (!buf && capacity)) return QKV_ERR_INVALID_ARGUMENT;
  std::string text;
  const qkv_status g = guarded(&s->error, [&] { text = s->session->profile_trace_json(); });
  return g != QKV_OK ? g : copy_out(text, buf, capacity, length);
}

}  // extern "C"

// ---------------------------------------------------------------- model files

namespace {
// The message into a caller's buffer, cut to fit with its NUL.
void copy_error(const std::string& msg, char* buf, size_t capacity) {
  if (!buf || capacity == 0) return;
  const size_t n = msg.size() < capacity - 1 ? msg.size() : capacity - 1;
  std::memcpy(buf, msg.data(), n);
  buf[n] = '\0';
}
}  // namespace

qkv_status qkv_quantize_model(const char* input, const char* output, const char* type, const char* tokenizer_path,
                              char* error, size_t error_capacity) {
  std::string msg;
  const qkv_status st = guarded(&msg, [&] {
    if (!input || !output || !type)
      throw qkv::Error("qkv_quantize_model: input, output and type are required", qkv::Errc::InvalidArgument);
    qkv::quantize_model(input, output, qkv::QuantizeParams{type, tokenizer_path ? tokenizer_path : ""});
  });
  copy_error(msg, error, error_capacity);
  return st;
}

qkv_status qkv_perplexity(const qkv_model* m, const char* text, size_t text_len, int32_t n_ctx, int32_t n_threads,
                          double* ppl, double* ppl_error, char* error, size_t error_capacity) {
  std::string msg;
  const qkv_status st = guarded(&msg, [&] {
    if (!m || !m->model) throw qkv::Error("qkv_perplexity: no model", qkv::Errc::InvalidArgument);
    if (!text && text_len) throw qkv::Error("qkv_perplexity: no text", qkv::Errc::InvalidArgument);
    if (text_len > kMaxTextBytes) throw qkv::Error("qkv_perplexity: text longer than 4 GiB", qkv::Errc::InvalidArgument);
    if (n_ctx < 4 || n_ctx > (1 << 20) || n_threads < 0 || n_threads > 512)
      throw qkv::Error("qkv_perplexity: n_ctx must be in 4..2^20 and n_threads in 0..512", qkv::Errc::InvalidArgument);
    const qkv::PerplexityResult r =
        qkv::perplexity(*m->model, std::string(text ? text : "", text_len), n_ctx, n_ctx, n_threads);
    if (ppl) *ppl = r.ppl;
    if (ppl_error) *ppl_error = r.error;
  });
  copy_error(msg, error, error_capacity);
  return st;
}
