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

#include "ops/quant_x86_avx512.h"
#include "ops/quantize_act_zmm.h"
#include "ops/transpose_zmm.h"

#include "ops/platform.h"

qkv::ops::Bf16Products qkv::ops::avx512_widened_bf16_products() {
  return isa_avx512::bf16_products("widened in registers");
}

qkv::ops::QuantProducts qkv::ops::avx512_nibble_q3_K_products() { return isa_avx512::table("avx512").q3_K; }

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
