// Perplexity and KL divergence (qkv.hpp), as llama-perplexity computes them.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "engine/api/qkv.hpp"
#include "engine/error.h"
#include "engine/format/mapped_file.h"
#include "engine/format/output_file.h"

namespace qkv {
namespace {

// The KL base file (qkv's own format, little-endian):
//   "QKVKLD01", u32 n_ctx, u32 n_vocab, u32 n_chunks, u32 0,
//   i32 tokens[n_chunks * n_ctx],
//   then per chunk, per scored position (n_ctx/2 .. n_ctx-2):
//     f32 lo, f32 step, u16 q[n_vocab]   with log p(v) ~= lo + step * q[v].
constexpr char kKlMagic[8] = {'Q', 'K', 'V', 'K', 'L', 'D', '0', '1'};
constexpr size_t kKlHeader = 8 + 4 * 4;
constexpr float kKlRange = 32.0f;  // log-probs more than this below the top are stored as the floor

int scored_per_chunk(int n_ctx) { return n_ctx - 1 - n_ctx / 2; }
size_t position_bytes(int n_vocab) { return 8 + 2 * size_t(n_vocab); }

// log softmax(l) into lp (double for the sums), returns the argmax.
int log_softmax(const float* l, int V, std::vector<double>& lp) {
  const int top = int(std::max_element(l, l + V) - l);
  double sum = 0;
  for (int v = 0; v < V; ++v) sum += std::exp(double(l[v]) - double(l[top]));
  const double ls = double(l[top]) + std::log(sum);
  for (int v = 0; v < V; ++v) lp[size_t(v)] = double(l[v]) - ls;
  return top;
}

void encode_position(const std::vector<double>& lp, int top, std::vector<uint8_t>& out) {
  const float lo = float(lp[size_t(top)]) - kKlRange, step = kKlRange / 65535.0f;
  const size_t at = out.size();
  out.resize(at + position_bytes(int(lp.size())));
  std::memcpy(&out[at], &lo, 4);
  std::memcpy(&out[at + 4], &step, 4);
  for (size_t v = 0; v < lp.size(); ++v) {
    const double q = std::nearbyint((lp[v] - double(lo)) / double(step));
    const uint16_t u = uint16_t(std::min(65535.0, std::max(0.0, q)));
    std::memcpy(&out[at + 8 + 2 * v], &u, 2);
  }
}

// Decodes a stored position into normalized log-probs; returns the argmax.
int decode_position(const uint8_t* p, int V, std::vector<double>& lp) {
  float lo, step;
  std::memcpy(&lo, p, 4);
  std::memcpy(&step, p + 4, 4);
  int top = 0;
  uint16_t best = 0;
  double sum = 0;
  for (int v = 0; v < V; ++v) {
    uint16_t u;
    std::memcpy(&u, p + 8 + 2 * size_t(v), 2);
    if (u > best) best = u, top = v;
    lp[size_t(v)] = double(lo) + double(step) * double(u);
  }
  const double mx = lp[size_t(top)];
  for (int v = 0; v < V; ++v) sum += std::exp(lp[size_t(v)] - mx);
  const double ls = mx + std::log(sum);
  for (int v = 0; v < V; ++v) lp[size_t(v)] -= ls;
  return top;
}

double percentile(const std::vector<double>& sorted, double q) {
  return sorted[size_t(std::lround(q * double(sorted.size() - 1)))];
}

// Mean and its standard error.
std::pair<double, double> mean_error(double sum, double sum2, size_t n) {
  const double mean = sum / double(n);
  const double var = sum2 / double(n) - mean * mean;
  return {mean, n > 1 && var > 0 ? std::sqrt(var / double(n - 1)) : 0.0};
}

// The base file, opened and checked against the model.
struct KlBase {
  std::unique_ptr<MappedFile> file;
  int n_ctx = 0, n_vocab = 0, n_chunks = 0;
  std::vector<int> tokens;
  const uint8_t* positions = nullptr;

