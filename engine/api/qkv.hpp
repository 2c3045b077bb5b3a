// qkv: the public C++ API.
//
//   auto model = qkv::Model::load("stories260K.bin", {"tok512.bin"});
//   qkv::Session session(model, {});
//   qkv::Sampler sampler(model->info().vocab_size, {});   // defaults: temp 0.8, ...
//   qkv::generate(session, sampler, model->tokenize("Once upon a time", true), 100,
//                 [](int id, const std::string& piece) { std::cout << piece; return true; });
//
// A Model is immutable once loaded and may be shared by many Sessions; each
// Session owns its KV cache and run state and must be used by one thread at a
// time. Every error is reported by throwing qkv::Error; nothing here aborts
// or exits the process.
// An include guard, not #pragma once: the build tree also holds a copy as <qkv/...>.
#ifndef QKV_QKV_HPP
#define QKV_QKV_HPP

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace qkv {

#if defined(__GNUC__)
#define QKV_API __attribute__((visibility("default")))
#else
#define QKV_API
#endif

// What kind of failure an Error is (the C API's status codes).
enum class Errc { InvalidArgument = 1, Io = 2, BadFile = 3, ContextFull = 4, OutOfMemory = 6, Internal = 7, Cancelled = 8 };

class QKV_API Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, Errc code = Errc::BadFile) : std::runtime_error(what), code_(code) {}
  Errc code() const { return code_; }

 private:
  Errc code_;
};

struct ModelInfo {
  std::string path, format, arch;
  int dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int vocab_size = 0, context_length = 0;
  float rope_base = 0, rms_eps = 0;
  int64_t n_params = 0;
  std::string weight_type;  // type of the attention weights, e.g. "F32"
  // The matrices' types with their counts, most first: "Q5_0 x45, Q8_0 x5,
  // Q4_K x4, Q6_K x4" (one entry for a file of one type).
  std::string weight_types;
  // llama.cpp's name of the file's general.file_type ("Q4_K - Medium"), or
  // "" when the file has none qkv knows.
  std::string file_type;
  bool tied_output = false; // the classifier is the token embedding
};

struct LoadOptions {
  // llama2.c tokenizer.bin; needed for .bin models, overrides a GGUF's own.
  std::string tokenizer_path;
  // Map the weights file (default), or read it into memory.
  bool use_mmap = true;
};

// A weights file's tokenizer alone, read without the weights (vocabulary-only
// GGUF files work too): what qkv tokenize runs on. Tokenizes as llama.cpp
// does: special tokens (control ones only with parse_special, user-defined
// ones always) are cut out first, then SentencePiece or byte-level BPE with
// the file's pre-tokenizer.
class QKV_API Vocabulary {
 public:
  // `tokenizer_path`: a llama2.c tokenizer.bin, needed for .bin models.
  static std::shared_ptr<const Vocabulary> load(const std::string& path, const std::string& tokenizer_path = "");
  ~Vocabulary();

  // add_special: BOS/EOS as the vocabulary asks for them (add_bos_token...).
  std::vector<int> tokenize(const std::string& text, bool add_special, bool parse_special) const;
  // The bytes of `token`; control tokens give their text only with `special`.
  std::string token_to_piece(int token, bool special = false) const;
  int size() const;
  int bos_id() const;  // -1: none
  int eos_id() const;  // -1: none
  // The tokens generation stops at: EOS, EOT and end-of-turn tokens such as
  // <|im_end|> or <end_of_turn>, as llama.cpp finds them.
  bool is_end_of_generation(int token) const;
  std::string model() const;          // "llama" (SentencePiece) or "gpt2" (byte-level BPE)
  std::string pre_tokenizer() const;  // tokenizer.ggml.pre ("" for SentencePiece or none)
  std::string chat_template() const;  // tokenizer.chat_template (Jinja), "" when the file has none

  struct Impl;

