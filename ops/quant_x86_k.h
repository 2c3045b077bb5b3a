// K-quant (Q4_K, Q5_K, Q6_K) block primitives against Q8_K activations, for
// the AVX2 and AVX-512 units: levels unpacked to unsigned bytes, vpmaddubsw
// against the activations, then each sub-block's scale applied by a 16-bit
// multiply-add into int32 (QKV_MADD_ACC). Included by quant_x86.h, which
// defines QAcc, half() and the ISA macros.
#pragma once

#include <immintrin.h>

#include <cstring>

#include "ops/quant.h"

namespace qkv::ops::QKV_ISA_NS {

// The 8 scales (bytes 0..7) and 8 mins (bytes 8..15) of a Q4_K/Q5_K
// super-block, unpacked from their 12 bytes of 6-bit fields (see
// scale_min_k4 in quant_k.cpp), four at a time in 32-bit words.
inline __m128i unpack_scales_k4(const uint8_t* packed) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  const uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, top2 = 0x03030303;
  const uint32_t sc_lo = w[0] & low6;                                    // scales 0..3
  const uint32_t sc_hi = (w[2] & low4) | (((w[0] >> 6) & top2) << 4);    // scales 4..7
  const uint32_t m_lo = w[1] & low6;                                     // mins 0..3
  const uint32_t m_hi = ((w[2] >> 4) & low4) | (((w[1] >> 6) & top2) << 4);  // mins 4..7
  return _mm_set_epi32(int(m_hi), int(m_lo), int(sc_hi), int(sc_lo));
}

// Broadcast 16-bit element k (0..7) of each 128-bit lane to its whole lane.
template <int k>
inline __m256i bcast16(__m256i v) {
  return _mm256_shuffle_epi8(v, _mm256_set1_epi16(short(((2 * k + 1) << 8) | (2 * k))));
}
// Element k of the low lane into the low lane, element k + 1 into the high.
template <int k>
inline __m256i bcast16_pair(__m256i v) {
  const __m128i lo = _mm_set1_epi16(short(((2 * k + 1) << 8) | (2 * k)));
  const __m128i hi = _mm_set1_epi16(short(((2 * k + 3) << 8) | (2 * k + 2)));
  return _mm256_shuffle_epi8(v, _mm256_set_m128i(hi, lo));
}

inline __m256i loadu(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// acc += d * sumi - dmin * summ (int32 lanes, converted once per super-block).
inline void qacc_add_k(QAcc& a, __m256i sumi, __m128i summ, float d, float dmin) {
  a.v = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), a.v);
  a.v = _mm256_fmadd_ps(_mm256_set1_ps(-dmin), _mm256_cvtepi32_ps(_mm256_zextsi128_si256(summ)), a.v);
}

// The min terms: sum_j m_j * (bsums[2j] + bsums[2j + 1]), in 4 int32 lanes.
inline __m128i k4_min_terms(__m128i sm, const BlockQ8_K& x) {
  const __m256i bs = loadu(x.bsums);
  const __m128i pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
  return _mm_madd_epi16(pairs, _mm_cvtepu8_epi16(_mm_srli_si128(sm, 8)));
}

// The K-quant products are written for N activation rows at once (N = 1
// for the one-token product, 4 in the batch product), so a super-block's
// levels and scales are unpacked once for all N. s[t][k]: row t's int32 sums
// in K chains of dependent multiply-adds (2 for one row; 4 rows give 4).
template <int N>
constexpr int kChains = N == 1 ? 2 : 1;
template <int N>
using KSums = __m256i[N][kChains<N>];

template <int N>
inline void zero_sums(KSums<N>& s) {
  for (int t = 0; t < N; ++t)
    for (int k = 0; k < kChains<N>; ++k) s[t][k] = _mm256_setzero_si256();
}
template <int N>
inline __m256i total(const KSums<N>& s, int t) {
  return kChains<N> == 1 ? s[t][0] : _mm256_add_epi32(s[t][0], s[t][kChains<N> - 1]);
}

