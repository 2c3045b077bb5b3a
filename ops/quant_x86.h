// AVX2-style block primitives for quantized dot products, shared by the AVX2
// and AVX-512 units; the only difference is how 32 byte products are summed
// into 8 int32 lanes (QKV_DOT_S8: maddubs + madd, or VNNI's vpdpbusd).
// Include after defining QKV_ISA_NS and QKV_DOT_S8(a_unsigned, b_signed).
#pragma once

#include <immintrin.h>

#include "ops/ops.h"
#include "ops/quant.h"

namespace qkv::ops::QKV_ISA_NS {

struct QAcc {
  __m256 v;
};
inline QAcc qacc_zero() { return QAcc{_mm256_setzero_ps()}; }

inline float qacc_sum(const QAcc& a) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  const __m128 s2 = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

// acc += dw * dx * sum(w * x) over one block of 32 signed bytes each. The
// byte products need an unsigned operand: |w|, with w's sign moved onto x.
inline void qacc_add_s8(QAcc& a, __m256i w, __m256i x, float d) {
  const __m256i aw = _mm256_sign_epi8(w, w);
  const __m256i sx = _mm256_sign_epi8(x, w);
  const __m256i sum32 = QKV_DOT_S8(aw, sx);
  a.v = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sum32), a.v);
}

inline float half(uint16_t h) { return _cvtsh_ss(h); }  // F16C

inline __m256i load32(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

inline void qacc_add(QAcc& a, const BlockQ8_0& w, const BlockQ8_0& x) {
  qacc_add_s8(a, load32(w.qs), load32(x.qs), half(w.d) * half(x.d));
}

// 16 bytes of nibbles -> 32 signed bytes in -8..7: low nibbles, then high.
inline __m256i unpack_q4(const uint8_t* qs) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
  return _mm256_sub_epi8(_mm256_and_si256(both, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8));
}

inline void qacc_add(QAcc& a, const BlockQ4_0& w, const BlockQ8_0& x) {
  qacc_add_s8(a, unpack_q4(w.qs), load32(x.qs), half(w.d) * half(x.d));
}

}  // namespace qkv::ops::QKV_ISA_NS

#include "ops/quant_dot.h"

namespace qkv::ops::QKV_ISA_NS {

void matvec_q8_0(const void* w, const void* xq, float* y, size_t n, size_t r0, size_t r1) {
  qmatvec<BlockQ8_0>(w, xq, y, n, r0, r1);
}
void matvec_q4_0(const void* w, const void* xq, float* y, size_t n, size_t r0, size_t r1) {
  qmatvec<BlockQ4_0>(w, xq, y, n, r0, r1);
}
void matmul_q8_0(const void* w, const void* xq, float* y, size_t M, size_t n, size_t ldy, size_t r0, size_t r1) {
  qmatmul<BlockQ8_0>(w, xq, y, M, n, ldy, r0, r1);
}
void matmul_q4_0(const void* w, const void* xq, float* y, size_t M, size_t n, size_t ldy, size_t r0, size_t r1) {
  qmatmul<BlockQ4_0>(w, xq, y, M, n, ldy, r0, r1);
}

}  // namespace qkv::ops::QKV_ISA_NS
