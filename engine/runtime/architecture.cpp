#include "engine/runtime/architecture.h"

#include <map>
#include <cmath>
#include <mutex>

#include "engine/error.h"

namespace qkv {
namespace {

std::map<std::string, ArchitectureFactory>& registry() {
  static std::map<std::string, ArchitectureFactory> r;
  return r;
}
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

void register_architecture(const std::string& name, ArchitectureFactory factory) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry()[name] = factory;
}

std::unique_ptr<Architecture> make_architecture(const WeightFile& wf) {
  ArchitectureFactory factory = nullptr;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = registry().find(wf.architecture());
    if (it == registry().end()) {
      std::string known;
      for (const auto& [n, f] : registry()) known += (known.empty() ? "" : ", ") + n;
      throw Error(cat(wf.path(), ": architecture '", wf.architecture(), "' is not supported (supported: ", known, ")"));
    }
    factory = it->second;
  }
  return factory(wf);
}

namespace {
int positive_int(const WeightFile& wf, const std::string& key, std::optional<uint64_t> v) {
  if (!v) throw Error(cat(wf.path(), ": missing metadata key ", key));
  if (*v == 0 || *v > (1u << 30)) throw Error(cat(wf.path(), ": key ", key, " = ", *v, " is out of range"));
  return int(*v);
}
}  // namespace

ModelConfig read_common_hparams(const WeightFile& wf) {
  const std::string& path = wf.path();
  ModelConfig c;
  c.arch = wf.architecture();
  auto key = [&](const char* k) { return c.arch + "." + k; };
  auto required = [&](const char* k) { return positive_int(wf, key(k), wf.get_uint(key(k))); };
  c.dim = required("embedding_length");
  c.hidden_dim = required("feed_forward_length");
  c.n_layers = required("block_count");
  c.n_heads = required("attention.head_count");
  const auto kvh = wf.get_uint(key("attention.head_count_kv"));
  c.n_kv_heads = kvh ? positive_int(wf, key("attention.head_count_kv"), kvh) : c.n_heads;
  c.context_length = required("context_length");
  // The head size: attention.key_length where the file has it (Qwen3 and
  // Gemma heads are not dim / n_heads wide), else dim / n_heads.
  if (const auto kl = wf.get_uint(key("attention.key_length"))) {
    c.head_dim = positive_int(wf, key("attention.key_length"), kl);
    if (const auto vl = wf.get_uint(key("attention.value_length")); vl && *vl != *kl)
      throw Error(cat(path, ": attention.value_length ", *vl, " differs from key_length ", *kl, " (not supported)"));
  } else {
    if (c.dim % c.n_heads != 0)
      throw Error(cat(path, ": embedding_length ", c.dim, " is not divisible by head_count ", c.n_heads));
    c.head_dim = c.dim / c.n_heads;
  }
  if (c.n_kv_heads > c.n_heads || c.n_heads % c.n_kv_heads != 0)
    throw Error(cat(path, ": head_count ", c.n_heads, " is not a multiple of head_count_kv ", c.n_kv_heads));
  if (int64_t(c.head_dim) * c.n_heads > (int64_t(1) << 24))
    throw Error(cat(path, ": ", c.n_heads, " heads of ", c.head_dim, " values are too wide"));
  if (auto base = wf.get_float(key("rope.freq_base"))) c.rope_base = float(*base);
  if (auto eps = wf.get_float(key("attention.layer_norm_rms_epsilon"))) c.rms_eps = float(*eps);
  if (!(c.rope_base > 0.0f) || !std::isfinite(c.rope_base))
    throw Error(cat(path, ": rope.freq_base ", c.rope_base, " is not a positive number"));
  if (!(c.rms_eps >= 0.0f) || !std::isfinite(c.rms_eps))
    throw Error(cat(path, ": layer_norm_rms_epsilon ", c.rms_eps, " is not a non-negative number"));
  const Tensor* emb = wf.find("token_embd.weight");
  c.vocab_size = emb ? int(emb->ne[1]) : wf.vocab() ? wf.vocab()->size() : 0;
  return c;
}

}  // namespace qkv
