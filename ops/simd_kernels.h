// SIMD kernels written once with xsimd, instantiated per ISA by isa_*.cpp.
//
// Include this only from an isa_*.cpp file, after defining QKV_ISA_NS (a
// namespace unique to that translation unit) and specialising the Isa traits
// (fused multiply-add and the f16 -> f32 load). Everything here lives in that
// namespace so no symbol compiled with one ISA's flags can be picked by the
// linker for another.
#pragma once

#include <xsimd/xsimd.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "ops/ops.h"

namespace qkv::ops::QKV_ISA_NS {

using Arch = QKV_ARCH;
using vf = xsimd::batch<float, Arch>;
constexpr size_t W = vf::size;  // floats per vector

// Provided by the including TU: fused a*b+c, and load of W halves as floats.
inline vf fmadd(vf a, vf b, vf c);
inline vf load_f16(const uint16_t* p);

inline vf load(const float* p) { return vf::load_unaligned(p); }
inline vf load(const uint16_t* p) { return load_f16(p); }
inline float widen(float x) { return x; }
inline float widen(uint16_t h) { return f16_to_f32(h); }

inline float reduce_add(vf v) { return xsimd::hadd(v); }

inline float reduce_max(vf v) {
  alignas(64) float lanes[W];
  v.store_aligned(lanes);
  float m = lanes[0];
  for (size_t i = 1; i < W; ++i) m = lanes[i] > m ? lanes[i] : m;
  return m;
}

// ---------------------------------------------------------------- dot

inline float dot(const float* a, const float* b, size_t n);  // dot_row<float>, below

// ---------------------------------------------------------------- matmul
//
// Register tile: RM input rows (tokens) x RN weight rows. Each of the RM*RN
// accumulators is one independent dot product; every loaded vector of X is
// reused RN times and every vector of W RM times.
//   w: (rows, n), x: (M, n), y: (M, ldy)
template <int RM, int RN, class T>
inline void tile(const T* w, const float* x, float* y, size_t n, size_t ldy, size_t m0,
                 size_t r0) {
  vf acc[RM][RN];
  for (int i = 0; i < RM; ++i)
    for (int j = 0; j < RN; ++j) acc[i][j] = vf(0.0f);
  size_t k = 0;
  for (; k + W <= n; k += W) {
    vf wv[RN];
    for (int j = 0; j < RN; ++j) wv[j] = load(w + (r0 + j) * n + k);
    for (int i = 0; i < RM; ++i) {
      const vf xv = load(x + (m0 + i) * n + k);
      for (int j = 0; j < RN; ++j) acc[i][j] = fmadd(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < RM; ++i) {
    for (int j = 0; j < RN; ++j) {
      float s = reduce_add(acc[i][j]);
      const T* wr = w + (r0 + j) * n;
      const float* xr = x + (m0 + i) * n;
      for (size_t kk = k; kk < n; ++kk) s += widen(wr[kk]) * xr[kk];
      y[(m0 + i) * ldy + r0 + j] = s;
    }
  }
}

// Weight rows outermost: a block of RN rows stays in L1 while every token of
// the batch (X, which fits in L2) passes over it, so W is read from memory once.
template <class T>
inline void matmul(const T* w, const float* x, float* y, size_t M, size_t n, size_t ldy, size_t r0,
                   size_t r1) {
  constexpr int RM = 4, RN = 4;
  size_t r = r0;
  for (; r + RN <= r1; r += RN) {
    size_t m = 0;
    for (; m + RM <= M; m += RM) tile<RM, RN>(w, x, y, n, ldy, m, r);
    for (; m < M; ++m) tile<1, RN>(w, x, y, n, ldy, m, r);
  }
  for (; r < r1; ++r) {
    size_t m = 0;
    for (; m + RM <= M; m += RM) tile<RM, 1>(w, x, y, n, ldy, m, r);
    for (; m < M; ++m) tile<1, 1>(w, x, y, n, ldy, m, r);
  }
}

// y[r] = W[r, :] . x, one row after the other: each row is a single
// sequential stream with four accumulators, which the hardware prefetchers
// follow far better than several interleaved rows.
template <class T>
inline float dot_row(const T* w, const float* x, size_t n) {
  vf s0(0.0f), s1(0.0f), s2(0.0f), s3(0.0f);
  size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    s0 = fmadd(load(w + i), load(x + i), s0);
    s1 = fmadd(load(w + i + W), load(x + i + W), s1);
    s2 = fmadd(load(w + i + 2 * W), load(x + i + 2 * W), s2);
    s3 = fmadd(load(w + i + 3 * W), load(x + i + 3 * W), s3);
  }
  for (; i + W <= n; i += W) s0 = fmadd(load(w + i), load(x + i), s0);
  float s = reduce_add((s0 + s1) + (s2 + s3));
  for (; i < n; ++i) s += widen(w[i]) * x[i];
  return s;
}

inline float dot(const float* a, const float* b, size_t n) { return dot_row(a, b, n); }

template <class T>
inline void matvec(const T* w, const float* x, float* y, size_t n, size_t r0, size_t r1) {
  for (size_t r = r0; r < r1; ++r) y[r] = dot_row(w + r * n, x, n);
}

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
    const vf e = xsimd::exp(load(x + i) - vmx);
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

inline float gelu1(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * x * (1.0f + std::tanh(k * x * (1.0f + 0.044715f * x * x)));
}
inline vf gelu_v(vf x) {
  const vf k(0.7978845608028654f), c(0.044715f), half(0.5f), one(1.0f);
  return half * x * (one + xsimd::tanh(k * x * (one + c * x * x)));
}

inline void gelu(float* x, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) gelu_v(load(x + i)).store_unaligned(x + i);
  for (; i < n; ++i) x[i] = gelu1(x[i]);
}

inline void geglu(float* gate, const float* up, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) (gelu_v(load(gate + i)) * load(up + i)).store_unaligned(gate + i);
  for (; i < n; ++i) gate[i] = gelu1(gate[i]) * up[i];
}

