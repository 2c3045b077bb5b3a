// The float products of simd_kernels.h (one ISA each): the dot product,
// matvec and the register-tiled matmul over rows as stored, and the
// products over the panels the weights are packed into at load.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "ops/ops.h"
#include "ops/prefetch.h"
#include "ops/simd_base.h"

namespace qkv::ops::QKV_ISA_NS {

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

}  // namespace qkv::ops::QKV_ISA_NS
