// Perplexity (qkv.hpp), as llama-perplexity computes it.
#include "engine/api/qkv.hpp"

#include <algorithm>
#include <cmath>

namespace qkv {

PerplexityResult perplexity(const Model& model, const std::string& text, int n_ctx, int n_batch, int n_threads,
                            const std::function<void(int, double)>& on_chunk, int max_chunks, bool kv_f16) {
  if (n_ctx < 4) throw Error("perplexity: the context must hold at least 4 tokens", Errc::InvalidArgument);
  const std::vector<int> tokens = model.tokenize(text, true);
  PerplexityResult r;
  r.n_tokens = int(tokens.size());
  r.n_chunks = int(tokens.size()) / n_ctx;
  if (r.n_chunks == 0)
    throw Error("perplexity: the text has " + std::to_string(tokens.size()) + " tokens, fewer than one chunk of " +
                    std::to_string(n_ctx),
                Errc::InvalidArgument);
  if (max_chunks > 0) r.n_chunks = std::min(r.n_chunks, max_chunks);
  // The model is shared; the session is ours.
  std::shared_ptr<const Model> borrowed(&model, [](const Model*) {});
  SessionOptions so;
  so.n_ctx = n_ctx;
  so.n_batch = std::min(n_batch, n_ctx);
  so.n_threads = n_threads;
  so.kv_f16 = kv_f16;
  Session s(borrowed, so);
  const int V = model.info().vocab_size;
  double nll = 0, nll2 = 0;
  long count = 0;
  std::vector<int> chunk(static_cast<size_t>(n_ctx));
  // Each chunk goes through in batches of n_batch: only one batch's logits
  // are held at a time (a context of 65536 tokens would need n_ctx x vocab).
  const int batch = so.n_batch;
  for (int c = 0; c < r.n_chunks; ++c) {
    std::copy(tokens.begin() + long(c) * n_ctx, tokens.begin() + long(c + 1) * n_ctx, chunk.begin());
    chunk[0] = model.bos_id();
    s.reset();
    for (int b = 0; b < n_ctx; b += batch) {
      const int m = std::min(batch, n_ctx - b);
      s.eval(chunk.data() + b, m, true);
      for (int i = std::max(b, n_ctx / 2); i < std::min(b + m, n_ctx - 1); ++i) {
        const float* l = s.logits_at(i - b);
        const float mx = *std::max_element(l, l + V);
        double sum = 0;
        for (int v = 0; v < V; ++v) sum += std::exp(double(l[v] - mx));
        const double lp = double(l[chunk[size_t(i) + 1]] - mx) - std::log(sum);
        nll -= lp;
        nll2 += lp * lp;
        ++count;
      }
    }
    r.running.push_back(std::exp(nll / double(count)));
    if (on_chunk) on_chunk(c, r.running.back());
  }
  const double mean = nll / double(count);
  const double var = nll2 / double(count) - mean * mean;
  r.ppl = std::exp(mean);
  r.error = var > 0 && count > 1 ? std::sqrt(var / double(count - 1)) * r.ppl : 0.0;
  return r;
}

}  // namespace qkv
