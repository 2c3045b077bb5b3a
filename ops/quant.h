// Quantized block formats, bit-exact with GGML's, and their scalar reference
// quantize / dequantize. A row of n values is n / block blocks.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qkv::ops {

constexpr int kQK8_0 = 32;
struct BlockQ8_0 {
  uint16_t d;          // scale, f16
  int8_t qs[kQK8_0];   // x = qs * d
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block is 34 bytes");

constexpr int kQK4_0 = 32;
struct BlockQ4_0 {
  uint16_t d;              // scale, f16
  uint8_t qs[kQK4_0 / 2];  // x[j] = (lo4(qs[j]) - 8) * d, x[j + 16] = (hi4(qs[j]) - 8) * d
};
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block is 18 bytes");

// K-quants: super-blocks of 256 values in 8 (or 16) sub-blocks with their
// own 6-bit (Q4_K, Q5_K) or 8-bit (Q6_K) scales.
constexpr int kQK_K = 256;
struct BlockQ4_K {
  uint16_t d, dmin;      // f16 scales of the sub-block scales and mins
  uint8_t scales[12];    // 8 x (6-bit scale, 6-bit min), packed
  uint8_t qs[kQK_K / 2]; // 4-bit values, 64 at a time: 32 low nibbles, then 32 high
};
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block is 144 bytes");
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8]; // the fifth bit of each value
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block is 176 bytes");
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2]; // low 4 bits
  uint8_t qh[kQK_K / 4]; // high 2 bits
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block is 210 bytes");

void dequantize_row_q4_K(const BlockQ4_K* x, float* y, size_t n);
void dequantize_row_q5_K(const BlockQ5_K* x, float* y, size_t n);
void dequantize_row_q6_K(const BlockQ6_K* x, float* y, size_t n);

// n must be a multiple of the block size.
// Weights, as GGML's reference quantizer writes files (round half away from zero).
void quantize_row_q8_0(const float* x, BlockQ8_0* y, size_t n);
// Activations, as llama.cpp quantizes them on x86 before an integer dot
// product (scale 127 / max|x|, round half to even), so results track it.
void quantize_row_q8_0_act(const float* x, BlockQ8_0* y, size_t n);
void dequantize_row_q8_0(const BlockQ8_0* x, float* y, size_t n);
void quantize_row_q4_0(const float* x, BlockQ4_0* y, size_t n);
void dequantize_row_q4_0(const BlockQ4_0* x, float* y, size_t n);

// Scalar quantized products (the reference, and the baseline ISA's kernels).
void matvec_q8_0_ref(const void* w, const void* xq, float* y, size_t n, size_t r0, size_t r1);
void matvec_q4_0_ref(const void* w, const void* xq, float* y, size_t n, size_t r0, size_t r1);
void matmul_q8_0_ref(const void* w, const void* xq, float* y, size_t M, size_t n, size_t ldy, size_t r0, size_t r1);
void matmul_q4_0_ref(const void* w, const void* xq, float* y, size_t M, size_t n, size_t ldy, size_t r0, size_t r1);

}  // namespace qkv::ops
