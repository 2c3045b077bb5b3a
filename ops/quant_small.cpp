// The 32-value block types besides Q8_0/Q4_0: Q4_1, Q5_0, Q5_1 (GGML's
// reference quantizers and dequantizers, the same arithmetic) and IQ4_NL
// (dequantizer; its quantizer is in quant_iq4.cpp), the Q8_1 activations the
// _1 types take, and their scalar integer products.
#include <cfloat>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "ops/ops.h"
#include "ops/quant.h"
#include "ops/quant_fit.h"
#include "ops/quant_ref.h"
#include "ops/quant_repack.h"

namespace qkv::ops {

const int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

namespace {

// The smallest and largest of a block's 32 values.
void min_max(const float* x, float* min, float* max) {
  *min = FLT_MAX;
  *max = -FLT_MAX;
  for (int j = 0; j < 32; ++j) {
    *min = x[j] < *min ? x[j] : *min;
    *max = x[j] > *max ? x[j] : *max;
  }
}

// The value of largest magnitude, with its sign (the first such).
float signed_absmax(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < 32; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  return max;
}

// The _1 types' fit of a block, x ~ q d + m with q in 0..nmax: m = the
// smallest value, d = (max - min) / nmax, both stored f16; returns 1 / d
// (0 for a flat block) and *min.
float affine_fit(const float* x, int nmax, uint16_t* d_out, uint16_t* m_out, float* min) {
  float max;
  min_max(x, min, &max);
  const float d = (max - *min) / float(nmax);
  *d_out = f32_to_f16(d);
  *m_out = f32_to_f16(*min);
  return d != 0.0f ? 1.0f / d : 0.0f;
}

// The fifth bits of a 32-value block: bit j of qh is value j's.
inline int bit5(const uint8_t* qh, int j) { return (qh[j / 8] >> (j % 8)) & 1; }

}  // namespace

void quantize_row_q4_1(const float* x, BlockQ4_1* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, x += 32) {
    float min;
    const float id = affine_fit(x, 15, &y[b].d, &y[b].m, &min);
    for (int j = 0; j < 16; ++j) {
      const int8_t lo = int8_t((x[j] - min) * id + 0.5f), hi = int8_t((x[j + 16] - min) * id + 0.5f);
      y[b].qs[j] = uint8_t((lo < 15 ? lo : 15) | ((hi < 15 ? hi : 15) << 4));
    }
  }
}

void dequantize_row_q4_1(const BlockQ4_1* x, float* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, y += 32) {
    const float d = f16_to_f32(x[b].d), m = f16_to_f32(x[b].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = float(x[b].qs[j] & 0x0f) * d + m;
      y[j + 16] = float(x[b].qs[j] >> 4) * d + m;
    }
  }
}

void quantize_row_q5_0(const float* x, BlockQ5_0* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, x += 32) {
    const float d = signed_absmax(x) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int8_t l0 = int8_t(x[j] * id + 16.5f), l1 = int8_t(x[j + 16] * id + 16.5f);
      const uint8_t q0 = uint8_t(l0 < 31 ? l0 : 31), q1 = uint8_t(l1 < 31 ? l1 : 31);
      y[b].qs[j] = uint8_t((q0 & 0x0f) | ((q1 & 0x0f) << 4));
      qh |= uint32_t(q0 >> 4) << j;
      qh |= uint32_t(q1 >> 4) << (j + 16);
    }
    std::memcpy(y[b].qh, &qh, 4);
  }
}

void dequantize_row_q5_0(const BlockQ5_0* x, float* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, y += 32) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = float(((x[b].qs[j] & 0x0f) | (bit5(x[b].qh, j) << 4)) - 16) * d;
      y[j + 16] = float(((x[b].qs[j] >> 4) | (bit5(x[b].qh, j + 16) << 4)) - 16) * d;
    }
  }
}

