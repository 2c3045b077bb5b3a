// Pairs of row groups for AVX-512's batch products. X8Zmm holds row group g
// in a zmm's low half and g + 1 in its high one; the packed layouts keep a
// group's blocks together, so such a zmm takes two 32-byte loads nb blocks
// apart and an insert. A batch's pass of groups (quant_x86_x8.h's
// bytes_passes) is copied instead, once, into the *x16 layouts below: each
// piece's 32 bytes of group g, then g + 1's (one aligned 64-byte load), then
// the scales, group g's and g + 1's kStride bytes apart (X8Zmm's stride),
// each row's as in the single layout. Where the single layout unpacks to
// bytes (Q5_0, Q5_1, Q5_K, Q6_K: x8_bytes), so does the pair (*x16Bytes);
// Q8_0's pair holds its levels + 128 (VNNI's unsigned operand: no xor in the
// tile); the nibble types' pairs copy the nibbles (unpacking them is a mask).
// Zen 5, qmatmul M128, % of the int8 probe, medians of 4 alternating runs,
// weights in L3 / from DRAM: Q6_K 51 -> 56-58 / 50-52 -> 55-57, Q5_K
// 52-62 -> 63 / 60 -> 63, Q5_0 63-64 -> 69-70 / 62 -> 67, Q5_1 60-61 ->
// 64-65 / 57 -> 62, Q4_K 59-61 -> 65-67 / 61-63 -> 63-67, IQ4_XS 64 -> 68-70
// / 62 -> 67, IQ4_NL 67-69 -> 74-77 / 65 -> 66, Q8_0 68 -> 70-71 / 65 -> 65
// (end to end, pp128 110M: +5%). Left packed: Q4_0 and Q4_1 (74 -> 80 and
// 76-78 in L3, but 2% slower from DRAM, and no faster end to end: their
// tiles do the least work per byte, so the copy weighs most). Q2_K's and
// Q3_K's pairs of levels alone were 2-6% slower and the same speed (a Q2_K
// piece load feeds its four levels' products); their pairs of levels times
// scales (BlockQ2_Kx16Scaled, BlockQ3_Kx16Scaled) take them from 55-57% to
// 66-69% and from 56-57% to 76-77%. Included by quant_x86_x8.h after its
// byte layouts.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstring>
#include <type_traits>

#include "ops/quant.h"

