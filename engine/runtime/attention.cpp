#include "engine/runtime/attention.h"

#include <algorithm>
#include <cmath>

#include "engine/runtime/profiler.h"

namespace qkv {

KVCache::KVCache(const AttentionDims& dims, int n_ctx, int n_threads, bool f16)
    : d_(dims),
      n_ctx_(n_ctx),
      f16_(f16),
      scale_(1.0f / std::sqrt(float(dims.head_dim))),
      k_(f16 ? 0 : size_t(dims.n_layers) * size_t(n_ctx) * size_t(dims.kv_dim())),
      v_(k_.size()),
      k16_(f16 ? size_t(dims.n_layers) * size_t(n_ctx) * size_t(dims.kv_dim()) : 0),
      v16_(k16_.size()),
      probs_(size_t(dims.n_heads) * size_t(n_ctx)),
      scores_(f16 ? size_t(n_threads) * size_t(n_ctx) : 0) {}

void KVCache::store(const ExecContext& ctx, int layer, int pos, int n, const float* k, const float* v) {
  const size_t kvd = size_t(d_.kv_dim());
  const Zone z(ctx.prof, Op::KvStore, layer, 0.0, 4.0 * double(n) * double(kvd) * 4.0, nullptr,
               ZoneShape{n, int64_t(kvd), 0});
  for (int i = 0; i < n; ++i) {
    const size_t dst = at(layer, pos + i);
    if (f16_) {
      for (size_t j = 0; j < kvd; ++j) {
        k16_[dst + j] = ops::f32_to_f16(k[size_t(i) * kvd + j]);
        v16_[dst + j] = ops::f32_to_f16(v[size_t(i) * kvd + j]);
      }
    } else {
      std::copy_n(k + size_t(i) * kvd, kvd, k_.data() + dst);
      std::copy_n(v + size_t(i) * kvd, kvd, v_.data() + dst);
    }
  }
}

void KVCache::head(const ops::Kernels& k, const AttentionOptions& o, int layer, int pos, int i, int h, const float* q,
                   float* out, float* probs, int t) {
  const size_t hd = size_t(d_.head_dim), qd = size_t(d_.q_dim()), kvd = size_t(d_.kv_dim());
  const size_t kv_off = size_t(h / (d_.n_heads / d_.n_kv_heads)) * hd;
  const float* qh = q + size_t(i) * qd + size_t(h) * hd;
  float* oh = out + size_t(i) * qd + size_t(h) * hd;
  const int first = first_visible(o, pos + i);
  const size_t n_pos = size_t(pos + i + 1 - first);
  if (probs) std::fill(probs, probs + first, 0.0f), probs += first;  // positions out of the window
  if (f16_) {
    float* att = probs ? probs : scores_.data() + size_t(t) * size_t(n_ctx_);
    k.attention_f16(qh, key16(layer, first) + kv_off, value16(layer, first) + kv_off, kvd, hd, n_pos, scale_, o.softcap,
                    att, oh);
  } else {
    k.attention(qh, key(layer, first) + kv_off, value(layer, first) + kv_off, kvd, hd, n_pos, scale_, o.softcap, probs, oh);
  }
}

void KVCache::attend(const ExecContext& ctx, int layer, int pos, int n, const float* q, float* out,
                     const AttentionOptions& o) {
  const int hd = d_.head_dim, nh = d_.n_heads;
  // Work: QK^T, softmax and AV for every (token, head) over its visible positions.
  double positions = double(n) * (double(pos) + 0.5 * double(n + 1));  // sum of (pos + i + 1)
  if (o.window > 0) {
    positions = 0;
    for (int i = 0; i < n; ++i) positions += double(pos + i + 1 - first_visible(o, pos + i));
  }
  const Zone z(ctx.prof, Op::Attention, layer, double(nh) * positions * (4.0 * hd + 5.0),
               positions * 2.0 * d_.kv_dim() * 4.0 + 2.0 * double(n) * d_.q_dim() * 4.0, nullptr,
               ZoneShape{n, nh, hd});
  if (ctx.capture && ctx.capture->wants_layer(layer)) return capture_rows(ctx, o, layer, pos, n, q, out);
  const size_t grain = size_t(1 + 4096 / (size_t(pos + 1) * size_t(hd)));
  // Task j is (token j / nh, head j % nh). Token i's tasks read pos + i + 1
  // positions each, so with a batch, equal counts of tasks are unequal
  // work: there the threads get runs of whole tokens of about equal cost.
  const size_t tasks = size_t(n) * size_t(nh);
  const size_t parts = std::min(size_t(ctx.n_threads), std::max(size_t(1), tasks / grain));
  if (size_t(n) < 2 * parts) {
    ctx.pool.parallel_for(
        tasks,
        [&](size_t b, size_t e, int t) {
          for (size_t j = b; j < e; ++j) head(ctx.k, o, layer, pos, int(j / size_t(nh)), int(j % size_t(nh)), q, out, nullptr, t);
        },
        grain, ctx.n_threads);
    return;
  }
  // Cost of tokens 0..i-1 (in positions; the same for every head). With a
  // window it is an upper bound, which only moves the split.
  auto cost = [&](size_t i) { return double(i) * double(pos + 1) + 0.5 * double(i) * double(i - 1); };
  auto first_token = [&](size_t p) {  // of part p: the first token whose cost before it reaches p / parts
    const double target = cost(size_t(n)) * double(p) / double(parts);
    size_t lo = 0, hi = size_t(n);
    while (lo < hi) {
      const size_t mid = (lo + hi) / 2;
      if (cost(mid) < target) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  ctx.pool.parallel_for(
      parts,
      [&](size_t b, size_t e, int t) {
        for (size_t i = first_token(b); i < first_token(e); ++i)
          for (int h = 0; h < nh; ++h) head(ctx.k, o, layer, pos, int(i), h, q, out, nullptr, t);
      },
      1, ctx.n_threads);
}

// Capture: one token at a time, so a row per head is enough; the same kernel
// computes the same values, and also writes the probabilities.
void KVCache::capture_rows(const ExecContext& ctx, const AttentionOptions& o, int layer, int pos, int n, const float* q,
                           float* out) {
  const AttentionCapture& cap = *ctx.capture;
  const int hd = d_.head_dim, nh = d_.n_heads, group = d_.n_heads / d_.n_kv_heads;
  const size_t grain = size_t(1 + 4096 / (size_t(pos + 1) * size_t(hd)));
  for (int i = 0; i < n; ++i) {
    ctx.pool.parallel_for(
        size_t(nh),
        [&](size_t b, size_t e, int t) {
          for (size_t h = b; h < e; ++h)
            head(ctx.k, o, layer, pos, i, int(h), q, out,
                 cap.wants_head(int(h)) ? probs_.data() + h * size_t(n_ctx_) : nullptr, t);
        },
        grain, ctx.n_threads);
    for (int h = 0; h < nh; ++h) {
      if (!cap.wants_head(h)) continue;
      AttentionRow row;
      row.layer = layer;
      row.head = h;
      row.kv_head = h / group;
      row.position = pos + i;
      row.probs = probs_.data() + size_t(h) * size_t(n_ctx_);
      row.q = q + size_t(i) * size_t(d_.q_dim()) + size_t(h) * size_t(hd);
      row.k = f16_ ? nullptr : key(layer, 0) + size_t(row.kv_head) * size_t(hd);  // null with an f16 cache
      row.k_stride = size_t(d_.kv_dim());
      row.head_dim = hd;
      row.scale = scale_;
      cap.callback(row);
    }
  }
}

}  // namespace qkv
