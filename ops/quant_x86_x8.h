// Q8_0 / Q4_0 products over the row-interleaved layout (BlockQ8_0x8,
// BlockQ4_0x8): one 32-byte load holds a 4-byte piece of each of 8 rows, and
// one u8 x s8 dot product against the activations' matching 4 bytes
// (broadcast) adds to all 8 rows' sums at once: no horizontal sums, no
// per-row scale conversions. Included by quant_x86.h after QKV_DOT_ACC
// (acc + 4-byte u8 x s8 dot products in int32 lanes) and QKV_Q8_BIAS: 128
// where Q8_0 weights go through the dot product as w + 128 (unsigned; the
// sums then carry 128 * sum(x), taken off per block), 0 where the sign trick
// makes them unsigned instead; and QKV_X8_GROUPS, the row groups the batch
// product takes per pass.
#pragma once

#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "ops/ops.h"
#include "ops/quant.h"

namespace qkv::ops::QKV_ISA_NS {

// 4 activation bytes broadcast to all 8 lanes.
inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Pieces c of one block column of G row groups, against T activation rows:
// s[g][t] += group g's 8 rows' bytes . x[t]'s matching 4 bytes.
template <int G, int T>
inline void x8_piece(__m256i (&s)[G][T], const BlockQ8_0x8* const (&w)[G], const BlockQ8_0* const (&x)[T], int c) {
  __m256i q[G];
  for (int g = 0; g < G; ++g) q[g] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[g]->qs + 32 * c));
  if constexpr (QKV_Q8_BIAS != 0) {
    for (int g = 0; g < G; ++g) q[g] = _mm256_xor_si256(q[g], _mm256_set1_epi8(char(0x80)));  // w + 128
    for (int t = 0; t < T; ++t) {
      const __m256i xb = bcast4(x[t]->qs + 4 * c);
      for (int g = 0; g < G; ++g) s[g][t] = QKV_DOT_ACC(s[g][t], q[g], xb);
    }
  } else {
    for (int t = 0; t < T; ++t) {
      const __m256i xb = bcast4(x[t]->qs + 4 * c);
      for (int g = 0; g < G; ++g) s[g][t] = QKV_DOT_ACC(s[g][t], _mm256_sign_epi8(q[g], q[g]), _mm256_sign_epi8(xb, q[g]));
    }
  }
}

// The nibble types: piece c's low nibbles are values 4c..4c+3 of each row,
// its high ones 16+4c..16+4c+3; lo and hi hold them as unsigned bytes.
template <int G, int T, class Act>
inline void x8_nibble_dots(__m256i (&s)[G][T], const __m256i (&lo)[G], const __m256i (&hi)[G], const Act* const (&x)[T],
                           int c) {
  for (int t = 0; t < T; ++t) {
    const __m256i xlo = bcast4(x[t]->qs + 4 * c), xhi = bcast4(x[t]->qs + 16 + 4 * c);
    for (int g = 0; g < G; ++g) {
      s[g][t] = QKV_DOT_ACC(s[g][t], lo[g], xlo);
      s[g][t] = QKV_DOT_ACC(s[g][t], hi[g], xhi);
    }
  }
}

inline void x8_unpack_nibbles(const uint8_t* qs, int c, __m256i& lo, __m256i& hi) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * c));
  lo = _mm256_and_si256(q, m4);
  hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
}

