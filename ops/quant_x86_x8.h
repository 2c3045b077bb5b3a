// The integer products over the row-interleaved layouts (quant.h's Block*x8,
// one per type): one 32-byte load holds a 4-byte piece of each of 8 rows,
// and one u8 x s8 dot product against the activations' matching 4 bytes
// (broadcast) adds to all 8 rows' sums at once: no horizontal sums, no
// per-row scale conversions. Included by quant_x86.h after QKV_DOT_ACC
// (acc + 4-byte u8 x s8 dot products in int32 lanes) and QKV_Q8_BIAS: 128
// where Q8_0 weights go through the dot product as w + 128 (unsigned; the
// sums then carry 128 * sum(x), taken off per block), 0 where the sign trick
// makes them unsigned instead; QKV_X8_VEC, the vector the batch product
// works in (X8Ymm below: one row group per ymm; X8Zmm of quant_x86_zmm.h:
// two groups per zmm, the same lanes' arithmetic, so the same bits); and
// QKV_X8_GROUPS, the vectors of row groups the batch product takes per pass.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "ops/ops.h"
#include "ops/prefetch.h"
#include "ops/quant.h"

namespace qkv::ops::QKV_ISA_NS {

// 4 activation bytes broadcast to all 8 lanes.
inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// What the x8 products need of a vector: one row group (8 rows, 8 int32 or
// float lanes) per ymm. `stride`: the bytes from a group's block to the next
// group's same block (unused with one group per vector).
struct X8Ymm {
  using I = __m256i;
  using F = __m256;
  static constexpr int kGroups = 1;
  static I load(const void* p, size_t) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
  static F load_halves(const uint16_t* p, size_t) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static I bcast4(const int8_t* p) { return QKV_ISA_NS::bcast4(p); }
  // Pieces of a block per vector (X8Pieces of quant_x86_zmm.h: 2); E, the
  // vector a tile's float epilogue runs in; fold, the integer sums as E
  // takes them.
  static constexpr int kPieces = 1;
  using E = X8Ymm;
  static I fold(I v) { return v; }
  // Bits a chunk's pieces share (Q5_K's fifth, Q6_K's high bits): X8Pieces
  // puts them in its high half shifted right by `next`, for the next piece.
  static I load_bits(const void* p, size_t stride, int) { return load(p, stride); }
  static I lanes(__m128i v) { return _mm256_broadcastsi128_si256(v); }  // v in every 128-bit lane
  static I set1_8(char c) { return _mm256_set1_epi8(c); }
  static I set1_32(int v) { return _mm256_set1_epi32(v); }
  static I and_(I a, I b) { return _mm256_and_si256(a, b); }
  static I or_(I a, I b) { return _mm256_or_si256(a, b); }
  static I xor_(I a, I b) { return _mm256_xor_si256(a, b); }
  static I high_nibbles(I q) { return _mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(0x0f)); }
  static I shuffle(I table, I idx) { return _mm256_shuffle_epi8(table, idx); }
  static I sign(I a, I b) { return _mm256_sign_epi8(a, b); }
  static I dot(I acc, I a, I b) {
    I r = QKV_DOT_ACC(acc, a, b);
    if constexpr (QKV_SHORT_SUMS) asm("" : "+x"(r));  // as dot_short
    return r;
  }
  // QKV_SHORT_SUMS: 32 byte products into int16 pairs added to acc's 16
  // int16 lanes, and those widened into int32 pairs added to an int32 acc.
  static I dot_short(I acc, I a, I b) {
    I r = _mm256_add_epi16(acc, _mm256_maddubs_epi16(a, b));
    asm("" : "+x"(r));  // in this order: GCC would otherwise regroup the adds and spill the products
    return r;
  }
  static I widen_short(I acc, I s) { return _mm256_add_epi32(acc, _mm256_madd_epi16(s, _mm256_set1_epi16(1))); }
  static I peak(I acc, I a, I b) { return QKV_PEAK_ACC(acc, a, b); }  // the probe's multiply
  static I sub_32(I a, I b) { return _mm256_sub_epi32(a, b); }
  static I add_32(I a, I b) { return _mm256_add_epi32(a, b); }
  static I mullo_32(I a, I b) { return _mm256_mullo_epi32(a, b); }
  static I madd_acc(I acc, I a, I b) { return QKV_MADD_ACC(acc, a, b); }  // + int16 pair products
  static I load_u8_to_32(const uint8_t* p, size_t) {  // 8 bytes, zero-extended to int32 lanes
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static I load_u8_to_16(const uint8_t* p, size_t) {  // 16 bytes, zero-extended to int16 lanes
    return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static I load_s8_to_16(const int8_t* p, size_t) {  // 16 bytes, sign-extended to int16 lanes
    return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static I lane32(__m256i v, int k) { return _mm256_permutevar8x32_epi32(v, _mm256_set1_epi32(k)); }  // v's lane k in every lane
  static I slli_16(I a, int n) { return _mm256_slli_epi16(a, n); }
  static I srli_16(I a, int n) { return _mm256_srli_epi16(a, n); }
  static I slli_32(I a, int n) { return _mm256_slli_epi32(a, n); }
  static I srli_32(I a, int n) { return _mm256_srli_epi32(a, n); }
  static I srai_32(I a, int n) { return _mm256_srai_epi32(a, n); }
  static I zero() { return _mm256_setzero_si256(); }
  static F zero_ps() { return _mm256_setzero_ps(); }
  static F set1_ps(float v) { return _mm256_set1_ps(v); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F fnmadd(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
  static F to_ps(I a) { return _mm256_cvtepi32_ps(a); }
  static void store(float* y, F v) { _mm256_storeu_ps(y, v); }
};

// A piece's 4 activation bytes at p in every lane (X8Pieces: the next
// piece's, at p + 4, in the high half).
template <class V>
inline typename V::I x8_bcast4(const int8_t* p) {
  if constexpr (V::kPieces == 2) return V::bcast4_two(p);
  else return V::bcast4(p);
}

// Pieces c of one block column of G vectors of row groups, against T
// activation rows: s[g][t] += vector g's rows' bytes . x[t]'s matching 4 bytes.
template <class V, int G, int T>
inline void x8_piece(typename V::I (&s)[G][T], const BlockQ8_0x8* const (&w)[G], size_t stride,
                     const BlockQ8_0* const (&x)[T], int c) {
  typename V::I q[G];
  for (int g = 0; g < G; ++g) q[g] = V::load(w[g]->qs + 32 * c, stride);
  if constexpr (QKV_Q8_BIAS != 0) {
    for (int g = 0; g < G; ++g) q[g] = V::xor_(q[g], V::set1_8(char(0x80)));  // w + 128
    for (int t = 0; t < T; ++t) {
      const auto xb = x8_bcast4<V>(x[t]->qs + 4 * c);
      for (int g = 0; g < G; ++g) s[g][t] = V::dot(s[g][t], q[g], xb);
    }
  } else {
    for (int t = 0; t < T; ++t) {
      const auto xb = x8_bcast4<V>(x[t]->qs + 4 * c);
      for (int g = 0; g < G; ++g) s[g][t] = V::dot(s[g][t], V::sign(q[g], q[g]), V::sign(xb, q[g]));
    }
  }
}

// The dot product of unsigned levels of at most 5 bits: int16 sums with
// QKV_SHORT_SUMS (x8_tile widens them), else as V::dot.
template <class V>
inline typename V::I x8_dot(typename V::I acc, typename V::I a, typename V::I b) {
  if constexpr (QKV_SHORT_SUMS) return V::dot_short(acc, a, b);
  else return V::dot(acc, a, b);
}

// The nibble types: piece c's low nibbles are values 4c..4c+3 of each row,
// its high ones 16+4c..16+4c+3; lo and hi hold them as unsigned bytes.
template <class V, int G, int T, class Act>
inline void x8_nibble_dots(typename V::I (&s)[G][T], const typename V::I (&lo)[G], const typename V::I (&hi)[G],
                           const Act* const (&x)[T], int c) {
  for (int t = 0; t < T; ++t) {
    const auto xlo = x8_bcast4<V>(x[t]->qs + 4 * c), xhi = x8_bcast4<V>(x[t]->qs + 16 + 4 * c);
    for (int g = 0; g < G; ++g) {
      s[g][t] = x8_dot<V>(s[g][t], lo[g], xlo);
      s[g][t] = x8_dot<V>(s[g][t], hi[g], xhi);
    }
  }
}

// The 32-byte piece c of qs (each vector group's, `stride` apart): its low
// and its high nibbles as unsigned bytes.
template <class V>
inline void x8_unpack_nibbles(const uint8_t* qs, size_t stride, int c, typename V::I& lo, typename V::I& hi) {
  const auto q = V::load(qs + 32 * c, stride);
  lo = V::and_(q, V::set1_8(0x0f));
  hi = V::high_nibbles(q);
}

// Piece p's levels from a run of bytes that holds two 32-byte vectors of
// extra bits (one for the low nibbles' values, one for the high ones'), then
// the nibbles: each nibble or-ed with high(its vector of bits, p) (Q5_K's
// fifth bits, Q6_K's two high bits; `next`: V::load_bits's).
template <class V, class High>
inline void x8_unpack_with_bits(const uint8_t* bits, size_t stride, int p, int next, typename V::I& lo, typename V::I& hi,
                                High high) {
  x8_unpack_nibbles<V>(bits + 64, stride, p, lo, hi);
  lo = V::or_(lo, high(V::load_bits(bits, stride, next), p));
  hi = V::or_(hi, high(V::load_bits(bits + 32, stride, next), p));
}

// Bit p of each byte of h moved to 0x10 (p < 8), the other bits cleared.
template <class V>
inline typename V::I x8q5_fifth(typename V::I h, int p) {
  const auto m = V::set1_8(0x10);
  if (p < 4) return V::and_(V::slli_16(h, 4 - p), m);
  return V::and_(p == 4 ? h : V::srli_16(h, p - 4), m);
}

// Bits 2k, 2k + 1 of each byte of h at 0x30.
template <class V>
inline typename V::I x8q6_high(typename V::I h, int k) {
  const auto m = V::set1_8(0x30);
  if (k < 2) return V::and_(V::slli_16(h, 4 - 2 * k), m);
  return V::and_(k == 2 ? h : V::srli_16(h, 2), m);
}

// The fifth bits of piece c (quant.h's Q5_0x8 qh: byte 4r + i of a group
// holds them for row r's values 4p + i in bit p, 16 + 4p + i in bit 4 + p),
// or-ed into the piece's levels as 0x10: a shift and a mask each.
template <class V>
inline void x8_add_fifth_bits(const uint8_t* qh8, size_t stride, int c, typename V::I& lo, typename V::I& hi) {
  const auto qh = V::load_bits(qh8, stride, 1);
  lo = V::or_(lo, x8q5_fifth<V>(qh, c));
  hi = V::or_(hi, x8q5_fifth<V>(qh, 4 + c));
}

// Q4_0 / Q4_1: nibbles; Q5_0 / Q5_1: nibbles and fifth bits.
template <class V, class Packed, class Act, int G, int T>
inline void x8_piece_nibbles(typename V::I (&s)[G][T], const Packed* const (&w)[G], size_t stride, const Act* const (&x)[T],
                             int c) {
  typename V::I lo[G], hi[G];
  for (int g = 0; g < G; ++g) {
    x8_unpack_nibbles<V>(w[g]->qs, stride, c, lo[g], hi[g]);
    if constexpr (std::is_same_v<Packed, BlockQ5_0x8> || std::is_same_v<Packed, BlockQ5_1x8>)
      x8_add_fifth_bits<V>(w[g]->qh, stride, c, lo[g], hi[g]);
  }
  x8_nibble_dots<V, G, T, Act>(s, lo, hi, x, c);
}

// ---------------------------------------------------------------- byte layouts
//
// A prompt's groups of the types whose levels take the most unpacking (Q5_0,
// Q5_1, Q5_K, Q6_K: nibbles merged with fifth or high bits), unpacked once per
// pass of groups to a byte per level in a per-thread scratch, which the tiles
// then read for every token (x8_matmul_bytes, x8k_matmul_bytes): the packed
// layout's scales byte for byte, then each piece's low-nibble values and its
// high-nibble ones as unsigned bytes, 32 each (qs[piece][0 or 1], except as noted).
struct BlockQ5_0x8Bytes {  // qs in Q8_0x8's order: piece c's low values at 32c, its high ones at 32 (4 + c)
  uint16_t d[8];
  uint8_t qs[8][32];
};
struct BlockQ5_1x8Bytes {  // likewise
  uint16_t d[8], m[8];
  uint8_t qs[8][32];
};
struct BlockQ5_Kx8Bytes {  // piece 8c + p: chunk c's piece p (sub-blocks 2c, 2c + 1)
  uint16_t d[8], dmin[8];
  uint8_t sc[8][8];
  uint8_t m2[4][8][2];
  uint8_t qs[4][8][2][32];
};
struct BlockQ6_Kx8Bytes {  // piece 4k + u: quad k's piece u
  uint16_t d[8];
  int8_t sc2[8][8][2];
  uint8_t qs[8][4][2][32];
};
template <class Packed> struct x8_bytes { using type = void; };
template <> struct x8_bytes<BlockQ5_0x8> { using type = BlockQ5_0x8Bytes; };
template <> struct x8_bytes<BlockQ5_1x8> { using type = BlockQ5_1x8Bytes; };
template <> struct x8_bytes<BlockQ5_Kx8> { using type = BlockQ5_Kx8Bytes; };
template <> struct x8_bytes<BlockQ6_Kx8> { using type = BlockQ6_Kx8Bytes; };
template <class Packed>
constexpr bool x8_is_q5_bytes = std::is_same_v<Packed, BlockQ5_0x8Bytes> || std::is_same_v<Packed, BlockQ5_1x8Bytes>;

// Piece i of a packed block's levels (lo: its low-nibble values, hi: its
// high-nibble ones), unpacked as the packed layout's tiles do.
inline void x8_piece_levels(const BlockQ5_0x8& w, int i, __m256i& lo, __m256i& hi) {
  x8_unpack_nibbles<X8Ymm>(w.qs, 0, i, lo, hi);
  x8_add_fifth_bits<X8Ymm>(w.qh, 0, i, lo, hi);
}
inline void x8_piece_levels(const BlockQ5_1x8& w, int i, __m256i& lo, __m256i& hi) {
  x8_unpack_nibbles<X8Ymm>(w.qs, 0, i, lo, hi);
  x8_add_fifth_bits<X8Ymm>(w.qh, 0, i, lo, hi);
}
inline void x8_piece_levels(const BlockQ5_Kx8& w, int i, __m256i& lo, __m256i& hi) {
  x8_unpack_with_bits<X8Ymm>(w.chunks[i / 8], 0, i % 8, 1, lo, hi, [](__m256i h, int k) { return x8q5_fifth<X8Ymm>(h, k); });
}
inline void x8_piece_levels(const BlockQ6_Kx8& w, int i, __m256i& lo, __m256i& hi) {
  x8_unpack_with_bits<X8Ymm>(w.quads[i / 4], 0, i % 4, 2, lo, hi, [](__m256i h, int k) { return x8q6_high<X8Ymm>(h, k); });
}

// The 32 bytes of qs that piece i's low (half 0) or high (half 1) values fill.
template <class Bytes>
constexpr size_t x8_bytes_slot(int i, int half) {
  if constexpr (std::is_same_v<Bytes, BlockQ5_0x8Bytes> || std::is_same_v<Bytes, BlockQ5_1x8Bytes>) return size_t(4 * half + i);
  else return size_t(2 * i + half);
}

// n blocks of groups into their byte layout.
template <class Packed, class Bytes>
inline void x8_to_bytes(const Packed* w, Bytes* out, size_t n) {
  constexpr size_t kHead = offsetof(Bytes, qs);
  constexpr int kPieces = int(sizeof(Bytes::qs) / 64);
  for (size_t b = 0; b < n; ++b) {
    std::memcpy(&out[b], &w[b], kHead);  // the scales, laid out alike
    uint8_t* qs = reinterpret_cast<uint8_t*>(&out[b]) + kHead;
    #pragma GCC unroll 32
    for (int i = 0; i < kPieces; ++i) {  // unrolled: each piece's shifts by constants
      __m256i lo, hi;
      x8_piece_levels(w[b], i, lo, hi);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + 32 * x8_bytes_slot<Bytes>(i, 0)), lo);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + 32 * x8_bytes_slot<Bytes>(i, 1)), hi);
    }
  }
}
// The scales come first in both layouts, alike.
static_assert(offsetof(BlockQ5_0x8Bytes, qs) == offsetof(BlockQ5_0x8, qh), "Q5_0 scales");
static_assert(offsetof(BlockQ5_1x8Bytes, qs) == offsetof(BlockQ5_1x8, qh), "Q5_1 scales");
static_assert(offsetof(BlockQ5_Kx8Bytes, qs) == offsetof(BlockQ5_Kx8, chunks), "Q5_K scales");
static_assert(offsetof(BlockQ6_Kx8Bytes, qs) == offsetof(BlockQ6_Kx8, quads), "Q6_K scales");

// Piece c (values 4c .. 4c + 3 of each row, Q8_0x8's order) of the Q5_0 / Q5_1
// byte layouts: unsigned levels straight into the dot products.
template <class V, class Packed, class Act, int G, int T>
inline void x8_piece_bytes(typename V::I (&s)[G][T], const Packed* const (&w)[G], size_t stride, const Act* const (&x)[T],
                           int c) {
  typename V::I q[G];
  for (int g = 0; g < G; ++g) q[g] = V::load(w[g]->qs[c], stride);  // values 4c .. 4c + 3
  for (int t = 0; t < T; ++t) {
    const auto xb = x8_bcast4<V>(x[t]->qs + 4 * c);
    for (int g = 0; g < G; ++g) s[g][t] = x8_dot<V>(s[g][t], q[g], xb);
  }
}

// IQ4_NL's and IQ4_XS's levels in every 128-bit lane, as the products take
// them: + 128 (unsigned) for VNNI, signed for the sign trick.
template <class V>
inline typename V::I iq4_levels() {
  const auto t = V::lanes(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)));
  return QKV_Q8_BIAS != 0 ? V::xor_(t, V::set1_8(char(0x80))) : t;
}