void quantize_row_q5_1(const float* x, BlockQ5_1* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, x += 32) {
    float min;
    const float id = affine_fit(x, 31, &y[b].d, &y[b].m, &min);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const uint8_t q0 = uint8_t((x[j] - min) * id + 0.5f), q1 = uint8_t((x[j + 16] - min) * id + 0.5f);
      y[b].qs[j] = uint8_t((q0 & 0x0f) | ((q1 & 0x0f) << 4));
      qh |= uint32_t((q0 & 0x10) >> 4) << j;
      qh |= uint32_t((q1 & 0x10) >> 4) << (j + 16);
    }
    std::memcpy(y[b].qh, &qh, 4);
  }
}

void dequantize_row_q5_1(const BlockQ5_1* x, float* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, y += 32) {
    const float d = f16_to_f32(x[b].d), m = f16_to_f32(x[b].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = float((x[b].qs[j] & 0x0f) | (bit5(x[b].qh, j) << 4)) * d + m;
      y[j + 16] = float((x[b].qs[j] >> 4) | (bit5(x[b].qh, j + 16) << 4)) * d + m;
    }
  }
}

// ------------------------------------------- with an importance per value
// GGML's quantize_row_q4_0_impl ... q5_1_impl, as llama-quantize runs them
// with an importance matrix: each value weighed by importance_weights
// (sigma2 the mean square of the whole row), then the symmetric types' scale
// by fit_scale_symmetric, the _1 types' scale and minimum by fit_scale_min's
// finer search.

namespace {
// The 32 levels of a block into Q4's nibbles, or Q5's nibbles and fifth bits.
template <class Block>
void pack_levels(const uint8_t* L, Block& y) {
  if constexpr (std::is_same_v<Block, BlockQ5_0> || std::is_same_v<Block, BlockQ5_1>) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      y.qs[j] = uint8_t((L[j] & 0x0f) | ((L[j + 16] & 0x0f) << 4));
      qh |= uint32_t((L[j] & 0x10) >> 4) << j;
      qh |= uint32_t((L[j + 16] & 0x10) >> 4) << (j + 16);
    }
    std::memcpy(y.qh, &qh, 4);
  } else {
    for (int j = 0; j < 16; ++j) y.qs[j] = uint8_t(L[j] | (L[j + 16] << 4));
  }
}

// nmax: 8 or 16 levels either side (Q4_0, Q5_0: a symmetric fit), or 15 or
// 31 above a minimum (Q4_1, Q5_1).
template <class Block, int nmax>
void quantize_32_weighted(const float* x, Block* y, size_t n, const float* qw) {
  constexpr bool kMin = std::is_same_v<Block, BlockQ4_1> || std::is_same_v<Block, BlockQ5_1>;
  const float sigma2 = sum_squares(x, n) / float(n);
  float w[32];
  uint8_t L[32];
  for (size_t b = 0; b < n / 32; ++b) {
    importance_weights(32, x + 32 * b, qw + 32 * b, sigma2, w);
    if constexpr (kMin) {
      float neg_min;
      y[b].d = f32_to_f16(fit_scale_min(32, nmax, x + 32 * b, w, L, &neg_min, -0.9f, 0.05f, 36, false));
      y[b].m = f32_to_f16(-neg_min);
    } else {
      y[b].d = f32_to_f16(fit_scale_symmetric(32, nmax, x + 32 * b, reinterpret_cast<int8_t*>(L), w));
    }
    pack_levels(L, y[b]);
  }
}
}  // namespace

void quantize_row_q4_0_weighted(const float* x, BlockQ4_0* y, size_t n, const float* qw) {
  quantize_32_weighted<BlockQ4_0, 8>(x, y, n, qw);
}
void quantize_row_q4_1_weighted(const float* x, BlockQ4_1* y, size_t n, const float* qw) {
  quantize_32_weighted<BlockQ4_1, 15>(x, y, n, qw);
}
void quantize_row_q5_0_weighted(const float* x, BlockQ5_0* y, size_t n, const float* qw) {
  quantize_32_weighted<BlockQ5_0, 16>(x, y, n, qw);
}
void quantize_row_q5_1_weighted(const float* x, BlockQ5_1* y, size_t n, const float* qw) {
  quantize_32_weighted<BlockQ5_1, 31>(x, y, n, qw);
}

