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
// Here the 32-value types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL); the
// 256-value ones (Q2_K .. IQ4_XS) build on these pieces in quant_x86_x8k.h.
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

// Layouts of two row groups side by side (quant_x86_x8_pairs.h's *x16, for
// X8Zmm's batch tiles): true for each.
template <class Packed> struct x8_is_pair : std::false_type {};
// The stride from a vector's first group's fields to its second's, and the
// structs a vector of groups takes (X8Zmm: two, or one pair).
template <class Packed>
constexpr size_t x8_stride(size_t nb) {
  if constexpr (x8_is_pair<Packed>::value) return Packed::kStride;
  else return nb * sizeof(Packed);
}
template <class V, class Packed>
constexpr size_t x8_structs() { return x8_is_pair<Packed>::value ? 1 : V::kGroups; }
// Piece slot i's 32 bytes for each group of the vector (V::load), or both
// groups' 64 (a pair's).
template <class V, class Packed>
inline typename V::I x8_load_qs(const uint8_t* p, size_t stride) {
  if constexpr (x8_is_pair<Packed>::value) return V::load64(p);
  else return V::load(p, stride);
}
// Piece P of a layout whose qs is a run of 32-byte pieces (a pair's: 64).
template <class V, class Packed>
inline typename V::I x8_load_piece(const Packed* w, int P, size_t stride) {
  constexpr size_t kBytes = x8_is_pair<Packed>::value ? 64 : 32;
  return x8_load_qs<V, Packed>(reinterpret_cast<const uint8_t*>(w->qs) + kBytes * size_t(P), stride);
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

// A loaded piece's low and high nibbles as unsigned bytes; x8_unpack_nibbles:
// those of the 32-byte piece c of qs (each vector group's, `stride` apart).
template <class V>
inline void x8_split_nibbles(typename V::I q, typename V::I& lo, typename V::I& hi) {
  lo = V::and_(q, V::set1_8(0x0f));
  hi = V::high_nibbles(q);
}
template <class V>
inline void x8_unpack_nibbles(const uint8_t* qs, size_t stride, int c, typename V::I& lo, typename V::I& hi) {
  x8_split_nibbles<V>(V::load(qs + 32 * c, stride), lo, hi);
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
    x8_split_nibbles<V>(x8_load_piece<V>(w[g], c, stride), lo[g], hi[g]);
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
  if constexpr (x8_is_q5_bytes<Bytes>) return size_t(4 * half + i);
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

}  // namespace qkv::ops::QKV_ISA_NS

#include "ops/quant_x86_x8_pairs.h"  // the pairs of groups a batch's pass is copied into (AVX-512)

namespace qkv::ops::QKV_ISA_NS {

// Piece c (values 4c .. 4c + 3 of each row, Q8_0x8's order) of the Q5_0 / Q5_1
// byte layouts (and Q8_0's pair): unsigned levels straight into the dot products.
template <class V, class Packed, class Act, int G, int T>
inline void x8_piece_bytes(typename V::I (&s)[G][T], const Packed* const (&w)[G], size_t stride, const Act* const (&x)[T],
                           int c) {
  typename V::I q[G];
  for (int g = 0; g < G; ++g) q[g] = x8_load_qs<V, Packed>(w[g]->qs[c], stride);  // values 4c .. 4c + 3
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
template <class V, int G, int T, class Packed>
inline void x8_piece_iq4nl(typename V::I (&s)[G][T], const Packed* const (&w)[G], size_t stride,
                           const BlockQ8_0* const (&x)[T], int c) {
  const auto table = iq4_levels<V>();
  typename V::I lo[G], hi[G];
  for (int g = 0; g < G; ++g) {
    x8_split_nibbles<V>(x8_load_piece<V>(w[g], c, stride), lo[g], hi[g]);
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
template <> struct x8_act<BlockQ5_1x16Bytes> { using type = BlockQ8_1; };

template <class Packed> constexpr int x8_pieces = 0;
template <> constexpr int x8_pieces<BlockQ8_0x8> = 8;  // 32 bytes per row and block
template <> constexpr int x8_pieces<BlockQ4_0x8> = 4;  // 16
template <> constexpr int x8_pieces<BlockQ5_0x8> = 4;  // 16 (and the fifth bits)
template <> constexpr int x8_pieces<BlockQ4_1x8> = 4;
template <> constexpr int x8_pieces<BlockQ5_1x8> = 4;
template <> constexpr int x8_pieces<BlockIQ4_NLx8> = 4;
template <> constexpr int x8_pieces<BlockQ5_0x8Bytes> = 8;
template <> constexpr int x8_pieces<BlockQ5_1x8Bytes> = 8;
template <> constexpr int x8_pieces<BlockQ5_0x16Bytes> = 8;
template <> constexpr int x8_pieces<BlockQ8_0x16Bytes> = 8;
template <> constexpr int x8_pieces<BlockIQ4_NLx16> = 4;
template <> constexpr int x8_pieces<BlockQ5_1x16Bytes> = 8;
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
template <> constexpr int x8_offset<BlockQ5_0x16Bytes> = 16;
template <> constexpr int x8_offset<BlockQ8_0x16Bytes> = 128;
template <> constexpr int x8_offset<BlockIQ4_NLx8> = QKV_Q8_BIAS;
template <> constexpr int x8_offset<BlockIQ4_NLx16> = QKV_Q8_BIAS;

// acc[g][t] (vector g's rows' sums for activation row t) += w . x[t] over nb
// blocks; w: G * V::kGroups consecutive groups of nb blocks each.
template <class V, class Packed, int G, int T>
inline void x8_tile(const Packed* w, const typename x8_act<Packed>::type* x0, const Q8Sum* xs0, size_t nb,
                    typename V::E::F (&acc)[G][T]) {
  using Act = typename x8_act<Packed>::type;
  const size_t stride = x8_stride<Packed>(nb);
  for (size_t b = 0; b < nb; ++b) {
    const Packed* wb[G];
    for (int g = 0; g < G; ++g) wb[g] = w + g * x8_structs<V, Packed>() * nb + b;
    const Act* x[T];
    for (int t = 0; t < T; ++t) x[t] = x0 + t * nb + b;
    typename V::I s[G][T], s16[G][T];
    for (int g = 0; g < G; ++g)
      for (int t = 0; t < T; ++t) s[g][t] = s16[g][t] = V::zero();
    constexpr int kRun = x8_short_run<Packed>;
    for (int c = 0; c < x8_pieces<Packed>; c += V::kPieces) {
      if constexpr (std::is_same_v<Packed, BlockQ8_0x8>) {
        x8_piece<V, G, T>(s, wb, stride, x, c);
      } else if constexpr (std::is_same_v<Packed, BlockIQ4_NLx8> || std::is_same_v<Packed, BlockIQ4_NLx16>) {
        x8_piece_iq4nl<V, G, T>(s, wb, stride, x, c);
      } else {
        auto& sums = kRun > 0 ? s16 : s;
        if constexpr (x8_is_byte_levels<Packed>)
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
// Q8_0's pairs only copy its bytes (+ 128), which pays from more tokens (110M
// Q8_0 on Zen 5, one thread: pp8 -1.5%, pp16 -3%, pp32 the same, pp64 +2%,
// pp128 +3-5%); Q2_K's (AVX-512: its levels times their scales, 4 bytes for
// each of the packed layout's) from 24 (110M Q2_K, one thread: pp8 -16%, pp16
// -2%, pp24 +1%, pp32 +1-5%, pp128 +6-9%).
template <class Packed>
constexpr size_t x8_pass_min_tokens =
    std::is_same_v<Packed, BlockQ8_0x8> ? 32 : QKV_X8_GROUPS == 2 && std::is_same_v<Packed, BlockQ2_Kx8> ? 24 : kBytesMinTokens;

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
  const size_t first = x8_is_pair<Packed>::value ? g / 2 : g;  // group g's struct
  x8_tile<V, Packed, G, T>(w + first * nb, xb + m * nb, xs ? xs + m * nb : nullptr, nb, acc);
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
// to bytes (Bytes: x8_bytes' layout, or pairs of groups where a vector holds
// two) in this thread's scratch (grown once), then pass(bytes, g, next) runs
// the tiles over every token while the next pass comes into L2; the groups
// after the last full pass go to tail(g) as packed. The bytes give the same
// integer sums as the packed levels, so the same bits.
template <class Packed, size_t kPass, int kT, class Bytes = typename x8_bytes<Packed>::type, class Pass, class Tail>
inline void bytes_passes(const Packed* w, size_t M, size_t nb, size_t g0, size_t g1, Pass pass, Tail tail) {
  thread_local std::vector<Bytes> scratch;
  if (scratch.size() < kPass * nb) scratch.resize(kPass * nb);
  size_t g = g0;
  for (; g + kPass <= g1; g += kPass) {
    x8_pass_to_bytes(w + g * nb, scratch.data(), kPass, nb);
    pass(scratch.data(), g, next_pass(w, nb, g, kPass, g1, M, kT));
  }
  tail(g);
}

// Q5_0 / Q5_1 batches on bytes (bytes_passes).
template <class Packed>
inline void x8_matmul_bytes(const void* packed, const void* xq, const Q8Sum* xs, float* y, size_t M, size_t n,
                            size_t ldy, size_t g0, size_t g1) {
  using V = QKV_X8_VEC;
  using Bytes = x8_pass_bytes_t<Packed>;
  const size_t nb = n / kQK8_0;
  const Packed* w = static_cast<const Packed*>(packed);
  const auto* xb = static_cast<const typename x8_act<Packed>::type*>(xq);
  constexpr int kG = QKV_X8_GROUPS, kT = QKV_X8_GROUPS == 2 ? 5 : 4;
  bytes_passes<Packed, kG * V::kGroups, kT, Bytes>(
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
  if constexpr (!std::is_void_v<x8_pass_bytes_t<Packed>>)
    if (M >= x8_pass_min_tokens<Packed>) return x8_matmul_bytes<Packed>(packed, xq, xs, y, M, n, ldy, g0, g1);
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

}  // namespace qkv::ops::QKV_ISA_NS