inline void add(float* y, const float* x, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) (load(y + i) + load(x + i)).store_unaligned(y + i);
  for (; i < n; ++i) y[i] += x[i];
}

// ---------------------------------------------------------------- attention

// Streams the cached positions in blocks with an online softmax: for each
// block, the scores, then the running max m, the running sum l and the output
// are rescaled by exp(m_old - m_new) and the block's values added. No score
// row of the full context is needed; `att`, when given, receives the
// probabilities (computed from the same scores, so capture changes nothing).
inline void attention(const float* q, const float* k, const float* v, size_t kv_stride, size_t head_dim,
                      size_t n, float scale, float cap, float* att, float* out) {
  constexpr size_t kBlock = 64;
  alignas(64) float p[kBlock];
  float m = -INFINITY, l = 0.0f;
  for (size_t i = 0; i < head_dim; ++i) out[i] = 0.0f;
  for (size_t t0 = 0; t0 < n; t0 += kBlock) {
    const size_t nb = n - t0 < kBlock ? n - t0 : kBlock;
    float bm = -INFINITY;
    for (size_t t = 0; t < nb; ++t) {
      p[t] = softcap(dot(q, k + (t0 + t) * kv_stride, head_dim) * scale, cap);
      bm = p[t] > bm ? p[t] : bm;
    }
    if (att)
      for (size_t t = 0; t < nb; ++t) att[t0 + t] = p[t];
    const float m_new = bm > m ? bm : m;
    const float corr = std::exp(m - m_new);  // 0 for the first block
    m = m_new;
    // p = exp(score - m), vectorised
    const vf vm(m);
    size_t t = 0;
    for (; t + W <= nb; t += W) xsimd::exp(load(p + t) - vm).store_aligned(p + t);
    for (; t < nb; ++t) p[t] = std::exp(p[t] - m);
    float bsum = 0.0f;
    for (t = 0; t < nb; ++t) bsum += p[t];
    l = l * corr + bsum;
    // out = out * corr + sum_t p[t] * v_t
    size_t i = 0;
    for (; i + W <= head_dim; i += W) {
      vf acc = load(out + i) * vf(corr);
      for (t = 0; t < nb; ++t) acc = fmadd(vf(p[t]), load(v + (t0 + t) * kv_stride + i), acc);
      acc.store_unaligned(out + i);
    }
    for (; i < head_dim; ++i) {
      float acc = out[i] * corr;
      for (t = 0; t < nb; ++t) acc += p[t] * v[(t0 + t) * kv_stride + i];
      out[i] = acc;
    }
  }
  const float inv = 1.0f / l;
  for (size_t i = 0; i < head_dim; ++i) out[i] *= inv;
  if (att)
    for (size_t t = 0; t < n; ++t) att[t] = std::exp(att[t] - m) * inv;
}

