// Activation quantizers on AVX-512: sixteen 32-value blocks at a time. The
// per-block work that does not fill a vector (a block's max |x|, its sum of
// quants, the scale's division and f16 rounding) is done for all sixteen at
// once: their sixteen vectors are folded into one by a transposing tree
// (lane b of the result is block b's), and the scales computed in one
// vector. Each value is what quant_x86.h's block-at-a-time quantizers give
// (the same correctly rounded divisions and conversions, max and integer sums
// being exact whatever the order), so the tables' results do not change.
// Included by isa_avx512.cpp after quant_x86.h.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "ops/quant.h"

namespace qkv::ops::QKV_ISA_NS {

// Folds v[0..15] into one vector whose lane b is op over v[b]'s sixteen
// lanes. Four levels, each combining pairs: 32-bit interleave (lanes of 128
// bits), 64-bit interleave, then two rounds across the 128-bit lanes; the
// order works out so that no final permutation is needed.
template <class Op>
inline __m512 fold16(__m512* v, Op op) {
  for (int i = 0; i < 8; ++i) v[i] = op(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(v[2 * i]), b = _mm512_castps_pd(v[2 * i + 1]);
    v[i] = op(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  for (int i = 0; i < 2; ++i)
    v[i] = op(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x88), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xdd));
  return op(_mm512_shuffle_f32x4(v[0], v[1], 0x88), _mm512_shuffle_f32x4(v[0], v[1], 0xdd));
}

// f(std::integral_constant<int, i>) for i = 0..15: lanes taken out of a
// register by immediates. (Going through memory instead, a vector stored and
// read back as scalars, waits for the store to commit when it cannot be
// forwarded: behind the quants' stores, which miss when another core last
// read those lines.)
template <class F, int... I>
inline void each_lane(F&& f, std::integer_sequence<int, I...>) {
  (f(std::integral_constant<int, I>{}), ...);
}
template <class F>
inline void each_lane16(F&& f) {
  each_lane(f, std::make_integer_sequence<int, 16>{});
}

inline __m512 max_lanes(__m512 a, __m512 b) { return _mm512_max_ps(a, b); }
inline __m512 add_lanes_i32(__m512 a, __m512 b) {
  return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)));
}

// Sixteen blocks of 32 (x: 512 floats) as quantize_block32 quantizes each:
// q = x * (127 / max|x|) rounded half to even, into qs(b) (32 bytes each).
// Returns max|x| per block in *amax and sum(q) per block in *sum (lane b).
template <class Qs>
inline void quantize_16_blocks(const float* x, Qs qs, __m512* amax, __m512i* sum) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  __m512 v[16];
  for (int b = 0; b < 16; ++b)
    v[b] = _mm512_max_ps(_mm512_andnot_ps(sign, _mm512_loadu_ps(x + 32 * b)),
                         _mm512_andnot_ps(sign, _mm512_loadu_ps(x + 32 * b + 16)));
  const __m512 m = fold16(v, max_lanes);
  const __m512 id = _mm512_maskz_div_ps(_mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_NEQ_UQ), _mm512_set1_ps(127.0f), m);
  for (int b = 0; b < 16; ++b) {
    const __m512 s = _mm512_permutexvar_ps(_mm512_set1_epi32(b), id);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 32 * b), s));
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 32 * b + 16), s));
    int8_t* out = qs(b);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16), _mm512_cvtsepi32_epi8(q1));
    v[b] = _mm512_castsi512_ps(_mm512_add_epi32(q0, q1));
  }
  *amax = m;
  *sum = _mm512_castps_si512(fold16(v, add_lanes_i32));
}

