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

// Sub-block j's 6-bit scale and min from the 12 packed bytes: j < 4 in the
// low 6 bits of bytes j and j + 4; j >= 4 in the nibbles of byte j + 4 with
// their top 2 bits taken from the high bits of bytes j - 4 and j.
static void scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = uint8_t((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
    *m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

void dequantize_row_q4_K(const BlockQ4_K* x, float* y, size_t n) {
  for (size_t b = 0; b < n / kQK_K; ++b) {
    const float d = f16_to_f32(x[b].d), dmin = f16_to_f32(x[b].dmin);
    const uint8_t* q = x[b].qs;
    for (int j = 0; j < kQK_K / 64; ++j, q += 32) {
      uint8_t sc, m;
      scale_min_k4(2 * j, x[b].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      scale_min_k4(2 * j + 1, x[b].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0x0f) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
    }
  }
}

void dequantize_row_q5_K(const BlockQ5_K* x, float* y, size_t n) {
  for (size_t b = 0; b < n / kQK_K; ++b) {
    const float d = f16_to_f32(x[b].d), dmin = f16_to_f32(x[b].dmin);
    const uint8_t* ql = x[b].qs;
    const uint8_t* qh = x[b].qh;
    uint8_t u1 = 1, u2 = 2;  // the bits of qh for the two halves of each 64 values
    for (int j = 0; j < kQK_K / 64; ++j, ql += 32, u1 = uint8_t(u1 << 2), u2 = uint8_t(u2 << 2)) {
      uint8_t sc, m;
      scale_min_k4(2 * j, x[b].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      scale_min_k4(2 * j + 1, x[b].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * float((ql[l] & 0x0f) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
  }
}

void dequantize_row_q6_K(const BlockQ6_K* x, float* y, size_t n) {
  for (size_t b = 0; b < n / kQK_K; ++b) {
    const float d = f16_to_f32(x[b].d);
    const uint8_t* ql = x[b].ql;
    const uint8_t* qh = x[b].qh;
    const int8_t* sc = x[b].scales;
    for (int half = 0; half < 2; ++half, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = int((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = int((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * float(sc[is]) * float(q1);
        y[l + 32] = d * float(sc[is + 2]) * float(q2);
        y[l + 64] = d * float(sc[is + 4]) * float(q3);
        y[l + 96] = d * float(sc[is + 6]) * float(q4);
      }
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

void matvec_q8_0_ref(const void* w, const void* xq, float* y, size_t n, size_t r0, size_t r1) {
  quant_ref::qmatvec<BlockQ8_0>(w, xq, y, n, r0, r1);
}
void matvec_q4_0_ref(const void* w, const void* xq, float* y, size_t n, size_t r0, size_t r1) {
  quant_ref::qmatvec<BlockQ4_0>(w, xq, y, n, r0, r1);
}
void matmul_q8_0_ref(const void* w, const void* xq, float* y, size_t M, size_t n, size_t ldy, size_t r0, size_t r1) {
  quant_ref::qmatmul<BlockQ8_0>(w, xq, y, M, n, ldy, r0, r1);
}
void matmul_q4_0_ref(const void* w, const void* xq, float* y, size_t M, size_t n, size_t ldy, size_t r0, size_t r1) {
  quant_ref::qmatmul<BlockQ4_0>(w, xq, y, M, n, ldy, r0, r1);
}

}  // namespace qkv::ops