// The fifth bits of piece c: bit 4c + i of each row's 32-bit qh lane (low
// nibbles) or bit 16 + 4c + i (high), spread to the lane's 4 bytes as 0x10.
inline void x8_add_fifth_bits(const uint32_t* qh8, int c, __m256i& lo, __m256i& hi) {
  const char blo = char(c / 2), bhi = char(2 + c / 2);
  auto pick = [](char k) {
    return _mm256_setr_epi8(k, k, k, k, char(4 + k), char(4 + k), char(4 + k), char(4 + k), char(8 + k), char(8 + k),
                            char(8 + k), char(8 + k), char(12 + k), char(12 + k), char(12 + k), char(12 + k), k, k, k, k,
                            char(4 + k), char(4 + k), char(4 + k), char(4 + k), char(8 + k), char(8 + k), char(8 + k),
                            char(8 + k), char(12 + k), char(12 + k), char(12 + k), char(12 + k));
  };
  const __m256i mask = _mm256_set1_epi32(int(0x08040201u << (4 * (c % 2)))), bit4 = _mm256_set1_epi8(0x10);
  const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh8));
  const __m256i h_lo = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(qh, pick(blo)), mask), mask);
  const __m256i h_hi = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(qh, pick(bhi)), mask), mask);
  lo = _mm256_or_si256(lo, _mm256_and_si256(h_lo, bit4));
  hi = _mm256_or_si256(hi, _mm256_and_si256(h_hi, bit4));
}

// Q4_0 / Q4_1: nibbles; Q5_0 / Q5_1: nibbles and fifth bits.
template <class Packed, class Act, int G, int T>
inline void x8_piece_nibbles(__m256i (&s)[G][T], const Packed* const (&w)[G], const Act* const (&x)[T], int c) {
  __m256i lo[G], hi[G];
  for (int g = 0; g < G; ++g) {
    x8_unpack_nibbles(w[g]->qs, c, lo[g], hi[g]);
    if constexpr (std::is_same_v<Packed, BlockQ5_0x8> || std::is_same_v<Packed, BlockQ5_1x8>)
      x8_add_fifth_bits(w[g]->qh, c, lo[g], hi[g]);
  }
  x8_nibble_dots<G, T, Act>(s, lo, hi, x, c);
}
template <int G, int T>
inline void x8_piece(__m256i (&s)[G][T], const BlockQ4_0x8* const (&w)[G], const BlockQ8_0* const (&x)[T], int c) {
  x8_piece_nibbles<BlockQ4_0x8, BlockQ8_0, G, T>(s, w, x, c);
}
template <int G, int T>
inline void x8_piece(__m256i (&s)[G][T], const BlockQ5_0x8* const (&w)[G], const BlockQ8_0* const (&x)[T], int c) {
  x8_piece_nibbles<BlockQ5_0x8, BlockQ8_0, G, T>(s, w, x, c);
}
template <int G, int T>
inline void x8_piece(__m256i (&s)[G][T], const BlockQ4_1x8* const (&w)[G], const BlockQ8_1* const (&x)[T], int c) {
  x8_piece_nibbles<BlockQ4_1x8, BlockQ8_1, G, T>(s, w, x, c);
}
template <int G, int T>
inline void x8_piece(__m256i (&s)[G][T], const BlockQ5_1x8* const (&w)[G], const BlockQ8_1* const (&x)[T], int c) {
  x8_piece_nibbles<BlockQ5_1x8, BlockQ8_1, G, T>(s, w, x, c);
}

// IQ4_NL: the nibbles looked up in the level table (signed bytes), then as
// Q8_0's bytes: + 128 for VNNI's unsigned operand, or the sign trick.
template <int G, int T>
inline void x8_piece(__m256i (&s)[G][T], const BlockIQ4_NLx8* const (&w)[G], const BlockQ8_0* const (&x)[T], int c) {
  const __m256i table = iq4nl_table();
  __m256i lo[G], hi[G];
  for (int g = 0; g < G; ++g) {
    x8_unpack_nibbles(w[g]->qs, c, lo[g], hi[g]);
    lo[g] = _mm256_shuffle_epi8(table, lo[g]);
    hi[g] = _mm256_shuffle_epi8(table, hi[g]);
  }
  if constexpr (QKV_Q8_BIAS != 0) {
    for (int g = 0; g < G; ++g) {
      lo[g] = _mm256_xor_si256(lo[g], _mm256_set1_epi8(char(0x80)));
      hi[g] = _mm256_xor_si256(hi[g], _mm256_set1_epi8(char(0x80)));
    }
    x8_nibble_dots<G, T, BlockQ8_0>(s, lo, hi, x, c);
  } else {
    for (int t = 0; t < T; ++t) {
      const __m256i xlo = bcast4(x[t]->qs + 4 * c), xhi = bcast4(x[t]->qs + 16 + 4 * c);
      for (int g = 0; g < G; ++g) {
        s[g][t] = QKV_DOT_ACC(s[g][t], _mm256_sign_epi8(lo[g], lo[g]), _mm256_sign_epi8(xlo, lo[g]));
        s[g][t] = QKV_DOT_ACC(s[g][t], _mm256_sign_epi8(hi[g], hi[g]), _mm256_sign_epi8(xhi, hi[g]));
      }
    }
  }
}