// The f16-cache variant (llama.cpp's numerics): every score first, an f32
// softmax with a double sum, probabilities rounded to f16, then the values.
inline void attention_f16(const float* q, const uint16_t* k, const uint16_t* v, size_t kv_stride, size_t head_dim,
                          size_t n, float scale, float cap, float* att, float* out) {
  alignas(64) float q16[256];  // head_dim <= 256
  for (size_t i = 0; i < head_dim; ++i) q16[i] = f16_to_f32(f32_to_f16(q[i]));
  float mx = -INFINITY;
  for (size_t t = 0; t < n; ++t) {
    att[t] = softcap(dot_row(k + t * kv_stride, q16, head_dim) * scale, cap);
    mx = att[t] > mx ? att[t] : mx;
  }
  double sum = 0.0;
  for (size_t t = 0; t < n; ++t) sum += (att[t] = std::exp(att[t] - mx));
  for (size_t t = 0; t < n; ++t) att[t] = f16_to_f32(f32_to_f16(float(att[t] / sum)));
  size_t i = 0;
  for (; i + W <= head_dim; i += W) {
    vf acc(0.0f);
    for (size_t t = 0; t < n; ++t) acc = fmadd(vf(att[t]), load(v + t * kv_stride + i), acc);
    acc.store_unaligned(out + i);
  }
  for (; i < head_dim; ++i) {
    float o = 0.0f;
    for (size_t t = 0; t < n; ++t) o += att[t] * f16_to_f32(v[t * kv_stride + i]);
    out[i] = o;
  }
}

inline void f16_to_f32_n(const uint16_t* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) load_f16(src + i).store_unaligned(dst + i);
  for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

// ---------------------------------------------------------------- probe

inline double fma_peak(size_t iters) {
  vf acc[12];
  for (int j = 0; j < 12; ++j) acc[j] = vf(float(j));
  const vf m(0.999999f), c(1e-7f);
  for (size_t i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) acc[j] = fmadd(acc[j], m, c);
  vf sum(0.0f);
  for (int j = 0; j < 12; ++j) sum += acc[j];
  volatile float sink = reduce_add(sum);
  (void)sink;
  return 24.0 * double(W) * double(iters);
}

// The quantized products of this ISA (defined by the including TU).
QuantProducts q8_0_products();
QuantProducts q4_0_products();
QuantProducts q4_K_products();
QuantProducts q5_K_products();
QuantProducts q6_K_products();
void quantize_q8_0(const float* x, void* blocks, Q8Sum* sums, size_t n);
void quantize_q8_K(const float* x, void* blocks, size_t n);
void quantize_q8_1(const float* x, void* blocks, size_t n);
QuantProducts q4_1_products();
QuantProducts q5_0_products();
QuantProducts q5_1_products();
QuantProducts iq4_nl_products();
QuantProducts q2_K_products();
QuantProducts q3_K_products();
QuantProducts iq4_xs_products();

inline const Kernels& table(const char* name) {
  static const Kernels k = [name] {
    Kernels t{};  // every entry by name (tests check that none is left null)
    t.isa = name;
    t.dot = dot;
    t.matvec_f32 = matvec<float>;
    t.matvec_f16 = matvec<uint16_t>;
    t.matmul_f32 = matmul<float>;
    t.matmul_f16 = matmul<uint16_t>;
    t.rmsnorm = rmsnorm;
    t.softmax = softmax;
    t.swiglu = swiglu;
    t.layernorm = layernorm;
    t.gelu = gelu;
    t.geglu = geglu;
    t.add = add;
    t.attention = attention;
    t.f16_to_f32 = f16_to_f32_n;
    t.attention_f16 = attention_f16;
    t.q8_0 = q8_0_products();
    t.q4_0 = q4_0_products();
    t.q4_K = q4_K_products();
    t.q5_K = q5_K_products();
    t.q6_K = q6_K_products();
    t.quantize_q8_0 = quantize_q8_0;
    t.quantize_q8_K = quantize_q8_K;
    t.quantize_q8_1 = quantize_q8_1;
    t.q4_1 = q4_1_products();
    t.q5_0 = q5_0_products();
    t.q5_1 = q5_1_products();
    t.iq4_nl = iq4_nl_products();
    t.q2_K = q2_K_products();
    t.q3_K = q3_K_products();
    t.iq4_xs = iq4_xs_products();
    t.fma_peak = fma_peak;
    return t;
  }();
  return k;
}

}  // namespace qkv::ops::QKV_ISA_NS
