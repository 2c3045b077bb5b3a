// qkv kernels: plain pointers and sizes in, no model knowledge.
//
// Every kernel exists once as a scalar reference (reference.cpp, the truth the
// tests compare against) and once per instruction set (isa_*.cpp, built from
// simd_kernels.h with that ISA's compiler flags). The engine picks one table
// at start-up; kernels are single-threaded and work on an index range so the
// engine's thread pool can split them.
//
// Conventions:
//   - matrices are row-major; a weight matrix W: (rows, n) holds one output
//     row per line, as llama2.c and GGUF store them (GGUF ne[0] == n).
//   - f16 is IEEE half precision stored as uint16_t; bf16 likewise.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qkv::ops {

// Per Q8_0 activation block: its scale in f32 and the sum of its quants
// (what the products over unsigned weight bytes subtract).
struct Q8Sum {
  float d;
  int32_t s;
};

// Products of one quantized weight type; same shapes and ranges as
// Kernels::matvec_f32 / matmul_f32, with x given quantized.
struct QuantProducts {
  void (*matvec)(const void* w, const void* xq, float* y, size_t n, size_t r0, size_t r1);
  void (*matmul)(const void* w, const void* xq, float* y, size_t M, size_t n, size_t ldy, size_t r0, size_t r1);
  // Q8_0 / Q4_0 / Q4_K only (null for the others): the same over the weights
  // interleaved by groups of 8 rows (ops/quant.h, repack_x8), for row groups
  // [g0, g1), i.e. rows [8 g0, 8 g1); xs: per Q8_0 activation block, as
  // Q8Sum (unused by Q4_K, whose Q8_K blocks carry their sums).
  void (*matvec_x8)(const void* packed, const void* xq, const Q8Sum* xs, float* y, size_t n, size_t g0, size_t g1);
  void (*matmul_x8)(const void* packed, const void* xq, const Q8Sum* xs, float* y, size_t M, size_t n, size_t ldy,
                    size_t g0, size_t g1);
};

struct Kernels {
  const char* isa;  // "scalar", "sse2", "avx2", "avx512"

  // sum_i a[i] * b[i]
  float (*dot)(const float* a, const float* b, size_t n);

  // y[r] = W[r, :] . x for r in [r0, r1)
  // w: (rows, n), x: (n), y: (rows)
  void (*matvec_f32)(const float* w, const float* x, float* y, size_t n, size_t r0, size_t r1);
  void (*matvec_f16)(const uint16_t* w, const float* x, float* y, size_t n, size_t r0, size_t r1);

  // Y[m, r] = W[r, :] . X[m, :] for m in [0, M), r in [r0, r1)
  // w: (rows, n), x: (M, n), y: (M, ldy)
  void (*matmul_f32)(const float* w, const float* x, float* y, size_t M, size_t n, size_t ldy,
                     size_t r0, size_t r1);
  void (*matmul_f16)(const uint16_t* w, const float* x, float* y, size_t M, size_t n, size_t ldy,
                     size_t r0, size_t r1);

  // out[i] = w[i] * x[i] / sqrt(mean(x^2) + eps); out may alias x
  void (*rmsnorm)(float* out, const float* x, const float* w, size_t n, float eps);

  // x = exp(x - max(x)) / sum(exp(x - max(x))), in place
  void (*softmax)(float* x, size_t n);

  // gate[i] = silu(gate[i]) * up[i]
  void (*swiglu)(float* gate, const float* up, size_t n);

  // out[i] = (x[i] - mean(x)) / sqrt(var(x) + eps) * w[i] + b[i] (b may be
  // null); out may alias x. The mean and variance are summed in double.
  void (*layernorm)(float* out, const float* x, const float* w, const float* b, size_t n, float eps);

  // x[i] = gelu(x[i]), the tanh approximation:
  //   0.5 x (1 + tanh(sqrt(2 / pi) x (1 + 0.044715 x^2)))
  void (*gelu)(float* x, size_t n);
  // gate[i] = gelu(gate[i]) * up[i] (GeGLU)
  void (*geglu)(float* gate, const float* up, size_t n);

