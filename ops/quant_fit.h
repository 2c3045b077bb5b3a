// The rounding and fitting helpers GGML's reference quantizers share, for
// the quant*.cpp files (same arithmetic, so the bytes match llama-quantize).
#pragma once

#include <cstdint>
#include <cmath>
#include <cstring>

namespace qkv::ops {

// Round to nearest, ties to even, for |v| < 2^22, without libm: adding
// 1.5 * 2^23 leaves the integer in the low mantissa bits. GGML's
// quantizers round this way.
inline int nearest_int(float v) {
  const float shifted = v + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, 4);
  return (bits & 0x007fffff) - 0x00400000;
}

inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// Fits x ~ scale * L + min (L in 0..nmax, min <= 0) minimising the weighted
// error (squared, or absolute when mad): start from the range, then try
// nstep + 1 scales around it and keep the best least-squares fit. Returns
// the scale; *neg_min = -min. (GGML's make_qkx2_quants; n <= 32.)
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min, float rmin,
                    float rdelta, int nstep, bool mad);

// Fits x ~ scale * L, L in -nmax..nmax-1, minimising sum w (x - scale L)^2
// with w = qw, or x^2 where qw is null: the first scale from max|x|, then 18
// more around it, the best least-squares one kept. L receives level + nmax.
// (GGML's make_qx_quants with rmse_type 1.)
float fit_scale_symmetric(int n, int nmax, const float* x, int8_t* L, const float* qw = nullptr);

// Fits non-negative x (scales, mins) ~ scale * L, L in 0..nmax, minimising
// sum w (x - scale L)^2: 9 scales around nmax / max x, then up to 5 passes
// moving single levels while the fit improves. (GGML's make_qp_quants, which
// the importance-weighted K-quants use for their sub-block scales.)
float fit_scale_positive(int n, int nmax, const float* x, uint8_t* L, const float* w);

// What the importance-weighted quantizers weigh value j of a block by:
// importance qw[j] times sqrt(sigma2 + x[j]^2) (sigma2: the mean square of
// the row or super-block, as each type defines it).
inline void importance_weights(int n, const float* x, const float* qw, float sigma2, float* w) {
  for (int j = 0; j < n; ++j) w[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
}

// The sum of x[j]^2 over n values, in order.
inline float sum_squares(const float* x, size_t n) {
  float s = 0;
  for (size_t j = 0; j < n; ++j) s += x[j] * x[j];
  return s;
}

// importance_weights of each sub-block of `sub` values of a super-block of
// n (into w, n of them) and each sub-block's total weight (into sw).
inline void subblock_weights(int n, int sub, const float* x, const float* qw, float sigma2, float* w, float* sw) {
  for (int j = 0; j < n / sub; ++j) {
    importance_weights(sub, x + sub * j, qw + sub * j, sigma2, w + sub * j);
    float sumw = 0;
    for (int l = 0; l < sub; ++l) sumw += w[sub * j + l];
    sw[j] = sumw;
  }
}

}  // namespace qkv::ops
