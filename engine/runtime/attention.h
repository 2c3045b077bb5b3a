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
#include "engine/format/zeroed_memory.h"
#include "ops/ops.h"

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
  // The cache in chunks of positions (the split-K chunks below), one after
  // another: chunk c holds, layer by layer, every KV head's K of its
  // positions in transposed panels of ops::kAttnTile, then their V in rows
  // of ops::attention_ldv(head_dim) values (ops.h), in f32 or f16. Memory is
  // reserved for n_ctx positions and committed a chunk of positions (every
  // layer's) at a time, in one call, as positions reach it: the first at
  // construction, so no token pays page faults one page at a time (each
  // costs microseconds on a VM); so it fills in position order, and is
  // advised for huge pages (decode streams the cache: one TLB entry per 2
  // MiB). Scratch for up to n_threads threads.
  KVCache(const AttentionDims& dims, int n_ctx, int n_threads, bool f16);

  const AttentionDims& dims() const { return d_; }
  int n_ctx() const { return n_ctx_; }
  bool f16() const { return f16_; }
  // Bytes of K and V at a full context (what a context of n_ctx costs).
  static double bytes(const AttentionDims& dims, int n_ctx, bool f16);

  // Stores the keys and values of n tokens at positions [pos, pos + n) of
  // `layer`. k, v: (n, kv_dim).
  void store(const ExecContext& ctx, int layer, int pos, int n, const float* k, const float* v);

  // Causal attention of n query tokens at positions [pos, pos + n) over the
  // cached positions 0..pos + i of `layer` (store() them first), or the last
  // opts.window of them. q: (n, q_dim) after RoPE; out: (n, q_dim).
  //   One token: split-K (flash-decoding), the cache cut into fixed chunks
  //   of kSplit positions that the threads share, merged in chunk order.
  //   A batch: blocks of query tokens times one KV head, whole (FlashAttention).
  // What a token gets depends on neither the thread count nor who ran what.
  void attend(const ExecContext& ctx, int layer, int pos, int n, const float* q, float* out,
              const AttentionOptions& opts = {});

  // The cached keys and values of positions [0, n) as bytes, and back (a
  // session's saved state). The bytes depend on the dims and the type, not
  // on n_ctx: a state loads into a cache of any context that holds n.
  size_t state_bytes(int n) const;
  void save_state(int n, char* dst) const;
  void load_state(int n, const char* src);

 private:
  // Chunk c of a layer: the K panels of its heads one after another (split_
  // positions each), then their V rows; so the (head, chunk) tasks of one
  // chunk read one stream of K, then one of V.
  template <class T>
  T* kt(int layer, int kvh, size_t c) const { return mem_.as<T>() + k_offset(layer, kvh, c); }
  template <class T>
  T* vr(int layer, int kvh, size_t c) const { return mem_.as<T>() + v_offset(layer, kvh, c); }
  size_t layer_chunk(int layer, size_t c) const {  // offset of chunk c of a layer, in elements
    const size_t per_layer = size_t(d_.n_kv_heads) * split_ * (size_t(d_.head_dim) + ldv_);
    return (c * size_t(d_.n_layers) + size_t(layer)) * per_layer;
  }
  size_t k_offset(int layer, int kvh, size_t c) const {
    return layer_chunk(layer, c) + size_t(kvh) * split_ * size_t(d_.head_dim);
  }
  size_t v_offset(int layer, int kvh, size_t c) const {
    return layer_chunk(layer, c) + size_t(d_.n_kv_heads) * split_ * size_t(d_.head_dim) + size_t(kvh) * split_ * ldv_;
  }
  // Position p's key i within its chunk's panels, and its value row.
  size_t k_index(size_t p, size_t i) const {
    const size_t u = p % split_, T = ops::kAttnTile;
    return u / T * size_t(d_.head_dim) * T + i * T + u % T;
  }
  size_t v_index(size_t p) const { return p % split_ * ldv_; }
  static size_t split_for(int n_ctx);
  template <class F>
  void each_state_piece(int n, F&& fn) const;
  void decode(const ExecContext& ctx, const AttentionOptions& o, int layer, int pos, const float* q, float* out);
  void prefill(const ExecContext& ctx, const AttentionOptions& o, int layer, int pos, int n, const float* q, float* out);
  void capture_rows(const ExecContext& ctx, const AttentionOptions& o, int layer, int pos, int n, const float* q);
  // The first position query position p sees.
  static int first_visible(const AttentionOptions& o, int p) { return o.window > 0 && p >= o.window ? p - o.window + 1 : 0; }

  // Per-thread scratch of one kernel call: up to max_rows_ query rows.
  struct Scratch {
    std::vector<const float*> q;
    std::vector<int32_t> lo, hi;
    std::vector<float> m, l, o, kernel;
    ZeroedMemory scores;  // f16 cache: (max_rows_, n_ctx) the block's scores between the f16 phases
  };

  AttentionDims d_;
  int n_ctx_;
  bool f16_;
  float scale_;                     // 1 / sqrt(head_dim)
  size_t ldv_;                      // V row and output row stride
  size_t n_tiles_;                  // panels per head: n_ctx / kAttnTile, rounded up
  size_t split_;                    // positions per chunk (of the cache, and of split-K), a multiple of kAttnTile
  size_t max_rows_;                 // query rows per prefill block
  ZeroedMemory mem_;                 // the chunks
  size_t committed_ = 0;             // chunks (of every layer) committed so far
  void commit_through(size_t chunk);  // commits chunks [committed_, chunk]
  std::vector<Scratch> scratch_;    // per thread
  std::vector<float> partial_;      // split-K: per (head, chunk) m, l, o (ldv_)
  ZeroedMemory scores_;             // split-K, f16 cache: (n_heads, n_ctx) scores between the f16 phases
  ZeroedMemory gathered_k_;         // capture: one KV head's keys as f32 rows (n_ctx, head_dim)
  std::vector<float> probs_;        // capture: (n_ctx) one probability row
  std::vector<float> qh_;           // capture: (head_dim) the query as the kernel saw it
  std::vector<double> cost_;        // prefill: cost of the tasks before each
};

}  // namespace qkv