  KlBase(const std::string& path, const Model& model) {
    file = std::make_unique<MappedFile>(path);
    ByteReader r(file->data(), file->size(), path);
    r.need(kKlHeader, "the KL base header");
    if (std::memcmp(r.here(), kKlMagic, 8) != 0)
      throw Error(path + ": not a qkv KL base file (written by qkv perplexity --kl-divergence-base FILE -f TEXT)");
    r.skip(8, "magic");
    const uint32_t c = r.read<uint32_t>("n_ctx"), v = r.read<uint32_t>("n_vocab"), k = r.read<uint32_t>("n_chunks");
    r.skip(4, "reserved");
    if (c < 4 || c > (1u << 20) || v == 0 || v > (1u << 24) || k == 0 || k > (1u << 24))
      throw Error(cat(path, ": implausible header (n_ctx ", c, ", n_vocab ", v, ", n_chunks ", k, ")"));
    n_ctx = int(c), n_vocab = int(v), n_chunks = int(k);
    if (n_vocab != model.info().vocab_size)
      throw Error(cat(path, ": saved with a vocabulary of ", n_vocab, " tokens, but ", model.info().path, " has ",
                      model.info().vocab_size), Errc::InvalidArgument);
    const uint64_t need = kKlHeader + 4ull * n_chunks * n_ctx +
                          uint64_t(n_chunks) * uint64_t(scored_per_chunk(n_ctx)) * position_bytes(n_vocab);
    if (file->size() != need)
      throw Error(cat(path, ": has ", file->size(), " bytes; its header (n_ctx ", n_ctx, ", n_vocab ", n_vocab,
                      ", n_chunks ", n_chunks, ") needs ", need));
    tokens.resize(size_t(n_chunks) * size_t(n_ctx));
    std::memcpy(tokens.data(), r.here(), 4 * tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] < 0 || tokens[i] >= n_vocab)
        throw Error(cat(path, ": token ", i, " is ", tokens[i], ", outside the vocabulary of ", n_vocab));
    positions = r.here() + 4 * tokens.size();
  }
  const uint8_t* position(int chunk, int j) const {
    return positions + (size_t(chunk) * size_t(scored_per_chunk(n_ctx)) + size_t(j)) * position_bytes(n_vocab);
  }
};

}  // namespace