// The activation blocks each layout takes: Q8_1 (with d * sum) for the _1 types.
template <class Packed> struct x8_act { using type = BlockQ8_0; };
template <> struct x8_act<BlockQ4_1x8> { using type = BlockQ8_1; };
template <> struct x8_act<BlockQ5_1x8> { using type = BlockQ8_1; };

template <class Packed> constexpr int x8_pieces = 0;
template <> constexpr int x8_pieces<BlockQ8_0x8> = 8;  // 32 bytes per row and block
template <> constexpr int x8_pieces<BlockQ4_0x8> = 4;  // 16
template <> constexpr int x8_pieces<BlockQ5_0x8> = 4;  // 16 (and the fifth bits)
template <> constexpr int x8_pieces<BlockQ4_1x8> = 4;
template <> constexpr int x8_pieces<BlockQ5_1x8> = 4;
template <> constexpr int x8_pieces<BlockIQ4_NLx8> = 4;
// What the unsigned weight bytes add: 128 (Q8_0 on VNNI) or 8 (Q4_0's
// nibbles, which are values + 8) times the activations' sum.
template <class Packed> constexpr int x8_offset = 0;
template <> constexpr int x8_offset<BlockQ8_0x8> = QKV_Q8_BIAS;
template <> constexpr int x8_offset<BlockQ4_0x8> = 8;
template <> constexpr int x8_offset<BlockQ5_0x8> = 16;
template <> constexpr int x8_offset<BlockIQ4_NLx8> = QKV_Q8_BIAS;

// acc[g][t] (group g's 8 rows' sums for activation row t) += w . x[t] over
// nb blocks; w: G consecutive groups of nb blocks each.
template <class Packed, int G, int T>
inline void x8_tile(const Packed* w, const typename x8_act<Packed>::type* x0, const Q8Sum* xs0, size_t nb,
                    __m256 (&acc)[G][T]) {
  using Act = typename x8_act<Packed>::type;
  for (size_t b = 0; b < nb; ++b) {
    const Packed* wb[G];
    for (int g = 0; g < G; ++g) wb[g] = w + g * nb + b;
    const Act* x[T];
    for (int t = 0; t < T; ++t) x[t] = x0 + t * nb + b;
    __m256i s[G][T];
    for (int g = 0; g < G; ++g)
      for (int t = 0; t < T; ++t) s[g][t] = _mm256_setzero_si256();
    for (int c = 0; c < x8_pieces<Packed>; ++c) x8_piece<G, T>(s, wb, x, c);
    for (int g = 0; g < G; ++g) {
      const __m256 wd = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[g]->d)));
      if constexpr (std::is_same_v<Act, BlockQ8_1>) {
        // The _1 types: d_w d_x (q . x) + m_w s_x, s_x = the block's d * sum(x).
        const __m256 wm = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[g]->m)));
        for (int t = 0; t < T; ++t) {
          acc[g][t] = _mm256_fmadd_ps(_mm256_mul_ps(wd, _mm256_set1_ps(half(x[t]->d))), _mm256_cvtepi32_ps(s[g][t]), acc[g][t]);
          acc[g][t] = _mm256_fmadd_ps(wm, _mm256_set1_ps(half(x[t]->s)), acc[g][t]);
        }
      } else {
        for (int t = 0; t < T; ++t) {
          const Q8Sum& xs = xs0[t * nb + b];
          __m256i si = s[g][t];
          if constexpr (x8_offset<Packed> != 0) si = _mm256_sub_epi32(si, _mm256_set1_epi32(x8_offset<Packed> * xs.s));
          acc[g][t] = _mm256_fmadd_ps(_mm256_mul_ps(wd, _mm256_set1_ps(xs.d)), _mm256_cvtepi32_ps(si), acc[g][t]);
        }
      }
    }
  }
}

