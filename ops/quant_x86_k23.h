// Block primitives of Q2_K, Q3_K and IQ4_XS against Q8_K activations, for
// the AVX2 and AVX-512 units, written like quant_x86_k.h's (whose helpers
// they use): each super-block's levels and scales unpacked once for N
// activation rows.
#pragma once

#include <immintrin.h>

#include <cstring>

#include "ops/quant.h"

namespace qkv::ops::QKV_ISA_NS {

// Values 32 j .. 32 j + 31 of half h of a Q2_K/Q3_K super-block: bits 2 j of
// its 32 bytes; the low lane's products belong to sub-block 8 h + 2 j, the
// high lane's to the next (their scales in sc, as bcast16_pair gives them).
template <int j, int N>
inline void k2_quarter(KSums<N>& s, int h, __m256i v, __m256i sc, const BlockQ8_K* const (&x)[N]) {
  for (int t = 0; t < N; ++t) {
    __m256i& acc = s[t][j % kChains<N>];
    acc = QKV_MADD_ACC(acc, _mm256_maddubs_epi16(v, loadu(x[t]->qs + 128 * h + 32 * j)), sc);  // |pair| <= 2 * 7 * 127
  }
}

template <int j>
inline __m256i level2(__m256i q) { return _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), _mm256_set1_epi8(3)); }

// Q2_K: sum_k sc_k (q . x)_k - (dmin / d) sum_k m_k bsums_k, all 16 scales
// and mins 4-bit.
template <int N>
inline void k_add(QAcc* a, const BlockQ2_K& w, const BlockQ8_K* const (&x)[N]) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.scales));
  const __m128i m4 = _mm_set1_epi8(0x0f);
  const __m256i sc = _mm256_cvtepu8_epi16(_mm_and_si128(raw, m4));
  const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), m4));
  KSums<N> s;
  zero_sums<N>(s);
  for (int h = 0; h < 2; ++h) {
    const __m256i sch = h == 0 ? _mm256_permute4x64_epi64(sc, 0x44) : _mm256_permute4x64_epi64(sc, 0xee);
    const __m256i q = loadu(w.qs + 32 * h);
    k2_quarter<0, N>(s, h, level2<0>(q), bcast16_pair<0>(sch), x);
    k2_quarter<1, N>(s, h, level2<1>(q), bcast16_pair<2>(sch), x);
    k2_quarter<2, N>(s, h, level2<2>(q), bcast16_pair<4>(sch), x);
    k2_quarter<3, N>(s, h, level2<3>(q), bcast16_pair<6>(sch), x);
  }
  for (int t = 0; t < N; ++t) {
    const __m256i summ = _mm256_madd_epi16(loadu(x[t]->bsums), mins);
    a[t].v = _mm256_fmadd_ps(_mm256_set1_ps(x[t]->d * half(w.d)), _mm256_cvtepi32_ps(total<N>(s, t)), a[t].v);
    a[t].v = _mm256_fmadd_ps(_mm256_set1_ps(-x[t]->d * half(w.dmin)), _mm256_cvtepi32_ps(summ), a[t].v);
  }
}

// Q3_K: the levels with their high bit (0..7), then - 4 sum_k sc_k bsums_k
// for the offset: sum (q - 4) x = q . x - 4 sum x.
template <int j>
inline __m256i level3(__m256i q, __m256i hm, int h) {
  const __m256i hb = h == 0 ? _mm256_srli_epi16(hm, j) : _mm256_srli_epi16(hm, 4 + j);  // bit 4 h + j at bit 0
  return _mm256_or_si256(level2<j>(q), _mm256_slli_epi16(_mm256_and_si256(hb, _mm256_set1_epi8(1)), 2));
}

// Q3_K's 16 6-bit scales (minus 32) as 16 int16, four at a time in 32-bit
// words: the low nibbles of bytes 0..7 (scales 0..7) and their high nibbles
// (8..15), each with 2 high bits from bytes 8..11.
inline __m256i q3_K_scales16(const uint8_t* packed) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  const uint32_t low4 = 0x0f0f0f0f, top2 = 0x03030303;
  const uint32_t s0 = (w[0] & low4) | (((w[2] >> 0) & top2) << 4);
  const uint32_t s1 = (w[1] & low4) | (((w[2] >> 2) & top2) << 4);
  const uint32_t s2 = ((w[0] >> 4) & low4) | (((w[2] >> 4) & top2) << 4);
  const uint32_t s3 = ((w[1] >> 4) & low4) | (((w[2] >> 6) & top2) << 4);
  const __m128i s = _mm_sub_epi8(_mm_set_epi32(int(s3), int(s2), int(s1), int(s0)), _mm_set1_epi8(32));
  return _mm256_cvtepi8_epi16(s);
}

