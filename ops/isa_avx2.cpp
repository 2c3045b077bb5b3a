// AVX2 + FMA + F16C kernels (Haswell and later). Built with -mavx2 -mfma -mf16c.
#define QKV_ISA_NS isa_avx2
#define QKV_ARCH xsimd::fma3<xsimd::avx2>
#include <immintrin.h>

#include "ops/simd_kernels.h"

namespace qkv::ops::isa_avx2 {

inline vf fmadd(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }

inline vf load_f16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

}  // namespace qkv::ops::isa_avx2

const qkv::ops::Kernels& qkv::ops::avx2_kernels() { return isa_avx2::table("avx2"); }
