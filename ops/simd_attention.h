// The attention kernels of simd_kernels.h (one ISA each): FlashAttention
// over the K cache's panels with an online softmax, the f16 cache's three
// phases, and the transposes that write keys into those panels.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "ops/ops.h"
#include "ops/simd_base.h"
#include "ops/simd_elementwise.h"

namespace qkv::ops::QKV_ISA_NS {

// ---------------------------------------------------------------- attention
//
// FlashAttention over the panel layout of ops.h: per tile of kAttnTile keys,
// S = Q K^T (register tiles of RM rows x CN key vectors), the online softmax
// on S's rows, then O += P V (register tiles of RM rows x 2 value vectors).

constexpr size_t kTileVecs = kAttnTile / W;  // key vectors per tile

// Accumulators a register tile may hold (12 of 16 registers, 24 of 32), and
// the rows of a tile: 6, so that two value or key vectors feed 12 products.
constexpr size_t kAccumulators = W >= 16 ? 24 : 12;
constexpr int kTileRows = 6;

// Key vectors per register tile for RM rows: as many accumulators as the
// registers allow, a power of two dividing kTileVecs.
template <int RM>
constexpr size_t score_cols() {
  size_t c = kAccumulators / RM;
  size_t p = 1;
  while (p * 2 <= c && p * 2 <= kTileVecs) p *= 2;
  return p;
}

inline float round_f16(float x) { return f16_to_f32(f32_to_f16(x)); }

// acc = q (RM, hd) . the panel's key vectors [c, c + CN).
template <int RM, size_t CN, class T>
inline void score_acc(const float* q, size_t hd, const T* panel, size_t c, vf (&acc)[RM][CN]) {
  for (int r = 0; r < RM; ++r)
    for (size_t j = 0; j < CN; ++j) acc[r][j] = vf(0.0f);
  for (size_t i = 0; i < hd; ++i) {
    const T* kp = panel + i * kAttnTile + c * W;
    vf kv[CN];
    for (size_t j = 0; j < CN; ++j) kv[j] = load(kp + j * W);
    for (int r = 0; r < RM; ++r) {
      const vf qb(q[size_t(r) * hd + i]);
      for (size_t j = 0; j < CN; ++j) acc[r][j] = fmadd(qb, kv[j], acc[r][j]);
    }
  }
}

// s (RM rows, row stride lds) = q (RM, hd) . the panel's keys, key vectors
// [c, c + CN).
template <int RM, size_t CN, class T>
inline void tile_score_cols(const float* q, size_t hd, const T* panel, float* s, size_t lds, size_t c) {
  vf acc[RM][CN];
  score_acc<RM, CN>(q, hd, panel, c, acc);
  for (int r = 0; r < RM; ++r)
    for (size_t j = 0; j < CN; ++j) acc[r][j].store_unaligned(s + size_t(r) * lds + (c + j) * W);
}

// Rows that see every key of the tile, without a soft cap: s = (q . keys) *
// scale over the whole tile and each row's maximum into mx[r], as
// tile_scores and then scale_and_mask give them, without a second pass over s.
template <int RM, class T>
inline void tile_scores_scaled(const float* q, size_t hd, const T* panel, float* s, size_t lds, float scale, float* mx) {
  constexpr size_t CN = score_cols<RM>();
  static_assert(kTileVecs % CN == 0, "the tile in whole steps");
  const vf vs(scale);
  for (int r = 0; r < RM; ++r) mx[r] = -INFINITY;
  for (size_t c = 0; c < kTileVecs; c += CN) {
    vf acc[RM][CN];
    score_acc<RM, CN>(q, hd, panel, c, acc);
    for (int r = 0; r < RM; ++r) {
      vf m(-INFINITY);
      for (size_t j = 0; j < CN; ++j) {
        const vf x = acc[r][j] * vs;
        x.store_unaligned(s + size_t(r) * lds + (c + j) * W);
        m = xsimd::max(m, x);
      }
      mx[r] = std::max(mx[r], reduce_max(m));
    }
  }
}

// Key vectors [c, nvec) in steps of CN, the rest in halving steps.
template <int RM, size_t CN, class T>
inline void tile_score_cols_upto(const float* q, size_t hd, const T* panel, float* s, size_t lds, size_t c, size_t nvec) {
  for (; c + CN <= nvec; c += CN) tile_score_cols<RM, CN>(q, hd, panel, s, lds, c);
  if constexpr (CN > 1)
    if (c < nvec) tile_score_cols_upto<RM, CN / 2>(q, hd, panel, s, lds, c, nvec);
}

// s (RM rows of kAttnTile, row stride lds) = q (RM, hd) . the panel's keys,
// the first nvec key vectors only (those the rows see; each score is the
// same chain over hd whatever the others are).
template <int RM, class T>
inline void tile_scores(const float* q, size_t hd, const T* panel, float* s, size_t lds, size_t nvec = kTileVecs) {
  tile_score_cols_upto<RM, score_cols<RM>()>(q, hd, panel, s, lds, 0, nvec);
}

// o (RM, ldo) += p (RM rows, stride lds; columns [j0, j1)) . v rows j0..j1-1,
// DV value vectors per row at a time (each output is the same chain over j
// whatever DV is: DV only sets how many chains run side by side).
template <int RM, int DV, class T>
inline void tile_values(const float* p, size_t lds, const T* v, size_t ldv, size_t j0, size_t j1, float* o, size_t ldo) {
  for (size_t i = 0; i < ldv; i += DV * W) {
    vf acc[RM][DV];
    for (int r = 0; r < RM; ++r)
      for (int d = 0; d < DV; ++d) acc[r][d] = load(o + size_t(r) * ldo + i + size_t(d) * W);
    for (size_t j = j0; j < j1; ++j) {
      vf vv[DV];
      for (int d = 0; d < DV; ++d) vv[d] = load(v + j * ldv + i + size_t(d) * W);
      for (int r = 0; r < RM; ++r) {
        const vf pb(p[size_t(r) * lds + j]);
        for (int d = 0; d < DV; ++d) acc[r][d] = fmadd(pb, vv[d], acc[r][d]);
      }
    }
    for (int r = 0; r < RM; ++r)
      for (int d = 0; d < DV; ++d) acc[r][d].store_unaligned(o + size_t(r) * ldo + i + size_t(d) * W);
  }
}

// As many value vectors per row at a time as the registers hold beside the
// rows' accumulators (RM * DV of them, DV loaded vectors and a broadcast):
// four on AVX-512 for a block of 6 rows, which halves the broadcasts of p per
// product; one or two rows (decoding) eight or four, to keep enough chains
// in flight.
template <int RM, class T>
inline void tile_values(const float* p, size_t lds, const T* v, size_t ldv, size_t j0, size_t j1, float* o, size_t ldo) {
  constexpr size_t kRegisters = W >= 16 ? 32 : 16;
  if (RM == 1 && ldv % (8 * W) == 0) tile_values<RM, 8>(p, lds, v, ldv, j0, j1, o, ldo);
  else if (size_t(RM) * 4 + 5 <= kRegisters && ldv % (4 * W) == 0) tile_values<RM, 4>(p, lds, v, ldv, j0, j1, o, ldo);
  else tile_values<RM, 2>(p, lds, v, ldv, j0, j1, o, ldo);
}

// Row blocks of kTileRows, then the 1..5 left.
template <template <int> class F, class... A>
inline void by_row_blocks(size_t rows, A&&... a) {
  size_t r = 0;
  for (; r + kTileRows <= rows; r += kTileRows) F<kTileRows>::run(r, a...);
  switch (rows - r) {
    case 5: F<5>::run(r, a...); break;
    case 4: F<4>::run(r, a...); break;
    case 3: F<3>::run(r, a...); break;
    case 2: F<2>::run(r, a...); break;
    case 1: F<1>::run(r, a...); break;
    default: break;
  }
}

// Where row r's visible keys end in the tile at `tile` (keys before t1),
// relative to the tile: 0 when it sees none of them.
inline size_t row_end(const AttentionRows& R, size_t r, size_t tile, size_t t1) {
  const size_t e = std::min({size_t(std::max(R.hi[r], 0)), t1, tile + kAttnTile});
  return e > tile ? e - tile : 0;
}

// Key vectors covering [0, end).
inline size_t vecs_to(size_t end) { return (end + W - 1) / W; }

// Scales, caps and masks one row of a tile's scores (visible [lo, hi)
// relative to the tile; -inf elsewhere); returns the row's maximum (-inf
// when nothing is visible). Scores past hi's vector may never have been
// computed (a causal tile's block of rows stops there): they are only
// overwritten.
inline float scale_and_mask(float* s, size_t lo, size_t hi, float scale, float cap) {
  if (lo >= hi) {
    for (size_t j = 0; j < kAttnTile; ++j) s[j] = -INFINITY;
    return -INFINITY;
  }
  const size_t n = vecs_to(hi) * W;
  const vf vs(scale);
  // The max of the vectors wholly visible as they are scaled; the one or
  // two holding lo or hi once their masked keys are -inf.
  vf mx(-INFINITY);
  const auto scaled = [&](auto&& f) {
    for (size_t j = 0; j < n; j += W) {
      const vf x = f(load(s + j) * vs);
      x.store_unaligned(s + j);
      if (j >= lo && j + W <= hi) mx = xsimd::max(mx, x);
    }
  };
  if (cap > 0.0f) scaled([&](vf x) { return vf(cap) * xsimd::tanh(x / vf(cap)); });
  else scaled([](vf x) { return x; });
  for (size_t j = 0; j < lo; ++j) s[j] = -INFINITY;
  for (size_t j = hi; j < kAttnTile; ++j) s[j] = -INFINITY;
  if (lo % W) mx = xsimd::max(mx, load(s + lo / W * W));
  if (hi % W) mx = xsimd::max(mx, load(s + hi / W * W));
  return reduce_max(mx);
}

// Folds one row of scaled and masked scores (keys tile + [0, kAttnTile),
// visible [lo, hi) relative to the tile, bm their maximum) into the row's
// online softmax: afterwards the row holds exp(s - m_new), 0 where masked,
// and *m, *l, o are updated (nothing but the zeroed row if nothing is visible).
inline void softmax_fold(float* s, size_t lo, size_t hi, float bm, float* m, float* l, float* o, size_t ldv) {
  if (lo >= hi) {
    for (size_t j = 0; j < kAttnTile; ++j) s[j] = 0.0f;
    return;
  }
  const float m_new = bm > *m ? bm : *m;
  const vf vm(m_new);
  vf sum(0.0f);
  const size_t n = vecs_to(hi) * W;  // past it every exp is 0
  for (size_t j = 0; j < n; j += W) {
    const vf e = vexp(load(s + j) - vm);
    e.store_unaligned(s + j);
    sum += e;
  }
  for (size_t j = n; j < kAttnTile; j += W) vf(0.0f).store_unaligned(s + j);
  if (m_new > *m) {  // rescale what came before (nothing, the first time)
    const float corr = std::exp(*m - m_new);
    *l *= corr;
    const vf vc(corr);
    for (size_t i = 0; i < ldv; i += W) (load(o + i) * vc).store_unaligned(o + i);
    *m = m_new;
  }
  *l += reduce_add(sum);
}

// Row r's visible keys within the tile and [t0, t1), relative to the tile.
inline void row_range(const AttentionRows& R, size_t r, size_t tile, size_t t0, size_t t1, size_t* lo, size_t* hi) {
  const size_t rl = std::max({size_t(R.lo[r]), t0, tile}), rh = std::min({size_t(R.hi[r]), t1, tile + kAttnTile});
  *lo = rl - tile;
  *hi = rh > rl ? rh - tile : rl - tile;
}

template <class T>
struct AttentionTile {
  const AttentionRows& R;
  const float* q;  // (rows, hd) copied queries
  float* s;        // (rows, kAttnTile)
  const T* panel;
  const T* v;      // value row of the tile's first key
  size_t hd, ldv, j0, j1;
  size_t lds = kAttnTile;  // row stride of s
  size_t tile = 0, t0 = 0, t1 = 0;  // the tile's first key; the range
  float scale = 1.0f, cap = 0.0f;
  // The keys rows [r, r + RM) see end before this (relative to the tile):
  // past it, a causal tile's scores and weights are not needed.
  size_t block_end(size_t r, int RM) const {
    size_t e = 0;
    for (size_t i = r; i < r + size_t(RM); ++i) e = std::max(e, row_end(R, i, tile, t1));
    return e;
  }
  // Whether rows [r, r + RM) all see every key of the tile.
  bool whole(size_t r, int RM) const {
    if (tile < t0 || tile + kAttnTile > t1) return false;
    for (size_t i = r; i < r + size_t(RM); ++i)
      if (size_t(std::max(R.lo[i], 0)) > tile || size_t(std::max(R.hi[i], 0)) < tile + kAttnTile) return false;
    return true;
  }
  // Rows [r, r + RM)'s scores, scaled, capped and masked, and each one's
  // maximum over the tile into mx (-inf where it sees none of it): in one
  // pass where the rows see the whole tile uncapped (a prompt's tiles before
  // its own keys), else the scores and then scale_and_mask row by row.
  template <int RM>
  void scores(size_t r, float (&mx)[RM]) const {
    if (cap == 0.0f && whole(r, RM)) {
      tile_scores_scaled<RM>(q + r * hd, hd, panel, s + r * lds, lds, scale, mx);
      return;
    }
    const size_t nvec = vecs_to(block_end(r, RM));
    if (nvec) tile_scores<RM>(q + r * hd, hd, panel, s + r * lds, lds, nvec);
    for (int i = 0; i < RM; ++i) {
      size_t rl, rh;
      row_range(R, r + size_t(i), tile, t0, t1, &rl, &rh);
      mx[i] = scale_and_mask(s + (r + size_t(i)) * lds, rl, rh, scale, cap);
    }
  }
};

// The f16 cache's first phase on a block of rows: scores, and the running max.
template <class T>
struct ScoreRows {
  template <int RM>
  struct F {
    static void run(size_t r, const AttentionTile<T>& a) {
      float mx[RM];
      a.template scores<RM>(r, mx);
      for (int i = 0; i < RM; ++i) a.R.m[r + size_t(i)] = std::max(a.R.m[r + size_t(i)], mx[i]);
    }
  };
};

// attention_f32 on a block of rows: scores, then each row's online softmax.
struct SoftmaxRows {
  template <int RM>
  struct F {
    static void run(size_t r, const AttentionTile<float>& a) {
      float mx[RM];
      a.template scores<RM>(r, mx);
      for (int i = 0; i < RM; ++i) {
        const size_t row = r + size_t(i);
        size_t rl, rh;
        row_range(a.R, row, a.tile, a.t0, a.t1, &rl, &rh);
        softmax_fold(a.s + row * a.lds, rl, rh, mx[i], a.R.m + row, a.R.l + row, a.R.o + row * a.R.ldo, a.ldv);
      }
    }
  };
};

template <class T>
struct ValueRows {
  template <int RM>
  struct F {
    static void run(size_t r, const AttentionTile<T>& a) {
      const size_t j1 = std::min(a.j1, a.block_end(r, RM));  // the weights past it are all 0
      if (a.j0 < j1) tile_values<RM>(a.s + r * a.lds, a.lds, a.v, a.ldv, a.j0, j1, a.R.o + r * a.R.ldo, a.R.ldo);
    }
  };
};

// The keys any row sees within [t0, t1), as [*lo, *hi).
inline void visible_span(const AttentionRows& R, size_t t0, size_t t1, size_t* lo, size_t* hi) {
  *lo = t1, *hi = t0;
  for (size_t r = 0; r < R.rows; ++r) {
    *lo = std::min(*lo, std::max(t0, size_t(R.lo[r])));
    *hi = std::max(*hi, std::min(t1, size_t(R.hi[r])));
  }
}

// The queries (rounded to f16 for an f16 cache) into qs, and visible_span.
template <class T>
inline void gather_rows(const AttentionRows& R, size_t hd, size_t t0, size_t t1, float* qs, size_t* lo, size_t* hi) {
  visible_span(R, t0, t1, lo, hi);
  for (size_t r = 0; r < R.rows; ++r) {
    const float* q = R.q[r];
    float* d = qs + r * hd;
    if constexpr (sizeof(T) == 2) {
      size_t i = 0;
      for (; i + W <= hd; i += W) round_to_f16(load(q + i)).store_unaligned(d + i);
      for (; i < hd; ++i) d[i] = round_f16(q[i]);
    } else {
      std::copy_n(q, hd, d);
    }
  }
}

// One pass, online softmax (FlashAttention-2).
inline void attention_f32(const AttentionRows& R, const float* kt, const float* v, size_t hd, size_t t0, size_t t1,
                          float scale, float cap, float* scratch) {
  const size_t rows = R.rows, ldv = attention_ldv(hd);
  float* qs = scratch;              // (rows, hd)
  float* s = scratch + rows * hd;   // (rows, kAttnTile)
  size_t lo, hi;
  gather_rows<float>(R, hd, t0, t1, qs, &lo, &hi);
  for (size_t tile = lo / kAttnTile * kAttnTile; tile < hi; tile += kAttnTile) {
    AttentionTile<float> a{R, qs, s, kt + (tile - t0) / kAttnTile * hd * kAttnTile, v + (tile - t0) * ldv, hd, ldv,
                           std::max(lo, tile) - tile, std::min(hi, tile + kAttnTile) - tile};
    a.tile = tile, a.t0 = t0, a.t1 = t1, a.scale = scale, a.cap = cap;
    by_row_blocks<SoftmaxRows::template F>(rows, a);
    by_row_blocks<ValueRows<float>::template F>(rows, a);
  }
}

// The f16 cache, first phase: the scores into s (row r at s + r * lds,
// key t at t - t0; -inf where masked), and the rows' running max.
inline void attention_scores_f16(const AttentionRows& R, const uint16_t* kt, size_t hd, size_t t0, size_t t1,
                                 float scale, float cap, float* s, size_t lds, float* scratch) {
  const size_t rows = R.rows;
  float* qs = scratch;  // (rows, hd)
  size_t lo, hi;
  gather_rows<uint16_t>(R, hd, t0, t1, qs, &lo, &hi);
  for (size_t tile = lo / kAttnTile * kAttnTile; tile < hi; tile += kAttnTile) {
    AttentionTile<uint16_t> a{R, qs, s + (tile - t0), kt + (tile - t0) / kAttnTile * hd * kAttnTile, nullptr, hd, 0, 0, 0, lds};
    a.tile = tile, a.t0 = t0, a.t1 = t1, a.scale = scale, a.cap = cap;
    by_row_blocks<ScoreRows<uint16_t>::template F>(rows, a);
  }
}

// Second phase, once m is final: s = exp(s - m) in place, as far as the
// values read each row (past it they take 0), and l += their sum, a tile at
// a time in the order attention_f32's online sum adds them.
inline void attention_weights_f16(const AttentionRows& R, size_t t0, size_t t1, float* s, size_t lds) {
  size_t lo, hi;
  visible_span(R, t0, t1, &lo, &hi);
  for (size_t r = 0; r < R.rows; ++r) {
    if (R.m[r] == -INFINITY) continue;  // the row sees no key at all: the values give it nothing
    const vf vm(R.m[r]);
    float l = R.l[r];  // in a register: the stores to s may alias it
    for (size_t tile = lo / kAttnTile * kAttnTile; tile < hi; tile += kAttnTile) {
      float* sr = s + r * lds + (tile - t0);
      const size_t n = vecs_to(row_end(R, r, tile, t1)) * W;  // masked keys: exp(-inf) = 0
      vf sum(0.0f);
      for (size_t j = 0; j < n; j += W) {
        const vf e = vexp(load(sr + j) - vm);
        e.store_unaligned(sr + j);
        sum += e;
      }
      if (n) l += reduce_add(sum);
    }
    R.l[r] = l;
  }
}

// Third phase, once l is final too: o += p V with p = s / l rounded to f16,
// as llama.cpp weights an f16 V by its probabilities.
inline void attention_values_f16(const AttentionRows& R, const uint16_t* v, size_t hd, size_t t0, size_t t1,
                                 const float* s, size_t lds, float* scratch) {
  const size_t rows = R.rows, ldv = attention_ldv(hd);
  float* p = scratch;  // (rows, kAttnTile)
  size_t lo, hi;
  visible_span(R, t0, t1, &lo, &hi);
  for (size_t tile = lo / kAttnTile * kAttnTile; tile < hi; tile += kAttnTile) {
    for (size_t r = 0; r < rows; ++r) {
      const float* sr = s + r * lds + (tile - t0);
      float* pr = p + r * kAttnTile;
      if (!(R.l[r] > 0.0f)) {  // the row sees none of these keys
        for (size_t j = 0; j < kAttnTile; ++j) pr[j] = 0.0f;
        continue;
      }
      const vf inv(1.0f / R.l[r]);
      const size_t n = vecs_to(row_end(R, r, tile, t1)) * W;  // past it: p 0
      for (size_t j = 0; j < n; j += W) round_to_f16(load(sr + j) * inv).store_unaligned(pr + j);
      for (size_t j = n; j < kAttnTile; j += W) vf(0.0f).store_unaligned(pr + j);
    }
    AttentionTile<uint16_t> a{R, nullptr, p, nullptr, v + (tile - t0) * ldv, hd, ldv, std::max(lo, tile) - tile,
                              std::min(hi, tile + kAttnTile) - tile};
    a.tile = tile, a.t1 = t1;
    by_row_blocks<ValueRows<uint16_t>::template F>(rows, a);
  }
}

// Keys into the K cache's panels, the portable way: row by row (reads in
// order, writes ldd apart), each piece of a row converted to f16 in vectors
// first. (Column by column, the reads lds apart alias in L1 at wide rows and
// run 2-6 times slower.)
template <class Out>
inline void transpose_row_by_row(const float* src, size_t lds, Out* dst, size_t ldd, size_t rows, size_t cols) {
  constexpr size_t kPiece = 64;
  alignas(64) Out piece[kPiece];
  for (size_t r = 0; r < rows; ++r)
    for (size_t c0 = 0; c0 < cols; c0 += kPiece) {
      const size_t n = std::min(kPiece, cols - c0);
      const Out* p = piece;
      if constexpr (std::is_same_v<Out, float>) p = src + r * lds + c0;
      else f32_to_f16_n(src + r * lds + c0, piece, n);
      for (size_t c = 0; c < n; ++c) dst[(c0 + c) * ldd + r] = p[c];
    }
}
inline void transpose_f32_n(const float* src, size_t lds, float* dst, size_t ldd, size_t rows, size_t cols) {
  transpose_row_by_row(src, lds, dst, ldd, rows, cols);
}
inline void transpose_f32_to_f16_n(const float* src, size_t lds, uint16_t* dst, size_t ldd, size_t rows, size_t cols) {
  transpose_row_by_row(src, lds, dst, ldd, rows, cols);
}

}  // namespace qkv::ops::QKV_ISA_NS
