// Attention and its KV cache, as one engine op: the cache layout (f32 or
// f16), storing a batch's keys and values, and causal multi-head attention
// with grouped-query heads over it, scheduled on the thread pool, recorded
// in the profiler, and handing rows to the attention inspector when asked.
//
//   out[i, h] = sum_t softmax_t(q[i, h] . k[t, h / group] * scale) v[t, h / group]
//   for query token i at position pos + i and t in 0..pos + i.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/runtime/architecture.h"

namespace qkv {

// What an architecture may ask of one layer's attention.
struct AttentionOptions {
  int window = 0;        // > 0: query position p sees only positions p - window + 1 .. p (sliding window)
  float softcap = 0.0f;  // > 0: scores capped to softcap * tanh(score / softcap) (Gemma 2)
};

struct AttentionDims {
  int n_layers = 0;
  int n_heads = 0;     // query heads
  int n_kv_heads = 0;  // key/value heads; each serves n_heads / n_kv_heads query heads
  int head_dim = 0;
  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
};

class KVCache {
 public:
  // k, v: (n_layers, n_ctx, kv_dim) in f32, or in f16 (half the memory, and
  // attention computed as llama.cpp computes it on its default f16 cache).
  // Scratch for passes on up to n_threads threads. Allocates everything now.
  KVCache(const AttentionDims& dims, int n_ctx, int n_threads, bool f16);

  const AttentionDims& dims() const { return d_; }
  int n_ctx() const { return n_ctx_; }
  bool f16() const { return f16_; }

  // Stores the keys and values of n tokens at positions [pos, pos + n) of
  // `layer`. k, v: (n, kv_dim).
  void store(const ExecContext& ctx, int layer, int pos, int n, const float* k, const float* v);

  // Causal attention of n query tokens at positions [pos, pos + n) over the
  // cached positions 0..pos + i of `layer` (store() them first), or the last
  // opts.window of them. q: (n, q_dim) after RoPE; out: (n, q_dim).
  void attend(const ExecContext& ctx, int layer, int pos, int n, const float* q, float* out,
              const AttentionOptions& opts = {});

 private:
  const float* key(int layer, int pos) const { return k_.data() + at(layer, pos); }
  const float* value(int layer, int pos) const { return v_.data() + at(layer, pos); }
  const uint16_t* key16(int layer, int pos) const { return k16_.data() + at(layer, pos); }
  const uint16_t* value16(int layer, int pos) const { return v16_.data() + at(layer, pos); }
  size_t at(int layer, int pos) const { return (size_t(layer) * size_t(n_ctx_) + size_t(pos)) * size_t(d_.kv_dim()); }
  // Query head h of token i (at pos + i) on thread t; probs: where the
  // probabilities go (or null).
  void head(const ops::Kernels& k, const AttentionOptions& o, int layer, int pos, int i, int h, const float* q, float* out,
            float* probs, int t);
  void capture_rows(const ExecContext& ctx, const AttentionOptions& o, int layer, int pos, int n, const float* q,
                    float* out);
  // The first position query position p sees.
  static int first_visible(const AttentionOptions& o, int p) { return o.window > 0 && p >= o.window ? p - o.window + 1 : 0; }

  AttentionDims d_;
  int n_ctx_;
  bool f16_;
  float scale_;                    // 1 / sqrt(head_dim)
  std::vector<float> k_, v_;       // f32 cache
  std::vector<uint16_t> k16_, v16_;  // f16 cache
  std::vector<float> probs_;       // (n_heads, n_ctx): captured rows, one token at a time
  std::vector<float> scores_;      // (threads, n_ctx): score rows of the f16-cache kernel
};

}  // namespace qkv
