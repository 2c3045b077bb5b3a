/* qkv: the stable C API.
 *
 * Handles: a qkv_model is immutable once loaded and may be shared, read-only,
 * by any number of sessions in any threads. A qkv_session (its own KV cache)
 * and a qkv_sampler (its own RNG) must each be used by one thread at a time.
 * There is no global state, and nothing here aborts or exits the process.
 *
 * Errors: every call that can fail returns a qkv_status. Creating a handle
 * (qkv_model_load, qkv_session_new, qkv_sampler_new) sets *out even when it
 * fails, unless memory ran out: read qkv_*_last_error(*out), then free it.
 * Calls on a session or sampler keep their last error message in the handle.
 * Calls on a model after loading (tokenize, ...) only return a status, since
 * a shared model has no place to keep a per-caller message.
 *
 * Strings are UTF-8 bytes with explicit lengths; outputs go to caller buffers
 * (a too-small buffer gives QKV_ERR_BUFFER_TOO_SMALL and the length needed).
 */
#ifndef QKV_H
#define QKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define QKV_C_API __attribute__((visibility("default")))
#else
#define QKV_C_API
#endif

#define QKV_VERSION_MAJOR 0
#define QKV_VERSION_MINOR 1
#define QKV_VERSION_PATCH 0
/* Bumped whenever the C ABI changes incompatibly; the shared library's SONAME carries it. */
#define QKV_ABI_VERSION 0

typedef enum qkv_status {
  QKV_OK = 0,
  QKV_ERR_INVALID_ARGUMENT = 1, /* a null pointer, a value out of range, a bad token id */
  QKV_ERR_IO = 2,               /* a file that cannot be opened or read */
  QKV_ERR_BAD_FILE = 3,         /* a file that is not a valid, supported model or tokenizer */
  QKV_ERR_CONTEXT_FULL = 4,     /* the session's context has no room for the tokens */
  QKV_ERR_BUFFER_TOO_SMALL = 5, /* the output buffer is too small; the length needed is returned */
  QKV_ERR_OUT_OF_MEMORY = 6,
  QKV_ERR_INTERNAL = 7,
  QKV_ERR_CANCELLED = 8         /* qkv_session_cancel() stopped the evaluation */
} qkv_status;

typedef struct qkv_model qkv_model;
typedef struct qkv_session qkv_session;
typedef struct qkv_sampler qkv_sampler;

QKV_C_API const char* qkv_version(void); /* "0.1.0" */
QKV_C_API int qkv_abi_version(void);     /* QKV_ABI_VERSION of the library actually loaded */
QKV_C_API const char* qkv_status_string(qkv_status status);

/* ---------------------------------------------------------------- models */

typedef struct qkv_model_params {
  const char* tokenizer_path; /* llama2.c tokenizer.bin for .bin models; NULL: the GGUF's own */
  int use_mmap;               /* 1: map the file (default); 0: read it into memory */
} qkv_model_params;

QKV_C_API qkv_model_params qkv_model_default_params(void);
QKV_C_API qkv_status qkv_model_load(const char* path, const qkv_model_params* params, qkv_model** out);
QKV_C_API void qkv_model_free(qkv_model* model);
QKV_C_API const char* qkv_model_last_error(const qkv_model* model); /* "" if none */

QKV_C_API int32_t qkv_model_n_vocab(const qkv_model* model);
QKV_C_API int32_t qkv_model_n_ctx_train(const qkv_model* model);
QKV_C_API int32_t qkv_model_bos(const qkv_model* model);
QKV_C_API int32_t qkv_model_eos(const qkv_model* model);
/* 1 if the token ends the text (EOS, or BOS for models that use it between documents). */
QKV_C_API int qkv_model_is_end_of_text(const qkv_model* model, int32_t token);

QKV_C_API qkv_status qkv_tokenize(const qkv_model* model, const char* text, size_t text_len, int add_bos,
                                  int32_t* tokens, size_t capacity, size_t* n_tokens);
/* As llama_tokenize: add_special adds BOS/EOS where the vocabulary asks for
 * them; parse_special reads control tokens' text ("<|im_start|>") as those
 * tokens (qkv_tokenize reads it as text). */
QKV_C_API qkv_status qkv_tokenize_special(const qkv_model* model, const char* text, size_t text_len, int add_special,
                                          int parse_special, int32_t* tokens, size_t capacity, size_t* n_tokens);
/* The bytes of `token` when it follows `prev` (-1: none); not NUL-terminated. */
QKV_C_API qkv_status qkv_token_to_piece(const qkv_model* model, int32_t token, int32_t prev, char* buf,
                                        size_t capacity, size_t* length);
QKV_C_API qkv_status qkv_detokenize(const qkv_model* model, const int32_t* tokens, size_t n_tokens, char* buf,
                                    size_t capacity, size_t* length);

