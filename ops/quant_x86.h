// AVX2-style block primitives for quantized dot products, shared by the AVX2,
// AVX-VNNI and AVX-512 units; the only difference is how 32 byte products are
// summed into 8 int32 lanes (QKV_DOT_S8: maddubs + madd, or VNNI's vpdpbusd).
// Include after defining QKV_ISA_NS, QKV_DOT_S8(a_unsigned, b_signed),
// QKV_DOT_ACC(acc, a_unsigned, b_signed) (the same added to acc),
// QKV_MADD_ACC(acc, a16, b16): acc + the int16 pair products of a and b
// summed into int32 lanes (madd + add, or VNNI's vpdpwssd), and QKV_Q8_BIAS
// (see quant_x86_x8.h), and QKV_PEAK_ACC(acc, a_unsigned, b_signed): the
// cheapest accumulation of 32 byte products the ISA has, for the probe.
#pragma once

#include <immintrin.h>

#include <cstring>

#include "ops/ops.h"
#include "ops/quant.h"

namespace qkv::ops::QKV_ISA_NS {

// v: the scaled block sums, in 8 lanes; m: the _1 types' offset terms.
struct QAcc {
  __m256 v;
  float m;
};
inline QAcc qacc_zero() { return QAcc{_mm256_setzero_ps(), 0.0f}; }

inline float qacc_sum(const QAcc& a) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  const __m128 s2 = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2))) + a.m;
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

#include "ops/quant_x86_k.h"
#include "ops/quant_x86_small.h"
#include "ops/quant_x86_k23.h"
#include "ops/quant_dot.h"
#include "ops/quant_x86_x8.h"
#include "ops/quant_x86_x8k.h"

namespace qkv::ops::QKV_ISA_NS {

inline float hmax(__m256 m) {
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  return _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
}

inline int32_t hsum_i32(__m256i v) {
  __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
  return _mm_cvtsi128_si32(s4);
}

// 32 int32 (in order) to 32 int8, saturating: the packs interleave 128-bit
// lanes, the permute puts the 4-byte groups back in order.
inline void store_i8(int8_t* out, __m256i i0, __m256i i1, __m256i i2, __m256i i3) {
  const __m256i p8 = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out),
                      _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

// One block of 32 as quantize_row_q8_0_act quantizes it: q = x * 127 /
// max|x| rounded half to even (what cvtps2dq does under the default rounding
// mode) into qs; returns sum(q), and max|x| in *amax.
inline int quantize_block32(const float* x, int8_t* qs, float* amax) {
  const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8), v2 = _mm256_loadu_ps(x + 16),
               v3 = _mm256_loadu_ps(x + 24);
  const float m = hmax(_mm256_max_ps(_mm256_max_ps(abs_ps(v0), abs_ps(v1)), _mm256_max_ps(abs_ps(v2), abs_ps(v3))));
  const __m256 id = _mm256_set1_ps(m != 0.0f ? 127.0f / m : 0.0f);
  const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, id)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, id)),
                i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, id)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, id));
  store_i8(qs, i0, i1, i2, i3);
  *amax = m;
  return hsum_i32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
}

// As quantize_row_q8_0_act: d = max|x| / 127 (stored f16), plus the block sums.
void quantize_q8_0(const float* x, void* blocks, Q8Sum* sums, size_t n) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(blocks);
  for (size_t b = 0; b < n / kQK8_0; ++b, x += kQK8_0) {
    float amax;
    const int sum = quantize_block32(x, y[b].qs, &amax);
    y[b].d = uint16_t(_cvtss_sh(amax / 127.0f, 0));
    sums[b] = Q8Sum{_cvtsh_ss(y[b].d), {sum}};
  }
}

// As quantize_row_q8_1_act: quantize_q8_0's blocks, with s = (max|x| / 127)
// * sum(q) (that product in f32, then stored f16).
void quantize_q8_1(const float* x, void* blocks, size_t n) {
  BlockQ8_1* y = static_cast<BlockQ8_1*>(blocks);
  for (size_t b = 0; b < n / 32; ++b, x += 32) {
    float amax;
    const int sum = quantize_block32(x, y[b].qs, &amax);
    const float d = amax / 127.0f;
    y[b].d = uint16_t(_cvtss_sh(d, 0));
    y[b].s = uint16_t(_cvtss_sh(d * float(sum), 0));
  }
}