// IQ4_NL: the nibbles looked up in the level table, then as Q8_0's bytes.
template <class V, int G, int T>
inline void x8_piece(typename V::I (&s)[G][T], const BlockIQ4_NLx8* const (&w)[G], size_t stride,
                     const BlockQ8_0* const (&x)[T], int c) {
  const auto table = iq4_levels<V>();
  typename V::I lo[G], hi[G];
  for (int g = 0; g < G; ++g) {
    x8_unpack_nibbles<V>(w[g]->qs, stride, c, lo[g], hi[g]);
    lo[g] = V::shuffle(table, lo[g]);
    hi[g] = V::shuffle(table, hi[g]);
  }
  if constexpr (QKV_Q8_BIAS != 0) {
    x8_nibble_dots<V, G, T, BlockQ8_0>(s, lo, hi, x, c);
  } else {
    for (int t = 0; t < T; ++t) {
      const auto xlo = x8_bcast4<V>(x[t]->qs + 4 * c), xhi = x8_bcast4<V>(x[t]->qs + 16 + 4 * c);
      for (int g = 0; g < G; ++g) {
        s[g][t] = V::dot(s[g][t], V::sign(lo[g], lo[g]), V::sign(xlo, lo[g]));
        s[g][t] = V::dot(s[g][t], V::sign(hi[g], hi[g]), V::sign(xhi, hi[g]));
      }
    }
  }
}

