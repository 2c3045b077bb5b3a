#include "engine/runtime/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "engine/runtime/profiler.h"

namespace qkv {

namespace {

constexpr size_t kPrefillRows = 64;  // query rows (tokens x heads of a group) per prefill block
constexpr size_t kSplitMin = 256;    // positions per split-K chunk (more for contexts beyond 64k)
constexpr size_t kMaxChunks = 256;

size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

}  // namespace

size_t KVCache::split_for(int n_ctx) {
  return std::max(kSplitMin, round_up(round_up(size_t(n_ctx), kMaxChunks) / kMaxChunks, ops::kAttnTile));
}

double KVCache::bytes(const AttentionDims& d, int n_ctx, bool f16) {
  const double positions = double(round_up(size_t(n_ctx), split_for(n_ctx)));
  return double(d.n_layers) * double(d.n_kv_heads) * positions *
         double(d.head_dim + ops::attention_ldv(size_t(d.head_dim))) * (f16 ? 2.0 : 4.0);
}

// ---------------------------------------------------------------- saved state
// Per layer and KV head: the K panels that hold positions [0, n) (whole
// panels), then the first n V rows (as one head's cache would hold them in
// one piece, whatever the chunk size).

size_t KVCache::state_bytes(int n) const {
  const size_t elem = f16_ ? 2 : 4;
  const size_t per_head = (round_up(size_t(n), ops::kAttnTile) * size_t(d_.head_dim) + size_t(n) * ldv_) * elem;
  return size_t(d_.n_layers) * size_t(d_.n_kv_heads) * per_head;
}

// fn(offset of the piece in the cache, of it in the state, bytes) for each
// piece of the saved state.
template <class F>
void KVCache::each_state_piece(int n, F&& fn) const {
  const size_t elem = f16_ ? 2 : 4, hd = size_t(d_.head_dim);
  const size_t kn = round_up(size_t(n), ops::kAttnTile);  // K: whole panels
  size_t at = 0;
  for (int l = 0; l < d_.n_layers; ++l)
    for (int h = 0; h < d_.n_kv_heads; ++h) {
      for (size_t p = 0; p < kn; p += split_) {
        const size_t bytes = std::min(split_, kn - p) * hd * elem;
        fn(k_offset(l, h, p / split_) * elem, at, bytes);
        at += bytes;
      }
      for (size_t p = 0; p < size_t(n); p += split_) {
        const size_t bytes = std::min(split_, size_t(n) - p) * ldv_ * elem;
        fn(v_offset(l, h, p / split_) * elem, at, bytes);
        at += bytes;
      }
    }
}

void KVCache::save_state(int n, char* dst) const {
  each_state_piece(n, [&](size_t cache, size_t state, size_t bytes) {
    std::memcpy(dst + state, mem_.as<char>() + cache, bytes);
  });
}

void KVCache::load_state(int n, const char* src) {
  each_state_piece(n, [&](size_t cache, size_t state, size_t bytes) {
    std::memcpy(mem_.as<char>() + cache, src + state, bytes);
  });
}

KVCache::KVCache(const AttentionDims& dims, int n_ctx, int n_threads, bool f16)
    : d_(dims),
      n_ctx_(n_ctx),
      f16_(f16),
      scale_(1.0f / std::sqrt(float(dims.head_dim))),
      ldv_(ops::attention_ldv(size_t(dims.head_dim))),
      n_tiles_(round_up(size_t(n_ctx), ops::kAttnTile) / ops::kAttnTile),
      split_(split_for(n_ctx)),
      max_rows_(std::max(kPrefillRows, size_t(dims.n_heads / dims.n_kv_heads))) {
  const size_t chunks = (size_t(n_ctx) + split_ - 1) / split_;
  mem_ = ZeroedMemory(layer_chunk(0, chunks) * (f16 ? 2 : 4), true);
  commit_through(0);
  scratch_.resize(size_t(std::max(1, n_threads)));
  for (Scratch& s : scratch_) {
    s.q.resize(max_rows_);
    s.lo.resize(max_rows_);
    s.hi.resize(max_rows_);
    s.m.resize(max_rows_);
    s.l.resize(max_rows_);
    s.o.resize(max_rows_ * ldv_);
    s.kernel.resize(ops::attention_scratch(max_rows_, size_t(d_.head_dim)));
    if (f16) s.scores = ZeroedMemory(max_rows_ * n_tiles_ * ops::kAttnTile * sizeof(float));
  }
  partial_.resize(size_t(d_.n_heads) * chunks * (ldv_ + 2));
  if (f16) scores_ = ZeroedMemory(size_t(d_.n_heads) * n_tiles_ * ops::kAttnTile * sizeof(float));
  const size_t block = std::max(size_t(1), max_rows_ / size_t(d_.n_heads / d_.n_kv_heads));
  cost_.reserve((size_t(n_ctx) + block - 1) / block * size_t(d_.n_kv_heads) + 1);
  qh_.resize(size_t(d_.head_dim));
}

void KVCache::commit_through(size_t chunk) {
  if (chunk < committed_) return;
  const size_t elem = f16_ ? 2 : 4, first = layer_chunk(0, committed_) * elem;
  mem_.populate(first, layer_chunk(0, chunk + 1) * elem - first);
  committed_ = chunk + 1;
}

void KVCache::store(const ExecContext& ctx, int layer, int pos, int n, const float* k, const float* v) {
  if (n > 0) commit_through(size_t(pos + n - 1) / split_);
  const size_t hd = size_t(d_.head_dim), kvd = size_t(d_.kv_dim()), T = ops::kAttnTile, nkv = size_t(d_.n_kv_heads);
  const Zone z(ctx.prof, Op::KvStore, layer, 0.0, 4.0 * double(n) * double(kvd) * 4.0, nullptr,
               ZoneShape{n, int64_t(kvd), 0});
  // Tasks: a span of the tokens (those of one K panel, at most T) and a KV
  // head. A task writes the head's keys down the panel's columns (a
  // transposed block: each column one run of the span's positions) and
  // copies its values into their rows, converted to f16 with the f16 cache.
  const size_t first_span = std::min(size_t(n), T - size_t(pos) % T);
  const size_t spans = 1 + (size_t(n) - first_span + T - 1) / T;
  auto task = [&](auto elem, size_t span, size_t h) {
    using E = decltype(elem);  // float or uint16_t
    const size_t i0 = span == 0 ? 0 : first_span + (span - 1) * T, i1 = std::min(size_t(n), span == 0 ? first_span : i0 + T);
    const size_t p0 = size_t(pos) + i0, len = i1 - i0;
    const float* kh = k + i0 * kvd + h * hd;  // (len, hd), rows kvd apart
    E* key = kt<E>(layer, int(h), p0 / split_) + k_index(p0, 0);
    if constexpr (std::is_same_v<E, uint16_t>) ctx.k.transpose_f32_to_f16(kh, kvd, key, T, len, hd);
    else ctx.k.transpose_f32(kh, kvd, key, T, len, hd);
    for (size_t u = 0; u < len; ++u) {
      const float* vh = v + (i0 + u) * kvd + h * hd;
      E* row = vr<E>(layer, int(h), (p0 + u) / split_) + v_index(p0 + u);
      if constexpr (std::is_same_v<E, uint16_t>) ctx.k.f32_to_f16(vh, row, hd);
      else std::copy_n(vh, hd, row);
    }
  };
  // A span's heads in a row (by span alone, a prompt of up to T tokens was
  // one or two tasks, which left one thread most of the op).
  ctx.pool.parallel_for(
      spans * nkv,
      [&](size_t b, size_t e, int) {
        for (size_t j = b; j < e; ++j) {
          if (f16_) task(uint16_t(), j / nkv, j % nkv);
          else task(float(), j / nkv, j % nkv);
        }
      },
      1 + 16384 / (std::min(size_t(n), T) * hd * 2), ctx.n_threads);
}

void KVCache::attend(const ExecContext& ctx, int layer, int pos, int n, const float* q, float* out,
                     const AttentionOptions& o) {
  const int hd = d_.head_dim, nh = d_.n_heads;
  // Work: QK^T, softmax and AV for every (token, head) over its visible positions.
  double positions = 0;
  for (int i = 0; i < n; ++i) positions += double(pos + i + 1 - first_visible(o, pos + i));
  const double kv_bytes = (f16_ ? 2.0 : 4.0) * 2.0 * double(d_.kv_dim()) *
                          (n == 1 ? positions : double(pos + n - first_visible(o, pos)));
  const Zone z(ctx.prof, Op::Attention, layer, double(nh) * positions * (4.0 * hd + 5.0),
               kv_bytes + 2.0 * double(n) * d_.q_dim() * 4.0, nullptr, ZoneShape{n, nh, hd});
  if (n == 1) decode(ctx, o, layer, pos, q, out);
  else prefill(ctx, o, layer, pos, n, q, out);
  if (ctx.capture && ctx.capture->wants_layer(layer)) capture_rows(ctx, o, layer, pos, n, q);
}

// One token: (chunk, KV head) tasks, in that order (a chunk's heads lie
// together), each the group's query heads over one chunk's positions; then,
// per head, the chunks merged in order. With the f16 cache, three rounds:
// the scores and each chunk's max, then (with the merged max) the chunks'
// weights and sums, then (with the merged sum) their values, summed in
// order; one round where a head has one chunk (its max and sum are final
// once its scores and weights are).
void KVCache::decode(const ExecContext& ctx, const AttentionOptions& o, int layer, int pos, const float* q, float* out) {
  const size_t hd = size_t(d_.head_dim), group = size_t(d_.n_heads / d_.n_kv_heads), nkv = size_t(d_.n_kv_heads);
  const size_t lo = size_t(first_visible(o, pos)), hi = size_t(pos) + 1;
  const size_t c0 = lo / split_, nc = (hi - 1) / split_ + 1 - c0;
  const size_t task_floats = group * (ldv_ + 2);  // m, l, o of the group's rows
  const size_t grain = 1 + 65536 / (group * std::min(split_, hi - lo) * hd * 4);
  auto rows_of = [&](size_t j, Scratch& s) {  // task j's rows, state in partial_
    const size_t kvh = j % nkv;
    float* st = partial_.data() + j * task_floats;
    for (size_t g = 0; g < group; ++g) {
      s.q[g] = q + (kvh * group + g) * hd;
      s.lo[g] = int32_t(lo);
      s.hi[g] = int32_t(hi);
    }
    return ops::AttentionRows{group, s.q.data(), s.lo.data(), s.hi.data(), st, st + group, st + 2 * group, ldv_};
  };
  auto init = [&](const ops::AttentionRows& r) {
    std::fill(r.m, r.m + group, -INFINITY);
    std::fill(r.l, r.l + group, 0.0f);
    std::fill(r.o, r.o + group * ldv_, 0.0f);
  };
  auto task = [&](size_t kvh, size_t c) { return partial_.data() + (c * nkv + kvh) * task_floats; };
  const size_t lds = n_tiles_ * ops::kAttnTile;
  auto scores = [&](size_t j) { return scores_.as<float>() + (j % nkv) * group * lds + (c0 + j / nkv) * split_; };
  // fn(task, rows, kvh, t0, t1, thread scratch) on every (chunk, KV head) task.
  auto each_chunk = [&](auto&& fn) {
    ctx.pool.parallel_for(
        size_t(d_.n_kv_heads) * nc,
        [&](size_t b, size_t e, int t) {
          Scratch& s = scratch_[size_t(t)];
          for (size_t j = b; j < e; ++j) {
            const size_t c = c0 + j / nkv, kvh = j % nkv;
            fn(j, rows_of(j, s), int(kvh), c * split_, std::min((c + 1) * split_, hi), s.kernel.data());
          }
        },
        grain, ctx.n_threads);
  };
  if (!f16_) {
    each_chunk([&](size_t, const ops::AttentionRows& r, int kvh, size_t t0, size_t t1, float* scratch) {
      init(r);
      const size_t c = t0 / split_;
      ctx.k.attention_f32(r, kt<float>(layer, kvh, c), vr<float>(layer, kvh, c), hd, t0, t1, scale_, o.softcap, scratch);
    });
  } else if (nc == 1) {  // one chunk per head (pos < split_): its max and sum are the head's, one round
    each_chunk([&](size_t j, const ops::AttentionRows& r, int kvh, size_t t0, size_t t1, float* scratch) {
      init(r);
      ctx.k.attention_scores_f16(r, kt<uint16_t>(layer, kvh, t0 / split_), hd, t0, t1, scale_, o.softcap, scores(j), lds,
                                 scratch);
      ctx.k.attention_weights_f16(r, t0, t1, scores(j), lds);
      ctx.k.attention_values_f16(r, vr<uint16_t>(layer, kvh, t0 / split_), hd, t0, t1, scores(j), lds, scratch);
    });
  } else {
    each_chunk([&](size_t j, const ops::AttentionRows& r, int kvh, size_t t0, size_t t1, float* scratch) {
      init(r);
      ctx.k.attention_scores_f16(r, kt<uint16_t>(layer, kvh, t0 / split_), hd, t0, t1, scale_, o.softcap, scores(j), lds,
                                 scratch);
    });
    // Every chunk of a head gets the head's max over all its chunks, then
    // (after the weights) the head's sum.
    auto merge = [&](size_t at, auto&& combine) {
      for (size_t kvh = 0; kvh < nkv; ++kvh)
        for (size_t g = 0; g < group; ++g) {
          float v = task(kvh, 0)[at + g];
          for (size_t c = 1; c < nc; ++c) v = combine(v, task(kvh, c)[at + g]);
          for (size_t c = 0; c < nc; ++c) task(kvh, c)[at + g] = v;
        }
    };
    merge(0, [](float a, float b) { return std::max(a, b); });
    each_chunk([&](size_t j, const ops::AttentionRows& r, int, size_t t0, size_t t1, float*) {
      ctx.k.attention_weights_f16(r, t0, t1, scores(j), lds);
    });
    merge(group, [](float a, float b) { return a + b; });
    each_chunk([&](size_t j, const ops::AttentionRows& r, int kvh, size_t t0, size_t t1, float* scratch) {
      ctx.k.attention_values_f16(r, vr<uint16_t>(layer, kvh, t0 / split_), hd, t0, t1, scores(j), lds, scratch);
    });
  }
  // out = sum_c o_c exp(m_c - M) / sum_c l_c exp(m_c - M), M = max_c m_c
  // (f16: every chunk already has M, and o_c is normalised: out = sum_c o_c).
  for (size_t h = 0; h < size_t(d_.n_heads); ++h) {
    const size_t kvh = h / group, g = h % group;
    float mx = -INFINITY;
    for (size_t c = 0; c < nc; ++c) mx = std::max(mx, task(kvh, c)[g]);
    float* oh = out + h * hd;
    std::fill(oh, oh + hd, 0.0f);
    float l = 0.0f;
    for (size_t c = 0; c < nc; ++c) {
      const float w = f16_ ? 1.0f : std::exp(task(kvh, c)[g] - mx);
      l += task(kvh, c)[group + g] * w;
      const float* oc = task(kvh, c) + 2 * group + g * ldv_;
      for (size_t i = 0; i < hd; ++i) oh[i] += oc[i] * w;
    }
    if (!f16_)
      for (size_t i = 0; i < hd; ++i) oh[i] /= l;
  }
}

// A batch: (block of query tokens, KV head) tasks, each the block's tokens
// times the group's query heads over every position they see.
void KVCache::prefill(const ExecContext& ctx, const AttentionOptions& o, int layer, int pos, int n, const float* q,
                      float* out) {
  const size_t hd = size_t(d_.head_dim), qd = size_t(d_.q_dim()), group = size_t(d_.n_heads / d_.n_kv_heads);
  const size_t nkv = size_t(d_.n_kv_heads), block = std::max(size_t(1), max_rows_ / group);
  const size_t blocks = (size_t(n) + block - 1) / block, tasks = blocks * nkv;
  auto run = [&](size_t j, int t) {
    Scratch& s = scratch_[size_t(t)];
    const size_t b = j / nkv, kvh = j % nkv;
    const size_t i0 = b * block, i1 = std::min(size_t(n), i0 + block), rows = (i1 - i0) * group;
    for (size_t i = i0; i < i1; ++i)
      for (size_t g = 0; g < group; ++g) {
        const size_t r = (i - i0) * group + g;
        s.q[r] = q + i * qd + (kvh * group + g) * hd;
        s.lo[r] = first_visible(o, pos + int(i));
        s.hi[r] = pos + int(i) + 1;
        s.m[r] = -INFINITY;
        s.l[r] = 0.0f;
      }
    std::fill(s.o.begin(), s.o.begin() + std::ptrdiff_t(rows * ldv_), 0.0f);
    const ops::AttentionRows r{rows, s.q.data(), s.lo.data(), s.hi.data(), s.m.data(), s.l.data(), s.o.data(), ldv_};
    // The chunks from the first any row sees to the last, in order (f16: all
    // the scores, then all the weights, then all the values).
    const size_t c0 = size_t(*std::min_element(s.lo.begin(), s.lo.begin() + std::ptrdiff_t(rows))) / split_;
    const size_t end = size_t(pos) + i1, c1 = (end - 1) / split_ + 1;
    auto range = [&](size_t c, size_t* t0, size_t* t1) { *t0 = c * split_, *t1 = std::min(end, *t0 + split_); };
    size_t t0, t1;
    if (f16_) {
      const size_t lds = n_tiles_ * ops::kAttnTile;
      float* sc = s.scores.as<float>();
      for (size_t c = c0; c < c1; ++c) {
        range(c, &t0, &t1);
        ctx.k.attention_scores_f16(r, kt<uint16_t>(layer, int(kvh), c), hd, t0, t1, scale_, o.softcap, sc + t0, lds,
                                   s.kernel.data());
      }
      for (size_t c = c0; c < c1; ++c) {
        range(c, &t0, &t1);
        ctx.k.attention_weights_f16(r, t0, t1, sc + t0, lds);
      }
      for (size_t c = c0; c < c1; ++c) {
        range(c, &t0, &t1);
        ctx.k.attention_values_f16(r, vr<uint16_t>(layer, int(kvh), c), hd, t0, t1, sc + t0, lds, s.kernel.data());
      }
    } else {
      for (size_t c = c0; c < c1; ++c) {
        range(c, &t0, &t1);
        ctx.k.attention_f32(r, kt<float>(layer, int(kvh), c), vr<float>(layer, int(kvh), c), hd, t0, t1, scale_,
                            o.softcap, s.kernel.data());
      }
    }
    for (size_t i = i0; i < i1; ++i)
      for (size_t g = 0; g < group; ++g) {
        const size_t rr = (i - i0) * group + g;
        const float inv = f16_ ? 1.0f : 1.0f / s.l[rr];  // f16: o is normalised already
        float* dst = out + i * qd + (kvh * group + g) * hd;
        for (size_t x = 0; x < hd; ++x) dst[x] = s.o[rr * ldv_ + x] * inv;
      }
  };
  // Tasks cost what their tokens see: later blocks more. The threads get runs
  // of tasks of about equal cost (which changes who computes what, never what).
  auto seen = [&](size_t i) { return double(pos + int(i) + 1 - first_visible(o, pos + int(i))); };
  std::vector<double>& cost = cost_;  // reserved for a full context: no allocation
  cost.assign(tasks + 1, 0.0);
  for (size_t j = 0; j < tasks; ++j) {
    const size_t b = j / nkv;
    cost[j + 1] = cost[j] + seen(std::min(size_t(n), (b + 1) * block) - 1) * double(std::min(size_t(n) - b * block, block));
  }
  // Each part a chunk of its own, claimed one at a time: with 4 parts a
  // thread, grouped into the pool's default 2 chunks, one thread could be
  // left a quarter of the op (110M, 125 tokens on 2 threads: 5.3 ms against
  // 3.7).
  const size_t per_thread = 16, parts = std::min(tasks, size_t(ctx.n_threads) * per_thread);
  auto first_task = [&](size_t p) {
    return size_t(std::lower_bound(cost.begin(), cost.end(), cost[tasks] * double(p) / double(parts)) - cost.begin());
  };
  ctx.pool.parallel_for(
      parts,
      [&](size_t b, size_t e, int t) {
        for (size_t j = std::min(first_task(b), tasks); j < std::min(first_task(e), tasks); ++j) run(j, t);
      },
      1, ctx.n_threads, per_thread);
}

// Capture: each wanted row's probabilities, from the scores recomputed over
// the cache (the output above is untouched by capture), with the keys handed
// out as f32 rows.
void KVCache::capture_rows(const ExecContext& ctx, const AttentionOptions& o, int layer, int pos, int n, const float* q) {
  const AttentionCapture& cap = *ctx.capture;
  const size_t hd = size_t(d_.head_dim), group = size_t(d_.n_heads / d_.n_kv_heads);
  const size_t last = size_t(pos + n), nctx = size_t(n_ctx_);
  if (!gathered_k_.bytes()) gathered_k_ = ZeroedMemory(size_t(d_.n_kv_heads) * nctx * hd * sizeof(float));
  if (probs_.empty()) probs_.resize(nctx);
  float* gk = gathered_k_.as<float>();
  for (int h = 0; h < d_.n_kv_heads; ++h)
    for (size_t t = 0; t < last; ++t)
      for (size_t j = 0; j < hd; ++j) {
        const size_t c = t / split_, at = k_index(t, j);
        gk[(size_t(h) * nctx + t) * hd + j] =
            f16_ ? ops::f16_to_f32(kt<uint16_t>(layer, h, c)[at]) : kt<float>(layer, h, c)[at];
      }
  float* qh = qh_.data();
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < d_.n_heads; ++h) {
      if (!cap.wants_head(h)) continue;
      const int p = pos + i, lo = first_visible(o, p), kvh = h / int(group);
      const float* qi = q + size_t(i) * size_t(d_.q_dim()) + size_t(h) * hd;
      for (size_t j = 0; j < hd; ++j) qh[j] = f16_ ? ops::f16_to_f32(ops::f32_to_f16(qi[j])) : qi[j];
      const float* keys = gk + size_t(kvh) * nctx * hd;
      std::fill(probs_.begin(), probs_.begin() + lo, 0.0f);
      for (int t = lo; t <= p; ++t) probs_[size_t(t)] = ops::softcap(ctx.k.dot(qh, keys + size_t(t) * hd, hd) * scale_, o.softcap);
      ctx.k.softmax(probs_.data() + lo, size_t(p + 1 - lo));
      AttentionRow row;
      row.layer = layer;
      row.head = h;
      row.kv_head = kvh;
      row.position = p;
      row.probs = probs_.data();
      row.q = qh;  // as the scores used it (rounded to f16 with an f16 cache)
      row.k = keys;
      row.k_stride = hd;
      row.head_dim = int(hd);
      row.scale = scale_;
      cap.callback(row);
    }
}

}  // namespace qkv
