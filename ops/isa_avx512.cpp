// AVX-512 F/BW/VL/DQ + VNNI kernels (Ice Lake, Sapphire Rapids and later).
// xsimd 8.1's fma on avx512 is not fused, so the fused multiply-add is the
// intrinsic; the int8 dot products use VNNI's vpdpbusd.
#define QKV_ISA_NS isa_avx512
#define QKV_ARCH xsimd::avx512bw
#include <immintrin.h>

#include "ops/simd_kernels.h"
#include "ops/isa_avx512_hooks.h"

namespace qkv::ops::isa_avx512 {

// Without AVX512_BF16 (Ice Lake); avx512_kernels() takes vdpbf16ps where the CPU has it.
inline vf dot_pairs(vf acc, vu w, vu x) { return widened_pairs(acc, w, x); }

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
#define QKV_X8_GEMV_VEC X8Pieces  // one token: two pieces of one block per vector
#define QKV_Q8_BIAS 128
#include "ops/quant_x86_zmm.h"
#include "ops/quant_x86.h"
#include "ops/quantize_act_zmm.h"
#include "ops/transpose_zmm.h"

#include "ops/platform.h"

const qkv::ops::Kernels& qkv::ops::avx512_kernels() {
  static const Kernels k = [] {
    Kernels t = isa_avx512::table("avx512");
    t.quantize_q8_0 = isa_avx512::quantize_q8_0_zmm;
    t.quantize_q8_1 = isa_avx512::quantize_q8_1_zmm;
    t.quantize_q8_K = isa_avx512::quantize_q8_K_zmm;
    t.transpose_f32 = isa_avx512::transpose_f32_zmm;
    t.transpose_f32_to_f16 = isa_avx512::transpose_f32_to_f16_zmm;
    if (cpu_features().avx512_bf16) t.bf16 = avx512bf16_products();
    if (cpu_features().avx512_vbmi) t.q3_K = avx512vbmi_q3_K_products(t.q3_K);
    return t;
  }();
  return k;
}