// Y[m + t, 8 (g0 + g) .. 8 (g0 + g) + 7] for T activation rows from m and G groups from g0.
template <class Packed, int G, int T>
inline void x8_rows(const Packed* w, const typename x8_act<Packed>::type* xb, const Q8Sum* xs, float* y, size_t nb,
                    size_t ldy, size_t m,
                    size_t g0) {
  __m256 acc[G][T];
  for (int g = 0; g < G; ++g)
    for (int t = 0; t < T; ++t) acc[g][t] = _mm256_setzero_ps();
  x8_tile<Packed, G, T>(w + g0 * nb, xb + m * nb, xs ? xs + m * nb : nullptr, nb, acc);
  for (int g = 0; g < G; ++g)
    for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + (m + t) * ldy + 8 * (g0 + g), acc[g][t]);
}

template <class Packed>
inline void x8_matvec(const void* packed, const void* xq, const Q8Sum* xs, float* y, size_t n, size_t g0, size_t g1) {
  const Packed* w = static_cast<const Packed*>(packed);
  using Act = typename x8_act<Packed>::type;
  for (size_t g = g0; g < g1; ++g) x8_rows<Packed, 1, 1>(w, static_cast<const Act*>(xq), xs, y, n / kQK8_0, 0, 0, g);
}

// G groups (their blocks stay in L1) against every 4 activation rows in turn.
template <class Packed, int G>
inline void x8_groups(const Packed* w, const typename x8_act<Packed>::type* xb, const Q8Sum* xs, float* y, size_t M,
                      size_t nb, size_t ldy,
                      size_t g) {
  size_t m = 0;
  for (; m + 4 <= M; m += 4) x8_rows<Packed, G, 4>(w, xb, xs, y, nb, ldy, m, g);
  switch (M - m) {
    case 3: x8_rows<Packed, G, 3>(w, xb, xs, y, nb, ldy, m, g); break;
    case 2: x8_rows<Packed, G, 2>(w, xb, xs, y, nb, ldy, m, g); break;
    case 1: x8_rows<Packed, G, 1>(w, xb, xs, y, nb, ldy, m, g); break;
    default: break;
  }
}

// QKV_X8_GROUPS row groups at a time (2 where registers allow: the
// activations' bytes, broadcast once, then feed twice the rows).
template <class Packed>
inline void x8_matmul(const void* packed, const void* xq, const Q8Sum* xs, float* y, size_t M, size_t n, size_t ldy,
                      size_t g0, size_t g1) {
  const size_t nb = n / kQK8_0;
  const Packed* w = static_cast<const Packed*>(packed);
  const auto* xb = static_cast<const typename x8_act<Packed>::type*>(xq);
  size_t g = g0;
  for (; g + QKV_X8_GROUPS <= g1; g += QKV_X8_GROUPS) x8_groups<Packed, QKV_X8_GROUPS>(w, xb, xs, y, M, nb, ldy, g);
  for (; g < g1; ++g) x8_groups<Packed, 1>(w, xb, xs, y, M, nb, ldy, g);
}

// ---------------------------------------------------------------- Q4_K