// The activation blocks each layout takes: Q8_1 (with d * sum) for the _1 types.
template <class Packed> struct x8_act { using type = BlockQ8_0; };
template <> struct x8_act<BlockQ4_1x8> { using type = BlockQ8_1; };
template <> struct x8_act<BlockQ5_1x8> { using type = BlockQ8_1; };
template <> struct x8_act<BlockQ5_1x8Bytes> { using type = BlockQ8_1; };

template <class Packed> constexpr int x8_pieces = 0;
template <> constexpr int x8_pieces<BlockQ8_0x8> = 8;  // 32 bytes per row and block
template <> constexpr int x8_pieces<BlockQ4_0x8> = 4;  // 16
template <> constexpr int x8_pieces<BlockQ5_0x8> = 4;  // 16 (and the fifth bits)
template <> constexpr int x8_pieces<BlockQ4_1x8> = 4;
template <> constexpr int x8_pieces<BlockQ5_1x8> = 4;
template <> constexpr int x8_pieces<BlockIQ4_NLx8> = 4;
template <> constexpr int x8_pieces<BlockQ5_0x8Bytes> = 8;
template <> constexpr int x8_pieces<BlockQ5_1x8Bytes> = 8;
// With QKV_SHORT_SUMS, the pieces whose int16 sums x8_tile may add before
// widening them (0: every piece widened at once): each maddubs pair is at most
// 2 * 15 * 128 = 3840 for nibbles (8 in a block's 4 pieces: 30720 < 32768),
// 2 * 31 * 128 = 7936 with a fifth bit (4: 2 packed pieces, 4 byte pieces).
template <class Packed> constexpr int x8_short_run = 0;
template <> constexpr int x8_short_run<BlockQ4_0x8> = QKV_SHORT_SUMS ? 4 : 0;
template <> constexpr int x8_short_run<BlockQ4_1x8> = QKV_SHORT_SUMS ? 4 : 0;
template <> constexpr int x8_short_run<BlockQ5_0x8> = QKV_SHORT_SUMS ? 2 : 0;
template <> constexpr int x8_short_run<BlockQ5_1x8> = QKV_SHORT_SUMS ? 2 : 0;
template <> constexpr int x8_short_run<BlockQ5_0x8Bytes> = QKV_SHORT_SUMS ? 4 : 0;
template <> constexpr int x8_short_run<BlockQ5_1x8Bytes> = QKV_SHORT_SUMS ? 4 : 0;

// What the unsigned weight bytes add: 128 (Q8_0 on VNNI) or 8 (Q4_0's
// nibbles, which are values + 8) times the activations' sum.
template <class Packed> constexpr int x8_offset = 0;
template <> constexpr int x8_offset<BlockQ8_0x8> = QKV_Q8_BIAS;
template <> constexpr int x8_offset<BlockQ4_0x8> = 8;
template <> constexpr int x8_offset<BlockQ5_0x8> = 16;
template <> constexpr int x8_offset<BlockQ5_0x8Bytes> = 16;
template <> constexpr int x8_offset<BlockIQ4_NLx8> = QKV_Q8_BIAS;

