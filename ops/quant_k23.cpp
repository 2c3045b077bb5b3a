// Q2_K, Q3_K (GGML's reference quantizers and dequantizers, the same
// arithmetic) and IQ4_XS (dequantizer; its quantizer is in quant_iq4.cpp):
// the 256-value types with 16- or 32-value sub-blocks that take Q8_K
// activations, and their scalar integer products.
#include <cmath>
#include <cstring>
#include <utility>

#include "ops/ops.h"
#include "ops/quant.h"
#include "ops/quant_fit.h"
#include "ops/quant_ref.h"
#include "ops/quant_repack.h"

namespace qkv::ops {
namespace {

// Value i (0..255) of a super-block's 2-bit field: 128 values per 32 bytes,
// value 32 j + l of each 128 in bits 2 j of byte l.
inline int level2(const uint8_t* qs, int i) { return (qs[32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3; }
inline int q3_high(const BlockQ3_K& b, int i) { return (b.hmask[i % 32] >> (i / 32)) & 1; }
inline int iq4_xs_nibble(const BlockIQ4_XS& b, int i) {
  const int ib = i / 32, j = i % 32;
  return j < 16 ? b.qs[16 * ib + j] & 0x0f : b.qs[16 * ib + j - 16] >> 4;
}

// 256 levels (0..3) into Q2_K/Q3_K's 64 bytes.
void pack_level2(const uint8_t* L, uint8_t* qs) {
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* Lh = L + 128 * h;
      qs[32 * h + l] = uint8_t(Lh[l] | (Lh[l + 32] << 2) | (Lh[l + 64] << 4) | (Lh[l + 96] << 6));
    }
}

// GGML's make_q3_quants with its rmse refinement: levels in -nmax..nmax-1
// weighted by x^2, then up to 5 passes moving single levels while the fit
// improves. L receives level + nmax.
float fit_q3(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < 1e-15f) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  const float iscale = float(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  for (int itry = 0; itry < 5; ++itry) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * float(L[i]);
      if (slx > 0) {
        float sl2 = suml2 - w * float(L[i]) * float(L[i]);
        const int new_l = clamp_int(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (new_l != L[i]) {
          slx += w * x[i] * float(new_l);
          sl2 += w * float(new_l) * float(new_l);
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = int8_t(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

}  // namespace

void q3_K_scales(const uint8_t* packed, int8_t* out) {
  for (int j = 0; j < 16; ++j) {
    const int lo = j < 8 ? packed[j] & 0x0f : packed[j - 8] >> 4;
    const int hi = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = int8_t((lo | (hi << 4)) - 32);
  }
}

void dequantize_row_q2_K(const BlockQ2_K* x, float* y, size_t n) {
  for (size_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    const float d = f16_to_f32(x[b].d), dmin = f16_to_f32(x[b].dmin);
    for (int i = 0; i < kQK_K; ++i) {
      const uint8_t sc = x[b].scales[i / 16];
      y[i] = d * float(sc & 0x0f) * float(level2(x[b].qs, i)) - dmin * float(sc >> 4);
    }
  }
}

void dequantize_row_q3_K(const BlockQ3_K* x, float* y, size_t n) {
  int8_t sc[16];
  for (size_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    const float d = f16_to_f32(x[b].d);
    q3_K_scales(x[b].scales, sc);
    for (int i = 0; i < kQK_K; ++i)
      y[i] = d * float(sc[i / 16]) * float(level2(x[b].qs, i) - (q3_high(x[b], i) ? 0 : 4));
  }
}

void dequantize_row_iq4_xs(const BlockIQ4_XS* x, float* y, size_t n) {
  for (size_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    const float d = f16_to_f32(x[b].d);
    for (int i = 0; i < kQK_K; ++i)
      y[i] = d * float(iq4_xs_scale(x[b], i / 32) - 32) * float(kIq4nlValues[iq4_xs_nibble(x[b], i)]);
  }
}

namespace {
// Every value requantized with the block's scales and mins as stored, then packed.
void store_q2_K(const float* x, BlockQ2_K& y, uint8_t* L) {
  for (int j = 0; j < 16; ++j) {
    const float d = f16_to_f32(y.d) * float(y.scales[j] & 0x0f);
    if (d == 0.0f) continue;
    const float dm = f16_to_f32(y.dmin) * float(y.scales[j] >> 4);
    for (int l = 0; l < 16; ++l) L[16 * j + l] = uint8_t(clamp_int(nearest_int((x[16 * j + l] + dm) / d), 0, 3));
  }
  pack_level2(L, y.qs);
}
}  // namespace

void quantize_row_q2_K(const float* x, BlockQ2_K* y, size_t n) {
  uint8_t L[kQK_K];
  float weights[16], mins[16], scales[16];
  const float q4scale = 15.0f;
  for (size_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = fit_scale_min(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
      max_scale = scales[j] > max_scale ? scales[j] : max_scale;
      max_min = mins[j] > max_min ? mins[j] : max_min;
    }
    if (max_scale > 0) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < 16; ++j) y[b].scales[j] = uint8_t(nearest_int(iscale * scales[j]));
      y[b].d = f32_to_f16(max_scale / q4scale);
    } else {
      for (int j = 0; j < 16; ++j) y[b].scales[j] = 0;
      y[b].d = f32_to_f16(0.0f);
    }
    if (max_min > 0) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < 16; ++j) y[b].scales[j] = uint8_t(y[b].scales[j] | (nearest_int(iscale * mins[j]) << 4));
      y[b].dmin = f32_to_f16(max_min / q4scale);
    } else {
      y[b].dmin = f32_to_f16(0.0f);
    }
    store_q2_K(x, y[b], L);
  }
}

// GGML's quantize_row_q2_K_impl: values weighed by importance_weights
// (sigma2 the super-block's mean square), a finer least-squares search per
// sub-block, the 4-bit scales and mins fitted under the sub-blocks' weights.
void quantize_row_q2_K_weighted(const float* x, BlockQ2_K* y, size_t n, const float* qw) {
  uint8_t L[kQK_K], Ls[16], Lm[16];
  float weights[kQK_K], mins[16], scales[16], sw[16];
  for (size_t b = 0; b < n / kQK_K; ++b, x += kQK_K, qw += kQK_K) {
    subblock_weights(kQK_K, 16, x, qw, sum_squares(x, kQK_K) / kQK_K, weights, sw);
    for (int j = 0; j < 16; ++j)
      scales[j] = fit_scale_min(16, 3, x + 16 * j, weights + 16 * j, L + 16 * j, &mins[j], -0.9f, 0.05f, 36, false);
    y[b].d = f32_to_f16(fit_scale_positive(16, 15, scales, Ls, sw));
    y[b].dmin = f32_to_f16(fit_scale_positive(16, 15, mins, Lm, sw));
    for (int j = 0; j < 16; ++j) y[b].scales[j] = uint8_t(Ls[j] | (Lm[j] << 4));
    store_q2_K(x, y[b], L);
  }
}

namespace {
// Sub-block scale j as its 6-bit level l (0..63) in Q3_K's 12 scale bytes.
void put_q3_K_scale(uint8_t* scales, int j, int l) {
  if (j < 8) scales[j] = uint8_t(l & 0x0f);
  else scales[j - 8] = uint8_t(scales[j - 8] | ((l & 0x0f) << 4));
  scales[8 + j % 4] = uint8_t(scales[8 + j % 4] | ((l >> 4) << (2 * (j / 4))));
}

// Every value requantized with the block's scales as stored, then packed.
void store_q3_K(const float* x, BlockQ3_K& y, int8_t* L) {
  int8_t sc[16];
  q3_K_scales(y.scales, sc);
  for (int j = 0; j < 16; ++j) {
    const float d = f16_to_f32(y.d) * float(sc[j]);
    if (d == 0.0f) continue;
    for (int l = 0; l < 16; ++l) L[16 * j + l] = int8_t(clamp_int(nearest_int(x[16 * j + l] / d), -4, 3) + 4);
  }
  std::memset(y.hmask, 0, sizeof y.hmask);
  uint8_t low[kQK_K];
  for (int i = 0; i < kQK_K; ++i) {
    int l = L[i];
    if (l > 3) {
      y.hmask[i % 32] = uint8_t(y.hmask[i % 32] | (1 << (i / 32)));
      l -= 4;
    }
    low[i] = uint8_t(l);
  }
  pack_level2(low, y.qs);
}
}  // namespace

void quantize_row_q3_K(const float* x, BlockQ3_K* y, size_t n) {
  int8_t L[kQK_K];
  float scales[16];
  for (size_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; ++j) {
      scales[j] = fit_q3(16, 4, x + 16 * j, L + 16 * j);
      if (std::fabs(scales[j]) > amax) {
        amax = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    std::memset(y[b].scales, 0, 12);
    if (max_scale != 0.0f) {
      const float iscale = -32.0f / max_scale;
      for (int j = 0; j < 16; ++j) {
        int8_t l = int8_t(nearest_int(iscale * scales[j]));  // as GGML: an int8_t before the clamp
        put_q3_K_scale(y[b].scales, j, int8_t(clamp_int(l, -32, 31) + 32));
      }
      y[b].d = f32_to_f16(1.0f / iscale);
    } else {
      y[b].d = f32_to_f16(0.0f);
    }
    store_q3_K(x, y[b], L);
  }
}

// GGML's quantize_row_q3_K_impl: each sub-block's symmetric fit weighed by
// importance_weights (sigma2 twice the super-block's mean square), the 16
// scales fitted to 6 bits under the sub-blocks' total weights.
void quantize_row_q3_K_weighted(const float* x, BlockQ3_K* y, size_t n, const float* qw) {
  int8_t L[kQK_K], Ls[16];
  float scales[16], weights[kQK_K], sw[16];
  for (size_t b = 0; b < n / kQK_K; ++b, x += kQK_K, qw += kQK_K) {
    subblock_weights(kQK_K, 16, x, qw, 2 * sum_squares(x, kQK_K) / kQK_K, weights, sw);
    for (int j = 0; j < 16; ++j) scales[j] = fit_scale_symmetric(16, 4, x + 16 * j, L + 16 * j, weights + 16 * j);
    std::memset(y[b].scales, 0, 12);
    const float d = fit_scale_symmetric(16, 32, scales, Ls, sw);
    for (int j = 0; j < 16; ++j) put_q3_K_scale(y[b].scales, j, Ls[j]);
    y[b].d = f32_to_f16(d);
    store_q3_K(x, y[b], L);
  }
}

}  // namespace qkv::ops

// ---------------------------------------------------------------- products

namespace qkv::ops::quant_ref {

inline void qacc_add(QAcc& a, const BlockQ2_K& w, const BlockQ8_K& x) {
  int sumi = 0, summ = 0;
  for (int k = 0; k < 16; ++k) {
    int s = 0;
    for (int l = 0; l < 16; ++l) s += level2(w.qs, 16 * k + l) * x.qs[16 * k + l];
    sumi += (w.scales[k] & 0x0f) * s;
    summ += (w.scales[k] >> 4) * x.bsums[k];
  }
  a.s += x.d * (f16_to_f32(w.d) * float(sumi) - f16_to_f32(w.dmin) * float(summ));
}

inline void qacc_add(QAcc& a, const BlockQ3_K& w, const BlockQ8_K& x) {
  int8_t sc[16];
  q3_K_scales(w.scales, sc);
  int sumi = 0;
  for (int k = 0; k < 16; ++k) {
    int s = 0;
    for (int l = 0; l < 16; ++l) {
      const int i = 16 * k + l;
      s += (level2(w.qs, i) - (q3_high(w, i) ? 0 : 4)) * x.qs[i];
    }
    sumi += sc[k] * s;
  }
  a.s += x.d * f16_to_f32(w.d) * float(sumi);
}

inline void qacc_add(QAcc& a, const BlockIQ4_XS& w, const BlockQ8_K& x) {
  int sumi = 0;
  for (int ib = 0; ib < 8; ++ib) {
    int s = 0;
    for (int j = 0; j < 32; ++j) s += kIq4nlValues[iq4_xs_nibble(w, 32 * ib + j)] * x.qs[32 * ib + j];
    sumi += (iq4_xs_scale(w, ib) - 32) * s;
  }
  a.s += x.d * f16_to_f32(w.d) * float(sumi);
}

}  // namespace qkv::ops::quant_ref

#define QKV_ISA_NS quant_ref
#include "ops/quant_dot.h"

namespace qkv::ops {

namespace {
// Value v's nibble in a BlockIQ4_XSx8 (Q4_Kx8's order): byte, shift.
std::pair<int, int> iq4_xs_x8_place(int r, int v) {
  const int c = v / 64, h = (v % 64) / 32, p = (v % 32) / 4, i = v % 4;
  return {4 * (8 * (8 * c + p) + r) + i, 4 * h};
}
}  // namespace

void repack_x8(const BlockIQ4_XS* w, BlockIQ4_XSx8* out, size_t rows, size_t n) {
  repack_blocks_x8(w, out, rows, n, [](BlockIQ4_XSx8& p, const BlockIQ4_XS& src, int r) {
    p.d[r] = src.d;
    for (int j = 0; j < 8; ++j) p.sc2[j / 2][r][j % 2] = int8_t(iq4_xs_scale(src, j) - 32);
    uint8_t L[kQK_K];
    for (int ib = 0; ib < 8; ++ib)  // iq4_xs_nibble, a sub-block at a time
      for (int j = 0; j < 16; ++j) {
        L[32 * ib + j] = uint8_t(src.qs[16 * ib + j] & 0x0f);
        L[32 * ib + 16 + j] = uint8_t(src.qs[16 * ib + j] >> 4);
      }
    pack_nibbles_x8(L, p.qs, r);
  });
}

namespace {
// Value v's nibble in a BlockQ3_Kx8 (piece v / 8; the low nibbles its first
// four values): byte, shift.
std::pair<int, int> q3_K_x8_place(int r, int v) {
  const int P = v / 8, h = (v % 8) / 4, i = v % 4;
  return {4 * (8 * P + r) + i, 4 * h};
}

// Value v's 2 bits in a BlockQ2_Kx8: byte, shift.
std::pair<int, int> q2_K_x8_place(int r, int v) {
  const int s = v / 64, P = (v % 64) / 4, i = v % 4;
  return {4 * (8 * P + r) + i, 2 * s};
}
}  // namespace

void repack_x8(const BlockQ2_K* w, BlockQ2_Kx8* out, size_t rows, size_t n) {
  repack_blocks_x8(w, out, rows, n, [](BlockQ2_Kx8& p, const BlockQ2_K& src, int r) {
    p.d[r] = src.d;
    p.dmin[r] = src.dmin;
    for (int j = 0; j < 16; ++j) p.scm[j / 2][r][j % 2] = src.scales[j];
    uint8_t L[kQK_K];
    for (int half = 0; half < 2; ++half)  // level2, a 128-value half at a time
      for (int s2 = 0; s2 < 4; ++s2)
        for (int l = 0; l < 32; ++l) L[128 * half + 32 * s2 + l] = uint8_t((src.qs[32 * half + l] >> (2 * s2)) & 3);
    for (int P = 0; P < 16; ++P)  // as q2_K_x8_place says
      for (int i = 0; i < 4; ++i) {
        const int v = 4 * P + i;
        p.qs[4 * (8 * P + r) + i] = uint8_t(L[v] | (L[v + 64] << 2) | (L[v + 128] << 4) | (L[v + 192] << 6));
      }
  });
}

namespace {
// A Q3_K super-block's levels (value + 4, 0..7) in value order, and its
// scales (after the -32) as sc2[j / 2][r][j % 2] of the x8 layouts.
template <class Packed>
void q3_K_levels(const BlockQ3_K& src, Packed& p, int r, uint8_t (&L)[kQK_K]) {
  p.d[r] = src.d;
  int8_t sc[16];
  q3_K_scales(src.scales, sc);
  for (int j = 0; j < 16; ++j) p.sc2[j / 2][r][j % 2] = sc[j];
  for (int half = 0; half < 2; ++half)  // level2 and q3_high, a 128-value half at a time
    for (int s2 = 0; s2 < 4; ++s2)
      for (int l = 0; l < 32; ++l)
        L[128 * half + 32 * s2 + l] = uint8_t(((src.qs[32 * half + l] >> (2 * s2)) & 3) |
                                              (((src.hmask[l] >> (4 * half + s2)) & 1) << 2));
}
}  // namespace

void repack_x8(const BlockQ3_K* w, BlockQ3_Kx8* out, size_t rows, size_t n) {
  repack_blocks_x8(w, out, rows, n, [](BlockQ3_Kx8& p, const BlockQ3_K& src, int r) {
    uint8_t L[kQK_K];
    q3_K_levels(src, p, r, L);
    for (int P = 0; P < 32; ++P)  // as q3_K_x8_place says
      for (int i = 0; i < 4; ++i) p.qs[4 * (8 * P + r) + i] = uint8_t(L[8 * P + i] | (L[8 * P + 4 + i] << 4));
  });
}

void repack_x8(const BlockQ3_K* w, BlockQ3_Kx8Bits* out, size_t rows, size_t n) {
  repack_blocks_x8(w, out, rows, n, [](BlockQ3_Kx8Bits& p, const BlockQ3_K& src, int r) {
    uint8_t L[kQK_K];
    q3_K_levels(src, p, r, L);
    for (int P = 0; P < 32; ++P) {  // as q3_K_x8_bits_level reads them
      uint32_t bits = 0;
      for (int i = 0; i < 8; ++i) bits |= uint32_t(L[8 * P + i]) << (3 * i);
      for (int b = 0; b < 3; ++b) p.q[P][3 * r + b] = uint8_t(bits >> (8 * b));
    }
  });
}

namespace {
void x8_q2_K_matmul_ref(const void* packed, const void* xq, const Q8Sum*, float* y, size_t M, size_t n, size_t ldy,
                        size_t g0, size_t g1) {
  quant_ref::x8_products<BlockQ2_Kx8, BlockQ8_K>(
      packed, xq, nullptr, y, M, n / kQK_K, ldy, g0, g1, [](const BlockQ2_Kx8& p, int r, const BlockQ8_K& x, const Q8Sum*) {
        int sumi = 0, summ = 0;
        for (int j = 0; j < 16; ++j) {
          int s = 0;
          for (int l = 0; l < 16; ++l) {
            const auto [at, shift] = q2_K_x8_place(r, 16 * j + l);
            s += ((p.qs[at] >> shift) & 3) * int(x.qs[16 * j + l]);
          }
          const int scm = p.scm[j / 2][r][j % 2];
          sumi += (scm & 0x0f) * s;
          summ += (scm >> 4) * x.bsums[j];
        }
        return x.d * (f16_to_f32(p.d[r]) * float(sumi) - f16_to_f32(p.dmin[r]) * float(summ));
      });
}
void x8_q3_K_matmul_ref(const void* packed, const void* xq, const Q8Sum*, float* y, size_t M, size_t n, size_t ldy,
                        size_t g0, size_t g1) {
  quant_ref::x8_products<BlockQ3_Kx8, BlockQ8_K>(
      packed, xq, nullptr, y, M, n / kQK_K, ldy, g0, g1, [](const BlockQ3_Kx8& p, int r, const BlockQ8_K& x, const Q8Sum*) {
        int sumi = 0;
        for (int j = 0; j < 16; ++j) {
          int s = 0;
          for (int l = 0; l < 16; ++l) {
            const auto [at, shift] = q3_K_x8_place(r, 16 * j + l);
            s += (((p.qs[at] >> shift) & 0x0f) - 4) * int(x.qs[16 * j + l]);
          }
          sumi += p.sc2[j / 2][r][j % 2] * s;
        }
        return x.d * f16_to_f32(p.d[r]) * float(sumi);
      });
}
void x8_iq4_xs_matmul_ref(const void* packed, const void* xq, const Q8Sum*, float* y, size_t M, size_t n, size_t ldy,
                          size_t g0, size_t g1) {
  quant_ref::x8_products<BlockIQ4_XSx8, BlockQ8_K>(
      packed, xq, nullptr, y, M, n / kQK_K, ldy, g0, g1, [](const BlockIQ4_XSx8& p, int r, const BlockQ8_K& x, const Q8Sum*) {
        int sumi = 0;
        for (int j = 0; j < 8; ++j) {
          int s = 0;
          for (int l = 0; l < 32; ++l) {
            const auto [at, shift] = iq4_xs_x8_place(r, 32 * j + l);
            s += kIq4nlValues[(p.qs[at] >> shift) & 0x0f] * int(x.qs[32 * j + l]);
          }
          sumi += p.sc2[j / 2][r][j % 2] * s;
        }
        return x.d * f16_to_f32(p.d[r]) * float(sumi);
      });
}
}  // namespace

QuantProducts q2_K_products_ref() {
  return {quant_ref::qmatvec<BlockQ2_K>, quant_ref::qmatmul<BlockQ2_K>,
          quant_ref::x8_matvec<x8_q2_K_matmul_ref>, x8_q2_K_matmul_ref};
}
QuantProducts q3_K_products_ref() {
  return {quant_ref::qmatvec<BlockQ3_K>, quant_ref::qmatmul<BlockQ3_K>,
          quant_ref::x8_matvec<x8_q3_K_matmul_ref>, x8_q3_K_matmul_ref};
}
QuantProducts iq4_xs_products_ref() {
  return {quant_ref::qmatvec<BlockIQ4_XS>, quant_ref::qmatmul<BlockIQ4_XS>,
          quant_ref::x8_matvec<x8_iq4_xs_matmul_ref>, x8_iq4_xs_matmul_ref};
}

}  // namespace qkv::ops