void dequantize_row_iq4_nl(const BlockIQ4_NL* x, float* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, y += 32) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * float(kIq4nlValues[x[b].qs[j] & 0x0f]);
      y[j + 16] = d * float(kIq4nlValues[x[b].qs[j] >> 4]);
    }
  }
}

void quantize_row_q8_1_act(const float* x, BlockQ8_1* y, size_t n) {
  BlockQ8_0 q;
  for (size_t b = 0; b < n / 32; ++b, x += 32) {
    quantize_row_q8_0_act(x, &q, 32);
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += q.qs[j];
    y[b].d = q.d;
    y[b].s = f32_to_f16(amax / 127.0f * float(sum));
    std::memcpy(y[b].qs, q.qs, 32);
  }
}

void dequantize_row_q8_1(const BlockQ8_1* x, float* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b)
    for (int j = 0; j < 32; ++j) y[b * 32 + j] = float(x[b].qs[j]) * f16_to_f32(x[b].d);
}

void quantize_q8_1_ref(const float* x, void* blocks, size_t n) {
  quantize_row_q8_1_act(x, static_cast<BlockQ8_1*>(blocks), n);
}

}  // namespace qkv::ops

// ---------------------------------------------------------------- products

namespace qkv::ops::quant_ref {

// Each block's integer sum is exact; the scales and the offset term round.
inline void qacc_add(QAcc& a, const BlockQ4_1& w, const BlockQ8_1& x) {
  int sumi = 0;
  for (int j = 0; j < 16; ++j) sumi += (w.qs[j] & 0x0f) * x.qs[j] + (w.qs[j] >> 4) * x.qs[j + 16];
  a.s += f16_to_f32(w.d) * f16_to_f32(x.d) * float(sumi) + f16_to_f32(w.m) * f16_to_f32(x.s);
}

inline int q5_level(const uint8_t* qs, const uint8_t* qh, int j) {
  const int lo = j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4;
  return lo | (((qh[j / 8] >> (j % 8)) & 1) << 4);
}

inline void qacc_add(QAcc& a, const BlockQ5_0& w, const BlockQ8_0& x) {
  int sumi = 0;
  for (int j = 0; j < 32; ++j) sumi += (q5_level(w.qs, w.qh, j) - 16) * x.qs[j];
  a.s += f16_to_f32(w.d) * f16_to_f32(x.d) * float(sumi);
}

inline void qacc_add(QAcc& a, const BlockQ5_1& w, const BlockQ8_1& x) {
  int sumi = 0;
  for (int j = 0; j < 32; ++j) sumi += q5_level(w.qs, w.qh, j) * x.qs[j];
  a.s += f16_to_f32(w.d) * f16_to_f32(x.d) * float(sumi) + f16_to_f32(w.m) * f16_to_f32(x.s);
}

inline void qacc_add(QAcc& a, const BlockIQ4_NL& w, const BlockQ8_0& x) {
  int sumi = 0;
  for (int j = 0; j < 16; ++j)
    sumi += kIq4nlValues[w.qs[j] & 0x0f] * x.qs[j] + kIq4nlValues[w.qs[j] >> 4] * x.qs[j + 16];
  a.s += f16_to_f32(w.d) * f16_to_f32(x.d) * float(sumi);
}

}  // namespace qkv::ops::quant_ref

#define QKV_ISA_NS quant_ref
#include "ops/quant_dot.h"

