// The integer side of a kernel table: the quantized products, activation
// quantizers and int8 probe an isa_*.cpp unit defines (quant_x86.h on x86,
// the references on SSE2), declared in that unit's namespace, and the one
// place a table takes them (simd_kernels.h's table(); isa_avxvnni.cpp, which
// puts its products into avx2's table). Include after defining QKV_ISA_NS.
#pragma once

#include <cstddef>

#include "ops/ops.h"

namespace qkv::ops::QKV_ISA_NS {

QuantProducts q8_0_products();
QuantProducts q4_0_products();
QuantProducts q4_K_products();
QuantProducts q5_K_products();
QuantProducts q6_K_products();
QuantProducts q4_1_products();
QuantProducts q5_0_products();
QuantProducts q5_1_products();
QuantProducts iq4_nl_products();
QuantProducts q2_K_products();
QuantProducts q3_K_products();
QuantProducts iq4_xs_products();
void quantize_q8_0(const float* x, void* blocks, Q8Sum* sums, size_t n);
void quantize_q8_K(const float* x, void* blocks, size_t n);
void quantize_q8_1(const float* x, void* blocks, size_t n);
double int8_peak(size_t iters);

// t's products of every integer type, and its int8 probe, this unit's.
inline void take_quant_products(Kernels& t) {
  t.q8_0 = q8_0_products();
  t.q4_0 = q4_0_products();
  t.q4_1 = q4_1_products();
  t.q5_0 = q5_0_products();
  t.q5_1 = q5_1_products();
  t.iq4_nl = iq4_nl_products();
  t.q2_K = q2_K_products();
  t.q3_K = q3_K_products();
  t.q4_K = q4_K_products();
  t.q5_K = q5_K_products();
  t.q6_K = q6_K_products();
  t.iq4_xs = iq4_xs_products();
  t.int8_peak = int8_peak;
}

}  // namespace qkv::ops::QKV_ISA_NS
