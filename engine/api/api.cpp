// The public API (qkv.hpp) over the engine's parts.
#include <algorithm>
#include <chrono>
#include <cstring>

#include <unistd.h>

#include "engine/runtime/architecture.h"
#include "engine/runtime/attention.h"
#include "engine/runtime/cpu.h"
#include "engine/error.h"
#include "engine/runtime/profiler.h"
#include "engine/api/model_files.h"
#include "engine/api/session_impl.h"
#include "engine/api/qkv.hpp"
#include "engine/text/sampler.h"
#include "engine/text/tokenizer.h"
#include "engine/format/mapped_file.h"
#include "engine/format/weight_file.h"
#include "models/registry.h"
#include "ops/platform.h"
#include "ops/quant.h"

namespace qkv {

// ---------------------------------------------------------------- Model

struct Model::Impl {
  std::unique_ptr<WeightFile> weights;
  std::unique_ptr<Architecture> arch;
  std::unique_ptr<Tokenizer> tokenizer;
  ModelInfo info;
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

std::shared_ptr<const Model> Model::load(const std::string& path, const LoadOptions& opts) {
  auto impl = std::make_unique<Impl>();
  register_builtin_architectures();
  impl->weights = WeightFile::open(path, opts.use_mmap);
  impl->arch = make_architecture(*impl->weights);
  const ModelConfig& c = impl->arch->config();

  if (!opts.tokenizer_path.empty()) {
    impl->tokenizer = std::make_unique<Tokenizer>(load_llama2c_vocab(opts.tokenizer_path, c.vocab_size));
  } else if (impl->weights->vocab()) {
    impl->tokenizer = std::make_unique<Tokenizer>(*impl->weights->vocab());
  } else {
    throw Error(cat(path, ": this ", impl->weights->format(),
                    " file has no tokenizer; give one with -z (a llama2.c tokenizer.bin)"));
  }
  if (impl->tokenizer->vocab().size() != c.vocab_size)
    throw Error(cat(path, ": tokenizer has ", impl->tokenizer->vocab().size(), " tokens but token_embd.weight has ",
                    c.vocab_size, " rows"));
  {
    // A pool for the load alone: a large file's checks and copies take seconds on one core.
    ThreadPool pool(physical_cores());
    const ParallelFor parallel = [&](size_t n, const std::function<void(size_t, size_t)>& fn) {
      pool.parallel_for(n, [&](size_t b, size_t e, int) { fn(b, e); }, 1, 0, 16);
    };
    impl->weights->check_finite(parallel);
    impl->weights->pack_for_products(impl->arch->matmul_weights(), impl->arch->row_read_weights(), active_kernels(),
                                     parallel);
  }

  ModelInfo& i = impl->info;
  i.path = path;
  i.format = impl->weights->format();
  i.arch = c.arch;
  i.dim = c.dim;
  i.hidden_dim = c.hidden_dim;
  i.n_layers = c.n_layers;
  i.n_heads = c.n_heads;
  i.n_kv_heads = c.n_kv_heads;
  i.head_dim = c.head_dim;
  i.vocab_size = c.vocab_size;
  i.context_length = c.context_length;
  i.rope_base = c.rope_base;
  i.rms_eps = c.rms_eps;
  i.n_params = impl->arch->n_params();
  i.weight_type = impl->arch->weight_type();
  if (const auto ft = impl->weights->get_uint("general.file_type")) i.file_type = ftype_description(int(*ft));
  {
    std::vector<std::pair<std::string, int>> counts;  // matrices only: vectors (norms) stay F32 in every file
    for (const std::string& name : impl->weights->tensor_names()) {
      const Tensor& t = *impl->weights->find(name);
      if (t.n_dims < 2) continue;
      auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == t.info().name; });
      if (it == counts.end()) counts.emplace_back(t.info().name, 1);
      else ++it->second;
    }
    std::stable_sort(counts.begin(), counts.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    for (const auto& [type, n] : counts) i.weight_types += cat(i.weight_types.empty() ? "" : ", ", type, counts.size() > 1 ? cat(" x", n) : "");
  }
  i.tied_output = impl->arch->tied_output();
  return std::shared_ptr<const Model>(new Model(std::move(impl)));
}

const ModelInfo& Model::info() const { return impl_->info; }

std::vector<int> Model::tokenize(const std::string& text, bool add_bos) const {
  return impl_->tokenizer->encode(text, add_bos, false);
}

std::vector<int> Model::tokenize(const std::string& text, bool add_special, bool parse_special) const {
  return impl_->tokenizer->encode(text, add_special, parse_special);
}

std::string Model::token_to_piece(int token, int prev) const { return impl_->tokenizer->decode(prev, token); }
std::string Model::token_text(int token) const { return impl_->tokenizer->piece(token, true); }

std::string Model::detokenize(const std::vector<int>& tokens) const {
  std::string s;
  int prev = -1;
  for (int t : tokens) {
    s += impl_->tokenizer->decode(prev, t);
    prev = t;
  }
  return s;
}

int Model::bos_id() const { return impl_->tokenizer->vocab().bos; }
int Model::eos_id() const { return impl_->tokenizer->vocab().eos; }
bool Model::adds_bos() const { return impl_->tokenizer->vocab().add_bos && impl_->tokenizer->vocab().bos >= 0; }

std::string Model::chat_template() const { return impl_->tokenizer->vocab().chat_template; }

bool Model::is_end_of_text(int token) const {
  return impl_->tokenizer->is_end_of_generation(token) ||
         (impl_->arch->config().stop_on_bos && token >= 0 && token == bos_id());
}

// ---------------------------------------------------------------- Vocabulary

struct Vocabulary::Impl {
  std::unique_ptr<Tokenizer> tokenizer;
};

Vocabulary::Vocabulary(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Vocabulary::~Vocabulary() = default;

std::shared_ptr<const Vocabulary> Vocabulary::load(const std::string& path, const std::string& tokenizer_path) {
  auto impl = std::make_unique<Impl>();
  if (!tokenizer_path.empty()) {
    impl->tokenizer = std::make_unique<Tokenizer>(load_llama2c_vocab(tokenizer_path, 0));
  } else {
    if (read_file_head(path, 4) != "GGUF")
      throw Error(cat(path, ": not a GGUF file; give a llama2.c model's tokenizer with -z (tokenizer.bin)"));
    impl->tokenizer = std::make_unique<Tokenizer>(load_gguf_vocab(path));
  }
  return std::shared_ptr<const Vocabulary>(new Vocabulary(std::move(impl)));
}

std::vector<int> Vocabulary::tokenize(const std::string& text, bool add_special, bool parse_special) const {
  return impl_->tokenizer->encode(text, add_special, parse_special);
}
std::string Vocabulary::token_to_piece(int token, bool special) const { return impl_->tokenizer->piece(token, special); }
int Vocabulary::size() const { return impl_->tokenizer->size(); }
int Vocabulary::bos_id() const { return impl_->tokenizer->vocab().bos; }
int Vocabulary::eos_id() const { return impl_->tokenizer->vocab().eos; }
bool Vocabulary::is_end_of_generation(int t) const { return impl_->tokenizer->is_end_of_generation(t); }
std::string Vocabulary::model() const { return impl_->tokenizer->vocab().model == VocabModel::Bpe ? "gpt2" : "llama"; }
std::string Vocabulary::pre_tokenizer() const { return impl_->tokenizer->vocab().pre; }
std::string Vocabulary::chat_template() const { return impl_->tokenizer->vocab().chat_template; }

// ---------------------------------------------------------------- Session


Session::Session(std::shared_ptr<const Model> model, const SessionOptions& opts) : impl_(std::make_unique<Impl>()) {
  if (!model) throw Error("Session: no model", Errc::InvalidArgument);
  Impl& s = *impl_;
  s.model = std::move(model);
  const Model::Impl& m = s.model->impl();
  s.arch = m.arch.get();
  s.kernels = &active_kernels();
  const ModelConfig& c = s.arch->config();
  constexpr int kMaxThreads = 512;
  if (opts.n_ctx < 0) throw Error(cat("context size ", opts.n_ctx, " must be positive (or 0 for the model's)"), Errc::InvalidArgument);
  if (opts.n_threads < 0 || opts.n_threads > kMaxThreads)
    throw Error(cat("thread count ", opts.n_threads, " must be in 1..", kMaxThreads, " (or 0 for one per core)"), Errc::InvalidArgument);
  if (opts.n_threads_batch < 0 || opts.n_threads_batch > kMaxThreads)
    throw Error(cat("batch thread count ", opts.n_threads_batch, " must be in 1..", kMaxThreads), Errc::InvalidArgument);
  if (opts.n_batch < 1 || opts.n_batch > 65536) throw Error(cat("batch size ", opts.n_batch, " must be in 1..65536"), Errc::InvalidArgument);
  s.n_ctx = opts.n_ctx > 0 ? opts.n_ctx : c.context_length;
  constexpr int kMaxCtx = 1 << 24;
  if (s.n_ctx > kMaxCtx) throw Error(cat("context size ", s.n_ctx, " is more than the supported ", kMaxCtx), Errc::InvalidArgument);
  // The KV cache is reserved now, whole, and committed as it fills: refuse
  // up front a context whose full cache the machine could not hold.
  const double cache_bytes = KVCache::bytes({c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim}, s.n_ctx, opts.kv_f16);
  const double phys = double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGE_SIZE));
  if (phys > 0 && cache_bytes > phys * 0.9)
    throw Error(cat("context size ", s.n_ctx, " needs a KV cache of ", cache_bytes / double(1ull << 30), " GiB (",
                    uint64_t(cache_bytes), " bytes), more than this machine's ", phys / double(1ull << 30),
                    " GiB of memory; use a smaller -c", opts.kv_f16 ? "" : " or the f16 cache"),
                Errc::OutOfMemory);
  s.n_threads = opts.n_threads > 0 ? opts.n_threads : physical_cores();
  s.n_threads_batch = opts.n_threads_batch > 0 ? opts.n_threads_batch : s.n_threads;
  s.n_batch = std::min(opts.n_batch, s.n_ctx);
  s.vocab = c.vocab_size;
  s.kv_f16 = opts.kv_f16;
  s.tokens.reserve(size_t(s.n_ctx));
  const int pool_size = std::max(s.n_threads, s.n_threads_batch);
  s.pool = std::make_unique<ThreadPool>(pool_size);
  s.prof = std::make_unique<Profiler>(pool_size);
  s.pool->set_profiler(s.prof.get());
  // Everything a session needs, allocated now; running out of memory names
  // what could not be had and how much it was.
  auto allocating = [&](const char* what, double bytes, auto&& fn) {
    try {
      fn();
    } catch (const std::bad_alloc&) {
      throw Error(cat("cannot allocate the ", what, " (", bytes / double(1ull << 20), " MiB) for a context of ", s.n_ctx,
                      " tokens and batches of ", s.n_batch), Errc::OutOfMemory);
    }
  };
  allocating("KV cache and activations", cache_bytes, [&] { s.state = s.arch->new_state(s.n_ctx, s.n_batch, pool_size, opts.kv_f16); });
  s.widest = std::max({c.dim, c.hidden_dim, c.q_dim()});
  const size_t qbytes = size_t(s.n_batch) * size_t(s.widest / ops::kQK8_0 + 1) * (sizeof(ops::BlockQ8_0) + sizeof(ops::Q8Sum)) + 64;
  const size_t kbytes = size_t(s.n_batch) * size_t(s.widest / ops::kQK_K + 1) * sizeof(ops::BlockQ8_K);
  const size_t q1bytes = size_t(s.n_batch) * size_t(s.widest / 32 + 1) * (sizeof(ops::BlockQ8_1) + sizeof(ops::Q8Sum)) + 64;
  // Activations rounded to bf16 or f16 only where a product takes them (BF16, F16 weights).
  const auto weights = s.arch->matmul_weights();
  auto takes = [&](ops::Activation a) {
    return std::any_of(weights.begin(), weights.end(), [&](const Tensor* w) { return w->info().activation == a; });
  };
  const size_t bvalues = takes(ops::Activation::BF16) ? size_t(s.n_batch) * size_t(s.widest) : 0;
  const size_t fvalues = takes(ops::Activation::F16) ? size_t(s.n_batch) * size_t(s.widest) : 0;
  // bf16: the values, then (at the next multiple of 64 bytes) the same widened to floats.
  const size_t bscratch = bvalues ? bvalues + 32 + 2 * bvalues : 0;
  allocating("logits and quantization scratch", double(qbytes + kbytes + q1bytes + 2 * bscratch + 4 * fvalues) + 4.0 * s.vocab, [&] {
    s.logits.assign(size_t(s.vocab), 0.0f);
    s.qscratch.assign(qbytes, 0);
    s.kscratch.assign(kbytes, 0);
    s.q1scratch.assign(q1bytes, 0);
    s.bscratch.assign(bscratch, 0);
    s.fscratch.assign(fvalues, 0.0f);
  });
}

