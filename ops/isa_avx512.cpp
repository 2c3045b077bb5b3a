// AVX-512 F/BW/VL/DQ + VNNI kernels (Ice Lake, Sapphire Rapids and later).
// xsimd 8.1's fma on avx512 is not fused, so the fused multiply-add is the
// intrinsic; the int8 dot products use VNNI's vpdpbusd.
#define QKV_ISA_NS isa_avx512
#define QKV_ARCH xsimd::avx512bw
#include <immintrin.h>

#include "ops/simd_kernels.h"

namespace qkv::ops::isa_avx512 {

inline vf fmadd(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }

inline vf load_f16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

inline void store_f16(uint16_t* p, vf x) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

inline vf round_to_f16(vf x) { return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT)); }

}  // namespace qkv::ops::isa_avx512

// 32 u8 x s8 products summed into 8 int32 lanes in one instruction.
#define QKV_DOT_S8(a, b) _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b)
#define QKV_DOT_ACC(acc, a, b) _mm256_dpbusd_epi32(acc, a, b)
// int16 pair products summed and accumulated into int32 lanes in one instruction.
#define QKV_MADD_ACC(acc, a, b) _mm256_dpwssd_epi32(acc, a, b)
#define QKV_PEAK_ACC(acc, a, b) QKV_DOT_ACC(acc, a, b)
// vpdpbusd takes w + 128 (unsigned) exactly; 128 * sum(x) is taken off per block.
#define QKV_X8_GROUPS 2  // vectors of row groups per pass of the batch product (registers: 16 or 32)
#define QKV_X8_VEC X8Zmm  // two row groups per vector
#define QKV_Q8_BIAS 128
#include "ops/quant_x86_zmm.h"
#include "ops/quant_x86.h"

const qkv::ops::Kernels& qkv::ops::avx512_kernels() { return isa_avx512::table("avx512"); }
