// The ISA hooks of simd_kernels.h for AVX2 + FMA + F16C: included by
// isa_avx2.cpp after simd_kernels.h (and by the test that checks them
// against xsimd), inside the including unit's namespace.
#pragma once

namespace qkv::ops::QKV_ISA_NS {

inline vf fmadd(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }

inline vf load_f16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

inline void store_f16(uint16_t* p, vf x) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

inline vf round_to_f16(vf x) { return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT)); }

inline vf vexp(vf x) { return xsimd::exp(x); }

// xsimd::hadd's sum, ((x0 + x4) + (x1 + x5)) + ((x2 + x6) + (x3 + x7)), in
// 128-bit steps instead of a lane-crossing permute and two vhaddps.
inline float reduce_add(vf v) {
  const __m128 t = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
  const __m128 u = _mm_add_ps(_mm_movehdup_ps(t), t);
  return _mm_cvtss_f32(_mm_add_ss(_mm_movehl_ps(u, u), u));
}

inline float reduce_max(vf v) {
  __m128 m = _mm_max_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
  m = _mm_max_ps(_mm_movehl_ps(m, m), m);
  return _mm_cvtss_f32(_mm_max_ss(_mm_movehdup_ps(m), m));
}

}  // namespace qkv::ops::QKV_ISA_NS