template <int N>
inline void k_add(QAcc* a, const BlockQ3_K& w, const BlockQ8_K* const (&x)[N]) {
  const __m256i sc = q3_K_scales16(w.scales);
  const __m256i hm = loadu(w.hmask);
  KSums<N> s;
  zero_sums<N>(s);
  for (int h = 0; h < 2; ++h) {
    const __m256i sch = h == 0 ? _mm256_permute4x64_epi64(sc, 0x44) : _mm256_permute4x64_epi64(sc, 0xee);
    const __m256i q = loadu(w.qs + 32 * h);
    k2_quarter<0, N>(s, h, level3<0>(q, hm, h), bcast16_pair<0>(sch), x);
    k2_quarter<1, N>(s, h, level3<1>(q, hm, h), bcast16_pair<2>(sch), x);
    k2_quarter<2, N>(s, h, level3<2>(q, hm, h), bcast16_pair<4>(sch), x);
    k2_quarter<3, N>(s, h, level3<3>(q, hm, h), bcast16_pair<6>(sch), x);
  }
  for (int t = 0; t < N; ++t) {
    const __m256i offs = _mm256_madd_epi16(loadu(x[t]->bsums), sc);
    const __m256i sumi = _mm256_sub_epi32(total<N>(s, t), _mm256_slli_epi32(offs, 2));
    a[t].v = _mm256_fmadd_ps(_mm256_set1_ps(x[t]->d * half(w.d)), _mm256_cvtepi32_ps(sumi), a[t].v);
  }
}

// IQ4_XS: per sub-block of 32 the signed levels from the IQ4_NL table, the
// sign moved onto x for the byte products, then the 6-bit scale - 32.
template <int N>
inline void k_add(QAcc* a, const BlockIQ4_XS& w, const BlockQ8_K* const (&x)[N]) {
  const __m256i table = iq4nl_table();
  KSums<N> s;
  zero_sums<N>(s);
  for (int ib = 0; ib < 8; ++ib) {
    const __m256i v = _mm256_shuffle_epi8(table, unpack_u4(w.qs + 16 * ib));
    const __m256i av = _mm256_sign_epi8(v, v);
    const __m256i ls = _mm256_set1_epi16(short(iq4_xs_scale(w, ib) - 32));
    for (int t = 0; t < N; ++t) {
      __m256i& acc = s[t][ib % kChains<N>];
      const __m256i p = _mm256_maddubs_epi16(av, _mm256_sign_epi8(loadu(x[t]->qs + 32 * ib), v));  // |pair| <= 2 * 127 * 127
      acc = QKV_MADD_ACC(acc, p, ls);
    }
  }
  for (int t = 0; t < N; ++t)
    a[t].v = _mm256_fmadd_ps(_mm256_set1_ps(x[t]->d * half(w.d)), _mm256_cvtepi32_ps(total<N>(s, t)), a[t].v);
}

inline void qacc_add(QAcc& a, const BlockQ2_K& w, const BlockQ8_K& x) { qacc_add_k_block(a, w, x); }
inline void qacc_add(QAcc& a, const BlockQ3_K& w, const BlockQ8_K& x) { qacc_add_k_block(a, w, x); }
inline void qacc_add(QAcc& a, const BlockIQ4_XS& w, const BlockQ8_K& x) { qacc_add_k_block(a, w, x); }
inline void qacc_add4(QAcc (&a)[4], const BlockQ2_K& w, const BlockQ8_K* const (&x)[4]) { k_add<4>(a, w, x); }
inline void qacc_add4(QAcc (&a)[4], const BlockQ3_K& w, const BlockQ8_K* const (&x)[4]) { k_add<4>(a, w, x); }
inline void qacc_add4(QAcc (&a)[4], const BlockIQ4_XS& w, const BlockQ8_K* const (&x)[4]) { k_add<4>(a, w, x); }
inline void qacc_add8(QAcc (&a)[8], const BlockQ2_K& w, const BlockQ8_K* const (&x)[8]) { k_add<8>(a, w, x); }
inline void qacc_add8(QAcc (&a)[8], const BlockQ3_K& w, const BlockQ8_K* const (&x)[8]) { k_add<8>(a, w, x); }
inline void qacc_add8(QAcc (&a)[8], const BlockIQ4_XS& w, const BlockQ8_K* const (&x)[8]) { k_add<8>(a, w, x); }

}  // namespace qkv::ops::QKV_ISA_NS
