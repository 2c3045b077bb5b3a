// Baseline x86-64 kernels (SSE2): run on any x86-64 CPU.
#define QKV_ISA_NS isa_sse2
#define QKV_ARCH xsimd::sse2
#include "ops/simd_kernels.h"
#include "ops/quant.h"

namespace qkv::ops::isa_sse2 {

// SSE2 has no fused multiply-add.
inline vf fmadd(vf a, vf b, vf c) { return a * b + c; }

// SSE2 has no f16 conversion instruction (F16C came later): convert in scalar.
inline vf load_f16(const uint16_t* p) {
  alignas(16) float tmp[W];
  for (size_t i = 0; i < W; ++i) tmp[i] = f16_to_f32(p[i]);
  return vf::load_aligned(tmp);
}

inline void store_f16(uint16_t* p, vf x) {
  alignas(16) float tmp[W];
  x.store_aligned(tmp);
  for (size_t i = 0; i < W; ++i) p[i] = f32_to_f16(tmp[i]);
}

inline vf round_to_f16(vf x) {
  alignas(16) float tmp[W];
  x.store_aligned(tmp);
  for (size_t i = 0; i < W; ++i) tmp[i] = f16_to_f32(f32_to_f16(tmp[i]));
  return vf::load_aligned(tmp);
}

inline vf vexp(vf x) { return xsimd::exp(x); }

inline float reduce_add(vf v) { return xsimd::hadd(v); }

inline float reduce_max(vf v) {
  __m128 m = _mm_max_ps(_mm_movehl_ps(v, v), v);
  return _mm_cvtss_f32(_mm_max_ss(_mm_shuffle_ps(m, m, 1), m));
}

inline vf dot_pairs(vf acc, vu w, vu x) { return widened_pairs(acc, w, x); }

// SSE2 has no byte multiply-add: the scalar integer products (the compiler
// vectorises what it can).
QuantProducts q8_0_products() { return q8_0_products_ref(); }
QuantProducts q4_0_products() { return q4_0_products_ref(); }
QuantProducts q4_K_products() { return q4_K_products_ref(); }
QuantProducts q5_K_products() { return q5_K_products_ref(); }
QuantProducts q6_K_products() { return q6_K_products_ref(); }
double int8_peak(size_t iters) { return reference_kernels().int8_peak(iters); }
void quantize_q8_0(const float* x, void* blocks, Q8Sum* sums, size_t n) { quantize_q8_0_ref(x, blocks, sums, n); }
void quantize_q8_K(const float* x, void* blocks, size_t n) { quantize_q8_K_ref(x, blocks, n); }
void quantize_q8_1(const float* x, void* blocks, size_t n) { quantize_q8_1_ref(x, blocks, n); }
QuantProducts q4_1_products() { return q4_1_products_ref(); }
QuantProducts q5_0_products() { return q5_0_products_ref(); }
QuantProducts q5_1_products() { return q5_1_products_ref(); }
QuantProducts iq4_nl_products() { return iq4_nl_products_ref(); }
QuantProducts q2_K_products() { return q2_K_products_ref(); }
QuantProducts q3_K_products() { return q3_K_products_ref(); }
QuantProducts iq4_xs_products() { return iq4_xs_products_ref(); }

}  // namespace qkv::ops::isa_sse2

const qkv::ops::Kernels& qkv::ops::sse2_kernels() { return isa_sse2::table("sse2"); }
