// The rounding and fitting helpers GGML's reference quantizers share, for
// the quant*.cpp files (same arithmetic, so the bytes match llama-quantize).
#pragma once

#include <cstdint>
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

}  // namespace qkv::ops