namespace qkv::ops::QKV_ISA_NS {

struct alignas(64) BlockQ8_0x16Bytes {  // Q8_0x8's pieces in order, levels + 128
  uint8_t qs[8][64];
  uint16_t d[16];
  static constexpr size_t kStride = 16;
};
struct alignas(64) BlockIQ4_NLx16 {  // likewise IQ4_NL's nibbles
  uint8_t qs[4][64];
  uint16_t d[16];
  static constexpr size_t kStride = 16;
};
struct alignas(64) BlockQ5_0x16Bytes {  // slots as Q5_0x8Bytes'
  uint8_t qs[8][64];
  uint16_t d[16];
  static constexpr size_t kStride = 16;
};
struct alignas(64) BlockQ5_1x16Bytes {
  uint8_t qs[8][64];
  uint16_t d[16], m[16];
  static constexpr size_t kStride = 16;
};
struct alignas(64) BlockQ4_Kx16 {
  uint8_t qs[32][64];
  uint16_t d[16], dmin[16];
  uint8_t sc[8][32];  // group g's 8 bytes at 0, g + 1's at 16
  uint8_t m2[4][16][2];
  static constexpr size_t kStride = 16;
};
struct alignas(64) BlockQ5_Kx16Bytes {  // slots as Q5_Kx8Bytes'
  uint8_t qs[4][8][2][64];
  uint16_t d[16], dmin[16];
  uint8_t sc[8][32];
  uint8_t m2[4][16][2];
  static constexpr size_t kStride = 16;
};
struct alignas(64) BlockQ6_Kx16Bytes {  // slots as Q6_Kx8Bytes'
  uint8_t qs[8][4][2][64];
  uint16_t d[16];
  int8_t sc2[8][16][2];
  static constexpr size_t kStride = 16;
};
struct alignas(64) BlockIQ4_XSx16 {
  uint8_t qs[32][64];
  uint16_t d[16];
  int8_t sc2[4][16][2];
  static constexpr size_t kStride = 16;
};
// Q2_K's pair holds each level times its sub-block's scale (0..45, an
// unsigned byte) in value order: slot j holds values 4j .. 4j + 3 of each
// row, group g's 8 rows then g + 1's. A super-block's products are then 64
// vpdpbusd into one int32 sum per row, with no multiply-add of scales per
// 16 values (the packed tile's 16 of them per 64 products, on the same
// pipes): the same integer sum, so the same bits. The mins stay apart,
// widened to int16 pairs for vpdpwssd against the activations' sums of 16.
struct alignas(64) BlockQ2_Kx16Scaled {
  uint8_t qs[64][64];
  uint16_t d[16], dmin[16];
  int16_t m16[8][16][2];  // the mins of sub-blocks 2k and 2k + 1 of each row (group g's 8, then g + 1's)
  static constexpr size_t kStride = 16;
};
// Q3_K's likewise (isa_avx512vbmi.cpp copies its passes into it from the
// 3-bit layout): each level (value, -4..3) times its signed 6-bit scale, +
// 124 (0..252, an unsigned byte; exactly: (-4) x (-32) is the largest), so
// the sums carry 124 x the activations' sum over the super-block, taken off.
struct alignas(64) BlockQ3_Kx16Scaled {
  uint8_t qs[64][64];
  uint16_t d[16];
  static constexpr size_t kStride = 16;
  static constexpr int kOffset = 124;  // added to each level times its scale
};
template <> struct x8_is_pair<BlockQ2_Kx16Scaled> : std::true_type {};
template <> struct x8_is_pair<BlockQ3_Kx16Scaled> : std::true_type {};
template <> struct x8_is_pair<BlockQ8_0x16Bytes> : std::true_type {};
template <> struct x8_is_pair<BlockIQ4_NLx16> : std::true_type {};
template <> struct x8_is_pair<BlockQ5_0x16Bytes> : std::true_type {};
template <> struct x8_is_pair<BlockQ5_1x16Bytes> : std::true_type {};
template <> struct x8_is_pair<BlockQ4_Kx16> : std::true_type {};
template <> struct x8_is_pair<BlockQ5_Kx16Bytes> : std::true_type {};
template <> struct x8_is_pair<BlockQ6_Kx16Bytes> : std::true_type {};
template <> struct x8_is_pair<BlockIQ4_XSx16> : std::true_type {};

// Each packed layout's pair, and what a batch's pass takes: the pairs where
// a vector holds two groups (QKV_X8_GROUPS == 2: AVX-512), else x8_bytes'
// layout or none (void: the tiles read the packed layout).
template <class Packed> struct x8_byte_pairs { using type = typename x8_bytes<Packed>::type; };
template <> struct x8_byte_pairs<BlockQ8_0x8> { using type = std::conditional_t<QKV_Q8_BIAS != 0, BlockQ8_0x16Bytes, void>; };
template <> struct x8_byte_pairs<BlockIQ4_NLx8> { using type = BlockIQ4_NLx16; };
template <> struct x8_byte_pairs<BlockQ5_0x8> { using type = BlockQ5_0x16Bytes; };
template <> struct x8_byte_pairs<BlockQ5_1x8> { using type = BlockQ5_1x16Bytes; };
template <> struct x8_byte_pairs<BlockQ4_Kx8> { using type = BlockQ4_Kx16; };
template <> struct x8_byte_pairs<BlockQ5_Kx8> { using type = BlockQ5_Kx16Bytes; };
template <> struct x8_byte_pairs<BlockQ6_Kx8> { using type = BlockQ6_Kx16Bytes; };
template <> struct x8_byte_pairs<BlockIQ4_XSx8> { using type = BlockIQ4_XSx16; };
template <> struct x8_byte_pairs<BlockQ2_Kx8> { using type = BlockQ2_Kx16Scaled; };
template <class Packed>
using x8_pass_bytes_t = std::conditional_t<QKV_X8_GROUPS == 2, typename x8_byte_pairs<Packed>::type,
                                           typename x8_bytes<Packed>::type>;

// The 32-value types' layouts of a byte per level, unsigned (x8_piece_bytes).
template <class Packed>
constexpr bool x8_is_byte_levels = x8_is_q5_bytes<Packed> || std::is_same_v<Packed, BlockQ5_0x16Bytes> ||
                                   std::is_same_v<Packed, BlockQ5_1x16Bytes> || std::is_same_v<Packed, BlockQ8_0x16Bytes>;

// Pieces 2i and 2i + 1 as they are (the nibble types), or + 128 (Q8_0); the
// byte types' x8_piece_levels (quant_x86_x8.h) unpack theirs.
template <class Packed>
inline void x8_raw_pieces(const Packed& w, int i, __m256i& lo, __m256i& hi) {
  lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs + 64 * i));
  hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs + 64 * i + 32));
}
inline void x8_piece_levels(const BlockQ8_0x8& w, int i, __m256i& lo, __m256i& hi) {
  x8_raw_pieces(w, i, lo, hi);
  const __m256i bias = _mm256_set1_epi8(char(0x80));
  lo = _mm256_xor_si256(lo, bias), hi = _mm256_xor_si256(hi, bias);
}
inline void x8_piece_levels(const BlockIQ4_NLx8& w, int i, __m256i& lo, __m256i& hi) { x8_raw_pieces(w, i, lo, hi); }
inline void x8_piece_levels(const BlockQ4_Kx8& w, int i, __m256i& lo, __m256i& hi) { x8_raw_pieces(w, i, lo, hi); }
inline void x8_piece_levels(const BlockIQ4_XSx8& w, int i, __m256i& lo, __m256i& hi) { x8_raw_pieces(w, i, lo, hi); }

