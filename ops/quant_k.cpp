// K-quants (Q4_K, Q5_K, Q6_K) and their Q8_K activations: scalar reference
// dequantizers, quantizers with the arithmetic of GGML's reference ("_ref")
// quantizers, and the scalar integer products.
//
// A super-block holds 256 values. Q4_K/Q5_K split it into 8 sub-blocks of 32,
// each with a 6-bit scale and a 6-bit min (x = d * sc * q - dmin * m); Q6_K
// into 16 sub-blocks of 16 with a signed 8-bit scale (x = d * sc * (q - 32)).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "ops/ops.h"
#include "ops/quant.h"
#include "ops/quant_fit.h"
#include "ops/quant_repack.h"

namespace qkv::ops {
namespace {

// Sub-block j's 6-bit scale and min from the 12 packed bytes: j < 4 in the
// low 6 bits of bytes j and j + 4; j >= 4 in the nibbles of byte j + 4 with
// their top 2 bits taken from the high bits of bytes j - 4 and j.
void scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = uint8_t((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
    *m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// The inverse: 8 scales and 8 mins (each < 64) into 12 bytes.
void pack_scale_min_k4(const uint8_t* ls, const uint8_t* lm, uint8_t* q) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      q[j] = ls[j];
      q[j + 4] = lm[j];
    } else {
      q[j + 4] = uint8_t((ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4));
      q[j - 4] = uint8_t(q[j - 4] | ((ls[j] >> 4) << 6));
      q[j] = uint8_t(q[j] | ((lm[j] >> 4) << 6));
    }
  }
}

// Q4_K/Q5_K value i (0..255) of a super-block, without its fifth bit: 64
// values per 32 bytes, the first 32 in the low nibbles.
inline int q4_K_value(const uint8_t* qs, int i) { return (qs[32 * (i / 64) + i % 32] >> (4 * ((i / 32) % 2))) & 0x0f; }

// Q6_K value i (0..63, before the -32): 128 values per 64 bytes of low
// nibbles (values l and l + 64 share byte l) and 32 bytes of 2-bit high parts.
inline int q6_K_value(const BlockQ6_K& b, int i) {
  const int half = i / 128, j = i % 128, quarter = j / 32, l = j % 32;
  const uint8_t* ql = b.ql + 64 * half;
  const uint8_t* qh = b.qh + 32 * half;
  const int lo = (ql[l + 32 * (quarter % 2)] >> (4 * (quarter / 2))) & 0x0f;
  return lo | (((qh[l] >> (2 * quarter)) & 3) << 4);
}

}  // namespace

