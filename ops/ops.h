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
#include <cstring>

namespace qkv::ops {

// Per activation block, beside its bytes, what the row-interleaved products
// take of it: its scale d in f32, and for a Q8_0 block the sum of its quants
// (what the products over unsigned weight bytes subtract), for a Q8_1 block
// its stored s (f16 of d times that sum) in f32, the _1 types' offset term.
struct Q8Sum {
  float d;
  union {
    int32_t s;  // Q8_0
    float sf;   // Q8_1
  };
};

// Products of one quantized weight type; same shapes and ranges as
// Kernels::matvec_f32 / matmul_f32, with x given quantized.
struct QuantProducts {
  void (*matvec)(const void* w, const void* xq, float* y, size_t n, size_t r0, size_t r1);
  void (*matmul)(const void* w, const void* xq, float* y, size_t M, size_t n, size_t ldy, size_t r0, size_t r1);
  // The same over the weights interleaved by groups of 8 rows (ops/quant.h,
  // repack_x8; every integer type has them), for row groups [g0, g1), i.e.
  // rows [8 g0, 8 g1); xs: per Q8_0 or Q8_1 activation block, its Q8Sum
  // (unused by the types whose Q8_K blocks carry their sums).
  void (*matvec_x8)(const void* packed, const void* xq, const Q8Sum* xs, float* y, size_t n, size_t g0, size_t g1);
  void (*matmul_x8)(const void* packed, const void* xq, const Q8Sum* xs, float* y, size_t M, size_t n, size_t ldy,
                    size_t g0, size_t g1);
  // Where these x8 products read a layout of their own (Q3_K's 3-bit levels
  // with AVX-512 VBMI), its packer and the bytes of a group's block column;
  // null and 0: the type's (TypeInfo::repack, group_bytes). ops::packing_for
  // picks.
  void (*x8_repack)(const void* w, void* out, size_t rows, size_t n) = nullptr;
  size_t x8_group_bytes = 0;
  const char* x8_layout = nullptr;  // that layout in words, for qkv info
};

// ---------------------------------------------------------------- attention
//
// One KV head's cache from position t0 on (t0 a multiple of kAttnTile), as
// the attention kernels read it, with u = t - t0:
//   K in panels of kAttnTile positions, each panel transposed:
//     k_t[i] = kt[(u / kAttnTile) * head_dim * kAttnTile + i * kAttnTile + u % kAttnTile]
//     so a panel's scores are a product over i of one query value and a
//     vector of kAttnTile keys (no horizontal sums, no transposition);
//   V row by row, rows padded with zeros to attention_ldv(head_dim) values:
//     v_t[i] = v[u * attention_ldv(head_dim) + i].
// So a cache may lie in chunks anywhere in memory, each read by its own call.
constexpr size_t kAttnTile = 64;
inline size_t attention_ldv(size_t head_dim) { return (head_dim + 31) / 32 * 32; }
inline size_t attention_scratch(size_t rows, size_t head_dim) { return rows * (head_dim + kAttnTile); }

// A block of query rows against one KV head, and their online-softmax state.
// Row r: query q[r] (head_dim values, before scaling), visible keys
// [lo[r], hi[r]); running max m[r] (-inf before any key), running sum l[r]
// and unnormalised output o + r * ldo (attention_ldv(head_dim) values); the
// attention output is o / l once every visible key has been added.
struct AttentionRows {
  size_t rows;
  const float* const* q;
  const int32_t* lo;
  const int32_t* hi;
  float* m;
  float* l;
  float* o;
  size_t ldo;
};

// ---------------------------------------------------------------- panels
//
// Float weights as the matrix products read them, packed once at load:
// rows in panels of kPanelRows, each panel stored column by column, so
//   W[p * kPanelRows + j, k] = panels[(p * n + k) * kPanelRows + j].
// A panel's column is one AVX-512 vector (two AVX2 ones) that every token's
// x[k] multiplies: an outer product per column, each accumulator one output.
constexpr size_t kPanelRows = 16;
// rows (a multiple of kPanelRows) x n values of w into `out` (rows * n values).
void pack_panels(const float* w, float* out, size_t rows, size_t n);
void pack_panels(const uint16_t* w, uint16_t* out, size_t rows, size_t n);
// BF16 weights in panels of column pairs, as vdpbf16ps reads them: the pair
// (k, k + 1), k even, of a panel's 16 rows is one run of 32 values, row by
// row, so
//   W[p * kPanelRows + j, k] = panels[p * n * kPanelRows + (k / 2) * 2 * kPanelRows + 2 * j + k % 2],
// and when n is odd its last column follows the pairs as one plain column:
//   W[p * kPanelRows + j, n - 1] = panels[p * n * kPanelRows + (n - 1) * kPanelRows + j].
void pack_panels_bf16(const uint16_t* w, uint16_t* out, size_t rows, size_t n);

// Products of BF16 weights with activations rounded to bf16 (f32_to_bf16),
// llama.cpp's numerics for that type. Each output is summed over the column
// pairs in order, the odd column of a pair first:
//   s += w[k + 1] x[k + 1]; s += w[k] x[k]   (k = 0, 2, 4, ...)
// then a last odd column; the product of two bf16 is exact in f32, so each
// step is one rounding (to nearest even), which is what vdpbf16ps does per
// lane. The matmul over panels keeps that order (every ISA gives the same
// bits, but for vdpbf16ps flushing subnormals to zero); the matvec over
// panels sums U interleaved runs of pairs, added in a fixed order.
// x: (M, n) bf16, row m at x + m * n.
//
// A batch's activations come in two forms: the bf16 values, and the same
// values widened to floats, which the products without vdpbf16ps read (so
// that no tile widens the same tokens again for every panel).
struct Bf16Batch {
  const uint16_t* bits;  // (M, n) bf16
  const float* values;   // (M, n): bf16_to_f32 of each of bits
};
// bits widened into values (n of each).
inline void widen_bf16(const uint16_t* bits, float* values, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t u = uint32_t(bits[i]) << 16;
    std::memcpy(values + i, &u, 4);
  }
}
struct Bf16Products {
  void (*matvec)(const uint16_t* w, const uint16_t* x, float* y, size_t n, size_t r0, size_t r1);
  void (*matmul)(const uint16_t* w, const uint16_t* x, float* y, size_t M, size_t n, size_t ldy, size_t r0, size_t r1);
  void (*matvec_panels)(const uint16_t* panels, const uint16_t* x, float* y, size_t n, size_t p0, size_t p1);
  void (*matmul_panels)(const uint16_t* panels, Bf16Batch x, float* y, size_t M, size_t n, size_t ldy, size_t p0,
                        size_t p1);
  // The probe: `iters` rounds of independent chains (12, or 24 with 32
  // registers) of the pair product above on whole vectors; returns the
  // floating-point operations done (4 a lane and step).
  double (*peak)(size_t iters);
  const char* how;  // "vdpbf16ps", "widened in registers" or "scalar"
};