// The 64 bytes of a pair's qs that piece i's low (half 0) or high (half 1)
// values fill: as the single byte layout's slots, or pieces in order.
template <class Packed>
constexpr size_t x8_pair_slot(int i, int half) {
  if constexpr (std::is_void_v<typename x8_bytes<Packed>::type>) return size_t(2 * i + half);
  else return x8_bytes_slot<typename x8_bytes<Packed>::type>(i, half);
}

// Group half h's scales (as its packed block's) into a pair.
inline void x8_pair_head(BlockQ8_0x16Bytes& o, const BlockQ8_0x8& w, int h) { std::memcpy(o.d + 8 * h, w.d, sizeof w.d); }
inline void x8_pair_head(BlockIQ4_NLx16& o, const BlockIQ4_NLx8& w, int h) { std::memcpy(o.d + 8 * h, w.d, sizeof w.d); }
inline void x8_pair_head(BlockQ5_0x16Bytes& o, const BlockQ5_0x8& w, int h) { std::memcpy(o.d + 8 * h, w.d, sizeof w.d); }
inline void x8_pair_head(BlockQ5_1x16Bytes& o, const BlockQ5_1x8& w, int h) {
  std::memcpy(o.d + 8 * h, w.d, sizeof w.d);
  std::memcpy(o.m + 8 * h, w.m, sizeof w.m);
}
template <class Pair, class Packed>  // Q4_K, Q5_K
inline void x8_pair_head_k(Pair& o, const Packed& w, int h) {
  std::memcpy(o.d + 8 * h, w.d, sizeof w.d);
  std::memcpy(o.dmin + 8 * h, w.dmin, sizeof w.dmin);
  for (int j = 0; j < 8; ++j) std::memcpy(o.sc[j] + 16 * h, w.sc[j], sizeof w.sc[j]);
  for (int k = 0; k < 4; ++k) std::memcpy(o.m2[k][8 * h], w.m2[k], sizeof w.m2[k]);
}
inline void x8_pair_head(BlockQ4_Kx16& o, const BlockQ4_Kx8& w, int h) { x8_pair_head_k(o, w, h); }
inline void x8_pair_head(BlockQ5_Kx16Bytes& o, const BlockQ5_Kx8& w, int h) { x8_pair_head_k(o, w, h); }
inline void x8_pair_head(BlockQ6_Kx16Bytes& o, const BlockQ6_Kx8& w, int h) {
  std::memcpy(o.d + 8 * h, w.d, sizeof w.d);
  for (int k = 0; k < 8; ++k) std::memcpy(o.sc2[k][8 * h], w.sc2[k], sizeof w.sc2[k]);
}
inline void x8_pair_head(BlockIQ4_XSx16& o, const BlockIQ4_XSx8& w, int h) {
  std::memcpy(o.d + 8 * h, w.d, sizeof w.d);
  for (int k = 0; k < 4; ++k) std::memcpy(o.sc2[k][8 * h], w.sc2[k], sizeof w.sc2[k]);
}

// Blocks [0, n) of groups a and b into pairs.
template <class Packed, class Pair>
inline void x8_to_byte_pairs(const Packed* a, const Packed* b, Pair* out, size_t n) {
  constexpr int kPieces = int(sizeof(Pair::qs) / 128);  // pieces of x8_piece_levels: 2 x 32 bytes of each group
  for (size_t j = 0; j < n; ++j) {
    uint8_t* qs = reinterpret_cast<uint8_t*>(out[j].qs);
    const Packed* src[2] = {a + j, b + j};
    for (int h = 0; h < 2; ++h) {
      x8_pair_head(out[j], *src[h], h);
      #pragma GCC unroll 32
      for (int i = 0; i < kPieces; ++i) {  // unrolled: each piece's shifts by constants
        __m256i lo, hi;
        x8_piece_levels(*src[h], i, lo, hi);
        _mm256_store_si256(reinterpret_cast<__m256i*>(qs + 64 * x8_pair_slot<Packed>(i, 0) + 32 * h), lo);
        _mm256_store_si256(reinterpret_cast<__m256i*>(qs + 64 * x8_pair_slot<Packed>(i, 1) + 32 * h), hi);
      }
    }
  }
}