// acc[g][t] (vector g's rows' sums for activation row t) += w . x[t] over nb
// blocks; w: G * V::kGroups consecutive groups of nb blocks each.
template <class V, class Packed, int G, int T>
inline void x8_tile(const Packed* w, const typename x8_act<Packed>::type* x0, const Q8Sum* xs0, size_t nb,
                    typename V::E::F (&acc)[G][T]) {
  using Act = typename x8_act<Packed>::type;
  const size_t stride = nb * sizeof(Packed);
  for (size_t b = 0; b < nb; ++b) {
    const Packed* wb[G];
    for (int g = 0; g < G; ++g) wb[g] = w + g * V::kGroups * nb + b;
    const Act* x[T];
    for (int t = 0; t < T; ++t) x[t] = x0 + t * nb + b;
    typename V::I s[G][T], s16[G][T];
    for (int g = 0; g < G; ++g)
      for (int t = 0; t < T; ++t) s[g][t] = s16[g][t] = V::zero();
    constexpr int kRun = x8_short_run<Packed>;
    for (int c = 0; c < x8_pieces<Packed>; c += V::kPieces) {
      if constexpr (std::is_same_v<Packed, BlockQ8_0x8> || std::is_same_v<Packed, BlockIQ4_NLx8>) {
        x8_piece<V, G, T>(s, wb, stride, x, c);
      } else {
        auto& sums = kRun > 0 ? s16 : s;
        if constexpr (x8_is_q5_bytes<Packed>)
          x8_piece_bytes<V, Packed, Act, G, T>(sums, wb, stride, x, c);
        else
          x8_piece_nibbles<V, Packed, Act, G, T>(sums, wb, stride, x, c);  // Q4_0, Q4_1, Q5_0, Q5_1
        if constexpr (kRun > 0) {
          if ((c + 1) % kRun == 0) {
            for (int g = 0; g < G; ++g)
              for (int t = 0; t < T; ++t) s[g][t] = V::widen_short(s[g][t], s16[g][t]), s16[g][t] = V::zero();
          }
        }
      }
    }
    using E = typename V::E;
    for (int g = 0; g < G; ++g) {
      const auto wd = E::load_halves(wb[g]->d, stride);
      if constexpr (std::is_same_v<Act, BlockQ8_1>) {
        // The _1 types: d_w d_x (q . x) + m_w s_x, s_x = the block's d * sum(x)
        // (both in f32 in its Q8Sum, converted once per block).
        const auto wm = E::load_halves(wb[g]->m, stride);
        for (int t = 0; t < T; ++t) {
          const Q8Sum& xs = xs0[t * nb + b];
          acc[g][t] = E::fmadd(E::mul(wd, E::set1_ps(xs.d)), E::to_ps(V::fold(s[g][t])), acc[g][t]);
          acc[g][t] = E::fmadd(wm, E::set1_ps(xs.sf), acc[g][t]);
        }
      } else {
        for (int t = 0; t < T; ++t) {
          const Q8Sum& xs = xs0[t * nb + b];
          auto si = V::fold(s[g][t]);
          if constexpr (x8_offset<Packed> != 0) si = E::sub_32(si, E::set1_32(x8_offset<Packed> * xs.s));
          acc[g][t] = E::fmadd(E::mul(wd, E::set1_ps(xs.d)), E::to_ps(si), acc[g][t]);
        }
      }
    }
  }
}

// Tokens from which a batch unpacks each pass of groups to bytes once (fewer:
// the unpacking would cost more than the tiles save).
constexpr size_t kBytesMinTokens = 8;

// The pass after the one at group g (pass groups of nb blocks each, up to g1),
// to prefetch over the current pass's M / T + 1 tiles of T tokens.
template <class Packed>
inline SpreadPrefetch next_pass(const Packed* w, size_t nb, size_t g, size_t pass, size_t g1, size_t M, int T) {
  return SpreadPrefetch(w + std::min(g + pass, g1) * nb, w + std::min(g + 2 * pass, g1) * nb, M / size_t(T) + 1);
}

// Y[m + t, 8 g .. 8 g + 8 V::kGroups G) for T activation rows from m and the groups from g.
template <class V, class Packed, int G, int T>
inline void x8_rows(const Packed* w, const typename x8_act<Packed>::type* xb, const Q8Sum* xs, float* y, size_t nb,
                    size_t ldy, size_t m, size_t g) {
  typename V::F acc[G][T];
  for (int i = 0; i < G; ++i)
    for (int t = 0; t < T; ++t) acc[i][t] = V::zero_ps();
  x8_tile<V, Packed, G, T>(w + g * nb, xb + m * nb, xs ? xs + m * nb : nullptr, nb, acc);
  for (int i = 0; i < G; ++i)
    for (int t = 0; t < T; ++t) V::store(y + (m + t) * ldy + 8 * (g + V::kGroups * i), acc[i][t]);
}

// One token: a group at a time, in QKV_X8_GEMV_VEC (as x8k_matvec below).
template <class Packed>
inline void x8_matvec(const void* packed, const void* xq, const Q8Sum* xs, float* y, size_t n, size_t g0, size_t g1) {
  const Packed* w = static_cast<const Packed*>(packed);
  using Act = typename x8_act<Packed>::type;
  const size_t nb = n / kQK8_0;
  for (size_t g = g0; g < g1; ++g) {
    X8Ymm::F acc[1][1] = {{X8Ymm::zero_ps()}};
    x8_tile<QKV_X8_GEMV_VEC, Packed, 1, 1>(w + g * nb, static_cast<const Act*>(xq), xs, nb, acc);
    X8Ymm::store(y + 8 * g, acc[0][0]);
  }
}

// G vectors of groups (their blocks stay in L1) against every T activation rows in turn.
// Meanwhile `next` comes into L2, a share before each tile.
template <class V, class Packed, int G, int T = 4>
inline void x8_groups(const Packed* w, const typename x8_act<Packed>::type* xb, const Q8Sum* xs, float* y, size_t M,
                      size_t nb, size_t ldy, size_t g, SpreadPrefetch next = {}) {
  size_t m = 0;
  for (; m + T <= M; m += T) next.next(), x8_rows<V, Packed, G, T>(w, xb, xs, y, nb, ldy, m, g);
  next.next();
  if constexpr (T > 4)
    if (m + 4 <= M) x8_rows<V, Packed, G, 4>(w, xb, xs, y, nb, ldy, m, g), m += 4;
  switch (M - m) {
    case 3: x8_rows<V, Packed, G, 3>(w, xb, xs, y, nb, ldy, m, g); break;
    case 2: x8_rows<V, Packed, G, 2>(w, xb, xs, y, nb, ldy, m, g); break;
    case 1: x8_rows<V, Packed, G, 1>(w, xb, xs, y, nb, ldy, m, g); break;
    default: break;
  }
}

// The byte layouts' batch products: each full pass of kPass groups unpacked
// to bytes in this thread's scratch (grown once), then pass(bytes, g, next)
// runs the tiles over every token while the next pass comes into L2; the
// groups after the last full pass go to tail(g) as packed. The bytes give the
// same integer sums as the packed levels, so the same bits.
template <class Packed, size_t kPass, int kT, class Pass, class Tail>
inline void bytes_passes(const Packed* w, size_t M, size_t nb, size_t g0, size_t g1, Pass pass, Tail tail) {
  using Bytes = typename x8_bytes<Packed>::type;
  thread_local std::vector<Bytes> scratch;
  if (scratch.size() < kPass * nb) scratch.resize(kPass * nb);
  size_t g = g0;
  for (; g + kPass <= g1; g += kPass) {
    x8_to_bytes(w + g * nb, scratch.data(), kPass * nb);
    pass(scratch.data(), g, next_pass(w, nb, g, kPass, g1, M, kT));
  }
  tail(g);
}

// Q5_0 / Q5_1 batches on bytes (bytes_passes).
template <class Packed>
inline void x8_matmul_bytes(const void* packed, const void* xq, const Q8Sum* xs, float* y, size_t M, size_t n,
                            size_t ldy, size_t g0, size_t g1) {
  using V = QKV_X8_VEC;
  using Bytes = typename x8_bytes<Packed>::type;
  const size_t nb = n / kQK8_0;
  const Packed* w = static_cast<const Packed*>(packed);
  const auto* xb = static_cast<const typename x8_act<Packed>::type*>(xq);
  constexpr int kG = QKV_X8_GROUPS, kT = QKV_X8_GROUPS == 2 ? 5 : 4;
  bytes_passes<Packed, kG * V::kGroups, kT>(
      w, M, nb, g0, g1,
      [&](const Bytes* b, size_t g, SpreadPrefetch next) {
        x8_groups<V, Bytes, kG, kT>(b, xb, xs, y + 8 * g, M, nb, ldy, 0, next);
      },
      [&](size_t g) {
        for (; g + V::kGroups <= g1; g += V::kGroups) x8_groups<V, Packed, 1>(w, xb, xs, y, M, nb, ldy, g);
        for (; g < g1; ++g) x8_groups<X8Ymm, Packed, 1>(w, xb, xs, y, M, nb, ldy, g);
      });
}

