// Scalar reference quantizers: the same arithmetic as GGML's reference
// ("_ref") functions, so files we write match llama-quantize's byte for byte.
#include "ops/quant.h"

#include <cmath>
#include <cstring>

#include "ops/ops.h"

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

namespace qkv::ops::quant_ref {

// One float accumulator; each block's integer dot product is exact.
struct QAcc {
  float s;
};
inline QAcc qacc_zero() { return QAcc{0.0f}; }
inline float qacc_sum(const QAcc& a) { return a.s; }

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

QuantProducts q8_0_products_ref() { return quant_ref::quant_products<BlockQ8_0>(); }
QuantProducts q4_0_products_ref() { return quant_ref::quant_products<BlockQ4_0>(); }

}  // namespace qkv::ops
