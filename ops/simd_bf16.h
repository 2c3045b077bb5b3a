// The BF16 products of simd_kernels.h (one ISA each): BF16 weights in
// panels of column pairs, widened to f32 in registers.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ops/ops.h"
#include "ops/simd_base.h"
#include "ops/simd_matmul.h"

namespace qkv::ops::QKV_ISA_NS {

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

}  // namespace qkv::ops::QKV_ISA_NS