/* ---------------------------------------------------------------- sessions */

typedef struct qkv_session_params {
  int32_t n_ctx;           /* 0: the model's context length */
  int32_t n_threads;       /* 0: one per physical core */
  int32_t n_threads_batch; /* 0: as n_threads */
  int32_t n_batch;         /* most tokens per forward pass (512) */
  int32_t kv_f16;          /* 1 (default): KV cache in f16, as llama.cpp; 0: f32 */
} qkv_session_params;

QKV_C_API qkv_session_params qkv_session_default_params(void);
QKV_C_API qkv_status qkv_session_new(const qkv_model* model, const qkv_session_params* params, qkv_session** out);
QKV_C_API void qkv_session_free(qkv_session* session);
/* The *_last_error strings stay valid until the next call on the same handle. */
QKV_C_API const char* qkv_session_last_error(const qkv_session* session);

/* Appends the tokens to the KV cache and computes the logits of the last one. */
QKV_C_API qkv_status qkv_eval(qkv_session* session, const int32_t* tokens, size_t n_tokens);
/* The last evaluated token's logits (n_vocab floats), valid until the next eval; NULL before any
 * (and after a reset). */
QKV_C_API const float* qkv_logits(const qkv_session* session);
QKV_C_API int32_t qkv_session_n_past(const qkv_session* session);
QKV_C_API int32_t qkv_session_n_ctx(const qkv_session* session);
/* Forget the cache (reset), or keep only its first n_past tokens to reuse a shared prefix. */
QKV_C_API void qkv_session_reset(qkv_session* session);
QKV_C_API qkv_status qkv_session_truncate(qkv_session* session, int32_t n_past);
/* Asks a qkv_eval or qkv_generate running on the session to stop; safe from any thread or a signal
 * handler. It returns QKV_ERR_CANCELLED before its next batch or token; what it evaluated stays
 * cached. A request while nothing runs stops the next call; request 0 withdraws it. */
QKV_C_API void qkv_session_cancel(qkv_session* session, int request);
/* The session's state (cached tokens, KV cache, last logits, pending token) to a file, written
 * whole or not at all, and back into a session of the same model and cache type whose context
 * holds it (otherwise an error naming what differs). */
QKV_C_API qkv_status qkv_session_save_file(qkv_session* session, const char* path);
QKV_C_API qkv_status qkv_session_load_file(qkv_session* session, const char* path);

/* ---------------------------------------------------------------- sampling */

typedef struct qkv_sampler_params {
  float temperature;    /* 0: greedy (default 0.8) */
  int32_t top_k;        /* 0: off (40) */
  float top_p;          /* 1: off (0.95) */
  float min_p;          /* 0: off (0.05) */
  float repeat_penalty; /* 1: off (1.0) */
  int32_t repeat_last_n;/* window of the penalty (64) */
  uint64_t seed;        /* the same seed gives the same tokens on any thread count */
} qkv_sampler_params;

QKV_C_API qkv_sampler_params qkv_sampler_default_params(void);
QKV_C_API qkv_status qkv_sampler_new(const qkv_model* model, const qkv_sampler_params* params, qkv_sampler** out);
QKV_C_API void qkv_sampler_free(qkv_sampler* sampler);
QKV_C_API const char* qkv_sampler_last_error(const qkv_sampler* sampler);
QKV_C_API qkv_status qkv_sampler_sample(qkv_sampler* sampler, const float* logits, int32_t* token);
QKV_C_API void qkv_sampler_accept(qkv_sampler* sampler, int32_t token);
QKV_C_API void qkv_sampler_reset(qkv_sampler* sampler);

/* ---------------------------------------------------------------- generation */

/* Called with each generated token and its bytes; return 0 to stop. */
typedef int (*qkv_token_callback)(void* user_data, int32_t token, const char* piece, size_t piece_len);

typedef enum qkv_stop_reason {
  QKV_STOP_LENGTH = 0,      /* n_predict tokens */
  QKV_STOP_END_OF_TEXT = 1, /* the model ended the text */
  QKV_STOP_CONTEXT_FULL = 2,
  QKV_STOP_CALLBACK = 3,
  QKV_STOP_STRING = 4       /* a stop string appeared in the text */
} qkv_stop_reason;

typedef struct qkv_generate_result {
  int32_t n_prompt, n_generated;
  qkv_stop_reason stop;
  double prompt_ms, gen_ms;
} qkv_generate_result;

/* Evaluates the prompt as one batch, then samples up to n_predict tokens
 * (< 0: until end of text or a full context). `result` may be NULL.
 * Calls continue one another: the KV cache keeps what was evaluated, and the
 * last sampled token (unless it ended the text) is evaluated at the start of
 * the next qkv_generate or qkv_eval on the session, so a continuation sees
 * the whole history. A continuation's prompt may then be empty (n_prompt 0). */