struct Kernels {
  const char* isa;  // "scalar", "sse2", "avx2", "avxvnni", "avx512"

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

  // The same products over weights packed in panels (pack_panels), for the
  // rows of panels [p0, p1), i.e. rows [p0 * kPanelRows, p1 * kPanelRows).
  // Each output is summed over k in order (matmul) or in a few interleaved
  // partial sums added in a fixed order (matvec).
  void (*matvec_f32_panels)(const float* panels, const float* x, float* y, size_t n, size_t p0, size_t p1);
  void (*matvec_f16_panels)(const uint16_t* panels, const float* x, float* y, size_t n, size_t p0, size_t p1);
  void (*matmul_f32_panels)(const float* panels, const float* x, float* y, size_t M, size_t n, size_t ldy,
                            size_t p0, size_t p1);
  void (*matmul_f16_panels)(const uint16_t* panels, const float* x, float* y, size_t M, size_t n, size_t ldy,
                            size_t p0, size_t p1);

  // out[i] = w[i] * x[i] / sqrt(mean(x^2) + eps); out may alias x
  void (*rmsnorm)(float* out, const float* x, const float* w, size_t n, float eps);

  // x = exp(x - max(x)) / sum(exp(x - max(x))), in place
  void (*softmax)(float* x, size_t n);