// Sub-blocks 2c and 2c + 1 (64 values) of a Q4_K/Q5_K super-block: q_lo and
// q_hi hold their levels as unsigned bytes; sc16 the 8 scales in both lanes.
template <int c, int N>
inline void k4_chunk(KSums<N>& s, __m256i q_lo, __m256i q_hi, __m256i sc16, const BlockQ8_K* const (&x)[N]) {
  const __m256i sc_lo = bcast16<2 * c>(sc16), sc_hi = bcast16<2 * c + 1>(sc16);
  for (int t = 0; t < N; ++t) {
    __m256i& acc = s[t][c % kChains<N>];
    acc = QKV_MADD_ACC(acc, _mm256_maddubs_epi16(q_lo, loadu(x[t]->qs + 64 * c)), sc_lo);  // |pair| <= 2 * 31 * 127
    acc = QKV_MADD_ACC(acc, _mm256_maddubs_epi16(q_hi, loadu(x[t]->qs + 64 * c + 32)), sc_hi);
  }
}

template <int c, int N>
inline void q4_K_chunk(KSums<N>& s, const BlockQ4_K& w, __m256i sc16, const BlockQ8_K* const (&x)[N]) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i q = loadu(w.qs + 32 * c);
  k4_chunk<c, N>(s, _mm256_and_si256(q, m4), _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), sc16, x);
}

// Q5_K: bit 2c (2c + 1) of qh[l] is the fifth bit of value l of sub-block 2c (2c + 1).
template <int c, int N>
inline void q5_K_chunk(KSums<N>& s, const BlockQ5_K& w, __m256i qh, __m256i sc16, const BlockQ8_K* const (&x)[N]) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
  const __m256i q = loadu(w.qs + 32 * c);
  const __m256i h = _mm256_srli_epi16(qh, 2 * c);  // bits 2c, 2c + 1 of each byte now at 0, 1
  const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), bit4));
  const __m256i hi =
      _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), _mm256_and_si256(_mm256_slli_epi16(h, 3), bit4));
  k4_chunk<c, N>(s, lo, hi, sc16, x);
}

// acc[t] += d * sumi - dmin * (min terms) for each of the N rows.
template <class Block, int N>
inline void finish_k4(QAcc* a, const Block& w, __m128i sm, const KSums<N>& s, const BlockQ8_K* const (&x)[N]) {
  for (int t = 0; t < N; ++t) qacc_add_k(a[t], total<N>(s, t), k4_min_terms(sm, *x[t]), x[t]->d * half(w.d), x[t]->d * half(w.dmin));
}

template <int N>
inline void k_add(QAcc* a, const BlockQ4_K& w, const BlockQ8_K* const (&x)[N]) {
  const __m128i sm = unpack_scales_k4(w.scales);
  const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
  KSums<N> s;
  zero_sums<N>(s);
  q4_K_chunk<0, N>(s, w, sc16, x);
  q4_K_chunk<1, N>(s, w, sc16, x);
  q4_K_chunk<2, N>(s, w, sc16, x);
  q4_K_chunk<3, N>(s, w, sc16, x);
  finish_k4<BlockQ4_K, N>(a, w, sm, s, x);
}

template <int N>
inline void k_add(QAcc* a, const BlockQ5_K& w, const BlockQ8_K* const (&x)[N]) {
  const __m128i sm = unpack_scales_k4(w.scales);
  const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
  const __m256i qh = loadu(w.qh);
  KSums<N> s;
  zero_sums<N>(s);
  q5_K_chunk<0, N>(s, w, qh, sc16, x);
  q5_K_chunk<1, N>(s, w, qh, sc16, x);
  q5_K_chunk<2, N>(s, w, qh, sc16, x);
  q5_K_chunk<3, N>(s, w, qh, sc16, x);
  finish_k4<BlockQ5_K, N>(a, w, sm, s, x);
}