Session::~Session() = default;

const Model& Session::model() const { return *impl_->model; }
int Session::n_ctx() const { return impl_->n_ctx; }
int Session::n_past() const { return impl_->n_past; }
int Session::n_threads() const { return impl_->n_threads; }

void Session::eval(const int* tokens, int n, bool all_logits) {
  Impl& s = *impl_;
  if (n <= 0) throw Error(cat("eval: need at least one token (got ", n, ")"), Errc::InvalidArgument);
  if (!tokens) throw Error("eval: no tokens (null pointer)", Errc::InvalidArgument);
  const int pending = s.pending >= 0 ? 1 : 0;
  if (n > s.n_ctx - s.n_past - pending)
    throw Error(cat("context full: ", s.n_past + pending, " tokens cached + ", n, " new > context size ", s.n_ctx),
                Errc::ContextFull);
  if (pending) {  // the history first: the token generate() left
    const int t = s.pending;
    s.pending = -1;
    eval(&t, 1);
  }
  for (int i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= s.vocab)
      throw Error(cat("eval: token id ", tokens[i], " at index ", i, " is outside the vocabulary (", s.vocab, ")"), Errc::InvalidArgument);
  if (all_logits && size_t(n) * size_t(s.vocab) > s.logits.size()) {
    try {
      s.logits.resize(size_t(n) * size_t(s.vocab));
    } catch (const std::bad_alloc&) {
      throw Error(cat("eval: cannot allocate the logits of ", n, " tokens (", double(n) * s.vocab * 4 / double(1ull << 20),
                      " MiB); evaluate fewer tokens per call"), Errc::OutOfMemory);
    }
  }
  for (int done = 0; done < n;) {
    if (s.cancel.exchange(false))
      throw Error(cat("cancelled after ", done, " of ", n, " tokens (", s.n_past, " cached)"), Errc::Cancelled);
    const int m = std::min(s.n_batch, n - done);
    const int threads = m > 1 ? s.n_threads_batch : s.n_threads;
    const ExecContext ctx{*s.pool,           *s.kernels,         threads,
                          s.prof.get(),      s.capture.get(),    s.qscratch.data(),
                          s.qscratch.size(), s.kscratch.data(),  s.kscratch.size(),
                          s.q1scratch.data(), s.q1scratch.size(), s.bscratch.data(),
                          s.bscratch.size() * sizeof(uint16_t), s.fscratch.data(),
                          s.fscratch.size() * sizeof(float), s.matmul_input.get()};
    float* out = all_logits ? s.logits.data() + size_t(done) * size_t(s.vocab) : s.logits.data();
    if (s.prof->on()) {
      const Phase phase = m > 1 ? Phase::Prompt : Phase::Generation;
      s.prof->set_phase(phase);
      const uint64_t t0 = s.prof->now();
      s.arch->forward(*s.state, tokens + done, m, s.n_past, out, all_logits, ctx);
      s.prof->record(0, Profiler::Event{t0, s.prof->now(), 0, Profiler::Kind::Pass, Op::kCount, phase, -1, m,
                                        nullptr, 0, 0, {}});
    } else {
      s.arch->forward(*s.state, tokens + done, m, s.n_past, out, all_logits, ctx);
    }
    s.tokens.insert(s.tokens.end(), tokens + done, tokens + done + m);
    s.n_past += m;
    done += m;
  }
  s.n_logits = all_logits ? n : 1;
}

