// The integer products' configuration on AVX-512 VNNI (quant_x86.h's
// macros) and their headers, for the units built with AVX-512 flags that
// hold them: isa_avx512.cpp, and isa_avx512vbmi.cpp (Q3_K's 3-bit layout,
// whose batch product is the nibble layout's). Include after defining
// QKV_ISA_NS.
#pragma once

// 32 u8 x s8 products summed into 8 int32 lanes in one instruction.
#define QKV_DOT_S8(a, b) _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b)
#define QKV_DOT_ACC(acc, a, b) _mm256_dpbusd_epi32(acc, a, b)
// int16 pair products summed and accumulated into int32 lanes in one instruction.
#define QKV_MADD_ACC(acc, a, b) _mm256_dpwssd_epi32(acc, a, b)
#define QKV_PEAK_ACC(acc, a, b) QKV_DOT_ACC(acc, a, b)
#define QKV_SHORT_SUMS 0  // vpdpbusd sums into int32 directly
// vpdpbusd takes w + 128 (unsigned) exactly; 128 * sum(x) is taken off per block.
#define QKV_X8_GROUPS 2  // vectors of row groups per pass of the batch product (registers: 16 or 32)
#define QKV_X8_VEC X8Zmm  // two row groups per vector
#define QKV_X8_GEMV_VEC X8Pieces  // one token: two pieces of one block per vector
#define QKV_Q8_BIAS 128
#include "ops/quant_x86_zmm.h"
#include "ops/quant_x86.h"
