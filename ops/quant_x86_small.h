// Block primitives of Q4_1, Q5_0, Q5_1 and IQ4_NL against Q8_0 / Q8_1
// activations, for the AVX2 and AVX-512 units (included by quant_x86.h,
// which defines QAcc, half(), load32(), qacc_add_s8 and the ISA macros).
#pragma once

#include <immintrin.h>

#include <cstring>

#include "ops/quant.h"

namespace qkv::ops::QKV_ISA_NS {

// 16 bytes of nibbles -> 32 unsigned bytes 0..15: low nibbles (values
// 0..15), then high (values 16..31).
inline __m256i unpack_u4(const uint8_t* qs) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(0x0f));
}

// 32 bits, one per value, -> 32 bytes: 0xff where the value's bit is set.
inline __m256i bits_to_bytes(const uint8_t* p) {
  uint32_t bits;
  std::memcpy(&bits, p, 4);
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(int(bits)), _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

// The _1 types: acc += dw dx (q . x) with q unsigned, and the offset term
// m * s apart (s: the activation block's stored d * sum).
inline void qacc_add_u8(QAcc& a, __m256i q, const BlockQ8_1& x, float dw, float m) {
  const __m256i sum32 = QKV_DOT_S8(q, load32(x.qs));
  a.v = _mm256_fmadd_ps(_mm256_set1_ps(dw * half(x.d)), _mm256_cvtepi32_ps(sum32), a.v);
  a.m += m * half(x.s);
}

inline void qacc_add(QAcc& a, const BlockQ4_1& w, const BlockQ8_1& x) {
  qacc_add_u8(a, unpack_u4(w.qs), x, half(w.d), half(w.m));
}

inline void qacc_add(QAcc& a, const BlockQ5_1& w, const BlockQ8_1& x) {
  const __m256i q = _mm256_or_si256(unpack_u4(w.qs), _mm256_and_si256(bits_to_bytes(w.qh), _mm256_set1_epi8(0x10)));
  qacc_add_u8(a, q, x, half(w.d), half(w.m));
}

// Q5_0: q - 16 is the nibble where the fifth bit is set, the nibble - 16
// (its bits with 0xf0 set) where it is not.
inline void qacc_add(QAcc& a, const BlockQ5_0& w, const BlockQ8_0& x) {
  const __m256i v = _mm256_or_si256(unpack_u4(w.qs), _mm256_andnot_si256(bits_to_bytes(w.qh), _mm256_set1_epi8(char(0xf0))));
  qacc_add_s8(a, v, load32(x.qs), half(w.d) * half(x.d));
}

// The 16 IQ4_NL levels in both lanes, for a byte shuffle.
inline __m256i iq4nl_table() {
  return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)));
}

inline void qacc_add(QAcc& a, const BlockIQ4_NL& w, const BlockQ8_0& x) {
  qacc_add_s8(a, _mm256_shuffle_epi8(iq4nl_table(), unpack_u4(w.qs)), load32(x.qs), half(w.d) * half(x.d));
}

// Four activation rows against one block, its levels unpacked once (the
// batch product's inner step).
// Signed levels v: |v| and the signs moved onto each row's x.
inline void qacc_add4_s8(QAcc (&a)[4], __m256i v, float dw, const BlockQ8_0* const (&x)[4]) {
  const __m256i av = _mm256_sign_epi8(v, v);
  for (int t = 0; t < 4; ++t) {
    const __m256i sum32 = QKV_DOT_S8(av, _mm256_sign_epi8(load32(x[t]->qs), v));
    a[t].v = _mm256_fmadd_ps(_mm256_set1_ps(dw * half(x[t]->d)), _mm256_cvtepi32_ps(sum32), a[t].v);
  }
}
inline void qacc_add4_u8(QAcc (&a)[4], __m256i q, float dw, float m, const BlockQ8_1* const (&x)[4]) {
  for (int t = 0; t < 4; ++t) qacc_add_u8(a[t], q, *x[t], dw, m);
}

inline void qacc_add4(QAcc (&a)[4], const BlockQ5_0& w, const BlockQ8_0* const (&x)[4]) {
  const __m256i v = _mm256_or_si256(unpack_u4(w.qs), _mm256_andnot_si256(bits_to_bytes(w.qh), _mm256_set1_epi8(char(0xf0))));
  qacc_add4_s8(a, v, half(w.d), x);
}
inline void qacc_add4(QAcc (&a)[4], const BlockIQ4_NL& w, const BlockQ8_0* const (&x)[4]) {
  qacc_add4_s8(a, _mm256_shuffle_epi8(iq4nl_table(), unpack_u4(w.qs)), half(w.d), x);
}
inline void qacc_add4(QAcc (&a)[4], const BlockQ4_1& w, const BlockQ8_1* const (&x)[4]) {
  qacc_add4_u8(a, unpack_u4(w.qs), half(w.d), half(w.m), x);
}
inline void qacc_add4(QAcc (&a)[4], const BlockQ5_1& w, const BlockQ8_1* const (&x)[4]) {
  const __m256i q = _mm256_or_si256(unpack_u4(w.qs), _mm256_and_si256(bits_to_bytes(w.qh), _mm256_set1_epi8(0x10)));
  qacc_add4_u8(a, q, half(w.d), half(w.m), x);
}

}  // namespace qkv::ops::QKV_ISA_NS