// quantize_q8_0's blocks and sums, sixteen blocks at a time (the rest one by one).
void quantize_q8_0_zmm(const float* x, void* blocks, Q8Sum* sums, size_t n) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(blocks);
  const size_t nb = n / kQK8_0;
  size_t b = 0;
  for (; b + 16 <= nb; b += 16) {
    __m512 amax;
    __m512i sum;
    quantize_16_blocks(x + b * kQK8_0, [&](int i) { return y[b + size_t(i)].qs; }, &amax, &sum);
    const __m256i d = _mm512_cvtps_ph(_mm512_div_ps(amax, _mm512_set1_ps(127.0f)), _MM_FROUND_TO_NEAREST_INT);
    each_lane16([&](auto i) { y[b + size_t(i.value)].d = uint16_t(_mm256_extract_epi16(d, i.value)); });
    // Q8Sum pairs (d as f32, sum): blocks 0-7, then 8-15.
    const __m512 df = _mm512_cvtph_ps(d), si = _mm512_castsi512_ps(sum);
    static_assert(sizeof(Q8Sum) == 8, "Q8Sum: a float and an int32");
    _mm512_storeu_ps(reinterpret_cast<float*>(sums + b),
                     _mm512_permutex2var_ps(df, _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), si));
    _mm512_storeu_ps(reinterpret_cast<float*>(sums + b + 8),
                     _mm512_permutex2var_ps(df, _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), si));
  }
  if (b < nb) quantize_q8_0(x + b * kQK8_0, y + b, sums + b, n - b * kQK8_0);
}

// quantize_q8_1's blocks, sixteen at a time (the rest one by one).
void quantize_q8_1_zmm(const float* x, void* blocks, size_t n) {
  BlockQ8_1* y = static_cast<BlockQ8_1*>(blocks);
  const size_t nb = n / 32;
  size_t b = 0;
  for (; b + 16 <= nb; b += 16) {
    __m512 amax;
    __m512i sum;
    quantize_16_blocks(x + b * 32, [&](int i) { return y[b + size_t(i)].qs; }, &amax, &sum);
    const __m512 d = _mm512_div_ps(amax, _mm512_set1_ps(127.0f));
    const __m256i dh = _mm512_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT);
    const __m256i sh = _mm512_cvtps_ph(_mm512_mul_ps(d, _mm512_cvtepi32_ps(sum)), _MM_FROUND_TO_NEAREST_INT);
    // (d, s) as one 32-bit word per block, d in the low half (little-endian).
    const __m512i ds = _mm512_or_si512(_mm512_cvtepu16_epi32(dh), _mm512_slli_epi32(_mm512_cvtepu16_epi32(sh), 16));
    static_assert(offsetof(BlockQ8_1, s) == 2, "BlockQ8_1: d, then s");
    each_lane16([&](auto i) {
      const uint32_t w = uint32_t(_mm_extract_epi32(_mm512_extracti32x4_epi32(ds, i.value / 4), i.value % 4));
      std::memcpy(&y[b + size_t(i.value)].d, &w, 4);
    });
  }
  if (b < nb) quantize_q8_1(x + b * 32, y + b, n - b * 32);
}

// quantize_q8_K's blocks: the sixteen sums of 16 folded into one vector.
void quantize_q8_K_zmm(const float* x, void* blocks, size_t n) {
  BlockQ8_K* y = static_cast<BlockQ8_K*>(blocks);
  const __m512 sign = _mm512_set1_ps(-0.0f);
  for (size_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    __m512 v[16];
    __m512 m = _mm512_setzero_ps();
    for (int j = 0; j < 16; ++j) m = _mm512_max_ps(m, _mm512_andnot_ps(sign, _mm512_loadu_ps(x + 16 * j)));
    const float amax = _mm512_reduce_max_ps(m);
    if (amax == 0.0f) {
      std::memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    float max = 0.0f;  // the first value of largest magnitude, with its sign
    for (int j = 0; j < 16; ++j) {
      const __mmask16 hit =
          _mm512_cmp_ps_mask(_mm512_andnot_ps(sign, _mm512_loadu_ps(x + 16 * j)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
      if (hit) {
        max = x[16 * j + __builtin_ctz(unsigned(hit))];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const __m512 is = _mm512_set1_ps(iscale);
    for (int j = 0; j < 16; ++j) {
      const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * j), is));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[b].qs + 16 * j), _mm512_cvtsepi32_epi8(q));
      v[j] = _mm512_castsi512_ps(q);
    }
    const __m512i sums = _mm512_castps_si512(fold16(v, add_lanes_i32));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].bsums), _mm512_cvtsepi32_epi16(sums));
    y[b].d = 1.0f / iscale;
  }
}

}  // namespace qkv::ops::QKV_ISA_NS