const float* Session::logits() const {
  const Impl& s = *impl_;
  if (s.n_logits == 0) throw Error("no logits yet: evaluate at least one token first", Errc::InvalidArgument);
  return s.logits.data() + size_t(s.n_logits - 1) * size_t(s.vocab);
}

bool Session::has_logits() const { return impl_->n_logits > 0; }

void Session::append_pending(int token) {
  Impl& s = *impl_;
  if (token < 0 || token >= s.vocab)
    throw Error(cat("append_pending: token id ", token, " is outside the vocabulary (", s.vocab, ")"), Errc::InvalidArgument);
  if (s.pending >= 0) {  // one at a time: evaluate the one before
    const int t = s.pending;
    s.pending = -1;
    eval(&t, 1);
  }
  s.pending = token;
}

int Session::pending_token() const { return impl_->pending; }

void Session::cancel(bool request) { impl_->cancel.store(request); }

const float* Session::logits_at(int i) const {
  const Impl& s = *impl_;
  if (i < 0 || i >= s.n_logits) throw Error(cat("logits_at(", i, "): the last eval kept logits for ", s.n_logits, " tokens"), Errc::InvalidArgument);
  return s.logits.data() + size_t(i) * size_t(s.vocab);
}

void Session::reset() {
  impl_->tokens.clear();
  impl_->n_past = 0;
  impl_->n_logits = 0;
  impl_->pending = -1;
}

