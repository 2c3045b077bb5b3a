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

}  // namespace qkv::ops::QKV_ISA_NS