// Q4_K groups against T Q8_K activation rows. Per super-block and 64-value
// chunk c: each 32-byte piece load gives 8 rows' 4 bytes, whose low nibbles
// belong to sub-block 2c and high ones to 2c + 1; their sums (8 rows in the
// 8 lanes) take the rows' scales by a 32-bit multiply. The mins go against
// the activations' sums of 32 by 16-bit multiply-adds, two sub-blocks at a time.
template <int T>
inline void x8k_tile(const BlockQ4_Kx8* w, const BlockQ8_K* x0, size_t nb, __m256 (&acc)[T]) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  for (size_t b = 0; b < nb; ++b) {
    const BlockQ4_Kx8& W = w[b];
    const BlockQ8_K* x[T];
    for (int t = 0; t < T; ++t) x[t] = x0 + t * nb + b;
    __m256i isum[T];
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      __m256i slo[T], shi[T];
      for (int t = 0; t < T; ++t) slo[t] = shi[t] = _mm256_setzero_si256();
      for (int p = 0; p < 8; ++p) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(W.qs + 32 * (8 * c + p)));
        const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        for (int t = 0; t < T; ++t) {
          slo[t] = QKV_DOT_ACC(slo[t], lo, bcast4(x[t]->qs + 64 * c + 4 * p));
          shi[t] = QKV_DOT_ACC(shi[t], hi, bcast4(x[t]->qs + 64 * c + 32 + 4 * p));
        }
      }
      const __m256i sc_lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(W.sc[2 * c])));
      const __m256i sc_hi = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(W.sc[2 * c + 1])));
      for (int t = 0; t < T; ++t)
        isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(_mm256_mullo_epi32(slo[t], sc_lo), _mm256_mullo_epi32(shi[t], sc_hi)));
    }
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(W.d)));
    const __m256 dmin = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(W.dmin)));
    for (int t = 0; t < T; ++t) {
      // bp[k] (int32 lane k, k < 4): the pair (sum of x over sub-block 2k, over 2k + 1) as two int16.
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[t]->bsums));
      const __m256i bp = _mm256_broadcastsi128_si256(_mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1)));
      __m256i msum = _mm256_setzero_si256();
      for (int k = 0; k < 4; ++k) {
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(W.m2[k])));
        msum = QKV_MADD_ACC(msum, mins, _mm256_permutevar8x32_epi32(bp, _mm256_set1_epi32(k)));
      }
      const __m256 xd = _mm256_set1_ps(x[t]->d);
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, xd), _mm256_cvtepi32_ps(isum[t]), acc[t]);
      acc[t] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, xd), _mm256_cvtepi32_ps(msum), acc[t]);
    }
  }
}

template <int T>
inline void x8k_rows(const BlockQ4_Kx8* w, const BlockQ8_K* xb, float* y, size_t nb, size_t ldy, size_t m, size_t g) {
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  x8k_tile<T>(w + g * nb, xb + m * nb, nb, acc);
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + (m + t) * ldy + 8 * g, acc[t]);
}

inline void x8_q4_K_matvec(const void* packed, const void* xq, const Q8Sum*, float* y, size_t n, size_t g0, size_t g1) {
  for (size_t g = g0; g < g1; ++g)
    x8k_rows<1>(static_cast<const BlockQ4_Kx8*>(packed), static_cast<const BlockQ8_K*>(xq), y, n / kQK_K, 0, 0, g);
}

// 4 activation rows per pass with 32 registers, 2 with 16.
inline void x8_q4_K_matmul(const void* packed, const void* xq, const Q8Sum*, float* y, size_t M, size_t n, size_t ldy,
                           size_t g0, size_t g1) {
  constexpr int kT = QKV_X8_GROUPS == 2 ? 4 : 2;
  const size_t nb = n / kQK_K;
  const BlockQ4_Kx8* w = static_cast<const BlockQ4_Kx8*>(packed);
  const BlockQ8_K* xb = static_cast<const BlockQ8_K*>(xq);
  for (size_t g = g0; g < g1; ++g) {
    size_t m = 0;
    for (; m + kT <= M; m += kT) x8k_rows<kT>(w, xb, y, nb, ldy, m, g);
    for (; m + 2 <= M; m += 2) x8k_rows<2>(w, xb, y, nb, ldy, m, g);
    for (; m < M; ++m) x8k_rows<1>(w, xb, y, nb, ldy, m, g);
  }
}

}  // namespace qkv::ops::QKV_ISA_NS