void Session::truncate(int n_past) {
  if (n_past < 0 || n_past > impl_->n_past)
    throw Error(cat("truncate(", n_past, "): the cache holds ", impl_->n_past, " tokens"), Errc::InvalidArgument);
  if (n_past != impl_->n_past) impl_->n_logits = 0;  // the last evaluated token is gone
  impl_->n_past = n_past;
  impl_->tokens.resize(size_t(n_past));
  impl_->pending = -1;
}

const std::vector<int>& Session::tokens() const { return impl_->tokens; }

int Session::shift_context(int n_keep) {
  Impl& s = *impl_;
  // The history: the cached tokens and a pending one.
  std::vector<int> history = s.tokens;
  if (s.pending >= 0) history.push_back(s.pending);
  const int total = int(history.size());
  n_keep = std::max(0, std::min(n_keep, total));
  const int n_discard = (total - n_keep) / 2;
  if (n_discard == 0) return 0;
  // The cache of the kept tail was computed at the old positions: keep the
  // first n_keep, evaluate the tail again after them (llama.cpp's result,
  // whatever the architecture's position encoding).
  const std::vector<int> tail(history.begin() + n_keep + n_discard, history.end());
  truncate(n_keep);
  if (!tail.empty()) eval(tail);
  return n_discard;
}

