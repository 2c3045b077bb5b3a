// Scalar reference quantizers: the same arithmetic as GGML's reference
// ("_ref") functions, so files we write match llama-quantize's byte for byte.
#include "ops/quant.h"

#include <cmath>
#include <cstring>

#include "ops/ops.h"
#include "ops/quant_repack.h"

namespace qkv::ops {

void quantize_row_q8_0(const float* x, BlockQ8_0* y, size_t n) {
  for (size_t b = 0; b < n / kQK8_0; ++b, x += kQK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kQK8_0; ++j) y[b].qs[j] = int8_t(std::round(x[j] * id));
  }
}

// Round half to even for |v| < 2^22 (adding 1.5 * 2^23 leaves the integer in
// the low mantissa bits), without a call into libm.
static inline int8_t round_even(float v) {
  const float shifted = v + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, 4);
  return int8_t((bits & 0x007fffff) - 0x00400000);
}

void quantize_row_q8_0_act(const float* x, BlockQ8_0* y, size_t n) {
  for (size_t b = 0; b < n / kQK8_0; ++b, x += kQK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    y[b].d = f32_to_f16(amax / 127.0f);
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    for (int j = 0; j < kQK8_0; ++j) y[b].qs[j] = round_even(x[j] * id);
  }
}

void dequantize_row_q8_0(const BlockQ8_0* x, float* y, size_t n) {
  for (size_t b = 0; b < n / kQK8_0; ++b) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK8_0; ++j) y[b * kQK8_0 + j] = float(x[b].qs[j]) * d;
  }
}

void quantize_row_q4_0(const float* x, BlockQ4_0* y, size_t n) {
  for (size_t b = 0; b < n / kQK4_0; ++b, x += kQK4_0) {
    float amax = 0.0f, max = 0.0f;  // the value of largest magnitude, with its sign
    for (int j = 0; j < kQK4_0; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      const int8_t lo = int8_t(x[j] * id + 8.5f), hi = int8_t(x[j + kQK4_0 / 2] * id + 8.5f);
      const uint8_t q0 = uint8_t(lo < 15 ? lo : 15), q1 = uint8_t(hi < 15 ? hi : 15);
      y[b].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void dequantize_row_q4_0(const BlockQ4_0* x, float* y, size_t n) {
  for (size_t b = 0; b < n / kQK4_0; ++b) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      y[b * kQK4_0 + j] = float((x[b].qs[j] & 0x0f) - 8) * d;
      y[b * kQK4_0 + j + kQK4_0 / 2] = float((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

}  // namespace qkv::ops

// ---------------------------------------------------------------- scalar dot products

#include "ops/quant_ref.h"

namespace qkv::ops::quant_ref {

inline void qacc_add(QAcc& a, const BlockQ8_0& w, const BlockQ8_0& x) {
  int sumi = 0;
  for (int j = 0; j < kQK8_0; ++j) sumi += int(w.qs[j]) * int(x.qs[j]);
  a.s += float(sumi) * (f16_to_f32(w.d) * f16_to_f32(x.d));
}

inline void qacc_add(QAcc& a, const BlockQ4_0& w, const BlockQ8_0& x) {
  int sumi = 0;
  for (int j = 0; j < kQK4_0 / 2; ++j)
    sumi += ((w.qs[j] & 0x0f) - 8) * int(x.qs[j]) + ((w.qs[j] >> 4) - 8) * int(x.qs[j + kQK4_0 / 2]);
  a.s += float(sumi) * (f16_to_f32(w.d) * f16_to_f32(x.d));
}

}  // namespace qkv::ops::quant_ref

#define QKV_ISA_NS quant_ref
#include "ops/quant_dot.h"

namespace qkv::ops {
namespace {

// The row-interleaved products, as plainly as the layout allows: row r's
// piece c of block b is 4 bytes at qs + 4 (8 c + r).
template <class Packed>
float x8_block_dot(const Packed& w, int r, const BlockQ8_0& x);
template <>
float x8_block_dot(const BlockQ8_0x8& w, int r, const BlockQ8_0& x) {
  int sumi = 0;
  for (int c = 0; c < 8; ++c)
    for (int i = 0; i < 4; ++i) sumi += int(w.qs[4 * (8 * c + r) + i]) * int(x.qs[4 * c + i]);
  return float(sumi);
}
template <>
float x8_block_dot(const BlockQ4_0x8& w, int r, const BlockQ8_0& x) {
  int sumi = 0;
  for (int c = 0; c < 4; ++c) {
    for (int i = 0; i < 4; ++i) {
      const uint8_t b = w.qs[4 * (8 * c + r) + i];
      sumi += ((b & 0x0f) - 8) * int(x.qs[4 * c + i]) + ((b >> 4) - 8) * int(x.qs[16 + 4 * c + i]);
    }
  }
  return float(sumi);
}

template <class Packed>
void x8_matmul_ref(const void* packed, const void* xq, const Q8Sum* xs, float* y, size_t M, size_t n, size_t ldy,
                   size_t g0, size_t g1) {
  quant_ref::x8_products<Packed, BlockQ8_0>(
      packed, xq, xs, y, M, n / kQK8_0, ldy, g0, g1, [](const Packed& w, int r, const BlockQ8_0& x, const Q8Sum* s) {
        return f16_to_f32(w.d[r]) * s->d * x8_block_dot(w, r, x);
      });
}

}  // namespace

void repack_x8(const BlockQ8_0* w, BlockQ8_0x8* out, size_t rows, size_t n) { repack_rows_x8(w, out, rows, n); }
void repack_x8(const BlockQ4_0* w, BlockQ4_0x8* out, size_t rows, size_t n) { repack_rows_x8(w, out, rows, n); }

void q8_0_sums(const BlockQ8_0* x, Q8Sum* out, size_t nb) {
  for (size_t b = 0; b < nb; ++b) {
    int s = 0;
    for (int j = 0; j < kQK8_0; ++j) s += x[b].qs[j];
    out[b] = Q8Sum{f16_to_f32(x[b].d), {s}};
  }
}

void quantize_q8_0_ref(const float* x, void* blocks, Q8Sum* sums, size_t n) {
  quantize_row_q8_0_act(x, static_cast<BlockQ8_0*>(blocks), n);
  q8_0_sums(static_cast<const BlockQ8_0*>(blocks), sums, n / kQK8_0);
}

QuantProducts q8_0_products_ref() {
  return {quant_ref::qmatvec<BlockQ8_0>, quant_ref::qmatmul<BlockQ8_0>,
          quant_ref::x8_matvec<x8_matmul_ref<BlockQ8_0x8>>,
          x8_matmul_ref<BlockQ8_0x8>};
}
QuantProducts q4_0_products_ref() {
  return {quant_ref::qmatvec<BlockQ4_0>, quant_ref::qmatmul<BlockQ4_0>,
          quant_ref::x8_matvec<x8_matmul_ref<BlockQ4_0x8>>,
          x8_matmul_ref<BlockQ4_0x8>};
}

}  // namespace qkv::ops