// QKV_X8_GROUPS vectors of QKV_X8_VEC's groups at a time (2 where registers
// allow: the activations' bytes, broadcast once, then feed twice the rows)
// against 5 activation rows (Zen 5, against 4: Q8_0, Q4_0, IQ4_NL and Q5_1
// +6-7%, Q4_1 +3%, Q5_0 the same; 6 rows spill), then one vector, then
// single groups in ymm. Every row's sums are the same operations in the same
// order whichever way it is taken.
template <class Packed>
inline void x8_matmul(const void* packed, const void* xq, const Q8Sum* xs, float* y, size_t M, size_t n, size_t ldy,
                      size_t g0, size_t g1) {
  using V = QKV_X8_VEC;
  if constexpr (!std::is_void_v<typename x8_bytes<Packed>::type>)
    if (M >= kBytesMinTokens) return x8_matmul_bytes<Packed>(packed, xq, xs, y, M, n, ldy, g0, g1);
  const size_t nb = n / kQK8_0;
  const Packed* w = static_cast<const Packed*>(packed);
  const auto* xb = static_cast<const typename x8_act<Packed>::type*>(xq);
  constexpr int kG = QKV_X8_GROUPS, kT = QKV_X8_GROUPS == 2 ? 5 : 4;
  constexpr size_t kPass = kG * V::kGroups;
  size_t g = g0;
  for (; g + kPass <= g1; g += kPass)
    x8_groups<V, Packed, kG, kT>(w, xb, xs, y, M, nb, ldy, g, next_pass(w, nb, g, kPass, g1, M, kT));
  for (; g + V::kGroups <= g1; g += V::kGroups) x8_groups<V, Packed, 1>(w, xb, xs, y, M, nb, ldy, g);
  for (; g < g1; ++g) x8_groups<X8Ymm, Packed, 1>(w, xb, xs, y, M, nb, ldy, g);
}

// ------------------------------------------- the 256-value types' pieces
//
// The loops over a chunk's pieces carry `#pragma GCC unroll`: GCC 12 leaves
// them rolled and copies every accumulator to another register on each pass
// (IQ4_XS and Q5_K batch products ran at 36-38% of the int8 probe, 55%
// unrolled; Q6_K 40 -> 46%, Q3_K 46 -> 50%).

// The first and the second int16 of each int32 lane (a scale pair), sign-extended.
template <class V>
inline typename V::I x8_pair_first(typename V::I pairs) { return V::srai_32(V::slli_32(pairs, 16), 16); }
template <class V>
inline typename V::I x8_pair_second(typename V::I pairs) { return V::srai_32(pairs, 16); }

// Piece p of 64-value chunk c in Q4_Kx8's order (lo: values 64c + 4p + i,
// hi: 64c + 32 + 4p + i, as unsigned levels) of G vectors of groups against
// T Q8_K activation rows: each activation broadcast feeds the G vectors.
template <class V, int G, int T>
inline void x8k_piece_dots(typename V::I (&slo)[G][T], typename V::I (&shi)[G][T], const typename V::I (&lo)[G],
                           const typename V::I (&hi)[G], const BlockQ8_K* const (&x)[T], int c, int p) {
  for (int t = 0; t < T; ++t) {
    const auto xlo = x8_bcast4<V>(x[t]->qs + 64 * c + 4 * p), xhi = x8_bcast4<V>(x[t]->qs + 64 * c + 32 + 4 * p);
    for (int g = 0; g < G; ++g) {
      slo[g][t] = x8_dot<V>(slo[g][t], lo[g], xlo);
      shi[g][t] = x8_dot<V>(shi[g][t], hi[g], xhi);
    }
  }
}

// Lane k (k < 4, in both halves): the pair (sum of x over sub-block 2k of
// 32 values, over 2k + 1) as two int16, from the sums of 16.
inline __m256i x8k_pair_sums(const BlockQ8_K* x) {
  const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x->bsums));
  return _mm256_broadcastsi128_si256(_mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1)));
}

// ---------------------------------------------------------------- Q4_K, Q5_K, IQ4_XS

