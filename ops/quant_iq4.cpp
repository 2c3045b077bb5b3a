// The IQ4_NL and IQ4_XS quantizers, with the arithmetic of GGML's
// quantize_iq4_nl / quantize_iq4_xs as llama-quantize calls them (without an
// importance matrix each value weighted by x^2, with one by
// importance_weights; 7 candidate scales either side of the first), so the
// bytes match its.
#include <cmath>
#include <cstring>

#include "ops/ops.h"
#include "ops/quant.h"
#include "ops/quant_fit.h"

namespace qkv::ops {
namespace {

constexpr int kTries = 7;

// The level nearest x among the 16 sorted IQ4_NL values: level i once x
// reaches the midpoint of values i - 1 and i (doubled, so both sides are
// exact), found by a branchless binary search.
int nearest_level(float x) {
  const float x2 = x + x;
  int idx = 0;
  for (int step = 8; step > 0; step >>= 1) {
    const int j = idx + step;
    idx = x2 >= float(kIq4nlValues[j - 1] + kIq4nlValues[j]) ? j : idx;
  }
  return idx;
}

// One super-block of `super` values in sub-blocks of 32: the best scale of
// each sub-block (levels L), then, for more than one sub-block, the 6-bit
// sub-block scales under one f16 scale (IQ4_XS) and every level again with
// its scale as stored. Writes *d, the nibbles q4 and, for IQ4_XS, the scale bits.
// qw: the importances (GGML's quantize_row_iq4_nl_impl with quant_weights:
// importance_weights, sigma2 twice the super-block's mean square), or null.
void quantize_superblock(int super, const float* x, uint16_t* d_out, uint8_t* q4, uint16_t* scales_h, uint8_t* scales_l,
                         const float* qw) {
  float scales[8], weight[32];
  uint8_t L[kQK_K];
  std::memset(q4, 0, size_t(super / 2));
  *d_out = f32_to_f16(0.0f);
  float max_scale = 0, amax_scale = 0;
  const int nb = super / 32;
  const float sigma2 = qw ? sum_squares(x, size_t(super)) * (2.0f / float(super)) : 0.0f;
  for (int ib = 0; ib < nb; ++ib) {
    const float* xb = x + 32 * ib;
    uint8_t* Lb = L + 32 * ib;
    if (qw) importance_weights(32, xb, qw + 32 * ib, sigma2, weight);
    else
      for (int j = 0; j < 32; ++j) weight[j] = xb[j] * xb[j];
    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j) {
      const float ax = std::fabs(xb[j]);
      if (ax > amax) {
        amax = ax;
        max = xb[j];
      }
    }
    if (amax < 1e-15f) {
      scales[ib] = 0;
      std::memset(Lb, 0, 32);
      continue;
    }
    float d = -max / float(kIq4nlValues[0]);
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
      const int l = nearest_level(id * xb[j]);
      Lb[j] = uint8_t(l);
      const float q = kIq4nlValues[l];
      sumqx += weight[j] * q * xb[j];
      sumq2 += weight[j] * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
    float best = d * sumqx;
    for (int itry = -kTries; itry <= kTries; ++itry) {
      id = float(itry + kIq4nlValues[0]) / max;
      sumqx = sumq2 = 0;
      for (int j = 0; j < 32; ++j) {
        const float q = kIq4nlValues[nearest_level(id * xb[j])];
        sumqx += weight[j] * q * xb[j];
        sumq2 += weight[j] * q * q;
      }
      if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    scales[ib] = d;
    if (std::fabs(d) > amax_scale) {
      amax_scale = std::fabs(d);
      max_scale = d;
    }
  }
  if (nb > 1) {
    *scales_h = 0;
    const float d = -max_scale / 32;
    *d_out = f32_to_f16(d);
    const float id = d != 0.0f ? 1 / d : 0.0f;
    for (int ib = 0; ib < nb; ++ib) {
      int l = clamp_int(nearest_int(id * scales[ib]), -32, 31);
      const float dl = d * float(l);
      const float idl = dl != 0.0f ? 1 / dl : 0.0f;
      for (int j = 0; j < 32; ++j) L[32 * ib + j] = uint8_t(nearest_level(idl * x[32 * ib + j]));
      l += 32;
      if (ib % 2 == 0) scales_l[ib / 2] = uint8_t(l & 0x0f);
      else scales_l[ib / 2] = uint8_t(scales_l[ib / 2] | ((l & 0x0f) << 4));
      *scales_h = uint16_t(*scales_h | ((l >> 4) << (2 * ib)));
    }
  } else {
    *d_out = f32_to_f16(scales[0]);
    const float id = scales[0] != 0.0f ? 1 / scales[0] : 0.0f;
    for (int j = 0; j < super; ++j) L[j] = uint8_t(nearest_level(id * x[j]));
  }
  for (int i = 0; i < super / 32; ++i)
    for (int j = 0; j < 16; ++j) q4[16 * i + j] = uint8_t(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

}  // namespace

void quantize_row_iq4_nl(const float* x, BlockIQ4_NL* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b) quantize_superblock(32, x + 32 * b, &y[b].d, y[b].qs, nullptr, nullptr, nullptr);
}

void quantize_row_iq4_nl_weighted(const float* x, BlockIQ4_NL* y, size_t n, const float* qw) {
  for (size_t b = 0; b < n / 32; ++b) quantize_superblock(32, x + 32 * b, &y[b].d, y[b].qs, nullptr, nullptr, qw + 32 * b);
}

void quantize_row_iq4_xs(const float* x, BlockIQ4_XS* y, size_t n) {
  for (size_t b = 0; b < n / kQK_K; ++b)
    quantize_superblock(kQK_K, x + kQK_K * b, &y[b].d, y[b].qs, &y[b].scales_h, y[b].scales_l, nullptr);
}

void quantize_row_iq4_xs_weighted(const float* x, BlockIQ4_XS* y, size_t n, const float* qw) {
  for (size_t b = 0; b < n / kQK_K; ++b)
    quantize_superblock(kQK_K, x + kQK_K * b, &y[b].d, y[b].qs, &y[b].scales_h, y[b].scales_l, qw + kQK_K * b);
}

}  // namespace qkv::ops