 private:
  explicit Vocabulary(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class QKV_API Model {
 public:
  static std::shared_ptr<const Model> load(const std::string& path, const LoadOptions& opts = {});
  ~Model();

  const ModelInfo& info() const;
  // BOS (and EOS) as the vocabulary asks for them when add_bos is set; special
  // tokens in the text are read as text (parse_special false).
  std::vector<int> tokenize(const std::string& text, bool add_bos) const;
  std::vector<int> tokenize(const std::string& text, bool add_special, bool parse_special) const;
  // The bytes of `token` when it follows `prev` (-1: none).
  std::string token_to_piece(int token, int prev = -1) const;
  // The token's text on its own, control tokens spelled out ("<|im_end|>", "<s>").
  std::string token_text(int token) const;
  std::string detokenize(const std::vector<int>& tokens) const;
  int bos_id() const;  // -1: none
  int eos_id() const;  // -1: none
  bool adds_bos() const;  // tokenize(text, true) starts with BOS (the vocabulary's add_bos_token)
  // EOS and the other end-of-generation tokens (EOT, <|im_end|>, ...); BOS
  // too for models that use it as a document separator.
  bool is_end_of_text(int token) const;
  // The file's tokenizer.chat_template (Jinja), "" when it has none.
  std::string chat_template() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The profiler's aggregated view (see Session::profile_report).
struct ProfileOpStats {
  std::string phase, op;  // phase: "prompt" or "generation"
  int64_t calls = 0;
  double total_ms = 0, percent = 0;  // percent of the phase's wall time
  double mean_us = 0, max_us = 0;
  double flops = 0, bytes = 0;       // declared work, summed over calls
  double gflops = 0, gbps = 0;
  double peak_percent = -1;          // of the machine's limit (FLOPs or bytes, whichever binds); -1: unknown
  // What peak_percent is measured against: "FMA" (the fp32 FMA peak) or
  // "DRAM" (the read rate from memory: ops whose data sits in cache can
  // pass 100%); empty when unknown.
  std::string peak_bound;
};
struct ProfileLayerStats {
  std::string phase;
  int layer = 0;
  double total_ms = 0;
  std::vector<std::pair<std::string, double>> op_ms;  // per op kind
};
struct ProfileThreadStats {
  int thread = 0;
  double compute_ms = 0, wait_ms = 0;  // in parallel ops: own work, and waiting at their end
};
struct ProfilePhaseStats {
  std::string phase;
  int64_t passes = 0, tokens = 0;
  double wall_ms = 0;       // forward passes (and sampling, for generation)
  double uncovered_ms = 0;  // wall time inside no zone
};
struct QKV_API ProfileReport {
  std::vector<ProfilePhaseStats> phases;
  std::vector<ProfileOpStats> ops;  // per phase, sorted by total time
  std::vector<ProfileLayerStats> layers;
  std::vector<ProfileThreadStats> threads;
  uint64_t dropped_events = 0;
  std::string to_text() const;  // the tables qkv profile prints
};

// The machine's limits, measured (see probe_machine).
struct MachineLimits {
  int threads = 1;
  double fma_gflops = 0;  // fp32 FMA peak with the active kernels
  double read_gbps = 0;   // read bandwidth over a buffer far beyond the caches
};
QKV_API MachineLimits probe_machine(int threads, size_t buffer_bytes = size_t(1) << 30);

// One row of attention probabilities, given to an attention capture callback:
// what query `position` of `layer`, query head `head`, attends to.
struct AttentionRow {
  int layer = 0, head = 0, kv_head = 0;  // with GQA, kv_head = head / (n_heads / n_kv_heads)
  int position = 0;                      // the query token's position
  const float* probs = nullptr;          // (position + 1): softmax(q . k_t * scale) for t <= position
  const float* q = nullptr;              // (head_dim): the query, after RoPE (rounded to f16 with an f16 cache)
  const float* k = nullptr;              // key of position t: k + t * k_stride (head_dim values, widened from an f16 cache)
  size_t k_stride = 0;
  int head_dim = 0;
  float scale = 0;                       // 1 / sqrt(head_dim)
};
// Called on the thread that calls eval/generate, layer by layer, for each
// evaluated token and captured head; the pointers are valid during the call.
using AttentionCallback = std::function<void(const AttentionRow&)>;

// The input of one product with a weight matrix, given to a matmul input
// callback before the product runs (what llama-imatrix collects).
struct MatmulInput {
  const char* weight = nullptr;  // the matrix's tensor name: "blk.0.attn_q.weight", "output.weight"
  int layer = -1;                // -1: outside the layers (the classifier)
  const float* x = nullptr;      // (rows, cols), row-major; valid during the call
  int rows = 0;                  // tokens
  int cols = 0;                  // the matrix's input width (its ne[0])
};
// Called on the thread that calls eval/generate, once per matrix and pass
// (Q, K and V of a layer each get their own call with the same x).
using MatmulInputCallback = std::function<void(const MatmulInput&)>;

struct SessionOptions {
  int n_ctx = 0;            // 0: the model's context length (the cache is committed as it fills)
  int n_threads = 0;        // 0: one per physical core
  int n_threads_batch = 0;  // threads for prompt batches; 0: same as n_threads
  int n_batch = 512;        // most tokens evaluated in one forward pass
  bool kv_f16 = true;       // KV cache in f16, llama.cpp's default: half the memory of
                            // f32 (false), which computes exactly as llama2.c
};

class QKV_API Session {
 public:
  explicit Session(std::shared_ptr<const Model> model, const SessionOptions& opts = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const Model& model() const;
  int n_ctx() const;
  int n_past() const;  // tokens in the KV cache
  int n_threads() const;

  // Appends n tokens to the cache (in batches of n_batch) and computes the
  // logits of the last one, or of every one when all_logits is set. A
  // pending token (see append_pending) is evaluated first. Throws if the
  // context would overflow or a token id is out of range.
  void eval(const int* tokens, int n, bool all_logits = false);
  void eval(const std::vector<int>& tokens, bool all_logits = false) {
    eval(tokens.data(), int(tokens.size()), all_logits);
  }
  // Makes `token` part of the history without evaluating it yet: the next
  // eval() (or generate()) evaluates it before its own tokens. generate()
  // leaves its last sampled token so, so that a continuation sees the whole
  // conversation; -1 when none is pending. reset() and truncate() drop it.
  void append_pending(int token);
  int pending_token() const;
  // Asks a running eval() or generate() to stop; safe to call from any
  // thread or a signal handler. It stops before its next batch of tokens or
  // its next sampled token and throws Error with Errc::Cancelled; what was
  // evaluated stays in the cache. A request made while nothing runs stops
  // the next one; cancel(false) withdraws a request not acted on yet.
  void cancel(bool request = true);
  // Logits of the last evaluated token: (vocab_size). Throws if no token was
  // evaluated since the session was made or reset.
  const float* logits() const;
  bool has_logits() const;
  // sampler.sample(logits()), recorded by the profiler as "sampling".
  int sample(class Sampler& sampler);
  // With all_logits: logits of the i-th token of the last eval call.
  const float* logits_at(int i) const;

  void reset();              // empty the KV cache
  void truncate(int n_past); // keep only the first n_past cached tokens
  // The tokens the cache holds, in order (n_past of them; not the pending one).
  const std::vector<int>& tokens() const;
  // Context shift, as llama.cpp makes room when the context is full: keeps
  // the first n_keep tokens, drops the older half of the rest and evaluates
  // the newer half again after the kept ones (a pending token is part of the
  // history). Returns how many tokens were dropped.
  int shift_context(int n_keep);

  // The session's state (cached tokens and their KV cache, the last logits,
  // the pending token) as bytes, and back. A state loads only into a session
  // of the same model and cache type whose context holds it; Error says what
  // differs. The files are written whole or not at all.
  std::string save_state() const;
  void load_state(const std::string& state);
  void save_state_file(const std::string& path) const;
  void load_state_file(const std::string& path);

  // Attention capture: the probabilities of the given layers and query heads
  // (empty: all) for every token evaluated from now on. Capturing changes no
  // computed value. An empty callback turns it off.
  void set_attention_capture(AttentionCallback callback, std::vector<int> layers = {}, std::vector<int> heads = {});
  // Every weight product's input from now on (an empty callback: off).
  // Observing changes no computed value.
  void set_matmul_input_callback(MatmulInputCallback callback);

  // Per-op profiling of this session's forward passes (and of sampling in
  // generate()). start clears what was recorded before.
  void profile_start();
  void profile_stop();
  // peak_*: the machine's limits for the % of peak column (0: unknown).
  ProfileReport profile_report(double peak_gflops = 0, double peak_gbps = 0) const;
  std::string profile_trace_json() const;  // Chrome trace events (Perfetto, chrome://tracing)
  std::string profile_csv() const;         // one row per zone instance

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

struct SamplerParams {
  float temperature = 0.8f;  // 0: greedy
  int top_k = 40;            // 0: off
  float top_p = 0.95f;       // 1: off
  float min_p = 0.05f;       // 0: off
  float repeat_penalty = 1.0f;
  int repeat_last_n = 64;
  uint64_t seed = 0;         // 0: a fixed default seed
};

class QKV_API Sampler {
 public:
  Sampler(int vocab_size, const SamplerParams& params);
  ~Sampler();
  int sample(const float* logits);
  void accept(int token);
  void reset();

 private:
  std::unique_ptr<class SamplerImpl> impl_;
};

enum class StopReason { Length, EndOfText, ContextFull, Callback, StopString };

struct GenerateResult {
  std::vector<int> tokens;  // generated tokens, the end-of-text one included
  StopReason stop = StopReason::Length;
  int n_prompt = 0;
  double prompt_ms = 0, gen_ms = 0;
  std::string text;         // the generated text as released (no end-of-text token, no stop string)
  std::string stop_string;  // the stop string that ended it (StopReason::StopString)
  int n_shifts = 0;         // context shifts made
};

struct GenerateOptions {
  int n_predict = -1;  // most tokens to generate; < 0: until end of text (or a full context)
  // Stop strings (llama.cpp's reverse prompts): generation stops when the
  // text contains one, matched across token boundaries. Text that may be the
  // start of one is held back until it is not; the stop string itself is
  // never released.
  std::vector<std::string> stop;
  bool ignore_eos = false;     // never sample an end-of-text token (their logits are set to -inf)
  // When the context is full: shift it (Session::shift_context(n_keep)) and
  // go on, instead of stopping with StopReason::ContextFull.
  bool context_shift = false;
  int n_keep = 0;
  int n_probs = 0;  // > 0: each token's log-probability and the top n_probs alternatives (TokenInfo)
};

// One generated token, as generate() hands it to the callback.
struct TokenInfo {
  int token = -1;
  std::string piece;  // the token's bytes
  // The text released with this token: its piece, with text that may start a
  // stop string held back (to come with a later token, or never when it
  // completes one). The concatenation of all is GenerateResult::text.
  std::string text;
  bool end_of_text = false;  // an end-of-text token (its piece is not part of the text)
  // With n_probs: log-softmax of the model's logits (before any sampling
  // settings) for the token and for the n_probs most likely ones, most first.
  float logprob = 0;
  std::vector<std::pair<int, float>> top_logprobs;
  double ms = 0;   // time since the previous token (its forward pass and this sampling)
  int n_past = 0;  // cached tokens when it was sampled
};
using TokenInfoCallback = std::function<bool(const TokenInfo&)>;

// Called with every generated token and its text; return false to stop.
using TokenCallback = std::function<bool(int token, const std::string& piece)>;

// Evaluates the prompt as batches, then samples up to n_predict tokens one at a
// time (n_predict < 0: until end of text or the context is full). Stops on
// end of text (the token is reported but not fed back), when the callback
// says so, or when the context is full.
//
// Calls may continue one another on the same session: the KV cache keeps
// everything evaluated, and the last token a call sampled (unless it ended
// the text) stays pending and is evaluated at the start of the next call,
// so generate(s, p1, n); generate(s, p2, m) sees p1, its n tokens and p2,
// exactly as one evaluation of that whole history would. The prompt of a
// continuation may be empty when a token is pending.
QKV_API GenerateResult generate(Session& session, Sampler& sampler, const std::vector<int>& prompt, int n_predict,
                        const TokenCallback& on_token);
// The same with stop strings, context shift, log-probabilities and timing
// (GenerateOptions); return false from the callback to stop.
QKV_API GenerateResult generate(Session& session, Sampler& sampler, const std::vector<int>& prompt,
                                const GenerateOptions& options, const TokenInfoCallback& on_token = nullptr);


// ---------------------------------------------------------------- chat templates

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

struct ChatTemplateParams {
  bool add_generation_prompt = true;  // end with the opening of the assistant's turn
  // Let the model continue the last message (a partial assistant answer):
  // transformers' continue_final_message (the text is cut right after that
  // message's content). Renders with add_generation_prompt false.
  bool continue_final_message = false;
  // bos_token / eos_token as the template sees them; unset: undefined.
  std::optional<std::string> bos_token, eos_token;
  // The time strftime_now() formats, seconds since the epoch read as UTC; -1: now.
  int64_t now = -1;
  // More variables as a JSON object ({"enable_thinking": false, "tools": [...]}); "": none.
  std::string variables_json;
};

// A chat template: the Jinja text a GGUF holds in tokenizer.chat_template
// (or a format qkv knows by name), rendered as Hugging Face transformers'
// apply_chat_template renders it (jinja2 with trim_blocks and lstrip_blocks,
// the variables messages, add_generation_prompt, tools = none, documents =
// none, bos_token, eos_token; raise_exception and strftime_now). Copies share
// the parsed template; rendering is const and thread-safe.
class QKV_API ChatTemplate {
 public:
  // Parses `source`; throws Error naming `name` and the line of a syntax error.
  explicit ChatTemplate(const std::string& source, const std::string& name = "chat template");
  // A format qkv knows by name (builtin_names(): chatml, llama3, gemma, phi3,
  // mistral, llama2, zephyr); throws for another name.
  static ChatTemplate builtin(const std::string& name);
  static std::vector<std::string> builtin_names();
  ~ChatTemplate();

  // The prompt. Throws Error naming the template and line when rendering
  // fails, the template's own raise_exception(message) included (the
  // message is the end of what()).
  std::string apply(const std::vector<ChatMessage>& messages, const ChatTemplateParams& params = {}) const;
  // The same with the messages as JSON text: a list of objects whose content
  // may also be a list of parts, with tool_calls and other keys as the
  // template reads them.
  std::string apply_json(const std::string& messages_json, const ChatTemplateParams& params = {}) const;
  // Whether a system message reaches the prompt (false for templates that
  // reject or drop one: Gemma 2, Mistral v0.2). Chat front ends then merge it
  // into the next message, as llama.cpp does (merge_system_message).
  bool supports_system_role() const;
  const std::string& source() const;
  const std::string& name() const;

  struct Impl;

 private:
  explicit ChatTemplate(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

// llama.cpp's fallback for templates without a system role: the system
// message's content joins the next message as "system\ncontent".
QKV_API std::vector<ChatMessage> merge_system_message(const std::vector<ChatMessage>& messages);


// A conversation with a chat model: renders every turn with the chat
// template, evaluates only the tokens the session does not hold yet (the KV
// cache persists across turns), generates the reply until the template's
// end of turn, and keeps the messages.
struct ChatOptions {
  std::string system;         // the system message ("": none)
  // bos_token / eos_token default to the model's tokens; now, variables as given.
  ChatTemplateParams template_params;
  // n_predict, stop strings (the template's end-of-turn text is added),
  // ignore_eos, n_probs; context_shift is on unless turned off here.
  GenerateOptions generate;
  bool context_shift = true;  // shift a full context mid-reply; drop the oldest turns when a prompt outgrows it
};

class QKV_API Chat {
 public:
  // `tmpl`: the chat template; none: the model's own (Error if it has none).
  Chat(Session& session, std::optional<ChatTemplate> tmpl = std::nullopt, ChatOptions options = {});
  // Adds the user's message, generates the assistant's reply (streamed to
  // on_token as it comes; return false to stop it early), adds the reply and
  // returns it.
  std::string say(const std::string& user_message, Sampler& sampler, const TokenInfoCallback& on_token = nullptr);
  // The prompt text the next say(user_message) evaluates.
  std::string render(const std::string& user_message) const;
  const std::vector<ChatMessage>& messages() const { return messages_; }
  void reset();  // back to the system message alone
  const GenerateResult& last_result() const { return last_; }
  // The template's end-of-turn text ("<|im_end|>", "<end_of_turn>", ...), a stop string of every reply.
  const std::string& end_of_turn() const { return end_of_turn_; }

 private:
  std::vector<int> prompt_tokens(const std::vector<ChatMessage>& messages) const;
  Session& session_;
  ChatTemplate tmpl_;
  ChatOptions opt_;
  bool system_role_ = true;
  std::string end_of_turn_;
  std::vector<ChatMessage> messages_;
  GenerateResult last_;
};

// The instruction set the kernels run with ("scalar", "sse2", "avx2", "avx512").
QKV_API std::string active_isa();
// The processor's name (cpuid's brand string), or "".
QKV_API std::string cpu_name();
// The library's source revision (git's short hash at build time, or
// "unknown") and its number of commits (0 when unknown).
QKV_API std::string build_commit();
QKV_API int build_number();

// ---------------------------------------------------------------- model files

// Progress and notes of the file writers below (one line each, no newline).
using MessageCallback = std::function<void(const std::string& line)>;

// The --type names quantize_model and synth_model take: llama-quantize's
// presets "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k_s, ...,
// q6_k, iq4_nl, iq4_xs", each with llama-quantize's per-tensor rules.
QKV_API std::string quantize_type_names();
// Whether `name` is one of them (any case), or one of llama-quantize's
// aliases q3_k, q4_k, q5_k (the _m presets).
QKV_API bool is_quantize_type(const std::string& name);

struct QuantizeParams {
  QuantizeParams() = default;
  explicit QuantizeParams(std::string type_, std::string tokenizer = "")
      : type(std::move(type_)), tokenizer_path(std::move(tokenizer)) {}
  std::string type;            // one of quantize_type_names() (any case)
  std::string tokenizer_path;  // the tokenizer.bin of a llama2.c input
  bool allow_requantize = false;       // quantize matrices that are quantized already (loses precision)
  bool pure = false;                   // every matrix in `type`: no mix rules (Q4_K_M's Q6_K layers)
  std::string output_tensor_type;      // output.weight's type ("" : the rules'); a ggml type name
  std::string token_embedding_type;    // token_embd.weight's type, likewise
  std::string imatrix_path;            // an importance matrix (llama-imatrix's GGUF or legacy .dat); "" : none
};
// Writes `output`, a GGUF file, as llama-quantize writes it: every tensor
// in the type its preset's rules choose, with GGML's reference quantizers
// (the same bytes), in its tensor order, the metadata carried over in its
// order with general.quantization_version and general.file_type last; so
// from a GGUF source the whole file is llama-quantize's. Vectors stay as
// they are. A matrix whose rows do not fill its type's blocks falls back as
// llama-quantize does (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K
// -> Q4_0, IQ4_XS -> IQ4_NL, else F16) and on_message says so. on_message
// also gets one line per tensor (name, shape, type in -> out, MiB before ->
// after) and a total. With params.imatrix_path, the matrices it has an
// entry for are quantized with GGML's importance-weighted quantizers (every
// type but Q8_0 and the float ones) and the file gets llama-quantize's
// quantize.imatrix.* keys; an entry whose size does not fit its tensor is
// an error. (No llama-quantize output with an importance matrix was at hand
// to compare bytes with: those follow GGML's code, untested against it.)
QKV_API void quantize_model(const std::string& input, const std::string& output, const QuantizeParams& params,
                            const MessageCallback& on_message = nullptr);

struct SynthParams {
  std::string arch = "llama";  // llama, qwen2, qwen3, phi3, gemma2, gemma3, gpt2 (synth_arch_names())
  int dim = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0;
  int head_dim = 0;            // 0: dim / heads
  int vocab = 32000, ctx = 2048;
  bool tied = false;           // no output.weight: the embedding is the classifier
  float rope_base = 10000.0f, eps = 1e-5f;
  int window = 0;              // Gemma's sliding window, 0: none
  bool llama3_rope = false;    // llama: rope_freqs.weight with Llama 3.1's scaling (llama3.2-1b)
  std::string type = "f32";     // one of quantize_type_names()
  std::string name = "custom";  // general.name
  // A llama2.c tokenizer.bin of exactly `vocab` tokens (vocab 0: the file's
  // size), or empty for a made-up vocabulary of `vocab` tokens (3 special and
  // 256 byte tokens, then placeholders).
  std::string tokenizer_path;
  uint64_t seed = 1;
};
// The real models' shapes synth_model knows ("stories15M", "stories42M",
// "stories110M", "tinyllama-1.1b", "smollm2-135m", "llama3.2-1b",
// "qwen2.5-0.5b", "qwen3-0.6b", "gemma3-270m", "gpt2-124m"), each with its
// architecture; false for another name.
QKV_API bool synth_shape(const std::string& name, SynthParams& params);
QKV_API std::vector<std::string> synth_shape_names();
QKV_API std::vector<std::string> synth_arch_names();
// Writes a GGUF of params.arch, laid out as llama.cpp's converter writes it,
// with weights ~ N(0, 0.02) and norms (and biases) of 1: a real shape's
// speed without its weights (llama.cpp loads it too).
QKV_API void synth_model(const std::string& output, const SynthParams& params, const MessageCallback& on_message = nullptr);

// What a weights file holds, read without building the model (so files of
// architectures or types qkv cannot run are described too), like gguf-dump.
struct TensorDescription {
  std::string name;
  std::vector<int64_t> shape;  // ne[0] (the row length) first
  std::string type;            // "Q4_K", or "unknown(99)"
  uint64_t bytes = 0;
};
// Per tensor type of a file: how many, how big, and what runs it here.
struct TypeDescription {
  std::string type;      // "Q5_0"
  int tensors = 0;
  uint64_t bytes = 0;
  std::string runs_with; // "integer products on Q8_0 activations (avx2 kernels)", or why it cannot run
};
struct FileDescription {
  std::string path, format, arch;  // format: "GGUF v3" or "llama2.c"
  uint64_t file_bytes = 0;
  // Hyper-parameters and other scalar metadata as "key = value" text, in key order.
  std::vector<std::pair<std::string, std::string>> metadata;
  std::string vocab_type;  // tokenizer.ggml.model ("llama", "gpt2"), "" when the file has none
  int vocab_size = 0, bos = -1, eos = -1, unk = -1;
  bool has_chat_template = false;
  std::vector<TensorDescription> tensors;
  std::vector<TypeDescription> types;  // one per tensor type, in order of bytes (most first)
  uint64_t tensor_bytes = 0;  // summed
  int64_t n_params = 0;       // elements, summed
};
QKV_API FileDescription describe_model_file(const std::string& path);

// Perplexity as llama.cpp's llama-perplexity measures it: the text is
// tokenized once (with BOS), cut into chunks of n_ctx tokens (a last partial
// chunk is dropped), the first token of each chunk replaced by BOS, each
// chunk run from an empty cache, and its second half scored:
//   for i = n_ctx/2 .. n_ctx-2: nll += -log softmax(logits_i)[token_{i+1}].
//
// KL divergence, the way people judge a quantization (llama-perplexity's
// --kl-divergence-base / --kl-divergence): a run with kl = SaveBase writes
// the tokens and every scored position's log-probabilities to kl_base (qkv's
// own format: log-probs quantized to 16 bits over [max-32, max] per
// position); a run of another model with kl = Compare reads them back (the
// text is then unused: the file's tokens and n_ctx are scored) and compares
// its distributions with the saved ones.
struct KlDivergence {
  double ppl_base = 0;              // the saved model's perplexity on the same tokens
  double ln_ppl_ratio = 0, ln_ppl_ratio_error = 0;  // mean of ln(p_base/p) over tokens = ln(PPL/PPL_base)
  double kld = 0, kld_error = 0;    // mean KL(base || this) per position, in nats
  double kld_max = 0, kld_min = 0;
  // KLD percentiles: 99.9, 99, 90, 50 (median), 10, 5, 1.
  double kld_p999 = 0, kld_p99 = 0, kld_p90 = 0, kld_median = 0, kld_p10 = 0, kld_p5 = 0, kld_p1 = 0;
  // delta p = p(correct token) - p_base(correct token)
  double dp_mean = 0, dp_mean_error = 0, dp_rms = 0, dp_max = 0, dp_min = 0;
  double dp_p999 = 0, dp_p99 = 0, dp_p90 = 0, dp_median = 0, dp_p10 = 0, dp_p1 = 0, dp_p001 = 0;
  double same_top = 0, same_top_error = 0;  // fraction of positions whose most likely token agrees
  int n_positions = 0;
};
struct PerplexityResult {
  std::vector<double> running;  // the estimate after each chunk, as llama.cpp prints it
  double ppl = 0, error = 0;    // final estimate and its standard error
  int n_chunks = 0, n_tokens = 0;
  int n_ctx = 0;                // the chunk length used (the base file's under Compare)
  bool has_kl = false;          // kl below was computed (Compare)
  KlDivergence kl;
};
struct PerplexityOptions {
  int n_ctx = 128, n_batch = 128, n_threads = 0;
  int max_chunks = 0;  // > 0: score only the first that many chunks
  bool kv_f16 = true;  // KV cache in f16 (llama-perplexity's default); false: f32
  enum class Kl { None, SaveBase, Compare } kl = Kl::None;
  std::string kl_base;  // the file SaveBase writes and Compare reads
  // Called after each chunk with its index and the running estimate.
  std::function<void(int, double)> on_chunk;
  // Called once, before the first chunk, with the chunk count and token count.
  std::function<void(int n_chunks, int n_tokens)> on_start;
  // Given every weight product's input (Session::set_matmul_input_callback).
  MatmulInputCallback on_matmul_input;
  int skip_chunks = 0;  // > 0: the text's first that many chunks of n_ctx tokens are dropped (not with Kl::Compare)
  bool parse_special = false;  // control tokens' text ("<s>") read as those tokens (llama-imatrix's --parse-special)
};
QKV_API PerplexityResult perplexity(const Model& model, const std::string& text, const PerplexityOptions& options);
// The same with positional options (kept for existing callers).
QKV_API PerplexityResult perplexity(const Model& model, const std::string& text, int n_ctx, int n_batch, int n_threads,
                                    const std::function<void(int, double)>& on_chunk = nullptr, int max_chunks = 0,
                                    bool kv_f16 = true);

struct ImatrixOptions {
  int n_ctx = 512, n_batch = 512, n_threads = 0;  // llama-imatrix's -c 512
  int max_chunks = 0;          // > 0: only the first that many chunks
  bool kv_f16 = true;
  bool process_output = false; // also output.weight (llama-imatrix's --process-output)
  bool legacy_format = false;  // the .dat format (--output-format dat) instead of GGUF
  std::string dataset;         // the name imatrix.datasets records (the text file's path)
  std::function<void(int, double)> on_chunk;                // after each chunk: its index, the running PPL
  std::function<void(int n_chunks, int n_tokens)> on_start;  // before the first chunk
  // llama-imatrix's --in-file: importance matrices (GGUF or .dat) whose sums,
  // counts and datasets are added to this run's (a .dat's calls count as
  // chunks of n_ctx tokens).
  std::vector<std::string> in_files;
  int skip_chunks = 0;       // --chunk: the text's first that many chunks are not run
  int output_frequency = 10; // --output-frequency: `output` also written after every that many chunks
  int save_frequency = 0;    // --save-frequency: > 0, a copy OUTPUT.at_N after every that many chunks
  bool parse_special = false;  // --parse-special: control tokens' text in the text read as those tokens
};
struct ImatrixResult {
  int n_chunks = 0, n_tokens = 0, n_entries = 0;
  int n_ctx = 0;  // the chunk size counted (combine_imatrix: as taken from the files)
  double ppl = 0, error = 0;  // the perplexity of the chunks' second halves, as llama-imatrix prints it
};
// llama-imatrix: runs the model over `text` in chunks of n_ctx tokens (each
// from an empty cache, its first token BOS where the vocabulary adds one)
// and writes, for every matrix of the layers (blk.*; output.weight too with
// process_output), the sums of its inputs' squares and of its inputs, and
// how many inputs (tokens) it saw: GGUF tensors NAME.in_sum2, NAME.in_sum,
// NAME.counts with general.type "imatrix", imatrix.datasets,
// imatrix.chunk_count and imatrix.chunk_size, in name order; or the legacy
// .dat. As llama-imatrix, products of fewer than 16 tokens are not counted,
// and the text must give at least two chunks. `output` is written whole or
// not at all. The sums are accumulated in double (llama-imatrix: float).
// Chunk counts (imatrix.chunk_count, the periodic saves' N) include the
// in_files' chunks, as llama-imatrix counts them; periodic saves are made
// at the end of a chunk, whole.
QKV_API ImatrixResult compute_imatrix(const Model& model, const std::string& text, const std::string& output,
                                      const ImatrixOptions& options);
// llama-imatrix without a text: the in_files (at least one) added together
// into `output`, in options' format. options.n_ctx: the chunk size the chunk
// count is in (and a .dat's calls); 0: the first file's imatrix.chunk_size
// (512 where it records none).
QKV_API ImatrixResult combine_imatrix(const std::string& output, const ImatrixOptions& options);

}  // namespace qkv

#endif  // QKV_QKV_HPP