// Q4_K groups against T Q8_K activation rows. Per super-block and 64-value
// chunk c: each 32-byte piece load gives 8 rows' 4 bytes, whose low nibbles
// belong to sub-block 2c and high ones to 2c + 1; their sums (8 rows in the
// 8 lanes) take the rows' scales by a 32-bit multiply. The mins go against
// the activations' sums of 32 by 16-bit multiply-adds, two sub-blocks at a time.
// Q5_K (BlockQ5_Kx8) likewise, each piece's fifth bits (bit p of each byte
// of the chunk's two 32-byte vectors) added as 0x10; BlockQ5_Kx8Bytes, its
// levels read as bytes.
// IQ4_XS (BlockIQ4_XSx8) likewise, the nibbles looked up in iq4_levels (+ 128
// for VNNI's unsigned operand: the sums then carry 128 sum_j sc_j (sum of x
// over sub-block j), taken off per super-block the way Q4_K's mins are;
// signed for the sign trick), its signed scales in pairs (sc2), no mins.
template <class V, int G, int T, class Packed>
inline void x8q45_tile(const Packed* w, const BlockQ8_K* x0, size_t nb, typename V::E::F (&acc)[G][T]) {
  using I = typename V::I;
  using E = typename V::E;
  constexpr bool kFifth = std::is_same_v<Packed, BlockQ5_Kx8>, kIq4 = std::is_same_v<Packed, BlockIQ4_XSx8>;
  constexpr bool kBytes = std::is_same_v<Packed, BlockQ5_Kx8Bytes>;
  constexpr bool kSignTrick = kIq4 && QKV_Q8_BIAS == 0;  // signed levels: no offset to take off
  // With QKV_SHORT_SUMS, pieces summed in int16 before their scales multiply
  // them (madd): 8 of nibbles (8 * 2 * 15 * 128 < 32768), 4 with a fifth bit.
  constexpr int kRun = !QKV_SHORT_SUMS || kSignTrick ? 0 : kFifth || kBytes ? 4 : 8;
  const size_t stride = nb * sizeof(Packed);
  [[maybe_unused]] I table;
  if constexpr (kIq4) table = iq4_levels<V>();
  for (size_t b = 0; b < nb; ++b) {
    const Packed* W[G];
    for (int g = 0; g < G; ++g) W[g] = w + g * V::kGroups * nb + b;
    const BlockQ8_K* x[T];
    for (int t = 0; t < T; ++t) x[t] = x0 + t * nb + b;
    I isum[G][T];
    for (int g = 0; g < G; ++g)
      for (int t = 0; t < T; ++t) isum[g][t] = V::zero();
    for (int c = 0; c < 4; ++c) {
      // Sub-blocks 2c (low nibbles) and 2c + 1 (high)'s scales in int32 lanes
      // (with short sums: in both int16 halves of each, for madd), loaded
      // where they multiply (registers are few on AVX2).
      const auto scales = [&](int g, I& sc_lo, I& sc_hi) {
        if constexpr (kIq4) {
          const I pair = V::load_s8_to_16(W[g]->sc2[c][0], stride);
          sc_lo = x8_pair_first<V>(pair), sc_hi = x8_pair_second<V>(pair);
        } else {
          sc_lo = V::load_u8_to_32(W[g]->sc[2 * c], stride), sc_hi = V::load_u8_to_32(W[g]->sc[2 * c + 1], stride);
        }
        if constexpr (kRun > 0) sc_lo = V::or_(sc_lo, V::slli_32(sc_lo, 16)), sc_hi = V::or_(sc_hi, V::slli_32(sc_hi, 16));
      };
      I slo[G][T], shi[G][T];
      for (int g = 0; g < G; ++g)
        for (int t = 0; t < T; ++t) slo[g][t] = shi[g][t] = V::zero();
      #pragma GCC unroll 8
      for (int p = 0; p < 8; p += V::kPieces) {
        I lo[G], hi[G];
        for (int g = 0; g < G; ++g) {
          if constexpr (kBytes) {
            lo[g] = V::load(W[g]->qs[c][p][0], stride);
            hi[g] = V::load(W[g]->qs[c][p][1], stride);
          } else if constexpr (kFifth) {
            x8_unpack_with_bits<V>(W[g]->chunks[c], stride, p, 1, lo[g], hi[g],
                                   [](typename V::I h, int k) { return x8q5_fifth<V>(h, k); });
          } else {
            x8_unpack_nibbles<V>(W[g]->qs, stride, 8 * c + p, lo[g], hi[g]);
            if constexpr (kIq4) {
              lo[g] = V::shuffle(table, lo[g]);
              hi[g] = V::shuffle(table, hi[g]);
            }
          }
        }
        if constexpr (kSignTrick) {
          for (int g = 0; g < G; ++g) {
            const I alo = V::sign(lo[g], lo[g]), ahi = V::sign(hi[g], hi[g]);
            for (int t = 0; t < T; ++t) {
              slo[g][t] = V::dot(slo[g][t], alo, V::sign(x8_bcast4<V>(x[t]->qs + 64 * c + 4 * p), lo[g]));
              shi[g][t] = V::dot(shi[g][t], ahi, V::sign(x8_bcast4<V>(x[t]->qs + 64 * c + 32 + 4 * p), hi[g]));
            }
          }
        } else {
          x8k_piece_dots<V, G, T>(slo, shi, lo, hi, x, c, p);
        }
        if constexpr (kRun > 0) {  // the int16 sums times the scales, into int32
          if ((p + 1) % kRun == 0) {
            for (int g = 0; g < G; ++g) {
              I sc_lo, sc_hi;
              scales(g, sc_lo, sc_hi);
              for (int t = 0; t < T; ++t) {
                isum[g][t] = V::madd_acc(V::madd_acc(isum[g][t], slo[g][t], sc_lo), shi[g][t], sc_hi);
                slo[g][t] = shi[g][t] = V::zero();
              }
            }
          }
        }
      }
      if constexpr (kRun == 0)
        for (int g = 0; g < G; ++g) {
          I sc_lo, sc_hi;
          scales(g, sc_lo, sc_hi);
          for (int t = 0; t < T; ++t)
            isum[g][t] = V::add_32(isum[g][t], V::add_32(V::mullo_32(slo[g][t], sc_lo), V::mullo_32(shi[g][t], sc_hi)));
        }
    }
    __m256i bp[T];  // the activations' sums of 32, once for every vector of groups
    if constexpr (!kSignTrick)
      for (int t = 0; t < T; ++t) bp[t] = x8k_pair_sums(x[t]);
    for (int g = 0; g < G; ++g) {
      const auto d = E::load_halves(W[g]->d, stride);
      [[maybe_unused]] typename E::F dmin;
      if constexpr (!kIq4) dmin = E::load_halves(W[g]->dmin, stride);
      for (int t = 0; t < T; ++t) {
        const auto xd = E::set1_ps(x[t]->d);
        typename E::I si = V::fold(isum[g][t]), msum = E::zero();
        if constexpr (kIq4) {  // the offset: 128 sum_j sc_j (sum of x over sub-block j)
          if constexpr (!kSignTrick) {
            for (int k = 0; k < 4; ++k) msum = E::madd_acc(msum, E::load_s8_to_16(W[g]->sc2[k][0], stride), E::lane32(bp[t], k));
            si = E::sub_32(si, E::slli_32(msum, 7));
          }
          acc[g][t] = E::fmadd(E::mul(d, xd), E::to_ps(si), acc[g][t]);
        } else {  // the mins
          for (int k = 0; k < 4; ++k) msum = E::madd_acc(msum, E::load_u8_to_16(W[g]->m2[k][0], stride), E::lane32(bp[t], k));
          acc[g][t] = E::fmadd(E::mul(d, xd), E::to_ps(si), acc[g][t]);
          acc[g][t] = E::fnmadd(E::mul(dmin, xd), E::to_ps(msum), acc[g][t]);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- Q6_K

// acc + s * sc in int32 lanes. Int16: a 16-value sub-block's byte products
// fit in 16 bits where the levels are small (Q2_K: 3 * 128 * 16, Q3_K:
// 7 * 128 * 16), and sc holds the scale in each lane's low int16 over a zero
// one, so one 16-bit multiply-add (VNNI: vpdpwssd) does it exactly, where a
// 32-bit multiply and an add take longer (Q6_K's 63 * 128 * 16 does not fit).
template <class V, bool Int16>
inline typename V::I x8_scale_sum(typename V::I acc, typename V::I s, typename V::I sc) {
  if constexpr (Int16) return V::madd_acc(acc, s, sc);
  else return V::add_32(acc, V::mullo_32(s, sc));
}

// A piece's 4 activation bytes at p in every lane; X8Pieces: the next
// piece's in the high half, 8 bytes on (Q3_Kx8's and Q6_Kx8's pieces hold 8
// values of a row).
template <class V>
inline typename V::I x8_bcast4_of8(const int8_t* p) {
  if constexpr (V::kPieces == 2) return V::bcast4_two_8apart(p);
  else return V::bcast4(p);
}

// Q6_K groups (G vectors) against T Q8_K activation rows: each level is a
// nibble plus its 2 high bits (0x30) from the quad's bit planes, 0..63
// unsigned for the byte products, so the sums carry 32 sum_j sc_j bsums_j
// (bsums: the activations' sums of 16, one per sub-block), taken off per
// super-block. Sub-block j is pieces 2j and 2j + 1 (values 16j .. 16j + 15):
// its byte products summed, then multiplied by its scale (x8_scale_sum).
// Q3_K (BlockQ3_Kx8) likewise: the levels are the nibbles, 0..7 (value + 4).
// BlockQ6_Kx8Bytes likewise, its levels read as bytes.
template <class V, int G, int T, class Packed>
inline void x8q6_tile(const Packed* w, const BlockQ8_K* x0, size_t nb, typename V::E::F (&acc)[G][T]) {
  using I = typename V::I;
  using E = typename V::E;
  constexpr bool kBytes = std::is_same_v<Packed, BlockQ6_Kx8Bytes>;
  constexpr bool kQ6 = std::is_same_v<Packed, BlockQ6_Kx8> || kBytes;
  constexpr int kOffsetShift = kQ6 ? 5 : 2;  // the levels' offset: 32 or 4
  // With QKV_SHORT_SUMS, byte products summed in int16 lanes, then times the
  // scales by madd: a Q6_K piece's (2 * 2 * 63 * 128 = 32256 at most), a
  // Q3_K sub-block's (4 * 2 * 7 * 128).
  constexpr bool kShort = QKV_SHORT_SUMS;
  const size_t stride = nb * sizeof(Packed);
  for (size_t b = 0; b < nb; ++b) {
    const Packed* W[G];
    for (int g = 0; g < G; ++g) W[g] = w + g * V::kGroups * nb + b;
    const BlockQ8_K* x[T];
    for (int t = 0; t < T; ++t) x[t] = x0 + t * nb + b;
    I isum[G][T];
    for (int g = 0; g < G; ++g)
      for (int t = 0; t < T; ++t) isum[g][t] = V::zero();
    for (int k = 0; k < 8; ++k) {
      // Sub-blocks 2k and 2k + 1's scales in int32 lanes, from the int16 pairs.
      I sc[G][2];
      for (int g = 0; g < G; ++g) {
        const I pair = V::load_s8_to_16(W[g]->sc2[k][0], stride);
        if constexpr (kShort) {  // each scale in both int16 halves, for madd
          const I low = V::and_(pair, V::set1_32(0xffff)), high = V::srli_32(pair, 16);
          sc[g][0] = V::or_(low, V::slli_32(low, 16)), sc[g][1] = V::or_(high, V::slli_32(high, 16));
        } else if constexpr (kQ6) {
          sc[g][0] = x8_pair_first<V>(pair), sc[g][1] = x8_pair_second<V>(pair);
        } else {  // int16 scales over zeros, for x8_scale_sum
          sc[g][0] = V::and_(pair, V::set1_32(0xffff)), sc[g][1] = V::srli_32(pair, 16);
        }
      }
      #pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        I s[G][T];  // sub-block 2k + h's byte products
        for (int g = 0; g < G; ++g)
          for (int t = 0; t < T; ++t) s[g][t] = V::zero();
        #pragma GCC unroll 2
        for (int q = 0; q < 2; q += V::kPieces) {
          const int u = 2 * h + q, P = 4 * k + u;  // piece P, the u-th of quad k (u known when unrolled)
          I lo[G], hi[G];
          for (int g = 0; g < G; ++g) {
            if constexpr (kBytes) {
              lo[g] = V::load(W[g]->qs[k][u][0], stride);
              hi[g] = V::load(W[g]->qs[k][u][1], stride);
            } else if constexpr (kQ6) {
              x8_unpack_with_bits<V>(W[g]->quads[k], stride, u, 2, lo[g], hi[g],
                                     [](typename V::I h, int j) { return x8q6_high<V>(h, j); });
            } else {
              x8_unpack_nibbles<V>(W[g]->qs, stride, P, lo[g], hi[g]);
            }
          }
          for (int t = 0; t < T; ++t) {
            const I xlo = x8_bcast4_of8<V>(x[t]->qs + 8 * P), xhi = x8_bcast4_of8<V>(x[t]->qs + 8 * P + 4);
            for (int g = 0; g < G; ++g) {
              if constexpr (kShort) s[g][t] = V::dot_short(V::dot_short(s[g][t], lo[g], xlo), hi[g], xhi);
              else s[g][t] = V::dot(V::dot(s[g][t], lo[g], xlo), hi[g], xhi);
            }
          }
          if constexpr (kShort && kQ6) {  // a piece's int16 sums times the scale
            for (int g = 0; g < G; ++g)
              for (int t = 0; t < T; ++t) isum[g][t] = V::madd_acc(isum[g][t], s[g][t], sc[g][h]), s[g][t] = V::zero();
          }
        }
        if constexpr (kShort && !kQ6) {  // the sub-block's int16 sums times the scale
          for (int g = 0; g < G; ++g)
            for (int t = 0; t < T; ++t) isum[g][t] = V::madd_acc(isum[g][t], s[g][t], sc[g][h]);
        } else if constexpr (!kShort) {
          for (int g = 0; g < G; ++g)
            for (int t = 0; t < T; ++t) isum[g][t] = x8_scale_sum<V, !kQ6>(isum[g][t], s[g][t], sc[g][h]);
        }
      }
    }
    for (int g = 0; g < G; ++g) {
      const auto d = E::load_halves(W[g]->d, stride);
      for (int t = 0; t < T; ++t) {
        // Lane k of bs: the pair (bsums[2k], bsums[2k + 1]), against the rows' scale pairs.
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[t]->bsums));
        typename E::I msum = E::zero();
        for (int k = 0; k < 8; ++k) msum = E::madd_acc(msum, E::load_s8_to_16(W[g]->sc2[k][0], stride), E::lane32(bs, k));
        acc[g][t] = E::fmadd(E::mul(d, E::set1_ps(x[t]->d)),
                             E::to_ps(E::sub_32(V::fold(isum[g][t]), E::slli_32(msum, kOffsetShift))), acc[g][t]);
      }
    }
  }
}

// ---------------------------------------------------------------- Q2_K

// Q2_K groups against T Q8_K activation rows. Piece P's bits 2s hold values
// 64s + 4P + i: pieces 4m .. 4m + 3 give sub-blocks m, 4 + m, 8 + m, 12 + m
// (one per s), whose sums take the rows' scales by a 16-bit multiply-add; the
// mins go against the activations' sums of 16 by 16-bit multiply-adds.
template <class V, int T>
inline void x8q2_tile(const BlockQ2_Kx8* w, const BlockQ8_K* x0, size_t nb, typename V::E::F (&acc)[T]) {
  using I = typename V::I;
  // With QKV_SHORT_SUMS, a sub-block's byte products summed in int16 lanes
  // (4 * 2 * 3 * 128 at most), then times the scale by madd.
  constexpr bool kShort = QKV_SHORT_SUMS;
  const size_t stride = nb * sizeof(BlockQ2_Kx8);
  for (size_t b = 0; b < nb; ++b) {
    const BlockQ2_Kx8& W = w[b];
    const BlockQ8_K* x[T];
    for (int t = 0; t < T; ++t) x[t] = x0 + t * nb + b;
    I isum[T];
    for (int t = 0; t < T; ++t) isum[t] = V::zero();
    for (int u = 0; u < 2; ++u) {
      // Sub-blocks 4s + 2u and 4s + 2u + 1's scale bytes, a pair per row.
      I pairs[4];
      for (int s = 0; s < 4; ++s) pairs[s] = V::load_u8_to_16(W.scm[2 * s + u][0], stride);
      #pragma GCC unroll 2
      for (int m = 2 * u; m < 2 * u + 2; ++m) {
        // Sub-block 4s + m's scale: the low nibble of its byte (short sums:
        // in both int16 halves of the lane).
        const auto scale = [&](int s) {
          const I sc = V::and_(m == 2 * u ? pairs[s] : V::srli_32(pairs[s], 16), V::set1_32(0x0f));
          return kShort ? V::or_(sc, V::slli_32(sc, 16)) : sc;
        };
        if constexpr (kShort && T > 2) {
          // A batch: one sub-block at a time (each piece loaded once per level;
          // 16 registers hold one level's sums of 4 tokens, not four levels').
          #pragma GCC unroll 4
          for (int s = 0; s < 4; ++s) {
            I sums[T];
            for (int t = 0; t < T; ++t) sums[t] = V::zero();
            #pragma GCC unroll 4
            for (int k = 0; k < 4; ++k) {
              const int P = 4 * m + k;
              const I q = V::load(W.qs + 32 * P, stride);
              const I lv = V::and_(s == 0 ? q : V::srli_16(q, 2 * s), V::set1_8(0x03));
              for (int t = 0; t < T; ++t) sums[t] = V::dot_short(sums[t], lv, x8_bcast4<V>(x[t]->qs + 64 * s + 4 * P));
            }
            const I sc = scale(s);
            for (int t = 0; t < T; ++t) isum[t] = x8_scale_sum<V, true>(isum[t], sums[t], sc);
          }
          continue;
        }
        // One or two tokens: each piece loaded once for its four levels.
        I sums[4][T];
        for (int s = 0; s < 4; ++s)
          for (int t = 0; t < T; ++t) sums[s][t] = V::zero();
        #pragma GCC unroll 4
        for (int k = 0; k < 4; k += V::kPieces) {
          const int P = 4 * m + k;
          const I q = V::load(W.qs + 32 * P, stride);
          for (int s = 0; s < 4; ++s) {
            const I lv = V::and_(s == 0 ? q : V::srli_16(q, 2 * s), V::set1_8(0x03));
            for (int t = 0; t < T; ++t) {
              const I xb = x8_bcast4<V>(x[t]->qs + 64 * s + 4 * P);
              if constexpr (kShort) sums[s][t] = V::dot_short(sums[s][t], lv, xb);
              else sums[s][t] = V::dot(sums[s][t], lv, xb);
            }
          }
        }
        for (int s = 0; s < 4; ++s) {
          const I sc = scale(s);
          for (int t = 0; t < T; ++t) isum[t] = x8_scale_sum<V, true>(isum[t], sums[s][t], sc);
        }
      }
    }
    using E = typename V::E;
    const auto d = E::load_halves(W.d, stride), dmin = E::load_halves(W.dmin, stride);
    typename E::I mins[8];  // row r's mins of sub-blocks 2k and 2k + 1, the high nibbles of its pair k
    for (int k = 0; k < 8; ++k) mins[k] = E::srli_16(E::load_u8_to_16(W.scm[k][0], stride), 4);
    for (int t = 0; t < T; ++t) {
      // Lane k of bs: the pair (bsums[2k], bsums[2k + 1]), against the rows' min pairs.
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[t]->bsums));
      typename E::I msum = E::zero();
      for (int k = 0; k < 8; ++k) msum = E::madd_acc(msum, mins[k], E::lane32(bs, k));
      const auto xd = E::set1_ps(x[t]->d);
      acc[t] = E::fmadd(E::mul(d, xd), E::to_ps(V::fold(isum[t])), acc[t]);
      acc[t] = E::fnmadd(E::mul(dmin, xd), E::to_ps(msum), acc[t]);
    }
  }
}

