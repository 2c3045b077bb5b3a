// The ISA hooks of simd_kernels.h for AVX-512 (F/BW/VL/DQ), shared by the
// units built with AVX-512 flags (isa_avx512.cpp, isa_avx512bf16.cpp); each
// includes it after simd_kernels.h, inside its own namespace.
#pragma once

namespace qkv::ops::QKV_ISA_NS {

// xsimd 8.1's fma on avx512 is not fused: the intrinsic.
inline vf fmadd(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }

inline vf load_f16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

inline void store_f16(uint16_t* p, vf x) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

inline vf round_to_f16(vf x) { return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT)); }

// xsimd::hadd's sum (the halves added, then ((x0 + x4) + (x1 + x5)) + ((x2 +
// x6) + (x3 + x7)) on the ymm sum), the same additions in 128-bit steps
// instead of a lane-crossing permute and two vhaddps.
inline float reduce_add(vf v) {
  const __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(v, 1), _mm512_extractf32x8_ps(v, 0));
  const __m128 t = _mm_add_ps(_mm256_extractf128_ps(h, 1), _mm256_castps256_ps128(h));
  const __m128 u = _mm_add_ps(_mm_movehdup_ps(t), t);
  return _mm_cvtss_f32(_mm_add_ss(_mm_movehl_ps(u, u), u));
}

inline float reduce_max(vf v) {
  const __m256 h = _mm256_max_ps(_mm512_extractf32x8_ps(v, 1), _mm512_extractf32x8_ps(v, 0));
  __m128 m = _mm_max_ps(_mm256_extractf128_ps(h, 1), _mm256_castps256_ps128(h));
  m = _mm_max_ps(_mm_movehl_ps(m, m), m);
  return _mm_cvtss_f32(_mm_max_ss(_mm_movehdup_ps(m), m));
}

// xsimd::exp's reduction (k = nearest(x / ln 2), r = x - k ln 2 in two
// steps) and polynomial, in its own unfused operations; then 2^k p(r) by
// vscalefps instead of its exponent arithmetic and two selects. Where k <=
// -127 that arithmetic gives 0 (x < -87.68, and -inf): so does the mask here
// (NaN passes through). The same bits for every x below 88.
inline vf vexp(vf a) {
  const vf k = xsimd::nearbyint(xsimd::constants::invlog_2<vf>() * a);
  vf r = xsimd::fnma(k, xsimd::constants::log_2hi<vf>(), a);
  r = xsimd::fnma(k, xsimd::constants::log_2lo<vf>(), r);
  const vf p = xsimd::horner<float, Arch, 0x3f000000, 0x3e2aa9a5, 0x3d2aa957, 0x3c098d8b, 0x3ab778cf>(r);
  const vf e = xsimd::fma(p, r * r, r) + vf(1.0f);
  return _mm512_maskz_scalef_ps(_mm512_cmp_ps_mask(k, vf(-127.0f), _CMP_NLE_UQ), e, k);
}

}  // namespace qkv::ops::QKV_ISA_NS