namespace qkv::ops {

namespace {

// Row r's level of value j (0..31) in a packed group, with its fifth bit.
template <class Packed>
int x8_level(const Packed& w, int r, int j) {
  const uint8_t q = w.qs[4 * (8 * ((j % 16) / 4) + r) + j % 4];
  int l = j < 16 ? q & 0x0f : q >> 4;
  if constexpr (HasQh<Packed>::value) {  // quant.h's Q5_0x8 qh
    const int i = j % 4, bit = j < 16 ? j / 4 : 4 + (j - 16) / 4;
    l |= ((w.qh[4 * r + i] >> bit) & 1) << 4;
  }
  return l;
}

// The row-interleaved products, plainly: Q5_0 (levels - 16) and IQ4_NL (its
// table's values) against Q8_0,
// the _1 types against Q8_1 (their offset term from the stored sum).
template <class Packed>
void x8_matmul_ref(const void* packed, const void* xq, const Q8Sum* xs, float* y, size_t M, size_t n, size_t ldy,
                   size_t g0, size_t g1) {
  if constexpr (HasM<Packed>::value) {
    quant_ref::x8_products<Packed, BlockQ8_1>(packed, xq, xs, y, M, n / 32, ldy, g0, g1,
                                              [](const Packed& w, int r, const BlockQ8_1& x, const Q8Sum*) {
                                                int sumi = 0;
                                                for (int j = 0; j < 32; ++j) sumi += x8_level(w, r, j) * x.qs[j];
                                                return f16_to_f32(w.d[r]) * f16_to_f32(x.d) * float(sumi) +
                                                       f16_to_f32(w.m[r]) * f16_to_f32(x.s);
                                              });
  } else {
    quant_ref::x8_products<Packed, BlockQ8_0>(packed, xq, xs, y, M, n / 32, ldy, g0, g1,
                                              [](const Packed& w, int r, const BlockQ8_0& x, const Q8Sum* s) {
                                                int sumi = 0;
                                                for (int j = 0; j < 32; ++j) {
                                                  const int l = x8_level(w, r, j);
                                                  if constexpr (std::is_same_v<Packed, BlockIQ4_NLx8>)
                                                    sumi += kIq4nlValues[l] * x.qs[j];
                                                  else
                                                    sumi += (l - 16) * x.qs[j];
                                                }
                                                return f16_to_f32(w.d[r]) * s->d * float(sumi);
                                              });
  }
}
template <class Block, class Packed>
QuantProducts x8_products_ref() {
  return {quant_ref::qmatvec<Block>, quant_ref::qmatmul<Block>,
          quant_ref::x8_matvec<x8_matmul_ref<Packed>>, x8_matmul_ref<Packed>};
}

}  // namespace

void repack_x8(const BlockQ5_0* w, BlockQ5_0x8* out, size_t rows, size_t n) { repack_rows_x8(w, out, rows, n); }
void repack_x8(const BlockQ4_1* w, BlockQ4_1x8* out, size_t rows, size_t n) { repack_rows_x8(w, out, rows, n); }
void repack_x8(const BlockQ5_1* w, BlockQ5_1x8* out, size_t rows, size_t n) { repack_rows_x8(w, out, rows, n); }
void repack_x8(const BlockIQ4_NL* w, BlockIQ4_NLx8* out, size_t rows, size_t n) { repack_rows_x8(w, out, rows, n); }

QuantProducts q4_1_products_ref() { return x8_products_ref<BlockQ4_1, BlockQ4_1x8>(); }
QuantProducts q5_0_products_ref() { return x8_products_ref<BlockQ5_0, BlockQ5_0x8>(); }
QuantProducts q5_1_products_ref() { return x8_products_ref<BlockQ5_1, BlockQ5_1x8>(); }
QuantProducts iq4_nl_products_ref() { return x8_products_ref<BlockIQ4_NL, BlockIQ4_NLx8>(); }

void q8_1_sums(const BlockQ8_1* x, Q8Sum* out, size_t nb) {
  for (size_t b = 0; b < nb; ++b) {
    out[b].d = f16_to_f32(x[b].d);
    out[b].sf = f16_to_f32(x[b].s);
  }
}

}  // namespace qkv::ops
