// Quantized block formats, bit-exact with GGML's, and their scalar reference
// quantize / dequantize. A row of n values is n / block blocks.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/ops.h"

namespace qkv::ops {

constexpr int kQK8_0 = 32;
struct BlockQ8_0 {
  static constexpr int kValues = kQK8_0;
  using Act = BlockQ8_0;  // the activation blocks its integer products take
  uint16_t d;          // scale, f16
  int8_t qs[kQK8_0];   // x = qs * d
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block is 34 bytes");

constexpr int kQK4_0 = 32;
struct BlockQ4_0 {
  static constexpr int kValues = kQK4_0;
  using Act = BlockQ8_0;
  uint16_t d;              // scale, f16
  uint8_t qs[kQK4_0 / 2];  // x[j] = (lo4(qs[j]) - 8) * d, x[j + 16] = (hi4(qs[j]) - 8) * d
};
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block is 18 bytes");

// Activations for the _1 types' products, as llama.cpp's Q8_1: Q8_0's
// quants and scale, plus s = d * sum(qs) (both f16) for the weights' offsets.
struct BlockQ8_1 {
  static constexpr int kValues = 32;
  uint16_t d, s;
  int8_t qs[32];
};
static_assert(sizeof(BlockQ8_1) == 36, "Q8_1 block is 36 bytes");

// Q4_1: x[j] = lo4(qs[j]) * d + m, x[j + 16] = hi4(qs[j]) * d + m.
struct BlockQ4_1 {
  static constexpr int kValues = 32;
  using Act = BlockQ8_1;
  uint16_t d, m;  // f16
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 block is 20 bytes");
// Q5_0: as Q4_0 with a fifth bit (bit j of qh for value j): x = (q - 16) * d.
struct BlockQ5_0 {
  static constexpr int kValues = 32;
  using Act = BlockQ8_0;
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 block is 22 bytes");
// Q5_1: as Q4_1 with a fifth bit: x = q * d + m.
struct BlockQ5_1 {
  static constexpr int kValues = 32;
  using Act = BlockQ8_1;
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 block is 24 bytes");
// IQ4_NL: 16 non-uniform levels, x = d * kIq4nlValues[nibble], nibbles laid
// out as Q4_0's.
extern const int8_t kIq4nlValues[16];
struct BlockIQ4_NL {
  static constexpr int kValues = 32;
  using Act = BlockQ8_0;
  uint16_t d;
  uint8_t qs[16];
};
static_assert(sizeof(BlockIQ4_NL) == 18, "IQ4_NL block is 18 bytes");

// K-quants: super-blocks of 256 values in 8 (or 16) sub-blocks with their
// own 6-bit (Q4_K, Q5_K) or 8-bit (Q6_K) scales.
constexpr int kQK_K = 256;
// Activations for K-quant products, as llama.cpp's Q8_K: one f32 scale per
// 256 values and the sum of each 16 quants (for the weights' offsets).
struct BlockQ8_K {
  static constexpr int kValues = kQK_K;
  float d;                    // x = qs * d
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];  // bsums[k] = sum of qs[16k .. 16k + 15]
};
static_assert(sizeof(BlockQ8_K) == 292, "Q8_K block is 292 bytes");

// Q4_K: x = d * sc[j] * q - dmin * m[j] for the 32 values of sub-block j.
struct BlockQ4_K {
  static constexpr int kValues = kQK_K;
  using Act = BlockQ8_K;
  uint16_t d, dmin;      // f16 scales of the sub-block scales and mins
  uint8_t scales[12];    // 8 x (6-bit scale, 6-bit min), packed
  uint8_t qs[kQK_K / 2]; // 4-bit values, 64 at a time: 32 low nibbles, then 32 high
};
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block is 144 bytes");
// Q5_K: as Q4_K with a fifth bit per value.
struct BlockQ5_K {
  static constexpr int kValues = kQK_K;
  using Act = BlockQ8_K;
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8]; // the fifth bit of each value
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block is 176 bytes");
// Q6_K: x = d * scales[k] * (q - 32) for the 16 values of sub-block k.
struct BlockQ6_K {
  static constexpr int kValues = kQK_K;
  using Act = BlockQ8_K;
  uint8_t ql[kQK_K / 2]; // low 4 bits
  uint8_t qh[kQK_K / 4]; // high 2 bits
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block is 210 bytes");

// Q2_K: 16 sub-blocks of 16, x = d * (sc & 15) * q - dmin * (sc >> 4), q in
// 0..3: 4 values per byte, 128 values per 32 bytes (shift 2j for values
// 32j .. 32j + 31 of each 128).
struct BlockQ2_K {
  static constexpr int kValues = kQK_K;
  using Act = BlockQ8_K;
  uint8_t scales[kQK_K / 16];  // 4-bit scale (low), 4-bit min (high)
  uint8_t qs[kQK_K / 4];
  uint16_t d, dmin;
};
static_assert(sizeof(BlockQ2_K) == 84, "Q2_K block is 84 bytes");
// Q3_K: 16 sub-blocks of 16, x = d * (sc - 32) * (q - 4), q = 2 low bits as
// Q2_K's plus a high bit (value i: bit i / 32 of hmask[i % 32]); 6-bit
// scales packed in 12 bytes.
struct BlockQ3_K {
  static constexpr int kValues = kQK_K;
  using Act = BlockQ8_K;
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110, "Q3_K block is 110 bytes");
// IQ4_XS: IQ4_NL's levels in 8 sub-blocks of 32 with 6-bit scales:
// x = d * (ls - 32) * kIq4nlValues[nibble]; each sub-block's 16 bytes hold
// its first 16 values in the low nibbles.
struct BlockIQ4_XS {
  static constexpr int kValues = kQK_K;
  using Act = BlockQ8_K;
  uint16_t d;
  uint16_t scales_h;              // 2 high bits of each sub-block's scale
  uint8_t scales_l[kQK_K / 64];   // 4 low bits, two sub-blocks per byte
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockIQ4_XS) == 136, "IQ4_XS block is 136 bytes");
// Sub-block ib's 6-bit scale (before the -32).
inline int iq4_xs_scale(const BlockIQ4_XS& b, int ib) {
  return ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f) | (((b.scales_h >> (2 * ib)) & 3) << 4);
}
// Q3_K's 16 scales (after the -32) unpacked from their 12 bytes.
void q3_K_scales(const uint8_t* packed, int8_t* out);

// n must be a multiple of the block size.
void dequantize_row_q4_K(const BlockQ4_K* x, float* y, size_t n);
void dequantize_row_q5_K(const BlockQ5_K* x, float* y, size_t n);
void dequantize_row_q6_K(const BlockQ6_K* x, float* y, size_t n);
// Weights, as GGML's reference quantizers (no importance matrix) write them.
void quantize_row_q4_K(const float* x, BlockQ4_K* y, size_t n);
void quantize_row_q5_K(const float* x, BlockQ5_K* y, size_t n);
void quantize_row_q6_K(const float* x, BlockQ6_K* y, size_t n);
// Activations, as llama.cpp quantizes them for K-quant products.
void quantize_row_q8_K(const float* x, BlockQ8_K* y, size_t n);
void dequantize_row_q8_K(const BlockQ8_K* x, float* y, size_t n);

// Weights, as GGML's reference quantizer writes files (round half away from zero).
void quantize_row_q8_0(const float* x, BlockQ8_0* y, size_t n);
// Activations, as llama.cpp quantizes them on x86 before an integer dot
// product (scale 127 / max|x|, round half to even), so results track it.
void quantize_row_q8_0_act(const float* x, BlockQ8_0* y, size_t n);
void dequantize_row_q8_0(const BlockQ8_0* x, float* y, size_t n);
void quantize_row_q4_0(const float* x, BlockQ4_0* y, size_t n);
void dequantize_row_q4_0(const BlockQ4_0* x, float* y, size_t n);
void quantize_row_q4_1(const float* x, BlockQ4_1* y, size_t n);
void dequantize_row_q4_1(const BlockQ4_1* x, float* y, size_t n);
void quantize_row_q5_0(const float* x, BlockQ5_0* y, size_t n);
void dequantize_row_q5_0(const BlockQ5_0* x, float* y, size_t n);
void quantize_row_q5_1(const float* x, BlockQ5_1* y, size_t n);
void dequantize_row_q5_1(const BlockQ5_1* x, float* y, size_t n);
void dequantize_row_iq4_nl(const BlockIQ4_NL* x, float* y, size_t n);
void dequantize_row_q2_K(const BlockQ2_K* x, float* y, size_t n);
void dequantize_row_q3_K(const BlockQ3_K* x, float* y, size_t n);
void dequantize_row_iq4_xs(const BlockIQ4_XS* x, float* y, size_t n);
void quantize_row_q2_K(const float* x, BlockQ2_K* y, size_t n);
// As llama-quantize's quantize_iq4_nl / quantize_iq4_xs without an importance matrix.
void quantize_row_iq4_nl(const float* x, BlockIQ4_NL* y, size_t n);
void quantize_row_iq4_xs(const float* x, BlockIQ4_XS* y, size_t n);
void quantize_row_q3_K(const float* x, BlockQ3_K* y, size_t n);
// With an importance per value (qw: n of them), as llama-quantize with an
// importance matrix (GGML's quantize_row_*_impl): the fits weigh value j by
// qw[j] * sqrt(sigma2 + x[j]^2) (Q6_K: by qw[j] alone).
void quantize_row_q4_0_weighted(const float* x, BlockQ4_0* y, size_t n, const float* qw);
void quantize_row_q4_1_weighted(const float* x, BlockQ4_1* y, size_t n, const float* qw);
void quantize_row_q5_0_weighted(const float* x, BlockQ5_0* y, size_t n, const float* qw);
void quantize_row_q5_1_weighted(const float* x, BlockQ5_1* y, size_t n, const float* qw);
void quantize_row_iq4_nl_weighted(const float* x, BlockIQ4_NL* y, size_t n, const float* qw);
void quantize_row_q2_K_weighted(const float* x, BlockQ2_K* y, size_t n, const float* qw);
void quantize_row_q3_K_weighted(const float* x, BlockQ3_K* y, size_t n, const float* qw);
void quantize_row_q4_K_weighted(const float* x, BlockQ4_K* y, size_t n, const float* qw);
void quantize_row_q5_K_weighted(const float* x, BlockQ5_K* y, size_t n, const float* qw);
void quantize_row_q6_K_weighted(const float* x, BlockQ6_K* y, size_t n, const float* qw);
void quantize_row_iq4_xs_weighted(const float* x, BlockIQ4_XS* y, size_t n, const float* qw);
// Activations for the _1 types, as llama.cpp's x86 quantize_row_q8_1: the
// quants of quantize_row_q8_0_act, s = f16(d * sum) with d = max|x| / 127.
void quantize_row_q8_1_act(const float* x, BlockQ8_1* y, size_t n);
void dequantize_row_q8_1(const BlockQ8_1* x, float* y, size_t n);

// Row-interleaved layout of Q8_0 / Q4_0 matrices, for products that keep 8
// rows' sums in the 8 lanes of one register. Per group of 8 rows and block
// column: the 8 rows' f16 scales, then their quants in 4-byte pieces, piece
// c of row r at bytes 4 (8 c + r) .. 4 (8 c + r) + 3 (the bytes of each
// row's block as stored: Q8_0 values, or Q4_0 nibble pairs).
struct BlockQ8_0x8 {
  uint16_t d[8];
  int8_t qs[8 * kQK8_0];
};
struct BlockQ4_0x8 {
  uint16_t d[8];
  uint8_t qs[8 * kQK4_0 / 2];
};
static_assert(sizeof(BlockQ8_0x8) == 8 * sizeof(BlockQ8_0), "x8 groups hold the same bytes");
static_assert(sizeof(BlockQ4_0x8) == 8 * sizeof(BlockQ4_0), "x8 groups hold the same bytes");
// Q5_0 likewise, with each row's 32 fifth bits in the order of its pieces:
// byte 4r + i of qh holds row r's fifth bits of values 4p + i (piece p's low
// nibbles) in bit p and of values 16 + 4p + i (its high nibbles) in bit 4 + p,
// so that a piece's bits are a shift and a mask away (p < 4).
struct BlockQ5_0x8 {
  uint16_t d[8];
  uint8_t qh[8 * 4];
  uint8_t qs[8 * 16];
};
static_assert(sizeof(BlockQ5_0x8) == 8 * sizeof(BlockQ5_0), "x8 groups hold the same bytes");
// Q4_1 / Q5_1 likewise, with each row's f16 offset m.
struct BlockQ4_1x8 {
  uint16_t d[8], m[8];
  uint8_t qs[8 * 16];
};
struct BlockQ5_1x8 {
  uint16_t d[8], m[8];
  uint8_t qh[8 * 4];  // as Q5_0x8's
  uint8_t qs[8 * 16];
};
static_assert(sizeof(BlockQ4_1x8) == 8 * sizeof(BlockQ4_1), "x8 groups hold the same bytes");
// IQ4_NL likewise (Q4_0's layout, the nibbles index kIq4nlValues).
struct BlockIQ4_NLx8 {
  uint16_t d[8];
  uint8_t qs[8 * 16];
};
static_assert(sizeof(BlockIQ4_NLx8) == 8 * sizeof(BlockIQ4_NL), "x8 groups hold the same bytes");
static_assert(sizeof(BlockQ5_1x8) == 8 * sizeof(BlockQ5_1), "x8 groups hold the same bytes");
// Q4_K likewise, with the 6-bit scales and mins unpacked: sc[j][r] is
// sub-block j's scale in row r; m2[k][r] holds row r's mins of sub-blocks
// 2k and 2k + 1 (a pair, for 16-bit multiply-adds); qs as above, 32
// pieces per row.
struct BlockQ4_Kx8 {
  uint16_t d[8], dmin[8];
  uint8_t sc[8][8];
  uint8_t m2[4][8][2];
  uint8_t qs[8 * kQK_K / 2];
};
static_assert(sizeof(BlockQ4_Kx8) == 1184, "Q4_K x8 group: 8 super-blocks and their unpacked scales");
// Q5_K likewise: Q4_Kx8's scales, then per 64-value chunk c (in the order
// the product reads them: one stream from memory) 64 bytes of fifth bits and
// Q4_Kx8's 8 pieces of that chunk. Fifth bits: bytes 0..31 for the values in
// low nibbles, 32..63 for the high ones; row r's 4 at 4r, byte i holding the
// fifth bit of piece 8c + p's value i in bit p.
struct BlockQ5_Kx8 {
  uint16_t d[8], dmin[8];
  uint8_t sc[8][8];
  uint8_t m2[4][8][2];
  uint8_t chunks[4][64 + 256];
};
static_assert(sizeof(BlockQ5_Kx8) == 1440, "Q5_K x8 group: 8 super-blocks and their unpacked scales");
// IQ4_XS likewise: sc2[k][r] row r's scales (after the -32) of sub-blocks
// 2k and 2k + 1 (a pair, for 16-bit multiply-adds), qs as Q4_Kx8's (the
// nibbles index kIq4nlValues).
struct BlockIQ4_XSx8 {
  uint16_t d[8];
  int8_t sc2[4][8][2];
  uint8_t qs[8 * kQK_K / 2];
};
static_assert(sizeof(BlockIQ4_XSx8) == 1104, "IQ4_XS x8 group: 8 super-blocks and their unpacked scales");
// Q2_K likewise, in the file's bytes (a GEMV reads no more than the file):
// scm[k][r][i] is the file's scale byte of sub-block 2k + i in row r (4-bit
// scale low, 4-bit min high; a pair per row, for 16-bit multiply-adds with
// the mins); 16 pieces of 32 bytes, piece P's row r at 4 (8P + r), bits 2s,
// 2s + 1 of its byte i value 64s + 4P + i.
struct BlockQ2_Kx8 {
  uint16_t d[8], dmin[8];
  uint8_t scm[8][8][2];
  uint8_t qs[8 * kQK_K / 4];
};
static_assert(sizeof(BlockQ2_Kx8) == 8 * sizeof(BlockQ2_K), "Q2_K x8 group: 8 super-blocks, the file's bytes");
// Q3_K likewise, each value's 3 bits as one unsigned level (value + 4) in a
// nibble (4 bits a value: a third more bytes than the file's, for products
// without bit gathering), in 32 pieces of 32 bytes: piece P holds values 8P
// .. 8P + 7 of each row, so a 16-value sub-block (one scale) is two pieces:
// byte 32P + 4r + i, the low nibble value 8P + i, the high one 8P + 4 + i.
// sc2 as Q6_Kx8's (after the -32).
struct BlockQ3_Kx8 {
  uint16_t d[8];
  int8_t sc2[8][8][2];
  uint8_t qs[8 * kQK_K / 2];
};
static_assert(sizeof(BlockQ3_Kx8) == 1168, "Q3_K x8 group: 8 super-blocks, levels in nibbles, unpacked scales");
// Q3_K at nearly the file's size (114 bytes a row's super-block: the file's
// 110 with the scales unpacked), for CPUs with AVX-512 VBMI (the kernel table
// that reads it repacks with it; QuantProducts::x8_repack): each value's
// level (value + 4, 0..7) in 3 bits, piece P (values 8P .. 8P + 7, as
// Q3_Kx8's) a row's 24 bits: value 8P + i of row r in bits 3i .. 3i + 2 of
// the little-endian bytes q[P][3r .. 3r + 2]. A vpermb spreads a piece's rows
// over 8 qwords, a vpmultishiftqb puts each level in a byte. The levels come
// before the scales, so that a piece's 32-byte load stays in the block.
// sc2 as Q6_Kx8's (after the -32).
struct BlockQ3_Kx8Bits {
  uint16_t d[8];
  uint8_t q[32][24];
  int8_t sc2[8][8][2];
};
static_assert(sizeof(BlockQ3_Kx8Bits) == 912, "Q3_K x8 group in 3-bit levels: 8 super-blocks, unpacked scales");
// Row r's level (value + 4) of value v in a BlockQ3_Kx8Bits.
inline int q3_K_x8_bits_level(const BlockQ3_Kx8Bits& p, int r, int v) {
  const uint8_t* b = p.q[v / 8] + 3 * r;
  const uint32_t bits = uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16;
  return int(bits >> (3 * (v % 8))) & 7;
}
// Q6_K likewise, its bytes in the order the product reads them (one stream
// from memory): each value's low 4 bits and its 2 high bits in one of 8
// quads of 192 bytes, each quad 4 of Q3_Kx8's pieces (values 8P .. 8P + 7,
// P = 4u + k; a sub-block is two pieces): value 8P + 4h + i (h = 0, 1; i <
// 4) of row r has its low bits in byte 64 + 32k + 4r + i of quad u (the low
// nibble for h = 0), its high bits in bits 2k, 2k + 1 of byte 32h + 4r + i.
// sc2[k][r]: row r's scales of sub-blocks 2k and 2k + 1 (a pair, for 16-bit
// multiply-adds).
struct BlockQ6_Kx8 {
  uint16_t d[8];
  int8_t sc2[8][8][2];
  uint8_t quads[8][192];
};
static_assert(sizeof(BlockQ6_Kx8) == 8 * sizeof(BlockQ6_K), "x8 groups hold the same bytes");
// The first rows / 8 * 8 rows of w (rows, n) into out (rows / 8 groups of
// n / block values blocks).
void repack_x8(const BlockQ8_0* w, BlockQ8_0x8* out, size_t rows, size_t n);
void repack_x8(const BlockQ4_0* w, BlockQ4_0x8* out, size_t rows, size_t n);
void repack_x8(const BlockQ4_K* w, BlockQ4_Kx8* out, size_t rows, size_t n);
void repack_x8(const BlockQ5_K* w, BlockQ5_Kx8* out, size_t rows, size_t n);
void repack_x8(const BlockQ6_K* w, BlockQ6_Kx8* out, size_t rows, size_t n);
void repack_x8(const BlockIQ4_XS* w, BlockIQ4_XSx8* out, size_t rows, size_t n);
void repack_x8(const BlockQ3_K* w, BlockQ3_Kx8* out, size_t rows, size_t n);
void repack_x8(const BlockQ3_K* w, BlockQ3_Kx8Bits* out, size_t rows, size_t n);
void repack_x8(const BlockQ2_K* w, BlockQ2_Kx8* out, size_t rows, size_t n);
void repack_x8(const BlockQ5_0* w, BlockQ5_0x8* out, size_t rows, size_t n);
void repack_x8(const BlockQ4_1* w, BlockQ4_1x8* out, size_t rows, size_t n);
void repack_x8(const BlockQ5_1* w, BlockQ5_1x8* out, size_t rows, size_t n);
void repack_x8(const BlockIQ4_NL* w, BlockIQ4_NLx8* out, size_t rows, size_t n);
// The scales and sums of nb activation blocks.
void q8_0_sums(const BlockQ8_0* x, Q8Sum* out, size_t nb);
void q8_1_sums(const BlockQ8_1* x, Q8Sum* out, size_t nb);
// Both: Kernels::quantize_q8_0 of the scalar reference.
void quantize_q8_0_ref(const float* x, void* blocks, Q8Sum* sums, size_t n);
void quantize_q8_K_ref(const float* x, void* blocks, size_t n);  // quantize_row_q8_K
void quantize_q8_1_ref(const float* x, void* blocks, size_t n);  // quantize_row_q8_1_act

// Scalar quantized products (the reference, and the baseline ISA's kernels).
QuantProducts q8_0_products_ref();
QuantProducts q4_0_products_ref();
QuantProducts q4_K_products_ref();
QuantProducts q5_K_products_ref();
QuantProducts q6_K_products_ref();
QuantProducts q4_1_products_ref();
QuantProducts q5_0_products_ref();
QuantProducts q5_1_products_ref();
QuantProducts iq4_nl_products_ref();
QuantProducts q2_K_products_ref();
QuantProducts q3_K_products_ref();
QuantProducts iq4_xs_products_ref();

}  // namespace qkv::ops