  // gate[i] = silu(gate[i]) * up[i]
  void (*swiglu)(float* gate, const float* up, size_t n);

  // out[i] = (x[i] - mean(x)) / sqrt(var(x) + eps) * w[i] + b[i] (b may be
  // null); out may alias x. The mean and variance are summed in double.
  void (*layernorm)(float* out, const float* x, const float* w, const float* b, size_t n, float eps);

  // x[i] = gelu(x[i]) as llama.cpp computes it on the CPU: 0 for x <= -10,
  // x for x >= 10, else the entry of gelu_f16_table() at x rounded to f16
  // (the tanh approximation 0.5 x (1 + tanh(sqrt(2 / pi) x (1 + 0.044715
  // x^2))) at that f16, rounded to f16).
  void (*gelu)(float* x, size_t n);
  // gate[i] = gelu(gate[i]) * up[i] (GeGLU)
  void (*geglu)(float* gate, const float* up, size_t n);

  // y[i] += x[i]
  void (*add)(float* y, const float* x, size_t n);

  void (*f16_to_f32)(const uint16_t* src, float* dst, size_t n);
  // dst[i] = src[i] rounded to f16 (nearest, ties to even)
  void (*f32_to_f16)(const float* src, uint16_t* dst, size_t n);
  // dst[i] = src[i] rounded to bf16 (f32_to_bf16: the same bits on every ISA)
  void (*f32_to_bf16)(const float* src, uint16_t* dst, size_t n);
  // dst[i] = src[i] rounded to the nearest f16 (ties to even), as a float:
  // the activations of F16 weights, which llama.cpp rounds so (may alias)
  void (*round_f16)(const float* src, float* dst, size_t n);

  // BF16 weights (above); on AVX-512 with AVX512_BF16, vdpbf16ps.
  Bf16Products bf16;

  // FlashAttention over one KV head's cache (the layout above AttentionRows:
  // kt and v hold positions t0.., t0 a multiple of kAttnTile),
  // f32: extends the rows' state over the keys in [t0, t1) that each row
  // sees, in tiles of kAttnTile keys: scores S = q . k_t * scale (soft-capped
  // when cap > 0) as a register-tiled product, masked outside [lo, hi), an
  // online softmax (m, l and o rescaled by exp(m_old - m_new)), then o += P V
  // as a second tiled product. Fully masked tiles are never touched.
  // scratch: attention_scratch(rows, head_dim) floats.
  void (*attention_f32)(const AttentionRows& r, const float* kt, const float* v, size_t head_dim, size_t t0,
                        size_t t1, float scale, float cap, float* scratch);
  // The f16 cache, with llama.cpp's numerics there (its attention without
  // flash attention): queries rounded to f16, f32 scores and softmax, and
  // the probabilities normalised and rounded to f16 before they weight V.
  // That takes three phases, each over [t0, t1) and each done for every range
  // a row sees before the next begins. Scores: s (row r at s + r * lds, key t
  // at t - t0, -inf where masked; lds >= t1 - t0 rounded up to kAttnTile),
  // and each row's max m extended (l, o untouched). Weights, with m final
  // (merged over every range): s_t = exp(s_t - m) in place (one exp per
  // score) and l += their sum, a tile at a time. Values, with l final too:
  // o += sum_t p_t v_t with p_t = f16(s_t / l).
  // scratch: attention_scratch floats.
  void (*attention_scores_f16)(const AttentionRows& r, const uint16_t* kt, size_t head_dim, size_t t0, size_t t1,
                               float scale, float cap, float* s, size_t lds, float* scratch);
  void (*attention_weights_f16)(const AttentionRows& r, size_t t0, size_t t1, float* s, size_t lds);
  void (*attention_values_f16)(const AttentionRows& r, const uint16_t* v, size_t head_dim, size_t t0, size_t t1,
                               const float* s, size_t lds, float* scratch);

