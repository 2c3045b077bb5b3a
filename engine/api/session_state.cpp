// Session::save_state / load_state: a session's cached tokens, KV cache,
// last logits and pending token as bytes (and files), so that an app can put
// a conversation aside and continue it later exactly, and qkv generate's
// --prompt-cache can skip evaluating a prompt it has seen.
//
// Layout (little-endian): "QKVSTATE", u32 version, then the model's
// fingerprint (a text line naming its shape and types), u8 f16 cache, i32
// n_past, i32 pending, i32 has_logits, the tokens (i32 x n_past), the logits
// (f32 x vocab, when has_logits), the KV cache bytes (KVCache::save_state).
#include <sys/stat.h>

#include <cstring>

#include "engine/api/session_impl.h"
#include "engine/error.h"
#include "engine/format/mapped_file.h"
#include "engine/format/output_file.h"
#include "engine/runtime/attention.h"

namespace qkv {

namespace {

constexpr char kMagic[8] = {'Q', 'K', 'V', 'S', 'T', 'A', 'T', 'E'};
constexpr uint32_t kVersion = 1;

// What must agree for a saved cache to mean the same thing in another session.
std::string fingerprint(const Model& model) {
  const ModelInfo& i = model.info();
  struct stat st{};
  const uint64_t size = ::stat(i.path.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
  return cat(i.arch, " dim ", i.dim, " layers ", i.n_layers, " heads ", i.n_heads, "/", i.n_kv_heads, " head_dim ",
             i.head_dim, " vocab ", i.vocab_size, " params ", i.n_params, " weights ", i.weight_types, " file bytes ", size);
}

template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

class Reader {
 public:
  Reader(const char* p, size_t n) : p_(p), n_(n) {}
  template <class T>
  T get(const char* what) {
    T v;
    need(sizeof v, what);
    std::memcpy(&v, p_ + at_, sizeof v);
    at_ += sizeof v;
    return v;
  }
  const char* take(size_t n, const char* what) {
    need(n, what);
    const char* p = p_ + at_;
    at_ += n;
    return p;
  }
  size_t left() const { return n_ - at_; }

 private:
  void need(size_t n, const char* what) const {
    if (n > n_ - at_)
      throw Error(cat("session state: truncated: ", what, " needs ", n, " bytes, ", n_ - at_, " are left"));
  }
  const char* p_;
  size_t n_, at_ = 0;
};

void load_from(Session& session, Session::Impl& s, const char* data, size_t size) {
  Reader r(data, size);
  if (std::memcmp(r.take(8, "the magic"), kMagic, 8) != 0) throw Error("session state: not a qkv session state");
  const uint32_t version = r.get<uint32_t>("the version");
  if (version != kVersion) throw Error(cat("session state: version ", version, "; this qkv reads version ", kVersion));
  const uint32_t fp_len = r.get<uint32_t>("the model's fingerprint");
  const std::string fp(r.take(fp_len, "the model's fingerprint"), fp_len);
  const std::string mine = fingerprint(*s.model);
  if (fp != mine) throw Error(cat("session state: saved from another model (", fp, "); this one is ", mine));
  const bool f16 = r.get<uint8_t>("the cache type") != 0;
  if (f16 != s.kv_f16)
    throw Error(cat("session state: the saved KV cache is ", f16 ? "f16" : "f32", ", this session's is ",
                    s.kv_f16 ? "f16" : "f32"));
  const int32_t n_past = r.get<int32_t>("the token count");
  const int32_t pending = r.get<int32_t>("the pending token");
  const int32_t has_logits = r.get<int32_t>("the logits flag");
  if (n_past < 0 || n_past + (pending >= 0 ? 1 : 0) > s.n_ctx)
    throw Error(cat("session state: holds ", n_past, " tokens", pending >= 0 ? " and a pending one" : "",
                    "; this session's context is ", s.n_ctx), Errc::ContextFull);
  if (pending < -1 || pending >= s.vocab || has_logits < 0 || has_logits > 1)
    throw Error("session state: corrupt header (pending token or logits flag out of range)");
  std::vector<int> tokens(static_cast<size_t>(n_past));
  std::memcpy(tokens.data(), r.take(size_t(n_past) * 4, "the tokens"), size_t(n_past) * 4);
  for (int t : tokens)
    if (t < 0 || t >= s.vocab) throw Error(cat("session state: token id ", t, " is outside the vocabulary"));
  const char* logits = has_logits ? r.take(size_t(s.vocab) * 4, "the logits") : nullptr;
  KVCache& cache = s.state->kv_cache();
  const size_t kv = cache.state_bytes(n_past);
  const char* kv_data = r.take(kv, "the KV cache");
  if (r.left() != 0) throw Error(cat("session state: ", r.left(), " bytes after the end"));
  session.reset();
  cache.load_state(n_past, kv_data);
  s.tokens = std::move(tokens);
  s.n_past = n_past;
  s.pending = pending;
  if (logits) std::memcpy(s.logits.data(), logits, size_t(s.vocab) * 4);
  s.n_logits = has_logits;
}

}  // namespace

std::string Session::save_state() const {
  const Impl& s = *impl_;
  std::string out(kMagic, 8);
  put(out, kVersion);
  const std::string fp = fingerprint(*s.model);
  put(out, uint32_t(fp.size()));
  out += fp;
  put(out, uint8_t(s.kv_f16));
  put(out, int32_t(s.n_past));
  put(out, int32_t(s.pending));
  put(out, int32_t(s.n_logits > 0));
  out.append(reinterpret_cast<const char*>(s.tokens.data()), s.tokens.size() * 4);
  if (s.n_logits > 0) out.append(reinterpret_cast<const char*>(logits()), size_t(s.vocab) * 4);
  const KVCache& cache = s.state->kv_cache();
  const size_t at = out.size();
  out.resize(at + cache.state_bytes(s.n_past));
  cache.save_state(s.n_past, &out[at]);
  return out;
}

void Session::load_state(const std::string& state) { load_from(*this, *impl_, state.data(), state.size()); }

void Session::save_state_file(const std::string& path) const {
  const std::string bytes = save_state();
  OutputFile f(path, bytes.size());
  f.write(bytes.data(), bytes.size());
  f.commit();
}

void Session::load_state_file(const std::string& path) {
  const MappedFile f(path);
  try {
    load_from(*this, *impl_, reinterpret_cast<const char*>(f.data()), f.size());
  } catch (const Error& e) {
    throw Error(cat(path, ": ", e.what()), e.code());
  }
}

}  // namespace qkv