// As quantize_row_q8_K: the value of largest magnitude (the first one, with
// its sign) maps to -127; sums of each 16 quants.
void quantize_q8_K(const float* x, void* blocks, size_t n) {
  BlockQ8_K* y = static_cast<BlockQ8_K*>(blocks);
  for (size_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < kQK_K; i += 8) m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(x + i)));
    const float amax = hmax(m);
    if (amax == 0.0f) {
      std::memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    float max = 0.0f;
    for (int i = 0; i < kQK_K; i += 8) {
      const int hit = _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + i)), _mm256_set1_ps(amax), _CMP_EQ_OQ));
      if (hit) {
        max = x[i + __builtin_ctz(unsigned(hit))];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const __m256 is = _mm256_set1_ps(iscale);
    for (int g = 0; g < kQK_K; g += 64) {  // 64 values: 2 x 32 quants, 4 sums of 16
      __m256i q[8];
      for (int j = 0; j < 8; ++j) q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + g + 8 * j), is));
      store_i8(y[b].qs + g, q[0], q[1], q[2], q[3]);
      store_i8(y[b].qs + g + 32, q[4], q[5], q[6], q[7]);
      // Sums of 16: pairs of vectors added, then reduced side by side.
      const __m256i h01 = _mm256_hadd_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
      const __m256i h23 = _mm256_hadd_epi32(_mm256_add_epi32(q[4], q[5]), _mm256_add_epi32(q[6], q[7]));
      const __m256i h = _mm256_hadd_epi32(h01, h23);  // per lane: partial sums of groups 0, 1, 2, 3
      const __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(y[b].bsums + g / 16), _mm_packs_epi32(s4, s4));
    }
    y[b].d = 1.0f / iscale;
  }
}

QuantProducts q8_0_products() {
  return {qmatvec<BlockQ8_0>, qmatmul<BlockQ8_0>, x8_matvec<BlockQ8_0x8>, x8_matmul<BlockQ8_0x8>};
}
QuantProducts q4_0_products() {
  return {qmatvec<BlockQ4_0>, qmatmul<BlockQ4_0>, x8_matvec<BlockQ4_0x8>, x8_matmul<BlockQ4_0x8>};
}
QuantProducts q4_K_products() {
  return {qmatvec<BlockQ4_K>, qmatmul<BlockQ4_K>, x8k_matvec<BlockQ4_Kx8>, x8k_matmul<BlockQ4_Kx8>};
}
QuantProducts q5_K_products() {
  return {qmatvec<BlockQ5_K>, qmatmul<BlockQ5_K>, x8k_matvec<BlockQ5_Kx8>, x8k_matmul<BlockQ5_Kx8>};
}
QuantProducts q4_1_products() {
  return {qmatvec<BlockQ4_1>, qmatmul<BlockQ4_1>, x8_matvec<BlockQ4_1x8>, x8_matmul<BlockQ4_1x8>};
}
QuantProducts q5_0_products() {
  return {qmatvec<BlockQ5_0>, qmatmul<BlockQ5_0>, x8_matvec<BlockQ5_0x8>, x8_matmul<BlockQ5_0x8>};
}
QuantProducts q5_1_products() {
  return {qmatvec<BlockQ5_1>, qmatmul<BlockQ5_1>, x8_matvec<BlockQ5_1x8>, x8_matmul<BlockQ5_1x8>};
}
QuantProducts iq4_nl_products() {
  return {qmatvec<BlockIQ4_NL>, qmatmul<BlockIQ4_NL>, x8_matvec<BlockIQ4_NLx8>, x8_matmul<BlockIQ4_NLx8>};
}
QuantProducts q2_K_products() {
  return {qmatvec<BlockQ2_K>, qmatmul<BlockQ2_K>, x8k_matvec<BlockQ2_Kx8>, x8k_matmul<BlockQ2_Kx8>};
}
QuantProducts q3_K_products() {
  return {qmatvec<BlockQ3_K>, qmatmul<BlockQ3_K>, x8k_matvec<BlockQ3_Kx8>, x8k_matmul<BlockQ3_Kx8>};
}
QuantProducts iq4_xs_products() {
  return {qmatvec<BlockIQ4_XS>, qmatmul<BlockIQ4_XS>, x8k_matvec<BlockIQ4_XSx8>, x8k_matmul<BlockIQ4_XSx8>};
}
QuantProducts q6_K_products() {
  return {qmatvec<BlockQ6_K>, qmatmul<BlockQ6_K>, x8k_matvec<BlockQ6_Kx8>, x8k_matmul<BlockQ6_Kx8>};
}

// Machine probe: 12 independent chains of the ISA's byte multiply that
// every integer product is built from, on the batch products' vector
// (QKV_X8_VEC: 32 byte pairs per instruction in a ymm, 64 in a zmm):
// QKV_PEAK_ACC on AVX2, vpdpbusd with AVX-VNNI and AVX-512. Each chain multiplies its own
// accumulator's bytes, so no product can be hoisted out of the loop; 12
// chains cover the multiply's latency.
double int8_peak(size_t iters) {
  using V = QKV_X8_VEC;
  typename V::I acc[12];
  const auto b = V::set1_8(3);
  for (int j = 0; j < 12; ++j) acc[j] = V::set1_8(char(j + 1));
  for (size_t i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) acc[j] = V::peak(acc[j], acc[j], b);
  auto sum = acc[0];
  for (int j = 1; j < 12; ++j) sum = V::add_32(sum, acc[j]);
  alignas(64) int32_t lanes[sizeof(sum) / 4];
  std::memcpy(lanes, &sum, sizeof sum);
  volatile int sink = lanes[0];
  (void)sink;
  return 12.0 * 2.0 * double(sizeof(sum)) * double(iters);  // a byte pair per byte: a multiply and an add each
}

}  // namespace qkv::ops::QKV_ISA_NS