  // A block of keys into the K cache's panel layout: dst[c * ldd + r] =
  // src[r * lds + c] for r < rows (positions), c < cols (head dimensions);
  // the f16 form rounds each value as f32_to_f16 does.
  void (*transpose_f32)(const float* src, size_t lds, float* dst, size_t ldd, size_t rows, size_t cols);
  void (*transpose_f32_to_f16)(const float* src, size_t lds, uint16_t* dst, size_t ldd, size_t rows, size_t cols);

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
  // `iters` rounds of 12 independent chains of the byte multiply the integer
  // products are built from, on the vectors the batch products use
  // (vpmaddubsw on 256-bit vectors on AVX2, vpdpbusd on 512-bit ones with
  // AVX-512); returns the integer operations done (a multiply and an add per
  // byte pair).
  double (*int8_peak)(size_t iters);
};

// The scalar reference: simple loops, sequential sums.
const Kernels& reference_kernels();
// Its BF16 products (reference_bf16.cpp).
Bf16Products bf16_products_ref();

// Per-ISA tables. Calling a table's kernels on a CPU without that ISA is
// undefined: the engine's CPU probe decides which may be used.
const Kernels& sse2_kernels();
const Kernels& avx2_kernels();
// avx2 with its integer products on AVX-VNNI's vpdpbusd (isa_avxvnni.cpp).
const Kernels& avxvnni_kernels();
const Kernels& avx512_kernels();
// The BF16 products with vdpbf16ps, which avx512_kernels() takes where the
// CPU has AVX512_BF16 (its own translation unit, built with -mavx512bf16).
Bf16Products avx512bf16_products();
// The avx512 table's BF16 products without vdpbf16ps (widened in
// registers, as Ice Lake runs them), which that replaces: for the tests,
// so that CPUs with AVX512_BF16 check them too.
Bf16Products avx512_widened_bf16_products();
// Q3_K's products over its 3-bit x8 layout (BlockQ3_Kx8Bits) with
// vpermb and vpmultishiftqb, which avx512_kernels() takes where the CPU has
// AVX512_VBMI (its own translation unit, built with -mavx512vbmi), with
// plain's products over the file's rows.
QuantProducts avx512vbmi_q3_K_products(const QuantProducts& plain);
// The avx512 table's Q3_K products over the nibble layout (BlockQ3_Kx8), as
// CPUs without AVX512_VBMI run them, which those replace: for the tests, so
// that CPUs with AVX512_VBMI check them too.
QuantProducts avx512_nibble_q3_K_products();

// Rotate adjacent pairs (2i, 2i+1) of each of n_heads heads of x by the angle
// whose cosine and sine are cos[i], sin[i]; x: (n_heads, head_dim),
// cos, sin: (head_dim / 2). Too small to need a SIMD version.
void rope(float* x, size_t n_heads, size_t head_dim, const float* cos, const float* sin);
// The same for GPT-NeoX's pairing (i, i + head_dim / 2), which Qwen, Gemma
// and Phi-3 use.
void rope_neox(float* x, size_t n_heads, size_t head_dim, const float* cos, const float* sin);

// s capped to cap * tanh(s / cap); s itself when cap <= 0.
inline float softcap(float s, float cap);

// llama.cpp's GELU table: entry h (the bits of an f16) is the tanh
// approximation at that f16, computed in f32, rounded to f16. Built on
// first use (128 KiB).
const uint16_t* gelu_f16_table();

// Scalar conversions, exact (round to nearest even for f32 -> f16).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);
// f to bf16 as GGML rounds it: nearest, ties to even; a NaN stays a (quiet) NaN.
uint16_t f32_to_bf16(float f);

}  // namespace qkv::ops

#include <cmath>

inline float qkv::ops::softcap(float s, float cap) { return cap > 0.0f ? cap * std::tanh(s / cap) : s; }
