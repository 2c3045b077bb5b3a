// AVX2 + AVX-VNNI (Intel's client cores from Alder Lake on, its E-core
// servers from Sierra Forest on: AVX-VNNI without AVX-512): the avx2 table,
// with its integer products on the VEX-encoded vpdpbusd (32 byte pairs into
// 8 int32 lanes in one instruction, where AVX2 takes vpmaddubsw + vpmaddwd +
// vpaddd and sums in int16). Built with -mavx2 -mfma -mf16c -mavxvnni; the
// float kernels are avx2's (this unit only adds the integer products).
#define QKV_ISA_NS isa_avxvnni
#include <immintrin.h>

#include "ops/ops.h"

#define QKV_DOT_S8(a, b) _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), a, b)
#define QKV_DOT_ACC(acc, a, b) _mm256_dpbusd_avx_epi32(acc, a, b)
#define QKV_MADD_ACC(acc, a, b) _mm256_dpwssd_avx_epi32(acc, a, b)
#define QKV_PEAK_ACC(acc, a, b) QKV_DOT_ACC(acc, a, b)
#define QKV_SHORT_SUMS 0  // vpdpbusd sums into int32 directly
// vpdpbusd takes w + 128 (unsigned) exactly; 128 * sum(x) is taken off per block.
#define QKV_Q8_BIAS 128
#define QKV_X8_GROUPS 1  // 16 ymm registers: one vector of row groups per pass, as avx2
#define QKV_X8_VEC X8Ymm
#define QKV_X8_GEMV_VEC X8Ymm
#include "ops/quant_x86.h"

const qkv::ops::Kernels& qkv::ops::avxvnni_kernels() {
  namespace n = isa_avxvnni;
  static const Kernels k = [] {
    Kernels t = avx2_kernels();
    t.isa = "avxvnni";
    t.q8_0 = n::q8_0_products();
    t.q4_0 = n::q4_0_products();
    t.q4_1 = n::q4_1_products();
    t.q5_0 = n::q5_0_products();
    t.q5_1 = n::q5_1_products();
    t.iq4_nl = n::iq4_nl_products();
    t.q2_K = n::q2_K_products();
    t.q3_K = n::q3_K_products();
    t.q4_K = n::q4_K_products();
    t.q5_K = n::q5_K_products();
    t.q6_K = n::q6_K_products();
    t.iq4_xs = n::iq4_xs_products();
    t.int8_peak = n::int8_peak;
    return t;
  }();
  return k;
}
