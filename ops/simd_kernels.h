// SIMD kernels written once with xsimd, instantiated per ISA by isa_*.cpp.
//
// Include this only from an isa_*.cpp file, after defining QKV_ISA_NS (a
// namespace unique to that translation unit) and specialising the Isa traits
// (fused multiply-add and the f16 -> f32 load). Everything here lives in that
// namespace so no symbol compiled with one ISA's flags can be picked by the
// linker for another.
#pragma once

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "ops/ops.h"
#include "ops/prefetch.h"

namespace qkv::ops::QKV_ISA_NS {

using Arch = QKV_ARCH;
using vf = xsimd::batch<float, Arch>;
constexpr size_t W = vf::size;  // floats per vector

// Provided by the including TU: fused a*b+c, load of W halves as floats,
// store of W floats as halves (nearest, ties to even), and each lane
// rounded to the nearest f16 and back.
inline vf fmadd(vf a, vf b, vf c);
inline vf load_f16(const uint16_t* p);
inline void store_f16(uint16_t* p, vf x);
inline vf round_to_f16(vf x);

inline vf load(const float* p) { return vf::load_unaligned(p); }
inline vf load(const uint16_t* p) { return load_f16(p); }
inline float widen(float x) { return x; }
inline float widen(uint16_t h) { return f16_to_f32(h); }

inline float reduce_add(vf v) { return xsimd::hadd(v); }

// Halves folded onto each other: log2(W) steps in a row, where one lane
// after another took W - 1.
inline float reduce_max(vf v) {
  alignas(64) float lanes[W];
  v.store_aligned(lanes);
  for (size_t w = W / 2; w > 0; w /= 2)
    for (size_t i = 0; i < w; ++i) lanes[i] = lanes[i + w] > lanes[i] ? lanes[i + w] : lanes[i];
  return lanes[0];
}

// ---------------------------------------------------------------- dot

inline float dot(const float* a, const float* b, size_t n);  // dot_row<float>, below

// ---------------------------------------------------------------- matmul
//
// Register tile: RM input rows (tokens) x RN weight rows. Each of the RM*RN
// accumulators is one independent dot product; every loaded vector of X is
// reused RN times and every vector of W RM times.
//   w: (rows, n), x: (M, n), y: (M, ldy)
template <int RM, int RN, class T>
inline void tile(const T* w, const float* x, float* y, size_t n, size_t ldy, size_t m0,
                 size_t r0) {
  vf acc[RM][RN];
  for (int i = 0; i < RM; ++i)
    for (int j = 0; j < RN; ++j) acc[i][j] = vf(0.0f);
  size_t k = 0;
  for (; k + W <= n; k += W) {
    vf wv[RN];
    for (int j = 0; j < RN; ++j) wv[j] = load(w + (r0 + j) * n + k);
    for (int i = 0; i < RM; ++i) {
      const vf xv = load(x + (m0 + i) * n + k);
      for (int j = 0; j < RN; ++j) acc[i][j] = fmadd(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < RM; ++i) {
    for (int j = 0; j < RN; ++j) {
      float s = reduce_add(acc[i][j]);
      const T* wr = w + (r0 + j) * n;
      const float* xr = x + (m0 + i) * n;
      for (size_t kk = k; kk < n; ++kk) s += widen(wr[kk]) * xr[kk];
      y[(m0 + i) * ldy + r0 + j] = s;
    }
  }
}

// Weight rows outermost: a block of RN rows stays in L1 while every token of
// the batch (X, which fits in L2) passes over it, so W is read from memory once.
template <class T>
inline void matmul(const T* w, const float* x, float* y, size_t M, size_t n, size_t ldy, size_t r0,
                   size_t r1) {
  constexpr int RM = 4, RN = 4;
  size_t r = r0;
  for (; r + RN <= r1; r += RN) {
    size_t m = 0;
    for (; m + RM <= M; m += RM) tile<RM, RN>(w, x, y, n, ldy, m, r);
    for (; m < M; ++m) tile<1, RN>(w, x, y, n, ldy, m, r);
  }
  for (; r < r1; ++r) {
    size_t m = 0;
    for (; m + RM <= M; m += RM) tile<RM, 1>(w, x, y, n, ldy, m, r);
    for (; m < M; ++m) tile<1, 1>(w, x, y, n, ldy, m, r);
  }
}

// y[r] = W[r, :] . x, one row after the other: each row is a single
// sequential stream with four accumulators, which the hardware prefetchers
// follow far better than several interleaved rows.
template <class T>
inline float dot_row(const T* w, const float* x, size_t n) {
  vf s0(0.0f), s1(0.0f), s2(0.0f), s3(0.0f);
  size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    s0 = fmadd(load(w + i), load(x + i), s0);
    s1 = fmadd(load(w + i + W), load(x + i + W), s1);
    s2 = fmadd(load(w + i + 2 * W), load(x + i + 2 * W), s2);
    s3 = fmadd(load(w + i + 3 * W), load(x + i + 3 * W), s3);
  }
  for (; i + W <= n; i += W) s0 = fmadd(load(w + i), load(x + i), s0);
  float s = reduce_add((s0 + s1) + (s2 + s3));
  for (; i < n; ++i) s += widen(w[i]) * x[i];
  return s;
}

inline float dot(const float* a, const float* b, size_t n) { return dot_row(a, b, n); }

template <class T>
inline void matvec(const T* w, const float* x, float* y, size_t n, size_t r0, size_t r1) {
  for (size_t r = r0; r < r1; ++r) y[r] = dot_row(w + r * n, x, n);
}

// ---------------------------------------------------------------- products over panels
//
// Weights packed at load (ops.h, kPanelRows): column k of a panel is NV
// vectors that token m's x[m, k] multiplies, broadcast. Each accumulator is
// one output, so nothing is reduced across lanes.
constexpr size_t NV = kPanelRows / W;  // vectors per panel column
static_assert(kPanelRows % W == 0, "a panel column is whole vectors");
// The batch tile: kTileM tokens x kTileP panels, kTileM * kTileP * NV
// accumulators (12 of 16 registers on AVX2, 24 of 32 on AVX-512), the
// column's vectors and one broadcast beside them.
constexpr int kTileM = W >= 16 ? 12 : W == 8 ? 6 : 2;
constexpr int kTileP = W >= 16 ? 2 : 1;

// y[i, :kTileP panels] for RM tokens: pw is the first panel's column 0,
// x token 0's row, y token 0's output for that panel's first row; pf: n / 4
// cache lines to bring into L2 meanwhile, a quarter line a column.
template <int RM, int NP, class T>
inline void panel_tile(const T* pw, const float* x, float* y, size_t n, size_t ldy, const char* pf) {
  const size_t stride = n * kPanelRows;  // from one panel to the next
  vf acc[RM][NP * NV];
  for (int i = 0; i < RM; ++i)
    for (size_t j = 0; j < NP * NV; ++j) acc[i][j] = vf(0.0f);
  for (size_t k = 0; k < n; ++k) {
    __builtin_prefetch(pf + k * (kLine / 4), 0, 2);
    vf wv[NP * NV];
    for (int p = 0; p < NP; ++p)
      for (size_t v = 0; v < NV; ++v) wv[p * NV + v] = load(pw + p * stride + k * kPanelRows + v * W);
    for (int i = 0; i < RM; ++i) {
      const vf xb(x[i * n + k]);
      for (size_t j = 0; j < NP * NV; ++j) acc[i][j] = fmadd(xb, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < RM; ++i)
    for (size_t j = 0; j < NP * NV; ++j) acc[i][j].store_unaligned(y + i * ldy + j * W);
}

// The drivers over any panel tile: Tile::run<RM, NP>(pw, x, y, n, ldy, pf)
// computes y[i, :NP panels] for RM tokens (FloatPanels, Bf16Panels below)
// and brings the n / 4 lines at pf into L2 as it goes.
// The last M % kTileM tokens: the tile of exactly that many rows.
template <class Tile, int R, int NP, class TW, class TX>
inline void panel_tail(size_t rows, const TW* pw, const TX* x, float* y, size_t n, size_t ldy, const char* pf) {
  if constexpr (R > 0) {
    if (rows == size_t(R)) Tile::template run<R, NP>(pw, x, y, n, ldy, pf);
    else panel_tail<Tile, R - 1, NP>(rows, pw, x, y, n, ldy, pf);
  }
}

// Panels outermost: NP panels stay in L2 while every token passes over them.
// Meanwhile the next panels, [next, next_end), come into L2 a slice per tile:
// weights read once from memory would otherwise keep each group's first tile
// waiting (the hardware prefetcher starts late, and the tile wants the lines
// faster than memory gives them). Past next_end a tile prefetches its own
// panels, in cache already. Spread over each tile's columns rather than in a
// burst per tile (SpreadPrefetch, as the integer products do with passes of a
// few KB): a group is ~100 KB here, and bursts of its share ran 5-10% slower.
template <class Tile, int NP, class TW, class TX>
inline void panel_tokens(const TW* pw, const TX* x, float* y, size_t M, size_t n, size_t ldy, const char* next,
                         const char* next_end) {
  const size_t slice = n * (kLine / 4);
  const auto take = [&]() {
    if (next >= next_end) return reinterpret_cast<const char*>(pw);
    const char* p = next;
    next += slice;
    return p;
  };
  size_t m = 0;
  for (; m + kTileM <= M; m += kTileM) Tile::template run<kTileM, NP>(pw, x + m * n, y + m * ldy, n, ldy, take());
  panel_tail<Tile, kTileM - 1, NP>(M - m, pw, x + m * n, y + m * ldy, n, ldy, take());
}

// Panels [p0, p1) in groups of kTileP, then one at a time: fn(p, NP) for a
// group's first panel p, NP its size (a std::integral_constant).
template <class F>
inline void each_panel_group(size_t p0, size_t p1, F&& fn) {
  size_t p = p0;
  for (; p + kTileP <= p1; p += kTileP) fn(p, std::integral_constant<int, kTileP>{});
  for (; p < p1; ++p) fn(p, std::integral_constant<int, 1>{});
}

// Panels [p0, p1) a group at a time; each group's tiles prefetch the next
// group (panels are contiguous).
template <class Tile, class TW, class TX>
inline void panels_product(const TW* panels, const TX* x, float* y, size_t M, size_t n, size_t ldy, size_t p0,
                           size_t p1) {
  const size_t stride = n * kPanelRows;
  const auto at = [&](size_t q) { return reinterpret_cast<const char*>(panels + std::min(q, p1) * stride); };
  each_panel_group(p0, p1, [&](size_t p, auto np) {
    constexpr int NP = decltype(np)::value;
    panel_tokens<Tile, NP>(panels + p * stride, x, y + p * kPanelRows, M, n, ldy, at(p + NP), at(p + 2 * NP));
  });
}

// Float panels (f32, or f16 widened) against f32 x: the batch tile, and one
// token's step k (column k into one set of accumulators).
struct FloatPanels {
  template <int RM, int NP, class T>
  static void run(const T* pw, const float* x, float* y, size_t n, size_t ldy, const char* pf) {
    panel_tile<RM, NP>(pw, x, y, n, ldy, pf);
  }
  static size_t steps(size_t n) { return n; }
  template <class T>
  static void step(vf (&acc)[NV], const T* pw, const float* x, size_t k) {
    const vf xb(x[k]);
    for (size_t v = 0; v < NV; ++v) acc[v] = fmadd(xb, load(pw + k * kPanelRows + v * W), acc[v]);
  }
  template <class T>
  static void last(vf (&)[NV], const T*, const float*, size_t) {}
};

template <class T>
inline void matmul_panels(const T* panels, const float* x, float* y, size_t M, size_t n, size_t ldy, size_t p0,
                          size_t p1) {
  panels_product<FloatPanels>(panels, x, y, M, n, ldy, p0, p1);
}

// A one-token panel product's U sets of NV accumulators: zeroed, and at the
// end added pairwise in a fixed order and stored as the panel's outputs.
template <size_t U>
inline void zero_sets(vf (&acc)[U][NV]) {
  for (size_t u = 0; u < U; ++u)
    for (size_t v = 0; v < NV; ++v) acc[u][v] = vf(0.0f);
}
template <size_t U>
inline void store_sets(vf (&acc)[U][NV], float* y) {
  for (size_t half = U / 2; half > 0; half /= 2)
    for (size_t u = 0; u < half; ++u)
      for (size_t v = 0; v < NV; ++v) acc[u][v] += acc[u + half][v];
  for (size_t v = 0; v < NV; ++v) acc[0][v].store_unaligned(y + v * W);
}

// One token: a panel is one sequential stream. Its steps k, k+1, ...
// (Panels::step: a column, or a pair of bf16 columns) go to U sets of
// accumulators (enough independent chains to hide the latency), then
// Panels::last (bf16: an odd last column) to the first; the sets are added
// pairwise at the end.
template <class Panels, class TW, class TX>
inline void panels_one_token(const TW* panels, const TX* x, float* y, size_t n, size_t p0, size_t p1) {
  constexpr size_t U = NV >= 8 ? 1 : 8 / NV;
  const size_t steps = Panels::steps(n);
  for (size_t p = p0; p < p1; ++p) {
    const TW* pw = panels + p * n * kPanelRows;
    vf acc[U][NV];
    zero_sets(acc);
    size_t k = 0;
    for (; k + U <= steps; k += U)
      for (size_t u = 0; u < U; ++u) Panels::step(acc[u], pw, x, k + u);
    for (; k < steps; ++k) Panels::step(acc[0], pw, x, k);
    Panels::last(acc[0], pw, x, n);
    store_sets(acc, y + p * kPanelRows);
  }
}

template <class T>
inline void matvec_panels(const T* panels, const float* x, float* y, size_t n, size_t p0, size_t p1) {
  panels_one_token<FloatPanels>(panels, x, y, n, p0, p1);
}

// ---------------------------------------------------------------- bf16 products
//
// BF16 weights in panels of column pairs (ops.h, pack_panels_bf16): the pair
// (k, k + 1) of a panel is NV vectors of W pairs (w[k], w[k + 1]), a row a
// 32-bit lane, which token m's pair (x[k], x[k + 1]) multiplies, broadcast
// to every lane. In a lane the odd column is the high half.
using vu = xsimd::batch<uint32_t, Arch>;
using vi = xsimd::batch<int32_t, Arch>;

// Provided by the including TU: per lane, acc + w.hi x.hi, rounded, then +
// w.lo x.lo, rounded (ops.h's order): vdpbf16ps, or widened_pairs.
inline vf dot_pairs(vf acc, vu w, vu x);
// Whether dot_pairs widens (the TU with vdpbf16ps defines QKV_BF16_NATIVE).
#ifdef QKV_BF16_NATIVE
constexpr bool kBf16Widened = false;
#else
constexpr bool kBf16Widened = true;
#endif

inline vf bf16_hi(vu v) { return xsimd::bitwise_cast<vf>(v & vu(0xffff0000u)); }
inline vf bf16_lo(vu v) { return xsimd::bitwise_cast<vf>(v << 16); }
// Each product of two bf16 is exact in f32, so a multiply-add (fused or not)
// rounds once, as vdpbf16ps does.
inline vf widened_pairs(vf acc, vu w, vu x) {
  return fmadd(bf16_lo(w), bf16_lo(x), fmadd(bf16_hi(w), bf16_hi(x), acc));
}

inline uint32_t load_pair(const uint16_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline vu load_pairs(const uint16_t* p) { return vu::load_unaligned(reinterpret_cast<const uint32_t*>(p)); }
// W bf16 values widened (the odd last column of a panel).
inline vf load_bf16(const uint16_t* p) {
  alignas(64) uint32_t bits[W];
  for (size_t j = 0; j < W; ++j) bits[j] = uint32_t(p[j]) << 16;
  return xsimd::bitwise_cast<vf>(vu::load_aligned(bits));
}

// The end of a BF16 tile: the last column where n is odd (stored plain
// after the pairs; last_x(i): token i's value there, as a float), then the
// outputs.
template <int RM, int NP, class LastX>
inline void bf16_tile_end(vf (&acc)[RM][NP * NV], const uint16_t* pw, LastX last_x, float* y, size_t n, size_t ldy) {
  const size_t stride = n * kPanelRows;
  if (n % 2) {
    for (int i = 0; i < RM; ++i) {
      const vf xb(last_x(i));
      for (int p = 0; p < NP; ++p)
        for (size_t v = 0; v < NV; ++v)
          acc[i][p * NV + v] = fmadd(load_bf16(pw + p * stride + (n - 1) * kPanelRows + v * W), xb, acc[i][p * NV + v]);
    }
  }
  for (int i = 0; i < RM; ++i)
    for (size_t j = 0; j < NP * NV; ++j) acc[i][j].store_unaligned(y + i * ldy + j * W);
}

// y[i, :NP panels] for RM tokens, as panel_tile (the same tile sizes: a pair
// of bf16 fills the lane a float did).
template <int RM, int NP>
inline void bf16_panel_tile(const uint16_t* pw, const uint16_t* x, float* y, size_t n, size_t ldy, const char* pf) {
  const size_t stride = n * kPanelRows;
  vf acc[RM][NP * NV];
  for (int i = 0; i < RM; ++i)
    for (size_t j = 0; j < NP * NV; ++j) acc[i][j] = vf(0.0f);
  for (size_t k = 0; k + 1 < n; k += 2) {
    __builtin_prefetch(pf + k * (kLine / 4), 0, 2);
    vu wv[NP * NV];
    for (int p = 0; p < NP; ++p)
      for (size_t v = 0; v < NV; ++v) wv[p * NV + v] = load_pairs(pw + p * stride + k * kPanelRows + v * 2 * W);
    for (int i = 0; i < RM; ++i) {
      const vu xb(load_pair(x + i * n + k));
      for (size_t j = 0; j < NP * NV; ++j) acc[i][j] = dot_pairs(acc[i][j], wv[j], xb);
    }
  }
  bf16_tile_end<RM, NP>(acc, pw, [&](int i) { return bf16_to_f32(x[i * n + n - 1]); }, y, n, ldy);
}

// Without vdpbf16ps the pairs are widened to floats: the tokens' once per
// batch (Bf16Batch::values, from the caller), the weights a chunk of
// kChunkPairs column pairs at a time, into a buffer that every token tile
// then reads (16 KB a panel: it stays in L1). Each tile's sums are carried
// from chunk to chunk in y (f32: the same chain over k, the same bits), and
// the odd columns' products for every token come before the even ones'
// (each sum's order unchanged), so that the accumulators, one half of the
// weight vectors and a broadcast fit 16 registers.
// Zen 3, matmul/bf16/avx2 M128, best of 8 alternating runs by shape: a tile
// that widened its weights and its tokens' pairs itself 70-77 GFLOP/s, this
// one 77-87 (F16's tile in the same runs 87-92, the FMA probe 95).
constexpr size_t kChunkPairs = 128;

template <int NP>
struct Bf16Chunk {
  alignas(64) float w[kChunkPairs][2][NP * kPanelRows];  // pair q: [0] its odd column, [1] its even one
  size_t q0 = 0, nq = 0;                                 // the chunk's pairs [q0, q0 + nq)
};

// Pairs [q0, q0 + nq) of NP panels (pw: the first panel's column 0) into c;
// meanwhile the lines at pf (one per pair and panel, panels `stride` apart)
// come into L2 for the chunk after.
template <int NP>
inline void widen_chunk(Bf16Chunk<NP>& c, const uint16_t* pw, size_t stride, size_t q0, size_t nq, const uint16_t* pf) {
  c.q0 = q0, c.nq = nq;
  for (size_t q = 0; q < nq; ++q)
    for (int p = 0; p < NP; ++p) {
      if (pf) __builtin_prefetch(pf + p * stride + q * 2 * kPanelRows, 0, 2);
      for (size_t v = 0; v < NV; ++v) {
        const vu w = load_pairs(pw + p * stride + (q0 + q) * 2 * kPanelRows + v * 2 * W);
        bf16_hi(w).store_aligned(&c.w[q][0][p * kPanelRows + v * W]);
        bf16_lo(w).store_aligned(&c.w[q][1][p * kPanelRows + v * W]);
      }
    }
}

// y[i, :NP panels] for RM tokens, over chunk c's pairs: the sums start at 0
// in the first chunk and from y after it; the last chunk ends the tile (pw:
// its first panel's column 0; x: token 0's widened row).
template <int RM, int NP>
inline void bf16_chunk_tile(const Bf16Chunk<NP>& c, const uint16_t* pw, const float* x, float* y, size_t n,
                            size_t ldy) {
  vf acc[RM][NP * NV];
  for (int i = 0; i < RM; ++i)
    for (size_t j = 0; j < NP * NV; ++j) acc[i][j] = c.q0 == 0 ? vf(0.0f) : load(y + i * ldy + j * W);
  const float* xq = x + 2 * c.q0;  // token 0's pair q at xq + 2 q
  for (size_t q = 0; q < c.nq; ++q) {
    for (int h = 0; h < 2; ++h) {  // the odd column, then the even one
      vf wv[NP * NV];
      for (size_t j = 0; j < NP * NV; ++j) wv[j] = vf::load_aligned(&c.w[q][h][j * W]);
      for (int i = 0; i < RM; ++i) {
        const vf xb(xq[i * n + 2 * q + 1 - h]);
        for (size_t j = 0; j < NP * NV; ++j) acc[i][j] = fmadd(wv[j], xb, acc[i][j]);
      }
    }
  }
  if (c.q0 + c.nq == n / 2) {
    bf16_tile_end<RM, NP>(acc, pw, [&](int i) { return x[i * n + n - 1]; }, y, n, ldy);
  } else {
    for (int i = 0; i < RM; ++i)
      for (size_t j = 0; j < NP * NV; ++j) acc[i][j].store_unaligned(y + i * ldy + j * W);
  }
}

// The last rows % kTileM tokens: the chunk tile of exactly that many rows.
template <int R, int NP>
inline void bf16_chunk_tail(size_t rows, const Bf16Chunk<NP>& c, const uint16_t* pw, const float* x, float* y,
                            size_t n, size_t ldy) {
  if constexpr (R > 0) {
    if (rows == size_t(R)) bf16_chunk_tile<R, NP>(c, pw, x, y, n, ldy);
    else bf16_chunk_tail<R - 1, NP>(rows, c, pw, x, y, n, ldy);
  }
}

// NP panels at pw against M tokens, a chunk at a time (next: the panels of
// the pass after, whose first chunk comes into L2 during the last one here).
template <int NP>
inline void bf16_widened_panels(const uint16_t* pw, const float* x, float* y, size_t M, size_t n, size_t ldy,
                                const uint16_t* next) {
  const size_t stride = n * kPanelRows, pairs = n / 2;
  Bf16Chunk<NP> c;
  size_t q0 = 0;
  do {  // once at least: with n == 1 the only chunk is empty and its tiles take the odd column
    const size_t nq = std::min(kChunkPairs, pairs - q0);
    const uint16_t* pf = q0 + nq < pairs ? pw + (q0 + nq) * 2 * kPanelRows : next;
    widen_chunk<NP>(c, pw, stride, q0, nq, pf);
    size_t m = 0;
    for (; m + kTileM <= M; m += kTileM) bf16_chunk_tile<kTileM, NP>(c, pw, x + m * n, y + m * ldy, n, ldy);
    bf16_chunk_tail<kTileM - 1, NP>(M - m, c, pw, x + m * n, y + m * ldy, n, ldy);
    q0 += nq;
  } while (q0 < pairs);
}

inline void bf16_widened_product(const uint16_t* panels, const float* x, float* y, size_t M, size_t n, size_t ldy,
                                 size_t p0, size_t p1) {
  const size_t stride = n * kPanelRows;
  const auto at = [&](size_t q) { return q < p1 ? panels + q * stride : nullptr; };
  each_panel_group(p0, p1, [&](size_t p, auto np) {
    constexpr int NP = decltype(np)::value;
    bf16_widened_panels<NP>(panels + p * stride, x, y + p * kPanelRows, M, n, ldy, at(p + NP));
  });
}

// BF16 panels against bf16 x: the batch tile; one token's step q is the
// column pair q, and an odd last column comes last, plain.
struct Bf16Panels {
  template <int RM, int NP>
  static void run(const uint16_t* pw, const uint16_t* x, float* y, size_t n, size_t ldy, const char* pf) {
    bf16_panel_tile<RM, NP>(pw, x, y, n, ldy, pf);
  }
  static size_t steps(size_t n) { return n / 2; }
  static void step(vf (&acc)[NV], const uint16_t* pw, const uint16_t* x, size_t q) {
    const vu xb(load_pair(x + 2 * q));
    for (size_t v = 0; v < NV; ++v) acc[v] = dot_pairs(acc[v], load_pairs(pw + q * 2 * kPanelRows + v * 2 * W), xb);
  }
  static void last(vf (&acc)[NV], const uint16_t* pw, const uint16_t* x, size_t n) {
    if (n % 2 == 0) return;
    const vf xb(bf16_to_f32(x[n - 1]));
    for (size_t v = 0; v < NV; ++v) acc[v] = fmadd(load_bf16(pw + (n - 1) * kPanelRows + v * W), xb, acc[v]);
  }
};

inline void matmul_panels_bf16(const uint16_t* panels, Bf16Batch x, float* y, size_t M, size_t n, size_t ldy, size_t p0,
                               size_t p1) {
  if constexpr (kBf16Widened) bf16_widened_product(panels, x.values, y, M, n, ldy, p0, p1);
  else panels_product<Bf16Panels>(panels, x.bits, y, M, n, ldy, p0, p1);
}

inline void matvec_panels_bf16(const uint16_t* panels, const uint16_t* x, float* y, size_t n, size_t p0, size_t p1) {
  panels_one_token<Bf16Panels>(panels, x, y, n, p0, p1);
}

// x rounded to bf16 with f32_to_bf16's integer rule (the same bits on every ISA).
inline void f32_to_bf16_n(const float* src, uint16_t* dst, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) {
    const vi u = xsimd::bitwise_cast<vi>(load(src + i));
    const vi rounded = (u + vi(0x7fff) + ((u >> 16) & vi(1))) >> 16;  // wraps like the scalar rule; low 16 bits kept
    const vi nan = (u >> 16) | vi(64);                                 // quiet
    const vi out = xsimd::select((u & vi(0x7fffffff)) > vi(0x7f800000), nan, rounded);
    alignas(64) int32_t bits[W];
    out.store_aligned(bits);
    for (size_t j = 0; j < W; ++j) dst[i + j] = uint16_t(bits[j]);
  }
  for (; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

// Independent chains of pair products (4 flops a lane each): 24 where there
// are 32 registers (vdpbf16ps's latency wants more than 12), 12 elsewhere;
// two sets of 12 so that the compiler unrolls each into registers.
inline double bf16_peak(size_t iters) {
  constexpr bool twice = W >= 16;
  vf acc[12], more[12];
  for (int j = 0; j < 12; ++j) acc[j] = more[j] = vf(float(j));
  const vu a(0x3a803a80u), b(0x3f803f80u);  // pairs of 2^-10 and of 1
  for (size_t i = 0; i < iters; ++i) {
    for (int j = 0; j < 12; ++j) acc[j] = dot_pairs(acc[j], a, b);
    if constexpr (twice)
      for (int j = 0; j < 12; ++j) more[j] = dot_pairs(more[j], a, b);
  }
  vf sum(0.0f);
  for (int j = 0; j < 12; ++j) sum += acc[j] + more[j];
  volatile float sink = reduce_add(sum);
  (void)sink;
  return (twice ? 96.0 : 48.0) * double(W) * double(iters);
}

// This ISA's BF16 products; those over rows as stored (at most the last
// kPanelRows - 1 rows of a matrix) are the reference's.
inline Bf16Products bf16_products(const char* how) {
  const Bf16Products& ref = reference_kernels().bf16;
  return Bf16Products{ref.matvec, ref.matmul, matvec_panels_bf16, matmul_panels_bf16, bf16_peak, how};
}

// ---------------------------------------------------------------- elementwise

inline void rmsnorm(float* out, const float* x, const float* w, size_t n, float eps) {
  vf acc(0.0f);
  size_t i = 0;
  for (; i + W <= n; i += W) {
    const vf v = load(x + i);
    acc = fmadd(v, v, acc);
  }
  float ss = reduce_add(acc);
  for (; i < n; ++i) ss += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(ss / float(n) + eps);
  const vf vs(scale);
  i = 0;
  for (; i + W <= n; i += W) (load(w + i) * (vs * load(x + i))).store_unaligned(out + i);
  for (; i < n; ++i) out[i] = w[i] * (scale * x[i]);
}

inline void softmax(float* x, size_t n) {
  if (n == 0) return;
  float mx = x[0];
  size_t i = 0;
  if (n >= W) {
    vf m = load(x);
    for (i = W; i + W <= n; i += W) m = xsimd::max(m, load(x + i));
    mx = reduce_max(m);
  }
  for (; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  const vf vmx(mx);
  vf vsum(0.0f);
  i = 0;
  for (; i + W <= n; i += W) {
    const vf e = xsimd::exp(load(x + i) - vmx);
    e.store_unaligned(x + i);
    vsum += e;
  }
  float sum = reduce_add(vsum);
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const vf inv(1.0f / sum);
  i = 0;
  for (; i + W <= n; i += W) (load(x + i) * inv).store_unaligned(x + i);
  for (; i < n; ++i) x[i] *= 1.0f / sum;
}

inline void swiglu(float* gate, const float* up, size_t n) {
  const vf one(1.0f);
  size_t i = 0;
  for (; i + W <= n; i += W) {
    const vf g = load(gate + i);
    const vf silu = g / (one + xsimd::exp(-g));
    (silu * load(up + i)).store_unaligned(gate + i);
  }
  for (; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

// Sums in double as the reference does (a norm's cost is its final pass).
inline void layernorm(float* out, const float* x, const float* w, const float* b, size_t n, float eps) {
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += x[i];
  const float mean = float(sum / double(n));
  double sum2 = 0.0;
  for (size_t i = 0; i < n; ++i) sum2 += double(x[i] - mean) * double(x[i] - mean);
  const float scale = 1.0f / std::sqrt(float(sum2 / double(n)) + eps);
  const vf vmean(mean), vscale(scale);
  size_t i = 0;
  for (; i + W <= n; i += W) {
    vf y = (load(x + i) - vmean) * vscale * load(w + i);
    if (b) y = y + load(b + i);
    y.store_unaligned(out + i);
  }
  for (; i < n; ++i) out[i] = (x[i] - mean) * scale * w[i] + (b ? b[i] : 0.0f);
}

// llama.cpp's GELU (ops.h): the table at x rounded to f16, outside [-10, 10] 0 or x.
inline float gelu1(float x, const uint16_t* table) {
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  return f16_to_f32(table[f32_to_f16(x)]);
}
inline vf gelu_v(vf x, const uint16_t* table) {
  alignas(64) uint16_t h[W];
  store_f16(h, x);
  for (size_t j = 0; j < W; ++j) h[j] = table[h[j]];
  const vf g = xsimd::select(x <= vf(-10.0f), vf(0.0f), load_f16(h));
  return xsimd::select(x >= vf(10.0f), x, g);
}

inline void gelu(float* x, size_t n) {
  const uint16_t* table = gelu_f16_table();
  size_t i = 0;
  for (; i + W <= n; i += W) gelu_v(load(x + i), table).store_unaligned(x + i);
  for (; i < n; ++i) x[i] = gelu1(x[i], table);
}

inline void geglu(float* gate, const float* up, size_t n) {
  const uint16_t* table = gelu_f16_table();
  size_t i = 0;
  for (; i + W <= n; i += W) (gelu_v(load(gate + i), table) * load(up + i)).store_unaligned(gate + i);
  for (; i < n; ++i) gate[i] = gelu1(gate[i], table) * up[i];
}

inline void add(float* y, const float* x, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) (load(y + i) + load(x + i)).store_unaligned(y + i);
  for (; i < n; ++i) y[i] += x[i];
}

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

// s (RM rows, row stride lds) = q (RM, hd) . the panel's keys, key vectors
// [c, c + CN).
template <int RM, size_t CN, class T>
inline void tile_score_cols(const float* q, size_t hd, const T* panel, float* s, size_t lds, size_t c) {
  vf acc[RM][CN];
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
  for (int r = 0; r < RM; ++r)
    for (size_t j = 0; j < CN; ++j) acc[r][j].store_unaligned(s + size_t(r) * lds + (c + j) * W);
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

// One or two rows (decoding) keep too few chains in flight with two value
// vectors: eight for one row (a 64-value row in one pass) and four for two,
// where the row length allows.
template <int RM, class T>
inline void tile_values(const float* p, size_t lds, const T* v, size_t ldv, size_t j0, size_t j1, float* o, size_t ldo) {
  if (RM == 1 && ldv % (8 * W) == 0) tile_values<RM, 8>(p, lds, v, ldv, j0, j1, o, ldo);
  else if (RM <= 2 && ldv % (4 * W) == 0) tile_values<RM, 4>(p, lds, v, ldv, j0, j1, o, ldo);
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

// Scales, caps and masks one row of scores (keys tile + [0, kAttnTile),
// visible [lo, hi) relative to the tile), then folds it into the row's
// online softmax: afterwards the row holds exp(s - m_new), 0 where masked,
// and *m, *l, o are updated (nothing but the zeroed row if nothing is visible).
inline void softmax_row(float* s, size_t lo, size_t hi, float scale, float cap, float* m, float* l, float* o,
                        size_t ldv) {
  const float bm = scale_and_mask(s, lo, hi, scale, cap);
  if (lo >= hi) {
    for (size_t j = 0; j < kAttnTile; ++j) s[j] = 0.0f;
    return;
  }
  const float m_new = bm > *m ? bm : *m;
  const vf vm(m_new);
  vf sum(0.0f);
  const size_t n = vecs_to(hi) * W;  // past it every exp is 0
  for (size_t j = 0; j < n; j += W) {
    const vf e = xsimd::exp(load(s + j) - vm);
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

template <class T>
struct AttentionTile {
  const AttentionRows& R;
  const float* q;  // (rows, hd) copied queries
  float* s;        // (rows, kAttnTile)
  const T* panel;
  const T* v;      // value row of the tile's first key
  size_t hd, ldv, j0, j1;
  size_t lds = kAttnTile;  // row stride of s
  size_t tile = 0, t1 = 0;  // the tile's first key; the end of the range
  // The keys rows [r, r + RM) see end before this (relative to the tile):
  // past it, a causal tile's scores and weights are not needed.
  size_t block_end(size_t r, int RM) const {
    size_t e = 0;
    for (size_t i = r; i < r + size_t(RM); ++i) e = std::max(e, row_end(R, i, tile, t1));
    return e;
  }
};

template <class T>
struct ScoreRows {
  template <int RM>
  struct F {
    static void run(size_t r, const AttentionTile<T>& a) {
      const size_t nvec = vecs_to(a.block_end(r, RM));
      if (nvec) tile_scores<RM>(a.q + r * a.hd, a.hd, a.panel, a.s + r * a.lds, a.lds, nvec);
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

// Row r's visible keys within the tile and [t0, t1), relative to the tile.
inline void row_range(const AttentionRows& R, size_t r, size_t tile, size_t t0, size_t t1, size_t* lo, size_t* hi) {
  const size_t rl = std::max({size_t(R.lo[r]), t0, tile}), rh = std::min({size_t(R.hi[r]), t1, tile + kAttnTile});
  *lo = rl - tile;
  *hi = rh > rl ? rh - tile : rl - tile;
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
    AttentionTile<float> a{R, qs, s, kt + (tile - t0) / kAttnTile * hd * kAttnTile, v + (tile - t0) * ldv, hd, ldv, 0, 0};
    a.tile = tile, a.t1 = t1;
    by_row_blocks<ScoreRows<float>::template F>(rows, a);
    a.j0 = std::max(lo, tile) - tile;
    a.j1 = std::min(hi, tile + kAttnTile) - tile;
    for (size_t r = 0; r < rows; ++r) {
      size_t rl, rh;
      row_range(R, r, tile, t0, t1, &rl, &rh);
      softmax_row(s + r * kAttnTile, rl, rh, scale, cap, R.m + r, R.l + r, R.o + r * R.ldo, ldv);
    }
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
    float* st = s + (tile - t0);
    AttentionTile<uint16_t> a{R, qs, st, kt + (tile - t0) / kAttnTile * hd * kAttnTile, nullptr, hd, 0, 0, 0, lds};
    a.tile = tile, a.t1 = t1;
    by_row_blocks<ScoreRows<uint16_t>::template F>(rows, a);
    for (size_t r = 0; r < rows; ++r) {
      size_t rl, rh;
      row_range(R, r, tile, t0, t1, &rl, &rh);
      R.m[r] = std::max(R.m[r], scale_and_mask(st + r * lds, rl, rh, scale, cap));
    }
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
    for (size_t tile = lo / kAttnTile * kAttnTile; tile < hi; tile += kAttnTile) {
      float* sr = s + r * lds + (tile - t0);
      const size_t n = vecs_to(row_end(R, r, tile, t1)) * W;  // masked keys: exp(-inf) = 0
      vf sum(0.0f);
      for (size_t j = 0; j < n; j += W) {
        const vf e = xsimd::exp(load(sr + j) - vm);
        e.store_unaligned(sr + j);
        sum += e;
      }
      if (n) R.l[r] += reduce_add(sum);
    }
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

inline void f32_to_f16_n(const float* src, uint16_t* dst, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) store_f16(dst + i, load(src + i));
  for (; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

inline void round_f16_n(const float* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) round_to_f16(load(src + i)).store_unaligned(dst + i);
  for (; i < n; ++i) dst[i] = f16_to_f32(f32_to_f16(src[i]));
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

inline void f16_to_f32_n(const uint16_t* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) load_f16(src + i).store_unaligned(dst + i);
  for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

// ---------------------------------------------------------------- probe

inline double fma_peak(size_t iters) {
  vf acc[12];
  for (int j = 0; j < 12; ++j) acc[j] = vf(float(j));
  const vf m(0.999999f), c(1e-7f);
  for (size_t i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) acc[j] = fmadd(acc[j], m, c);
  vf sum(0.0f);
  for (int j = 0; j < 12; ++j) sum += acc[j];
  volatile float sink = reduce_add(sum);
  (void)sink;
  return 24.0 * double(W) * double(iters);
}

// The quantized products of this ISA (defined by the including TU).
QuantProducts q8_0_products();
QuantProducts q4_0_products();
QuantProducts q4_K_products();
QuantProducts q5_K_products();
QuantProducts q6_K_products();
void quantize_q8_0(const float* x, void* blocks, Q8Sum* sums, size_t n);
void quantize_q8_K(const float* x, void* blocks, size_t n);
void quantize_q8_1(const float* x, void* blocks, size_t n);
QuantProducts q4_1_products();
QuantProducts q5_0_products();
QuantProducts q5_1_products();
QuantProducts iq4_nl_products();
QuantProducts q2_K_products();
QuantProducts q3_K_products();
QuantProducts iq4_xs_products();
double int8_peak(size_t iters);

inline const Kernels& table(const char* name) {
  static const Kernels k = [name] {
    Kernels t{};  // every entry by name (tests check that none is left null)
    t.isa = name;
    t.dot = dot;
    t.matvec_f32 = matvec<float>;
    t.matvec_f16 = matvec<uint16_t>;
    t.matmul_f32 = matmul<float>;
    t.matmul_f16 = matmul<uint16_t>;
    t.matvec_f32_panels = matvec_panels<float>;
    t.matvec_f16_panels = matvec_panels<uint16_t>;
    t.matmul_f32_panels = matmul_panels<float>;
    t.matmul_f16_panels = matmul_panels<uint16_t>;
    t.rmsnorm = rmsnorm;
    t.softmax = softmax;
    t.swiglu = swiglu;
    t.layernorm = layernorm;
    t.gelu = gelu;
    t.geglu = geglu;
    t.add = add;
    t.f16_to_f32 = f16_to_f32_n;
    t.f32_to_f16 = f32_to_f16_n;
    t.transpose_f32 = transpose_f32_n;
    t.transpose_f32_to_f16 = transpose_f32_to_f16_n;
    t.attention_f32 = attention_f32;
    t.attention_scores_f16 = attention_scores_f16;
    t.attention_weights_f16 = attention_weights_f16;
    t.attention_values_f16 = attention_values_f16;
    t.q8_0 = q8_0_products();
    t.q4_0 = q4_0_products();
    t.q4_K = q4_K_products();
    t.q5_K = q5_K_products();
    t.q6_K = q6_K_products();
    t.quantize_q8_0 = quantize_q8_0;
    t.quantize_q8_K = quantize_q8_K;
    t.quantize_q8_1 = quantize_q8_1;
    t.q4_1 = q4_1_products();
    t.q5_0 = q5_0_products();
    t.q5_1 = q5_1_products();
    t.iq4_nl = iq4_nl_products();
    t.q2_K = q2_K_products();
    t.q3_K = q3_K_products();
    t.iq4_xs = iq4_xs_products();
    t.fma_peak = fma_peak;
    t.int8_peak = int8_peak;
    t.f32_to_bf16 = f32_to_bf16_n;
    t.round_f16 = round_f16_n;
    t.bf16 = bf16_products("widened in registers");
    return t;
  }();
  return k;
}

}  // namespace qkv::ops::QKV_ISA_NS