// Q6_K: sum_k sc_k sum (q - 32) x = sum_k sc_k (q . x)_k - 32 sum_k sc_k bsums_k.
// One half h (128 values, 8 sub-blocks of 16): 64 bytes of low nibbles, 32 of
// 2-bit high parts; sc16 holds that half's 8 scales in both lanes.
template <int N>
inline void q6_K_half(KSums<N>& s, int h, const BlockQ6_K& w, __m256i sc16, const BlockQ8_K* const (&x)[N]) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x30);
  const __m256i qa = loadu(w.ql + 64 * h), qb = loadu(w.ql + 64 * h + 32), hb = loadu(w.qh + 32 * h);
  // Values 0-31, 32-63, 64-95, 96-127 of the half: a nibble and 2 high bits each.
  const __m256i v0 = _mm256_or_si256(_mm256_and_si256(qa, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m2));
  const __m256i v1 = _mm256_or_si256(_mm256_and_si256(qb, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m2));
  const __m256i v2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m4), _mm256_and_si256(hb, m2));
  const __m256i v3 =
      _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4), _mm256_and_si256(_mm256_srli_epi16(hb, 2), m2));
  // Each 32 values span two sub-blocks: the low lane's products one, the high lane's the next.
  const __m256i s0 = bcast16_pair<0>(sc16), s1 = bcast16_pair<2>(sc16), s2 = bcast16_pair<4>(sc16),
                s3 = bcast16_pair<6>(sc16);
  for (int t = 0; t < N; ++t) {
    const int8_t* xq = x[t]->qs + 128 * h;
    __m256i& acc = s[t][h % kChains<N>];
    acc = QKV_MADD_ACC(acc, _mm256_maddubs_epi16(v0, loadu(xq)), s0);
    acc = QKV_MADD_ACC(acc, _mm256_maddubs_epi16(v1, loadu(xq + 32)), s1);
    acc = QKV_MADD_ACC(acc, _mm256_maddubs_epi16(v2, loadu(xq + 64)), s2);
    acc = QKV_MADD_ACC(acc, _mm256_maddubs_epi16(v3, loadu(xq + 96)), s3);
  }
}

template <int N>
inline void k_add(QAcc* a, const BlockQ6_K& w, const BlockQ8_K* const (&x)[N]) {
  const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.scales)));  // 16 scales
  KSums<N> s;
  zero_sums<N>(s);
  q6_K_half<N>(s, 0, w, _mm256_permute4x64_epi64(sc, 0x44), x);
  q6_K_half<N>(s, 1, w, _mm256_permute4x64_epi64(sc, 0xee), x);
  for (int t = 0; t < N; ++t) {
    const __m256i offs = _mm256_madd_epi16(loadu(x[t]->bsums), sc);  // sum_k sc_k bsums_k, in 8 lanes
    const __m256i sumi = _mm256_sub_epi32(total<N>(s, t), _mm256_slli_epi32(offs, 5));
    a[t].v = _mm256_fmadd_ps(_mm256_set1_ps(x[t]->d * half(w.d)), _mm256_cvtepi32_ps(sumi), a[t].v);
  }
}

template <class Block>
inline void qacc_add_k_block(QAcc& a, const Block& w, const BlockQ8_K& x) {
  const BlockQ8_K* xs[1] = {&x};
  k_add<1>(&a, w, xs);
}
inline void qacc_add(QAcc& a, const BlockQ4_K& w, const BlockQ8_K& x) { qacc_add_k_block(a, w, x); }
inline void qacc_add(QAcc& a, const BlockQ5_K& w, const BlockQ8_K& x) { qacc_add_k_block(a, w, x); }
inline void qacc_add(QAcc& a, const BlockQ6_K& w, const BlockQ8_K& x) { qacc_add_k_block(a, w, x); }
// Four activation rows against one super-block, unpacked once.
inline void qacc_add4(QAcc (&a)[4], const BlockQ4_K& w, const BlockQ8_K* const (&x)[4]) { k_add<4>(a, w, x); }
inline void qacc_add4(QAcc (&a)[4], const BlockQ5_K& w, const BlockQ8_K* const (&x)[4]) { k_add<4>(a, w, x); }
inline void qacc_add4(QAcc (&a)[4], const BlockQ6_K& w, const BlockQ8_K* const (&x)[4]) { k_add<4>(a, w, x); }
inline void qacc_add8(QAcc (&a)[8], const BlockQ5_K& w, const BlockQ8_K* const (&x)[8]) { k_add<8>(a, w, x); }
inline void qacc_add8(QAcc (&a)[8], const BlockQ6_K& w, const BlockQ8_K* const (&x)[8]) { k_add<8>(a, w, x); }

}  // namespace qkv::ops::QKV_ISA_NS