  // y[i] += x[i]
  void (*add)(float* y, const float* x, size_t n);

  // One query against n cached positions of one head:
  //   s_t = q . k_t * scale, capped to softcap * tanh(s_t / softcap) when
  //   softcap > 0 (Gemma 2's logit soft-capping);
  //   att[t] = softmax_t(s_t), out = sum_t att[t] * v_t
  // q: (head_dim); k_t = k + t * kv_stride, v_t = v + t * kv_stride;
  // out: (head_dim); att: (n) receives the probabilities, or is null (the
  // SIMD kernels then never hold more than a block of scores).
  void (*attention)(const float* q, const float* k, const float* v, size_t kv_stride,
                    size_t head_dim, size_t n, float scale, float softcap, float* att, float* out);

  void (*f16_to_f32)(const uint16_t* src, float* dst, size_t n);

  // attention over an f16 KV cache, with llama.cpp's numerics: q is rounded
  // to f16, scores and softmax are f32 (the sum in double), the probabilities
  // are rounded to f16 before they weight the values. att: (n) scratch, not
  // null; it receives those f16-rounded probabilities. k, v: f16, laid out
  // as above.
  void (*attention_f16)(const float* q, const uint16_t* k, const uint16_t* v, size_t kv_stride, size_t head_dim,
                        size_t n, float scale, float softcap, float* att, float* out);

  // Quantized weights (ops/quant.h blocks) against activations quantized to
  // the blocks the weight type takes (Q8_0 for Q8_0/Q4_0, Q8_K for the
  // K-quants; xq: M rows of n / block values blocks): integer dot products
  // per block, scaled and summed in f32.
  QuantProducts q8_0, q4_0, q4_K, q5_K, q6_K;
  // Q4_1 / Q5_1 take Q8_1 activations, Q5_0 / IQ4_NL Q8_0, Q2_K / Q3_K /
  // IQ4_XS Q8_K.
  QuantProducts q4_1, q5_0, q5_1, iq4_nl, q2_K, q3_K, iq4_xs;

  // x (n, a multiple of 32) quantized to Q8_0 activation blocks (ops/quant.h,
  // quantize_row_q8_0_act: the same bytes on every ISA) and their Q8Sum.
  void (*quantize_q8_0)(const float* x, void* blocks, Q8Sum* sums, size_t n);
  // x (n, a multiple of 256) quantized to Q8_K blocks (quantize_row_q8_K's bytes).
  void (*quantize_q8_K)(const float* x, void* blocks, size_t n);
  // x (n, a multiple of 32) quantized to Q8_1 blocks (quantize_row_q8_1_act's bytes).
  void (*quantize_q8_1)(const float* x, void* blocks, size_t n);

  // Machine probe: `iters` rounds of 12 independent multiply-add chains on
  // whole vectors; returns the number of floating-point operations done.
  double (*fma_peak)(size_t iters);
};

// The scalar reference: simple loops, sequential sums.
const Kernels& reference_kernels();

// Per-ISA tables. Calling a table's kernels on a CPU without that ISA is
// undefined: the engine's CPU probe decides which may be used.
const Kernels& sse2_kernels();
const Kernels& avx2_kernels();
const Kernels& avx512_kernels();

// Rotate adjacent pairs (2i, 2i+1) of each of n_heads heads of x by the angle
// whose cosine and sine are cos[i], sin[i]; x: (n_heads, head_dim),
// cos, sin: (head_dim / 2). Too small to need a SIMD version.
void rope(float* x, size_t n_heads, size_t head_dim, const float* cos, const float* sin);
// The same for GPT-NeoX's pairing (i, i + head_dim / 2), which Qwen, Gemma
// and Phi-3 use.
void rope_neox(float* x, size_t n_heads, size_t head_dim, const float* cos, const float* sin);

// s capped to cap * tanh(s / cap); s itself when cap <= 0.
inline float softcap(float s, float cap);

// Scalar conversions, exact (round to nearest even for f32 -> f16).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);

}  // namespace qkv::ops

#include <cmath>

inline float qkv::ops::softcap(float s, float cap) { return cap > 0.0f ? cap * std::tanh(s / cap) : s; }