// ------------------------- The 256-value types (Q2_K .. IQ4_XS): rows, GEMV, GEMM

// acc[i][t] += the products of super-blocks [0, nb) of G vectors of groups
// from w (a row group's nb blocks apart) and T activation rows from x (nb
// blocks apart) (Q6_K, Q3_K and Q2_K: one vector).
template <class V, int G, int T, class Packed>
inline void x8k_tile(const Packed* w, const BlockQ8_K* x, size_t nb, typename V::E::F (&acc)[G][T]) {
  if constexpr (std::is_same_v<Packed, BlockQ6_Kx8> || std::is_same_v<Packed, BlockQ3_Kx8> ||
                std::is_same_v<Packed, BlockQ6_Kx8Bytes>) {
    x8q6_tile<V, G, T>(w, x, nb, acc);
  } else if constexpr (std::is_same_v<Packed, BlockQ2_Kx8>) {
    static_assert(G == 1, "one vector of groups");
    x8q2_tile<V, T>(w, x, nb, acc[0]);
  } else {  // Q4_K, Q5_K, IQ4_XS
    x8q45_tile<V, G, T>(w, x, nb, acc);
  }
}

// Y[m + t, 8 g .. 8 g + 8 V::kGroups G) for T activation rows from m and
// G vectors of groups from g.
template <class V, int G, int T, class Packed>
inline void x8k_rows(const Packed* w, const BlockQ8_K* xb, float* y, size_t nb, size_t ldy, size_t m, size_t g) {
  typename V::F acc[G][T];
  for (int i = 0; i < G; ++i)
    for (int t = 0; t < T; ++t) acc[i][t] = V::zero_ps();
  x8k_tile<V, G, T>(w + g * nb, xb + m * nb, nb, acc);
  for (int i = 0; i < G; ++i)
    for (int t = 0; t < T; ++t) V::store(y + (m + t) * ldy + 8 * (g + V::kGroups * i), acc[i][t]);
}

