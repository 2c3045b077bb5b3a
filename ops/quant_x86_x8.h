// Q8_0 / Q4_0 products over the row-interleaved layout (BlockQ8_0x8,
// BlockQ4_0x8): one 32-byte load holds a 4-byte piece of each of 8 rows, and
// one u8 x s8 dot product against the activations' matching 4 bytes
// (broadcast) adds to all 8 rows' sums at once: no horizontal sums, no
// per-row scale conversions. Included by quant_x86.h after QKV_DOT_ACC
// (acc + 4-byte u8 x s8 dot products in int32 lanes) and QKV_Q8_BIAS: 128
// where Q8_0 weights go through the dot product as w + 128 (unsigned; the
// sums then carry 128 * sum(x), taken off per block), 0 where the sign trick
// makes them unsigned instead.
#pragma once

#include <immintrin.h>

#include <cstring>

#include "ops/ops.h"
#include "ops/quant.h"

namespace qkv::ops::QKV_ISA_NS {

// 4 activation bytes broadcast to all 8 lanes.
inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// The 8 rows' pieces c of one Q8_0 block column, against T activation rows.
template <int T>
inline void x8_piece(__m256i (&s)[T], const BlockQ8_0x8& w, const BlockQ8_0* const (&x)[T], int c) {
  const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs + 32 * c));
  if constexpr (QKV_Q8_BIAS != 0) {
    const __m256i qu = _mm256_xor_si256(q, _mm256_set1_epi8(char(0x80)));  // w + 128
    for (int t = 0; t < T; ++t) s[t] = QKV_DOT_ACC(s[t], qu, bcast4(x[t]->qs + 4 * c));
  } else {
    const __m256i aq = _mm256_sign_epi8(q, q);
    for (int t = 0; t < T; ++t) s[t] = QKV_DOT_ACC(s[t], aq, _mm256_sign_epi8(bcast4(x[t]->qs + 4 * c), q));
  }
}

// Q4_0: the low nibbles of piece c are values 4c..4c+3, the high ones 16+4c..16+4c+3.
template <int T>
inline void x8_piece(__m256i (&s)[T], const BlockQ4_0x8& w, const BlockQ8_0* const (&x)[T], int c) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs + 32 * c));
  const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
  for (int t = 0; t < T; ++t) {
    s[t] = QKV_DOT_ACC(s[t], lo, bcast4(x[t]->qs + 4 * c));
    s[t] = QKV_DOT_ACC(s[t], hi, bcast4(x[t]->qs + 16 + 4 * c));
  }
}

template <class Packed> constexpr int x8_pieces = 0;
template <> constexpr int x8_pieces<BlockQ8_0x8> = 8;  // 32 bytes per row and block
template <> constexpr int x8_pieces<BlockQ4_0x8> = 4;  // 16
// What the unsigned weight bytes add: 128 (Q8_0 on VNNI) or 8 (Q4_0's
// nibbles, which are values + 8) times the activations' sum.
template <class Packed> constexpr int x8_offset = 0;
template <> constexpr int x8_offset<BlockQ8_0x8> = QKV_Q8_BIAS;
template <> constexpr int x8_offset<BlockQ4_0x8> = 8;

// acc[t] (8 rows' sums for activation row t) += group w . x[t] over nb blocks.
template <class Packed, int T>
inline void x8_tile(const Packed* w, const BlockQ8_0* x0, const Q8Sum* xs0, size_t nb, size_t stride, __m256 (&acc)[T]) {
  for (size_t b = 0; b < nb; ++b) {
    const BlockQ8_0* x[T];
    for (int t = 0; t < T; ++t) x[t] = x0 + t * stride + b;
    __m256i s[T];
    for (int t = 0; t < T; ++t) s[t] = _mm256_setzero_si256();
    for (int c = 0; c < x8_pieces<Packed>; ++c) x8_piece<T>(s, w[b], x, c);
    const __m256 wd = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].d)));
    for (int t = 0; t < T; ++t) {
      const Q8Sum& xs = xs0[t * stride + b];
      if constexpr (x8_offset<Packed> != 0) s[t] = _mm256_sub_epi32(s[t], _mm256_set1_epi32(x8_offset<Packed> * xs.s));
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(wd, _mm256_set1_ps(xs.d)), _mm256_cvtepi32_ps(s[t]), acc[t]);
    }
  }
}

template <class Packed>
inline void x8_matvec(const void* packed, const void* xq, const Q8Sum* xs, float* y, size_t n, size_t g0, size_t g1) {
  const size_t nb = n / kQK8_0;
  const Packed* w = static_cast<const Packed*>(packed);
  for (size_t g = g0; g < g1; ++g) {
    __m256 acc[1] = {_mm256_setzero_ps()};
    x8_tile<Packed, 1>(w + g * nb, static_cast<const BlockQ8_0*>(xq), xs, nb, nb, acc);
    _mm256_storeu_ps(y + 8 * g, acc[0]);
  }
}

// T activation rows from row m: Y[m + t, 8g .. 8g + 7].
template <class Packed, int T>
inline void x8_rows(const Packed* wg, const BlockQ8_0* xb, const Q8Sum* xs, float* y, size_t nb, size_t ldy, size_t m,
                    size_t g) {
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  x8_tile<Packed, T>(wg, xb + m * nb, xs + m * nb, nb, nb, acc);
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + (m + t) * ldy + 8 * g, acc[t]);
}

// Each group of 8 rows (its blocks stay in L1) against 4 activation rows at a time.
template <class Packed>
inline void x8_matmul(const void* packed, const void* xq, const Q8Sum* xs, float* y, size_t M, size_t n, size_t ldy,
                      size_t g0, size_t g1) {
  const size_t nb = n / kQK8_0;
  const Packed* w = static_cast<const Packed*>(packed);
  const BlockQ8_0* xb = static_cast<const BlockQ8_0*>(xq);
  for (size_t g = g0; g < g1; ++g) {
    size_t m = 0;
    for (; m + 4 <= M; m += 4) x8_rows<Packed, 4>(w + g * nb, xb, xs, y, nb, ldy, m, g);
    switch (M - m) {
      case 3: x8_rows<Packed, 3>(w + g * nb, xb, xs, y, nb, ldy, m, g); break;
      case 2: x8_rows<Packed, 2>(w + g * nb, xb, xs, y, nb, ldy, m, g); break;
      case 1: x8_rows<Packed, 1>(w + g * nb, xb, xs, y, nb, ldy, m, g); break;
      default: break;
    }
  }
}

}  // namespace qkv::ops::QKV_ISA_NS