// A Q2_K group's block a and the next group's (stride bytes on) into a pair
// (V: X8Zmm, a's group in the low 256 bits):
// BlockQ2_Kx8's piece P holds values 64s + 4P + i of each row in bits 2s of
// its bytes (sub-block 4s + P / 4), scm[k] each row's scale (low nibble) and
// min (high) of sub-blocks 2k and 2k + 1. Each level times its scale is a
// byte lookup: a 128-bit lane holds 4 rows' 4 bytes, so the index level + 4r
// picks from a table of each row's 0, 1, 2 and 3 times its scale.
template <class V>
inline void x8_q2_scaled_pair(const BlockQ2_Kx8& a, size_t stride, BlockQ2_Kx16Scaled& o) {
  using I = typename V::I;
  const BlockQ2_Kx8& b = *reinterpret_cast<const BlockQ2_Kx8*>(reinterpret_cast<const char*>(&a) + stride);
  std::memcpy(o.d, a.d, sizeof a.d), std::memcpy(o.d + 8, b.d, sizeof b.d);
  std::memcpy(o.dmin, a.dmin, sizeof a.dmin), std::memcpy(o.dmin + 8, b.dmin, sizeof b.dmin);
  for (int k = 0; k < 8; ++k) V::store64(o.m16[k], V::srli_16(V::load_u8_to_16(a.scm[k][0], stride), 4));
  // Lanes 0 and 2 hold rows 0-3 (of a's group, of b's), 1 and 3 rows 4-7:
  // byte 4r + i takes its row's scale pair (2r), 8 bytes on in lanes 1 and 3.
  const I pick = _mm512_broadcast_i64x4(_mm256_setr_epi8(0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6, 8, 8, 8, 8, 10,
                                                         10, 10, 10, 12, 12, 12, 12, 14, 14, 14, 14));
  const I rows = V::lanes(_mm_setr_epi8(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12));
  const I times1 = V::lanes(_mm_setr_epi8(0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1));
  const I times2 = V::lanes(_mm_setr_epi8(0, 0, -1, -1, 0, 0, -1, -1, 0, 0, -1, -1, 0, 0, -1, -1));
  #pragma GCC unroll 4
  for (int m = 0; m < 4; ++m) {  // sub-blocks 4s + m of pieces 4m .. 4m + 3
    I table[4];
    for (int s = 0; s < 4; ++s) {
      const int j = 4 * s + m, k = j / 2, e = j % 2;  // sub-block j's scales: byte e of each row's pair k
      const I pairs = V::lanes2(a.scm[k][0], stride);
      const I sc = V::and_(V::shuffle(pairs, V::add_8(pick, V::set1_8(char(e)))), V::set1_8(0x0f));
      table[s] = V::add_8(V::and_(sc, times1), V::and_(V::add_8(sc, sc), times2));  // 4r + i: i x row r's scale
    }
    #pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      const int P = 4 * m + i;
      const I q = V::load(a.qs + 32 * P, stride);
      for (int s = 0; s < 4; ++s) {
        const I level = V::and_(s == 0 ? q : V::srli_16(q, 2 * s), V::set1_8(0x03));
        V::store64(o.qs[16 * s + P], V::shuffle(table[s], V::or_(level, rows)));
      }
    }
  }
}

// A pass's `groups` groups of nb blocks into Bytes: x8_bytes' layout, or pairs.
template <class Packed, class Bytes>
inline void x8_pass_to_bytes(const Packed* w, Bytes* out, size_t groups, size_t nb) {
  if constexpr (std::is_same_v<Bytes, BlockQ2_Kx16Scaled>)
    for (size_t p = 0; p < groups / 2; ++p)
      for (size_t j = 0; j < nb; ++j) x8_q2_scaled_pair<QKV_X8_VEC>(w[2 * p * nb + j], nb * sizeof(Packed), out[p * nb + j]);
  else if constexpr (x8_is_pair<Bytes>::value)
    for (size_t p = 0; p < groups / 2; ++p) x8_to_byte_pairs(w + 2 * p * nb, w + (2 * p + 1) * nb, out + p * nb, nb);
  else
    x8_to_bytes(w, out, groups * nb);
}

}  // namespace qkv::ops::QKV_ISA_NS
