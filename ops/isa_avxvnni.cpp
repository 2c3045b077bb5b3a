// AVX2 + AVX-VNNI (Intel's client cores from Alder Lake on, its E-core
// servers from Sierra Forest on: AVX-VNNI without AVX-512): the avx2 table,
// with its integer products on the VEX-encoded vpdpbusd (32 byte pairs into
// 8 int32 lanes in one instruction, where AVX2 takes vpmaddubsw + vpmaddwd +
// vpaddd and sums in int16). Built with -mavx2 -mfma -mf16c -mavxvnni; the
// float kernels are avx2's (this unit only adds the integer products).
#define QKV_ISA_NS isa_avxvnni
#include <immintrin.h>

#include "ops/ops.h"
#include "ops/quant_table.h"

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
  static const Kernels k = [] {
    Kernels t = avx2_kernels();
    t.isa = "avxvnni";
    isa_avxvnni::take_quant_products(t);
    return t;
  }();
  return k;
}
