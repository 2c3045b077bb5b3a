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
