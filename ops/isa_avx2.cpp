// AVX2 + FMA + F16C kernels (Haswell and later). Built with -mavx2 -mfma -mf16c.
#define QKV_ISA_NS isa_avx2
#define QKV_ARCH xsimd::fma3<xsimd::avx2>
#include <immintrin.h>

#include "ops/simd_kernels.h"

#include "ops/isa_avx2_hooks.h"

namespace qkv::ops::isa_avx2 {

inline vf dot_pairs(vf acc, vu w, vu x) { return widened_pairs(acc, w, x); }

}  // namespace qkv::ops::isa_avx2

// 32 u8 x s8 products summed into 8 int32 lanes: pairs into int16 (no
// overflow: |w| <= 128, |x| <= 127), then pairs of those into int32.
#define QKV_DOT_S8(a, b) _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1))
#define QKV_DOT_ACC(acc, a, b) _mm256_add_epi32(acc, QKV_DOT_S8(a, b))
#define QKV_MADD_ACC(acc, a, b) _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
// Small levels (2 to 6 bits) against bytes: several maddubs summed in int16
// lanes before one madd widens them (quant_x86_x8.h: x8_short_run; quant_x86_x8k.h: the K tiles).
#define QKV_SHORT_SUMS 1
// The probe's bound: vpmaddubsw alone (a kernel that sums pairs into int16 across blocks approaches it).
#define QKV_PEAK_ACC(acc, a, b) _mm256_add_epi16(acc, _mm256_maddubs_epi16(a, b))
// maddubs would saturate on w + 128: Q8_0 weights take the sign trick.
#define QKV_X8_GROUPS 1  // vectors of row groups per pass of the batch product (registers: 16 or 32)
#define QKV_X8_VEC X8Ymm  // one row group per vector
#define QKV_X8_GEMV_VEC X8Ymm  // one token: the same
#define QKV_Q8_BIAS 0
#include "ops/quant_x86.h"

const qkv::ops::Kernels& qkv::ops::avx2_kernels() { return isa_avx2::table("avx2"); }