// One token: a group at a time, its bytes in memory order (a single stream:
// two groups side by side, two streams a matrix row apart, halved the rate
// from DRAM on Zen 5; so would two blocks side by side). AVX-512: two pieces
// of a block per zmm (QKV_X8_GEMV_VEC); the same bits as one per ymm.
template <class Packed>
inline void x8k_matvec(const void* packed, const void* xq, const Q8Sum*, float* y, size_t n, size_t g0, size_t g1) {
  using P = QKV_X8_GEMV_VEC;
  const size_t nb = n / kQK_K;
  const Packed* w = static_cast<const Packed*>(packed);
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(xq);
  for (size_t g = g0; g < g1; ++g) {
    X8Ymm::F acc[1][1] = {{X8Ymm::zero_ps()}};
    x8k_tile<P, 1, 1>(w + g * nb, x, nb, acc);
    X8Ymm::store(y + 8 * g, acc[0][0]);
  }
}

// G vectors of QKV_X8_VEC's groups against T activation rows per pass (then
// 2, then 1).
// Meanwhile `next` comes into L2, a share before each tile.
template <class V, int G, int T, class Packed>
inline void x8k_groups(const Packed* w, const BlockQ8_K* xb, float* y, size_t M, size_t nb, size_t ldy, size_t g,
                       SpreadPrefetch next = {}) {
  size_t m = 0;
  for (; m + T <= M; m += T) next.next(), x8k_rows<V, G, T>(w, xb, y, nb, ldy, m, g);
  next.next();
  if constexpr (T > 4)
    if (m + 4 <= M) x8k_rows<V, G, 4>(w, xb, y, nb, ldy, m, g), m += 4;
  for (; m + 2 <= M; m += 2) x8k_rows<V, G, 2>(w, xb, y, nb, ldy, m, g);
  for (; m < M; ++m) x8k_rows<V, G, 1>(w, xb, y, nb, ldy, m, g);
}

// With 32 registers, the vectors of groups and the activation rows of a
// tile. Q4_K, Q5_K, IQ4_XS and Q3_K: two vectors (32 rows) against 4 rows,
// so that each activation broadcast feeds two products (Zen 5: Q4_K and
// IQ4_XS +10-15% over one vector, Q3_K +10%; Q5_K about as fast as one
// vector against 8 rows, and 3 or 5 rows slower). Q6_K: one vector against
// 8 rows, so that each unpacked piece feeds 8 products (+8-10% over 4 rows;
// two vectors against 4 rows: the same speed as one against 4, with the
// registers full of its high bits' masks; Q3_K against 8 rows: -6%). Q2_K:
// one vector against 4 rows (its tile holds four levels' sums per row). With
// 16 registers (AVX2): one vector against 4 rows, which its short int16 sums
// leave registers for (Zen 3 qmatmul M128 over 2 rows: Q4_K +13%, Q3_K +26%,
// Q6_K +20%, IQ4_XS +15%, Q5_K +7%; Q2_K, a level at a time: +17-22%).
template <class Packed>
constexpr int x8k_vectors() {
  constexpr bool two = std::is_same_v<Packed, BlockQ4_Kx8> || std::is_same_v<Packed, BlockQ5_Kx8> ||
                       std::is_same_v<Packed, BlockIQ4_XSx8> || std::is_same_v<Packed, BlockQ3_Kx8>;
  return QKV_X8_GROUPS == 2 && two ? 2 : 1;
}
template <class Packed>
constexpr int x8k_tokens() {
  if constexpr (QKV_X8_GROUPS == 2 && std::is_same_v<Packed, BlockQ6_Kx8>) return 8;
  return 4;
}

// Q5_K / Q6_K batches on bytes (bytes_passes) (qmatmul M128, Zen 5: Q5_K +5%,
// Q6_K +8%; Zen 3 (AVX2, 4-row tiles of short sums): Q5_K +3-20%, Q6_K +24-48%;
// its earlier 2-row tiles of int32 sums had run 7% slower on bytes).
template <class Packed>
inline void x8k_matmul_bytes(const Packed* w, const BlockQ8_K* xb, float* y, size_t M, size_t nb, size_t ldy,
                             size_t g0, size_t g1) {
  using V = QKV_X8_VEC;
  using Bytes = typename x8_bytes<Packed>::type;
  constexpr int kG = x8k_vectors<Packed>(), kT = x8k_tokens<Packed>();  // the packed layout's tile
  bytes_passes<Packed, kG * V::kGroups, kT>(
      w, M, nb, g0, g1,
      [&](const Bytes* b, size_t g, SpreadPrefetch next) { x8k_groups<V, kG, kT>(b, xb, y + 8 * g, M, nb, ldy, 0, next); },
      [&](size_t g) {
        for (; g + V::kGroups <= g1; g += V::kGroups) x8k_groups<V, 1, kT>(w, xb, y, M, nb, ldy, g);
        for (; g < g1; ++g) x8k_groups<X8Ymm, 1, kT>(w, xb, y, M, nb, ldy, g);
      });
}

template <class Packed>
inline void x8k_matmul(const void* packed, const void* xq, const Q8Sum*, float* y, size_t M, size_t n, size_t ldy,
                       size_t g0, size_t g1) {
  using V = QKV_X8_VEC;
  constexpr int kG = x8k_vectors<Packed>(), kT = x8k_tokens<Packed>();
  if constexpr (!std::is_void_v<typename x8_bytes<Packed>::type>)
    if (M >= kBytesMinTokens && M > size_t(kT))  // more than one tile (Q6_K's 8 tokens: pp8 -5%)
      return x8k_matmul_bytes(static_cast<const Packed*>(packed), static_cast<const BlockQ8_K*>(xq), y, M, n / kQK_K,
                              ldy, g0, g1);
  const size_t nb = n / kQK_K;
  const Packed* w = static_cast<const Packed*>(packed);
  const BlockQ8_K* xb = static_cast<const BlockQ8_K*>(xq);
  constexpr size_t kPass = kG * V::kGroups;
  size_t g = g0;
  for (; g + kPass <= g1; g += kPass) x8k_groups<V, kG, kT>(w, xb, y, M, nb, ldy, g, next_pass(w, nb, g, kPass, g1, M, kT));
  for (; g + V::kGroups <= g1; g += V::kGroups) x8k_groups<V, 1, kT>(w, xb, y, M, nb, ldy, g);
  for (; g < g1; ++g) x8k_groups<X8Ymm, 1, kT>(w, xb, y, M, nb, ldy, g);
}

}  // namespace qkv::ops::QKV_ISA_NS