QKV_C_API qkv_status qkv_generate(qkv_session* session, qkv_sampler* sampler, const int32_t* prompt,
                                  size_t n_prompt, int32_t n_predict, qkv_token_callback callback, void* user_data,
                                  qkv_generate_result* result);

/* ---------------------------------------------------------------- chat */

/* A conversation over a session (qkv::Chat): each message is rendered with the chat template, only the
 * tokens the session does not hold yet are evaluated, and the reply ends at the template's end of turn.
 * chat_template: NULL for the model's own (tokenizer.chat_template), a built-in format's name
 * ("chatml", "llama3", "gemma", "phi3", "mistral", "llama2", "zephyr"), or Jinja text. system: the
 * system message, or NULL. n_predict: most tokens per reply (< 0: until the end of the turn). The
 * session must outlive the chat. */
typedef struct qkv_chat qkv_chat;
QKV_C_API qkv_status qkv_chat_new(qkv_session* session, const char* chat_template, const char* system,
                                  int32_t n_predict, qkv_chat** out);
QKV_C_API void qkv_chat_free(qkv_chat* chat);
QKV_C_API const char* qkv_chat_last_error(const qkv_chat* chat);
/* Adds the user's message and generates the reply, streaming its text to callback (may be NULL;
 * return 0 to stop the reply there; token is -1 for text held back earlier). The whole reply is then
 * qkv_chat_reply's. */
QKV_C_API qkv_status qkv_chat_say(qkv_chat* chat, qkv_sampler* sampler, const char* message, size_t message_len,
                                  qkv_token_callback callback, void* user_data);
/* The last reply (NUL-terminated, *length bytes), valid until the next call on the chat. */
QKV_C_API const char* qkv_chat_reply(const qkv_chat* chat, size_t* length);
/* Back to the system message alone. */
QKV_C_API void qkv_chat_reset(qkv_chat* chat);
/* The prompt a conversation makes: messages_json is a JSON list of {"role", "content"} objects,
 * chat_template as for qkv_chat_new, the model's BOS and EOS texts as bos_token and eos_token.
 * Written to buf as qkv_detokenize writes (QKV_ERR_BUFFER_TOO_SMALL and *length when it does not fit);
 * a template's error (its raise_exception message included) is qkv_model_last_error's. */
QKV_C_API qkv_status qkv_chat_apply_template(qkv_model* model, const char* chat_template, const char* messages_json,
                                             int add_generation_prompt, char* buf, size_t capacity, size_t* length);

/* ---------------------------------------------------------------- profiler */

QKV_C_API qkv_status qkv_profile_start(qkv_session* session);
QKV_C_API qkv_status qkv_profile_stop(qkv_session* session);

typedef struct qkv_profile_op {
  char phase[16]; /* "prompt" or "generation" */
  char op[16];    /* "matmul", "attention", ... */
  int64_t calls;
  double total_ms, mean_us, max_us, gflops, gbps;
} qkv_profile_op;

/* The per-op table of what was recorded; n_ops receives the number of rows. */
QKV_C_API qkv_status qkv_profile_read(qkv_session* session, qkv_profile_op* ops, size_t capacity, size_t* n_ops);
/* The same as text (the tables `qkv profile` prints), or as Chrome trace JSON. */
QKV_C_API qkv_status qkv_profile_text(qkv_session* session, char* buf, size_t capacity, size_t* length);
QKV_C_API qkv_status qkv_profile_trace_json(qkv_session* session, char* buf, size_t capacity, size_t* length);

/* ---------------------------------------------------------------- model files */

/* Writes `output` (GGUF): `input` (GGUF, or a llama2.c .bin whose
 * tokenizer.bin is `tokenizer_path`; NULL for GGUF) in llama-quantize's
 * preset `type` (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k,
 * q3_k_s/m/l, q4_k_s/m, q5_k_s/m, q6_k, iq4_nl, iq4_xs; any case), as
 * `qkv quantize` writes it. On failure `error` (when not NULL) receives the
 * message, cut to error_capacity bytes with its NUL. */
QKV_C_API qkv_status qkv_quantize_model(const char* input, const char* output, const char* type,
                                        const char* tokenizer_path, char* error, size_t error_capacity);

/* llama-perplexity's perplexity of `text` (text_len bytes) in chunks of n_ctx
 * tokens (n_threads 0: one per core): *ppl and its standard error *ppl_error
 * (either may be NULL). Messages go to `error` as above. */
QKV_C_API qkv_status qkv_perplexity(const qkv_model* model, const char* text, size_t text_len, int32_t n_ctx,
                                    int32_t n_threads, double* ppl, double* ppl_error, char* error,
                                    size_t error_capacity);

#ifdef __cplusplus
}
#endif

#endif /* QKV_H */
