// AVX-512 F/BW/VL kernels (Skylake-X and later). xsimd 8.1's fma on avx512
// is not fused, so the fused multiply-add is the intrinsic.
#define QKV_ISA_NS isa_avx512
#define QKV_ARCH xsimd::avx512bw
#include <immintrin.h>

#include "ops/simd_kernels.h"

namespace qkv::ops::isa_avx512 {

inline vf fmadd(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }

inline vf load_f16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

}  // namespace qkv::ops::isa_avx512

const qkv::ops::Kernels& qkv::ops::avx512_kernels() { return isa_avx512::table("avx512"); }