// As GGML's make_qkx2_quants: each error term is w * (diff^2) (or w * |diff|),
// in that order, so the comparisons between candidate fits round as there.
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min, float rmin,
                    float rdelta, int nstep, bool mad) {
  float min = x[0], max = x[0], sum_w = w[0], sum_x = w[0] * x[0];
  for (int i = 1; i < n; ++i) {
    min = x[i] < min ? x[i] : min;
    max = x[i] > max ? x[i] : max;
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *neg_min = -min;
    return 0.0f;
  }
  float iscale = float(nmax) / (max - min), scale = 1.0f / iscale, best_error = 0.0f;
  for (int i = 0; i < n; ++i) {
    L[i] = uint8_t(clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax));
    const float diff = scale * L[i] + min - x[i];
    best_error += w[i] * (mad ? std::fabs(diff) : diff * diff);
  }
  uint8_t trial[32];
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * float(is) + float(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax);
      trial[i] = uint8_t(l);
      sum_l += w[i] * float(l);
      sum_l2 += w[i] * float(l) * float(l);
      sum_xl += w[i] * float(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float error = 0;
      for (int i = 0; i < n; ++i) {
        const float diff = this_scale * trial[i] + this_min - x[i];
        error += w[i] * (mad ? std::fabs(diff) : diff * diff);
      }
      if (error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = trial[i];
        best_error = error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *neg_min = -min;
  return scale;
}

// As GGML's make_qx_quants (rmse_type 1): Q6_K, and the importance-weighted
// Q4_0, Q5_0 and Q3_K.
float fit_scale_symmetric(int n, int nmax, const float* x, int8_t* L, const float* qw) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax < 1e-15f) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  float iscale = -float(nmax) / max, sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = int8_t(l + nmax);
    const float w = qw ? qw[i] : x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(float(nmax) + 0.1f * float(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      const float w = qw ? qw[i] : x[i] * x[i];
      sumlx += w * x[i] * float(l);
      suml2 += w * float(l) * float(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// As GGML's make_qp_quants.
float fit_scale_positive(int n, int nmax, const float* x, uint8_t* L, const float* w) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = x[i] > max ? x[i] : max;
  if (max < 1e-15f) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  float iscale = float(nmax) / max;
  for (int i = 0; i < n; ++i) L[i] = uint8_t(nearest_int(iscale * x[i]));
  const float scale = 1 / iscale;
  float best_mse = 0;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * float(L[i]);
    best_mse += w[i] * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    const float iscale_is = (0.1f * float(is) + float(nmax)) / max, scale_is = 1 / iscale_is;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::min(nmax, nearest_int(iscale_is * x[i]));
      const float diff = x[i] - scale_is * float(l);
      mse += w[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::min(nmax, nearest_int(iscale * x[i]));
    L[i] = uint8_t(l);
    sumlx += w[i] * x[i] * float(l);
    suml2 += w[i] * float(l) * float(l);
  }
  for (int itry = 0; itry < 5; ++itry) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      float slx = sumlx - w[i] * x[i] * float(L[i]);
      float sl2 = suml2 - w[i] * float(L[i]) * float(L[i]);
      if (slx > 0 && sl2 > 0) {
        const int l = std::min(nmax, nearest_int(x[i] * sl2 / slx));
        if (l != L[i]) {
          slx += w[i] * x[i] * float(l);
          sl2 += w[i] * float(l) * float(l);
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = uint8_t(l);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

namespace {

// The 8 scales and mins as 6-bit levels (ls, lm) under *d and *dmin, then
// every value requantized with the scales as stored.
void store_superblock_k4(const float* x, int nmax, const uint8_t* ls, const uint8_t* lm, const uint16_t* d,
                         const uint16_t* dmin, uint8_t* packed_scales, uint8_t* L) {
  std::memset(packed_scales, 0, 12);
  pack_scale_min_k4(ls, lm, packed_scales);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    scale_min_k4(j, packed_scales, &sc, &m);
    const float dj = f16_to_f32(*d) * sc;
    if (dj == 0.0f) continue;
    const float dm = f16_to_f32(*dmin) * m;
    for (int l = 0; l < 32; ++l) L[32 * j + l] = uint8_t(clamp_int(nearest_int((x[32 * j + l] + dm) / dj), 0, nmax));
  }
}

// Q4_K and Q5_K share everything but the number of levels (nmax 15 or 31)
// and the search: per sub-block a weighted (scale, min) fit, then the 8
// scales and 8 mins quantized to 6 bits, then every value requantized with
// the scales as stored. L receives the 256 levels.
void quantize_superblock_k4(const float* x, int nmax, float rmin, int nstep, uint16_t* d, uint16_t* dmin,
                            uint8_t* packed_scales, uint8_t* L) {
  float scales[8], mins[8], weights[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[j] = fit_scale_min(32, nmax, xs, weights, L + 32 * j, &mins[j], rmin, 0.1f, nstep, false);
    max_scale = scales[j] > max_scale ? scales[j] : max_scale;
    max_min = mins[j] > max_min ? mins[j] : max_min;
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    // As GGML: the rounded value is stored in a uint8_t before the clamp.
    ls[j] = uint8_t(nearest_int(inv_scale * scales[j]));
    lm[j] = uint8_t(nearest_int(inv_min * mins[j]));
    ls[j] = ls[j] < 63 ? ls[j] : 63;
    lm[j] = lm[j] < 63 ? lm[j] : 63;
  }
  *d = f32_to_f16(max_scale / 63.0f);
  *dmin = f32_to_f16(max_min / 63.0f);
  store_superblock_k4(x, nmax, ls, lm, d, dmin, packed_scales, L);
}

// With an importance per value (GGML's quantize_row_q4_K_impl / q5_K_impl):
// each value weighed by importance_weights (sigma2 twice the mean square of
// the super-block), a finer search per sub-block, and the scales and mins
// fitted to 6 bits under the sub-blocks' total weights (fit_scale_positive)
// rather than scaled from their maxima.
void quantize_superblock_k4_weighted(const float* x, const float* qw, int nmax, uint16_t* d, uint16_t* dmin,
                                     uint8_t* packed_scales, uint8_t* L) {
  float scales[8], mins[8], weights[kQK_K], sw[8];
  subblock_weights(kQK_K, 32, x, qw, 2 * sum_squares(x, kQK_K) / kQK_K, weights, sw);
  for (int j = 0; j < 8; ++j)
    scales[j] = fit_scale_min(32, nmax, x + 32 * j, weights + 32 * j, L + 32 * j, &mins[j], -0.9f, 0.05f, 36, false);
  uint8_t ls[8], lm[8];
  *d = f32_to_f16(fit_scale_positive(8, 63, scales, ls, sw));
  *dmin = f32_to_f16(fit_scale_positive(8, 63, mins, lm, sw));
  store_superblock_k4(x, nmax, ls, lm, d, dmin, packed_scales, L);
}

}  // namespace

// ---------------------------------------------------------------- dequantize

namespace {
// Q4_K and Q5_K: x = d * sc_j * q - dmin * m_j in sub-block j (32 values);
// level(block, i) gives value i's q.
template <class Block, class Level>
void dequantize_k4(const Block* x, float* y, size_t n, Level level) {
  for (size_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    const float d = f16_to_f32(x[b].d), dmin = f16_to_f32(x[b].dmin);
    for (int i = 0; i < kQK_K; ++i) {
      uint8_t sc, m;
      scale_min_k4(i / 32, x[b].scales, &sc, &m);
      y[i] = d * sc * float(level(x[b], i)) - dmin * m;
    }
  }
}
inline int q5_K_value(const BlockQ5_K& b, int i) { return q4_K_value(b.qs, i) | (((b.qh[i % 32] >> (i / 32)) & 1) << 4); }
}  // namespace

void dequantize_row_q4_K(const BlockQ4_K* x, float* y, size_t n) {
  dequantize_k4(x, y, n, [](const BlockQ4_K& b, int i) { return q4_K_value(b.qs, i); });
}

void dequantize_row_q5_K(const BlockQ5_K* x, float* y, size_t n) { dequantize_k4(x, y, n, q5_K_value); }

void dequantize_row_q6_K(const BlockQ6_K* x, float* y, size_t n) {
  for (size_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    const float d = f16_to_f32(x[b].d);
    for (int i = 0; i < kQK_K; ++i) y[i] = d * float(x[b].scales[i / 16]) * float(q6_K_value(x[b], i) - 32);
  }
}

void dequantize_row_q8_K(const BlockQ8_K* x, float* y, size_t n) {
  for (size_t b = 0; b < n / kQK_K; ++b)
    for (int i = 0; i < kQK_K; ++i) y[b * kQK_K + i] = x[b].d * float(x[b].qs[i]);
}

// ---------------------------------------------------------------- quantize

namespace {
void pack_q4_K(const uint8_t* L, BlockQ4_K& y) {
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) y.qs[32 * c + l] = uint8_t(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
}

void pack_q5_K(const uint8_t* L, BlockQ5_K& y) {
  std::memset(y.qh, 0, sizeof y.qh);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
      y.qs[32 * c + l] = uint8_t((lo & 0x0f) | ((hi & 0x0f) << 4));
      y.qh[l] = uint8_t(y.qh[l] | ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
    }
  }
}

// Q4_K (nmax 15, the plain search from -1 in 20 steps) and Q5_K (31, from
// -0.5 in 15); with importances qw where not null.
template <class Block>
void quantize_k4(const float* x, Block* y, size_t n, const float* qw) {
  constexpr bool kQ5 = std::is_same_v<Block, BlockQ5_K>;
  constexpr int nmax = kQ5 ? 31 : 15;
  uint8_t L[kQK_K];
  for (size_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    if (qw) quantize_superblock_k4_weighted(x, qw + b * kQK_K, nmax, &y[b].d, &y[b].dmin, y[b].scales, L);
    else quantize_superblock_k4(x, nmax, kQ5 ? -0.5f : -1.0f, kQ5 ? 15 : 20, &y[b].d, &y[b].dmin, y[b].scales, L);
    if constexpr (kQ5) pack_q5_K(L, y[b]);
    else pack_q4_K(L, y[b]);
  }
}
}  // namespace

void quantize_row_q4_K(const float* x, BlockQ4_K* y, size_t n) { quantize_k4(x, y, n, nullptr); }
void quantize_row_q4_K_weighted(const float* x, BlockQ4_K* y, size_t n, const float* qw) { quantize_k4(x, y, n, qw); }
void quantize_row_q5_K(const float* x, BlockQ5_K* y, size_t n) { quantize_k4(x, y, n, nullptr); }
void quantize_row_q5_K_weighted(const float* x, BlockQ5_K* y, size_t n, const float* qw) { quantize_k4(x, y, n, qw); }

namespace {
// qw: the importances (GGML's quantize_row_q6_K_impl weighs each sub-block's
// fit by them directly), or null: x^2.
void quantize_q6_K(const float* x, BlockQ6_K* y, size_t n, const float* qw) {
  int8_t L[kQK_K];
  float scales[kQK_K / 16];
  for (size_t b = 0; b < n / kQK_K; ++b, x += kQK_K, qw = qw ? qw + kQK_K : nullptr) {
    float max_scale = 0, max_abs_scale = 0;
    for (int k = 0; k < kQK_K / 16; ++k) {
      scales[k] = fit_scale_symmetric(16, 32, x + 16 * k, L + 16 * k, qw ? qw + 16 * k : nullptr);
      if (std::fabs(scales[k]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[k]);
        max_scale = scales[k];
      }
    }
    std::memset(&y[b], 0, sizeof y[b]);
    if (max_abs_scale < 1e-15f) continue;  // all zero: d = 0
    const float iscale = -128.0f / max_scale;
    y[b].d = f32_to_f16(1.0f / iscale);
    for (int k = 0; k < kQK_K / 16; ++k) {
      const int v = nearest_int(iscale * scales[k]);
      y[b].scales[k] = int8_t(v < 127 ? v : 127);
    }
    for (int k = 0; k < kQK_K / 16; ++k) {
      const float d = f16_to_f32(y[b].d) * float(y[b].scales[k]);
      if (d == 0.0f) continue;
      for (int l = 0; l < 16; ++l) L[16 * k + l] = int8_t(clamp_int(nearest_int(x[16 * k + l] / d), -32, 31) + 32);
    }
    for (int half = 0; half < 2; ++half) {
      const int8_t* Lh = L + 128 * half;
      uint8_t* ql = y[b].ql + 64 * half;
      uint8_t* qh = y[b].qh + 32 * half;
      for (int l = 0; l < 32; ++l) {
        ql[l] = uint8_t((Lh[l] & 0x0f) | ((Lh[l + 64] & 0x0f) << 4));
        ql[l + 32] = uint8_t((Lh[l + 32] & 0x0f) | ((Lh[l + 96] & 0x0f) << 4));
        qh[l] = uint8_t((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
      }
    }
  }
}
}  // namespace

void quantize_row_q6_K(const float* x, BlockQ6_K* y, size_t n) { quantize_q6_K(x, y, n, nullptr); }
void quantize_row_q6_K_weighted(const float* x, BlockQ6_K* y, size_t n, const float* qw) { quantize_q6_K(x, y, n, qw); }

void quantize_q8_K_ref(const float* x, void* blocks, size_t n) { quantize_row_q8_K(x, static_cast<BlockQ8_K*>(blocks), n); }

void quantize_row_q8_K(const float* x, BlockQ8_K* y, size_t n) {
  for (size_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    float max = 0, amax = 0;  // the value of largest magnitude, with its sign
    for (int i = 0; i < kQK_K; ++i) {
      if (std::fabs(x[i]) > amax) {
        amax = std::fabs(x[i]);
        max = x[i];
      }
    }
    if (amax == 0.0f) {
      std::memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    const float iscale = -127.0f / max;
    for (int i = 0; i < kQK_K; ++i) {
      const int v = nearest_int(iscale * x[i]);
      y[b].qs[i] = int8_t(v < 127 ? v : 127);
    }
    for (int k = 0; k < kQK_K / 16; ++k) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[b].qs[16 * k + l];
      y[b].bsums[k] = int16_t(sum);
    }
    y[b].d = 1.0f / iscale;
  }
}

}  // namespace qkv::ops

// ---------------------------------------------------------------- scalar products

#include "ops/quant_ref.h"

namespace qkv::ops::quant_ref {

// sum_i (d * sc * q_i - dmin * m) * x_i = d * sum_j sc_j (q . x)_j - dmin * sum_j m_j (sum x)_j
template <class Block, class Value>
inline void add_k4(QAcc& a, const Block& w, const BlockQ8_K& x, Value value) {
  int sumi = 0, summ = 0;
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    scale_min_k4(j, w.scales, &sc, &m);
    int s = 0;
    for (int l = 0; l < 32; ++l) s += value(32 * j + l) * int(x.qs[32 * j + l]);
    sumi += sc * s;
    summ += m * (x.bsums[2 * j] + x.bsums[2 * j + 1]);
  }
  a.s += x.d * (f16_to_f32(w.d) * float(sumi) - f16_to_f32(w.dmin) * float(summ));
}

inline void qacc_add(QAcc& a, const BlockQ4_K& w, const BlockQ8_K& x) {
  add_k4(a, w, x, [&](int i) { return q4_K_value(w.qs, i); });
}

inline void qacc_add(QAcc& a, const BlockQ5_K& w, const BlockQ8_K& x) {
  add_k4(a, w, x, [&](int i) { return q5_K_value(w, i); });
}

inline void qacc_add(QAcc& a, const BlockQ6_K& w, const BlockQ8_K& x) {
  int sumi = 0;
  for (int k = 0; k < kQK_K / 16; ++k) {
    int s = 0;
    for (int l = 0; l < 16; ++l) s += (q6_K_value(w, 16 * k + l) - 32) * int(x.qs[16 * k + l]);
    sumi += w.scales[k] * s;
  }
  a.s += x.d * f16_to_f32(w.d) * float(sumi);
}

}  // namespace qkv::ops::quant_ref

#define QKV_ISA_NS quant_ref
#include "ops/quant_dot.h"

namespace qkv::ops {

void repack_x8(const BlockQ4_K* w, BlockQ4_Kx8* out, size_t rows, size_t n) {
  const size_t nb = n / kQK_K;
  for (size_t g = 0; g < rows / 8; ++g)
    for (size_t b = 0; b < nb; ++b) {
      BlockQ4_Kx8& p = out[g * nb + b];
      for (size_t r = 0; r < 8; ++r) {
        const BlockQ4_K& src = w[(8 * g + r) * nb + b];
        p.d[r] = src.d;
        p.dmin[r] = src.dmin;
        for (int j = 0; j < 8; ++j) scale_min_k4(j, src.scales, &p.sc[j][r], &p.m2[j / 2][r][j % 2]);
        for (size_t c = 0; c < kQK_K / 8; ++c) std::memcpy(&p.qs[4 * (8 * c + r)], &src.qs[4 * c], 4);
      }
    }
}

// Where value v (0..255) of row r sits in a Q5_Kx8 group's chunks or a
// Q6_Kx8 group's quads (quant.h): the byte and shift of its low 4 bits, of
// its high bit(s).
struct Q6x8Place {
  int ql, ql_shift, qh, qh_shift;
};
static Q6x8Place q5_K_x8_place(int r, int v) {
  const int c = v / 64, h = (v % 64) / 32, p = (v % 32) / 4, i = v % 4;
  return {320 * c + 64 + 4 * (8 * p + r) + i, 4 * h, 320 * c + 32 * h + 4 * r + i, p};
}

void repack_x8(const BlockQ5_K* w, BlockQ5_Kx8* out, size_t rows, size_t n) {
  repack_blocks_x8(w, out, rows, n, [](BlockQ5_Kx8& p, const BlockQ5_K& src, int r) {
    p.d[r] = src.d;
    p.dmin[r] = src.dmin;
    for (int j = 0; j < 8; ++j) scale_min_k4(j, src.scales, &p.sc[j][r], &p.m2[j / 2][r][j % 2]);
    uint8_t L[kQK_K];  // q5_K_value, a 64-value chunk at a time
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 32; ++l) {
        const uint8_t q = src.qs[32 * j + l], h = uint8_t(src.qh[l] >> (2 * j));
        L[64 * j + l] = uint8_t((q & 0x0f) | ((h & 1) << 4));
        L[64 * j + 32 + l] = uint8_t((q >> 4) | ((h & 2) << 3));
      }
    // Byte by byte, as q5_K_x8_place says.
    for (int c = 0; c < 4; ++c) {
      uint8_t* q = p.chunks[c];
      for (int pc = 0; pc < 8; ++pc)
        for (int i = 0; i < 4; ++i) {
          const int lo = L[64 * c + 4 * pc + i], hi = L[64 * c + 32 + 4 * pc + i];
          q[64 + 4 * (8 * pc + r) + i] = uint8_t((lo & 0x0f) | ((hi & 0x0f) << 4));
          q[4 * r + i] = uint8_t(q[4 * r + i] | ((lo >> 4) << pc));
          q[32 + 4 * r + i] = uint8_t(q[32 + 4 * r + i] | ((hi >> 4) << pc));
        }
    }
  });
}


static Q6x8Place q6_K_x8_place(int r, int v) {
  const int P = v / 8, h = (v % 8) / 4, i = v % 4, u = P / 4, k = P % 4;
  return {192 * u + 64 + 32 * k + 4 * r + i, 4 * h, 192 * u + 32 * h + 4 * r + i, 2 * k};
}

void repack_x8(const BlockQ6_K* w, BlockQ6_Kx8* out, size_t rows, size_t n) {
  repack_blocks_x8(w, out, rows, n, [](BlockQ6_Kx8& p, const BlockQ6_K& src, int r) {
    p.d[r] = src.d;
    for (int j = 0; j < kQK_K / 16; ++j) p.sc2[j / 2][r][j % 2] = src.scales[j];
    uint8_t L[kQK_K];  // q6_K_value, a 128-value half at a time
    for (int half = 0; half < 2; ++half)
      for (int l = 0; l < 32; ++l) {
        const uint8_t* ql = src.ql + 64 * half;
        const uint8_t h = src.qh[32 * half + l];
        uint8_t* o = L + 128 * half + l;
        o[0] = uint8_t((ql[l] & 0x0f) | ((h & 3) << 4));
        o[32] = uint8_t((ql[l + 32] & 0x0f) | (((h >> 2) & 3) << 4));
        o[64] = uint8_t((ql[l] >> 4) | (((h >> 4) & 3) << 4));
        o[96] = uint8_t((ql[l + 32] >> 4) | (((h >> 6) & 3) << 4));
      }
    // Byte by byte, as q6_K_x8_place says.
    for (int P = 0; P < 32; ++P) {
      uint8_t* q = p.quads[P / 4];
      const int k = P % 4;
      for (int i = 0; i < 4; ++i) {
        const int lo = L[8 * P + i], hi = L[8 * P + 4 + i];
        q[64 + 32 * k + 4 * r + i] = uint8_t((lo & 0x0f) | ((hi & 0x0f) << 4));
        q[4 * r + i] = uint8_t(q[4 * r + i] | ((lo >> 4) << (2 * k)));
        q[32 + 4 * r + i] = uint8_t(q[32 + 4 * r + i] | ((hi >> 4) << (2 * k)));
      }
    }
  });
}

namespace {
// Row r's level of value i (0..255) in a Q4_Kx8 group: byte 32 (i / 64) +
// i % 32 of the row's block, low nibble for the first 32 of each 64.
int x8_q4_K_level(const BlockQ4_Kx8& p, int r, int i) {
  const int byte = 32 * (i / 64) + i % 32;
  return (p.qs[4 * (8 * (byte / 4) + r) + byte % 4] >> (4 * ((i / 32) % 2))) & 0x0f;
}

int x8_k_level(const BlockQ4_Kx8& p, int r, int i) { return x8_q4_K_level(p, r, i); }
int x8_k_level(const BlockQ5_Kx8& p, int r, int i) {
  const Q6x8Place at = q5_K_x8_place(r, i);
  const uint8_t* q = &p.chunks[0][0];
  return ((q[at.ql] >> at.ql_shift) & 0x0f) | (((q[at.qh] >> at.qh_shift) & 1) << 4);
}

// Q4_Kx8 and Q5_Kx8 (the same scales and mins).
template <class Packed>
void x8_q4_K_matmul_ref(const void* packed, const void* xq, const Q8Sum*, float* y, size_t M, size_t n, size_t ldy,
                        size_t g0, size_t g1) {
  quant_ref::x8_products<Packed, BlockQ8_K>(
      packed, xq, nullptr, y, M, n / kQK_K, ldy, g0, g1, [](const Packed& p, int r, const BlockQ8_K& x, const Q8Sum*) {
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; ++j) {
          int s = 0;
          for (int l = 0; l < 32; ++l) s += x8_k_level(p, r, 32 * j + l) * int(x.qs[32 * j + l]);
          sumi += p.sc[j][r] * s;
          summ += p.m2[j / 2][r][j % 2] * (x.bsums[2 * j] + x.bsums[2 * j + 1]);
        }
        return x.d * (f16_to_f32(p.d[r]) * float(sumi) - f16_to_f32(p.dmin[r]) * float(summ));
      });
}

int x8_q6_K_level(const BlockQ6_Kx8& p, int r, int v) {
  const Q6x8Place at = q6_K_x8_place(r, v);
  const uint8_t* q = &p.quads[0][0];
  return ((q[at.ql] >> at.ql_shift) & 0x0f) | (((q[at.qh] >> at.qh_shift) & 3) << 4);
}

void x8_q6_K_matmul_ref(const void* packed, const void* xq, const Q8Sum*, float* y, size_t M, size_t n, size_t ldy,
                        size_t g0, size_t g1) {
  quant_ref::x8_products<BlockQ6_Kx8, BlockQ8_K>(
      packed, xq, nullptr, y, M, n / kQK_K, ldy, g0, g1, [](const BlockQ6_Kx8& p, int r, const BlockQ8_K& x, const Q8Sum*) {
        int sumi = 0;
        for (int j = 0; j < kQK_K / 16; ++j) {
          int s = 0;
          for (int l = 0; l < 16; ++l) s += (x8_q6_K_level(p, r, 16 * j + l) - 32) * int(x.qs[16 * j + l]);
          sumi += p.sc2[j / 2][r][j % 2] * s;
        }
        return x.d * f16_to_f32(p.d[r]) * float(sumi);
      });
}

}  // namespace

QuantProducts q4_K_products_ref() {
  return {quant_ref::qmatvec<BlockQ4_K>, quant_ref::qmatmul<BlockQ4_K>,
          quant_ref::x8_matvec<x8_q4_K_matmul_ref<BlockQ4_Kx8>>,
          x8_q4_K_matmul_ref<BlockQ4_Kx8>};
}
QuantProducts q5_K_products_ref() {
  return {quant_ref::qmatvec<BlockQ5_K>, quant_ref::qmatmul<BlockQ5_K>,
          quant_ref::x8_matvec<x8_q4_K_matmul_ref<BlockQ5_Kx8>>,
          x8_q4_K_matmul_ref<BlockQ5_Kx8>};
}
QuantProducts q6_K_products_ref() {
  return {quant_ref::qmatvec<BlockQ6_K>, quant_ref::qmatmul<BlockQ6_K>,
          quant_ref::x8_matvec<x8_q6_K_matmul_ref>, x8_q6_K_matmul_ref};
}

}  // namespace qkv::ops