void Session::set_attention_capture(AttentionCallback callback, std::vector<int> layers, std::vector<int> heads) {
  if (!callback) {
    impl_->capture.reset();
    return;
  }
  const ModelConfig& c = impl_->arch->config();
  auto cap = std::make_unique<AttentionCapture>();
  cap->callback = std::move(callback);
  auto mark = [](std::vector<bool>& v, const std::vector<int>& ids, int n, const char* what) {
    if (ids.empty()) return;
    v.assign(size_t(n), false);
    for (int id : ids) {
      if (id < 0 || id >= n) throw Error(cat("attention capture: ", what, " ", id, " is not in 0..", n - 1), Errc::InvalidArgument);
      v[size_t(id)] = true;
    }
  };
  mark(cap->layers, layers, c.n_layers, "layer");
  mark(cap->heads, heads, c.n_heads, "head");
  impl_->capture = std::move(cap);
}

void Session::set_matmul_input_callback(MatmulInputCallback callback) {
  impl_->matmul_input = callback ? std::make_unique<MatmulInputCallback>(std::move(callback)) : nullptr;
}

void Session::profile_start() { impl_->prof->start(); }
void Session::profile_stop() { impl_->prof->stop(); }
ProfileReport Session::profile_report(double peak_gflops, double peak_gbps) const {
  return impl_->prof->report(peak_gflops, peak_gbps);
}
std::string Session::profile_trace_json() const { return impl_->prof->trace_json(); }
std::string Session::profile_csv() const { return impl_->prof->csv(); }

int Session::sample(Sampler& sampler) {
  if (impl_->cancel.exchange(false)) throw Error(cat("cancelled (", impl_->n_past, " tokens cached)"), Errc::Cancelled);
  Profiler* p = impl_->prof.get();
  p->set_phase(Phase::Generation);
  const Zone z(p, Op::Sampling, -1, 5.0 * impl_->vocab, 4.0 * impl_->vocab, nullptr, ZoneShape{impl_->vocab, 0, 0});
  return sampler.sample(logits());
}

// ---------------------------------------------------------------- Sampler

Sampler::Sampler(int vocab_size, const SamplerParams& params)
    : impl_(std::make_unique<SamplerImpl>(params, vocab_size)) {}
Sampler::~Sampler() = default;
int Sampler::sample(const float* logits) { return impl_->sample(logits); }
void Sampler::accept(int token) { impl_->accept(token); }
void Sampler::reset() { impl_->reset(); }

std::string active_isa() { return active_kernels().isa; }

std::string cpu_name() { return ops::cpu_name(); }

// build_commit() and build_number(): the build writes them (cmake/build_info.cmake).

}  // namespace qkv
