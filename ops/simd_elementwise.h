// The elementwise kernels of simd_kernels.h (one ISA each): norms, softmax,
// activations, the residual add, and f32 <-> f16 conversions.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "ops/ops.h"
#include "ops/simd_base.h"

namespace qkv::ops::QKV_ISA_NS {

// ---------------------------------------------------------------- elementwise

inline void rmsnorm(float* out, const float* x, const float* w, size_t n, float eps) {
  vf acc(0.0f);
  size_t i = 0;
  for (; i + W <= n; i += W) {
    const vf v = load(x + i);
    acc = fmadd(v, v, acc);
  }
  float ss = reduce_add(acc);
  for (; i < n; ++i) ss += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(ss / float(n) + eps);
  const vf vs(scale);
  i = 0;
  for (; i + W <= n; i += W) (load(w + i) * (vs * load(x + i))).store_unaligned(out + i);
  for (; i < n; ++i) out[i] = w[i] * (scale * x[i]);
}

inline void softmax(float* x, size_t n) {
  if (n == 0) return;
  float mx = x[0];
  size_t i = 0;
  if (n >= W) {
    vf m = load(x);
    for (i = W; i + W <= n; i += W) m = xsimd::max(m, load(x + i));
    mx = reduce_max(m);
  }
  for (; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  const vf vmx(mx);
  vf vsum(0.0f);
  i = 0;
  for (; i + W <= n; i += W) {
    const vf e = vexp(load(x + i) - vmx);
    e.store_unaligned(x + i);
    vsum += e;
  }
  float sum = reduce_add(vsum);
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const vf inv(1.0f / sum);
  i = 0;
  for (; i + W <= n; i += W) (load(x + i) * inv).store_unaligned(x + i);
  for (; i < n; ++i) x[i] *= 1.0f / sum;
}

inline void swiglu(float* gate, const float* up, size_t n) {
  const vf one(1.0f);
  size_t i = 0;
  for (; i + W <= n; i += W) {
    const vf g = load(gate + i);
    const vf silu = g / (one + xsimd::exp(-g));
    (silu * load(up + i)).store_unaligned(gate + i);
  }
  for (; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

// Sums in double as the reference does (a norm's cost is its final pass).
inline void layernorm(float* out, const float* x, const float* w, const float* b, size_t n, float eps) {
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += x[i];
  const float mean = float(sum / double(n));
  double sum2 = 0.0;
  for (size_t i = 0; i < n; ++i) sum2 += double(x[i] - mean) * double(x[i] - mean);
  const float scale = 1.0f / std::sqrt(float(sum2 / double(n)) + eps);
  const vf vmean(mean), vscale(scale);
  size_t i = 0;
  for (; i + W <= n; i += W) {
    vf y = (load(x + i) - vmean) * vscale * load(w + i);
    if (b) y = y + load(b + i);
    y.store_unaligned(out + i);
  }
  for (; i < n; ++i) out[i] = (x[i] - mean) * scale * w[i] + (b ? b[i] : 0.0f);
}

// llama.cpp's GELU (ops.h): the table at x rounded to f16, outside [-10, 10] 0 or x.
inline float gelu1(float x, const uint16_t* table) {
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  return f16_to_f32(table[f32_to_f16(x)]);
}
inline vf gelu_v(vf x, const uint16_t* table) {
  alignas(64) uint16_t h[W];
  store_f16(h, x);
  for (size_t j = 0; j < W; ++j) h[j] = table[h[j]];
  const vf g = xsimd::select(x <= vf(-10.0f), vf(0.0f), load_f16(h));
  return xsimd::select(x >= vf(10.0f), x, g);
}

inline void gelu(float* x, size_t n) {
  const uint16_t* table = gelu_f16_table();
  size_t i = 0;
  for (; i + W <= n; i += W) gelu_v(load(x + i), table).store_unaligned(x + i);
  for (; i < n; ++i) x[i] = gelu1(x[i], table);
}

inline void geglu(float* gate, const float* up, size_t n) {
  const uint16_t* table = gelu_f16_table();
  size_t i = 0;
  for (; i + W <= n; i += W) (gelu_v(load(gate + i), table) * load(up + i)).store_unaligned(gate + i);
  for (; i < n; ++i) gate[i] = gelu1(gate[i], table) * up[i];
}

inline void add(float* y, const float* x, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) (load(y + i) + load(x + i)).store_unaligned(y + i);
  for (; i < n; ++i) y[i] += x[i];
}
// ---------------------------------------------------------------- f16 conversions

inline void f32_to_f16_n(const float* src, uint16_t* dst, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) store_f16(dst + i, load(src + i));
  for (; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

inline void round_f16_n(const float* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) round_to_f16(load(src + i)).store_unaligned(dst + i);
  for (; i < n; ++i) dst[i] = f16_to_f32(f32_to_f16(src[i]));
}

inline void f16_to_f32_n(const uint16_t* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) load_f16(src + i).store_unaligned(dst + i);
  for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

}  // namespace qkv::ops::QKV_ISA_NS