PerplexityResult perplexity(const Model& model, const std::string& text, const PerplexityOptions& o) {
  using Kl = PerplexityOptions::Kl;
  if (o.kl != Kl::None && o.kl_base.empty())
    throw Error("perplexity: KL divergence needs a base file", Errc::InvalidArgument);
  if (o.kl == Kl::Compare && o.skip_chunks > 0)
    throw Error("perplexity: chunks cannot be skipped when comparing against a base file (it holds its own)",
                Errc::InvalidArgument);
  std::unique_ptr<KlBase> base;
  std::vector<int> tokens;
  int n_ctx = o.n_ctx;
  if (o.kl == Kl::Compare) {
    base = std::make_unique<KlBase>(o.kl_base, model);
    n_ctx = base->n_ctx;
    tokens = base->tokens;
  } else {
    if (n_ctx < 4) throw Error("perplexity: the context must hold at least 4 tokens", Errc::InvalidArgument);
    tokens = model.tokenize(text, true, o.parse_special);
    if (o.skip_chunks > 0) {
      const size_t skip = size_t(o.skip_chunks) * size_t(n_ctx);
      if (skip >= tokens.size())
        throw Error(cat("perplexity: the text has ", tokens.size(), " tokens; skipping ", o.skip_chunks, " chunks of ", n_ctx,
                        " leaves none"),
                    Errc::InvalidArgument);
      tokens.erase(tokens.begin(), tokens.begin() + long(skip));
    }
  }

  PerplexityResult r;
  r.n_ctx = n_ctx;
  r.n_tokens = int(tokens.size());
  r.n_chunks = int(tokens.size()) / n_ctx;
  if (r.n_chunks == 0)
    throw Error("perplexity: the text has " + std::to_string(tokens.size()) + " tokens, fewer than one chunk of " +
                    std::to_string(n_ctx),
                Errc::InvalidArgument);
  if (o.max_chunks > 0) r.n_chunks = std::min(r.n_chunks, o.max_chunks);
  const int V = model.info().vocab_size;
  const int scored = scored_per_chunk(n_ctx);

  std::unique_ptr<OutputFile> out;
  if (o.kl == Kl::SaveBase) {
    out = std::make_unique<OutputFile>(o.kl_base, kKlHeader + 4ull * r.n_chunks * n_ctx +
                                                      uint64_t(r.n_chunks) * uint64_t(scored) * position_bytes(V));
    const uint32_t head[4] = {uint32_t(n_ctx), uint32_t(V), uint32_t(r.n_chunks), 0};
    out->write(kKlMagic, 8);
    out->write(head, sizeof head);
    out->write(tokens.data(), 4 * size_t(r.n_chunks) * size_t(n_ctx));
  }
  if (o.on_start) o.on_start(r.n_chunks, r.n_tokens);

  // The model is shared; the session is ours.
  std::shared_ptr<const Model> borrowed(&model, [](const Model*) {});
  SessionOptions so;
  so.n_ctx = n_ctx;
  so.n_batch = std::min(o.n_batch, n_ctx);
  so.n_threads = o.n_threads;
  so.kv_f16 = o.kv_f16;
  Session s(borrowed, so);
  if (o.on_matmul_input) s.set_matmul_input_callback(o.on_matmul_input);

  double nll = 0, nll2 = 0;
  long count = 0;
  std::vector<double> lp(size_t(V), 0.0), lpb(size_t(V), 0.0);
  std::vector<uint8_t> encoded;
  // Per position, for the KL statistics.
  std::vector<double> kld, dp;
  double ln_ratio = 0, ln_ratio2 = 0, nll_base = 0;
  long same_top = 0;
  std::vector<int> chunk(static_cast<size_t>(n_ctx));
  // Each chunk goes through in batches of n_batch: only one batch's logits
  // are held at a time (a context of 65536 tokens would need n_ctx x vocab).
  const int batch = so.n_batch;
  for (int c = 0; c < r.n_chunks; ++c) {
    std::copy(tokens.begin() + long(c) * n_ctx, tokens.begin() + long(c + 1) * n_ctx, chunk.begin());
    if (model.adds_bos()) chunk[0] = model.bos_id();  // llama.cpp: only where the vocabulary adds BOS
    s.reset();
    encoded.clear();
    for (int b = 0; b < n_ctx; b += batch) {
      const int m = std::min(batch, n_ctx - b);
      s.eval(chunk.data() + b, m, true);
      for (int i = std::max(b, n_ctx / 2); i < std::min(b + m, n_ctx - 1); ++i) {
        const int next = chunk[size_t(i) + 1];
        const int top = log_softmax(s.logits_at(i - b), V, lp);
        const double l = lp[size_t(next)];
        nll -= l;
        nll2 += l * l;
        ++count;
        if (out) encode_position(lp, top, encoded);
        if (base) {
          const int top_b = decode_position(base->position(c, i - n_ctx / 2), V, lpb);
          double k = 0;
          for (int v = 0; v < V; ++v) k += std::exp(lpb[size_t(v)]) * (lpb[size_t(v)] - lp[size_t(v)]);
          kld.push_back(std::max(0.0, k));
          dp.push_back(std::exp(l) - std::exp(lpb[size_t(next)]));
          const double d = lpb[size_t(next)] - l;  // ln(p_base / p)
          ln_ratio += d;
          ln_ratio2 += d * d;
          nll_base -= lpb[size_t(next)];
          same_top += top == top_b;
        }
      }
    }
    if (out) out->write(encoded.data(), encoded.size());
    r.running.push_back(std::exp(nll / double(count)));
    if (o.on_chunk) o.on_chunk(c, r.running.back());
  }
  if (out) out->commit();
  const auto [mean, err] = mean_error(nll, nll2, size_t(count));
  r.ppl = std::exp(mean);
  r.error = err * r.ppl;

  if (base) {
    KlDivergence& k = r.kl;
    r.has_kl = true;
    const size_t n = kld.size();
    k.n_positions = int(n);
    k.ppl_base = std::exp(nll_base / double(n));
    std::tie(k.ln_ppl_ratio, k.ln_ppl_ratio_error) = mean_error(ln_ratio, ln_ratio2, n);
    double s1 = 0, s2 = 0, d1 = 0, d2 = 0;
    for (size_t i = 0; i < n; ++i) s1 += kld[i], s2 += kld[i] * kld[i], d1 += dp[i], d2 += dp[i] * dp[i];
    std::tie(k.kld, k.kld_error) = mean_error(s1, s2, n);
    std::tie(k.dp_mean, k.dp_mean_error) = mean_error(d1, d2, n);
    k.dp_rms = std::sqrt(d2 / double(n));
    std::sort(kld.begin(), kld.end());
    std::sort(dp.begin(), dp.end());
    k.kld_max = kld.back(), k.kld_min = kld.front();
    k.kld_p999 = percentile(kld, 0.999), k.kld_p99 = percentile(kld, 0.99), k.kld_p90 = percentile(kld, 0.90);
    k.kld_median = percentile(kld, 0.5), k.kld_p10 = percentile(kld, 0.10), k.kld_p5 = percentile(kld, 0.05);
    k.kld_p1 = percentile(kld, 0.01);
    k.dp_max = dp.back(), k.dp_min = dp.front();
    k.dp_p999 = percentile(dp, 0.999), k.dp_p99 = percentile(dp, 0.99), k.dp_p90 = percentile(dp, 0.90);
    k.dp_median = percentile(dp, 0.5), k.dp_p10 = percentile(dp, 0.10), k.dp_p1 = percentile(dp, 0.01);
    k.dp_p001 = percentile(dp, 0.001);
    k.same_top = double(same_top) / double(n);
    k.same_top_error = n > 1 ? std::sqrt(k.same_top * (1 - k.same_top) / double(n - 1)) : 0.0;
  }
  return r;
}

PerplexityResult perplexity(const Model& model, const std::string& text, int n_ctx, int n_batch, int n_threads,
                            const std::function<void(int, double)>& on_chunk, int max_chunks, bool kv_f16) {
  PerplexityOptions o;
  o.n_ctx = n_ctx;
  o.n_batch = n_batch;
  o.n_threads = n_threads;
  o.on_chunk = on_chunk;
  o.max_chunks = max_chunks;
  o.kv_f16 = kv_f16;
  return perplexity(model, text, o);
}

}  // namespace qkv
