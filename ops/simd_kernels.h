// SIMD kernels written once with xsimd, instantiated per ISA by isa_*.cpp.
//
// Include this only from an isa_*.cpp file, after defining QKV_ISA_NS (a
// namespace unique to that translation unit) and specialising the Isa traits
// (fused multiply-add and the f16 -> f32 load). Everything here lives in that
// namespace so no symbol compiled with one ISA's flags can be picked by the
// linker for another. The kernels, by what they compute:
//   simd_base.h         the vector type, loads, horizontal sums
//   simd_matmul.h       dot, matvec, matmul over rows and over packed panels
//   simd_bf16.h         BF16 weights in panels of column pairs
//   simd_elementwise.h  norms, softmax, activations, add, f16 conversions
//   simd_attention.h    FlashAttention and the K cache's panel transposes
// and here, the FMA probe and the table the engine picks at start-up.
#pragma once

#include <cstddef>

#include "ops/ops.h"
#include "ops/quant_table.h"
#include "ops/simd_attention.h"
#include "ops/simd_base.h"
#include "ops/simd_bf16.h"
#include "ops/simd_elementwise.h"
#include "ops/simd_matmul.h"

namespace qkv::ops::QKV_ISA_NS {

// ---------------------------------------------------------------- probe

inline double fma_peak(size_t iters) {
  vf acc[12];
  for (int j = 0; j < 12; ++j) acc[j] = vf(float(j));
  const vf m(0.999999f), c(1e-7f);
  for (size_t i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) acc[j] = fmadd(acc[j], m, c);
  vf sum(0.0f);
  for (int j = 0; j < 12; ++j) sum += acc[j];
  volatile float sink = reduce_add(sum);
  (void)sink;
  return 24.0 * double(W) * double(iters);
}

inline const Kernels& table(const char* name) {
  static const Kernels k = [name] {
    Kernels t{};  // every entry by name (tests check that none is left null)
    t.isa = name;
    t.dot = dot;
    t.matvec_f32 = matvec<float>;
    t.matvec_f16 = matvec<uint16_t>;
    t.matmul_f32 = matmul<float>;
    t.matmul_f16 = matmul<uint16_t>;
    t.matvec_f32_panels = matvec_panels<float>;
    t.matvec_f16_panels = matvec_panels<uint16_t>;
    t.matmul_f32_panels = matmul_panels<float>;
    t.matmul_f16_panels = matmul_panels<uint16_t>;
    t.rmsnorm = rmsnorm;
    t.softmax = softmax;
    t.swiglu = swiglu;
    t.layernorm = layernorm;
    t.gelu = gelu;
    t.geglu = geglu;
    t.add = add;
    t.f16_to_f32 = f16_to_f32_n;
    t.f32_to_f16 = f32_to_f16_n;
    t.transpose_f32 = transpose_f32_n;
    t.transpose_f32_to_f16 = transpose_f32_to_f16_n;
    t.attention_f32 = attention_f32;
    t.attention_scores_f16 = attention_scores_f16;
    t.attention_weights_f16 = attention_weights_f16;
    t.attention_values_f16 = attention_values_f16;
    take_quant_products(t);
    t.quantize_q8_0 = quantize_q8_0;
    t.quantize_q8_K = quantize_q8_K;
    t.quantize_q8_1 = quantize_q8_1;
    t.fma_peak = fma_peak;
    t.f32_to_bf16 = f32_to_bf16_n;
    t.round_f16 = round_f16_n;
    t.bf16 = bf16_products("widened in registers");
    return t;
  }();
  return k;
}

}  // namespace qkv::ops::QKV_ISA_NS
