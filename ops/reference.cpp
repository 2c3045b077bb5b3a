// Scalar reference kernels: the plainest loops, sums in index order, like
// llama2.c's run.c. Tests compare every SIMD kernel against these.
#include <cmath>
#include <algorithm>
#include <cstring>

#include "ops/ops.h"
#include "ops/quant.h"

namespace qkv::ops {

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {  // inf or nan
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {  // normal
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {  // zero
    bits = sign;
  } else {  // subnormal: normalise
    int e = -1;
    do {
      mant <<= 1;
      ++e;
    } while (!(mant & 0x400));
    bits = sign | uint32_t(112 - e) << 23 | ((mant & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return uint16_t(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
  if (ax >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // rounds to inf
  if (ax < 0x38800000u) {  // subnormal or zero in f16
    if (ax < 0x33000000u) return sign;
    const uint32_t e = ax >> 23;
    const uint32_t m = (ax & 0x7fffff) | 0x800000;
    const uint32_t shift = 126 - e;  // 14 + (112 - e) ... keeps 10 bits
    uint32_t v = m >> (shift - 0);
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (v & 1))) ++v;
    return uint16_t(sign | v);
  }
  uint32_t v = ((ax >> 13) - (112u << 10));
  const uint32_t rem = ax & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (v & 1))) ++v;
  return uint16_t(sign | v);
}

float bf16_to_f32(uint16_t h) {
  const uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 64);  // NaN: kept quiet
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

void rope(float* x, size_t n_heads, size_t head_dim, const float* cos, const float* sin) {
  for (size_t h = 0; h < n_heads; ++h) {
    float* xh = x + h * head_dim;
    for (size_t i = 0; i < head_dim / 2; ++i) {
      const float x0 = xh[2 * i], x1 = xh[2 * i + 1];
      xh[2 * i] = x0 * cos[i] - x1 * sin[i];
      xh[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
    }
  }
}

void rope_neox(float* x, size_t n_heads, size_t head_dim, const float* cos, const float* sin) {
  const size_t half = head_dim / 2;
  for (size_t h = 0; h < n_heads; ++h) {
    float* xh = x + h * head_dim;
    for (size_t i = 0; i < half; ++i) {
      const float x0 = xh[i], x1 = xh[i + half];
      xh[i] = x0 * cos[i] - x1 * sin[i];
      xh[i + half] = x0 * sin[i] + x1 * cos[i];
    }
  }
}

namespace {

inline float widen_ref(float x) { return x; }
inline float widen_ref(uint16_t h) { return f16_to_f32(h); }

float dot_ref(const float* a, const float* b, size_t n) {
  float s = 0.0f;
  for (size_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void matvec_f32_ref(const float* w, const float* x, float* y, size_t n, size_t r0, size_t r1) {
  for (size_t r = r0; r < r1; ++r) y[r] = dot_ref(w + r * n, x, n);
}

void matvec_f16_ref(const uint16_t* w, const float* x, float* y, size_t n, size_t r0, size_t r1) {
  for (size_t r = r0; r < r1; ++r) {
    float s = 0.0f;
    for (size_t i = 0; i < n; ++i) s += f16_to_f32(w[r * n + i]) * x[i];
    y[r] = s;
  }
}

void matmul_f32_ref(const float* w, const float* x, float* y, size_t M, size_t n, size_t ldy,
                    size_t r0, size_t r1) {
  for (size_t m = 0; m < M; ++m) matvec_f32_ref(w, x + m * n, y + m * ldy, n, r0, r1);
}

void matmul_f16_ref(const uint16_t* w, const float* x, float* y, size_t M, size_t n, size_t ldy,
                    size_t r0, size_t r1) {
  for (size_t m = 0; m < M; ++m) matvec_f16_ref(w, x + m * n, y + m * ldy, n, r0, r1);
}

template <class T>
void matmul_panels_ref(const T* panels, const float* x, float* y, size_t M, size_t n, size_t ldy, size_t p0, size_t p1) {
  for (size_t m = 0; m < M; ++m)
    for (size_t p = p0; p < p1; ++p)
      for (size_t j = 0; j < kPanelRows; ++j) {
        float s = 0.0f;
        for (size_t k = 0; k < n; ++k) s += widen_ref(panels[(p * n + k) * kPanelRows + j]) * x[m * n + k];
        y[m * ldy + p * kPanelRows + j] = s;
      }
}

template <class T>
void matvec_panels_ref(const T* panels, const float* x, float* y, size_t n, size_t p0, size_t p1) {
  matmul_panels_ref(panels, x, y, 1, n, 0, p0, p1);
}

void f32_to_bf16_ref(const float* src, uint16_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

void rmsnorm_ref(float* out, const float* x, const float* w, size_t n, float eps) {
  float ss = 0.0f;
  for (size_t i = 0; i < n; ++i) ss += x[i] * x[i];
  ss /= float(n);
  ss += eps;
  ss = 1.0f / std::sqrt(ss);
  for (size_t i = 0; i < n; ++i) out[i] = w[i] * (ss * x[i]);
}

void softmax_ref(float* x, size_t n) {
  if (n == 0) return;
  float max_val = x[0];
  for (size_t i = 1; i < n; ++i) max_val = x[i] > max_val ? x[i] : max_val;
  float sum = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max_val);
    sum += x[i];
  }
  for (size_t i = 0; i < n; ++i) x[i] /= sum;
}

void swiglu_ref(float* gate, const float* up, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    float v = gate[i];
    v *= 1.0f / (1.0f + std::exp(-v));
    gate[i] = v * up[i];
  }
}

void layernorm_ref(float* out, const float* x, const float* w, const float* b, size_t n, float eps) {
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += x[i];
  const float mean = float(sum / double(n));
  double sum2 = 0.0;
  for (size_t i = 0; i < n; ++i) sum2 += double(x[i] - mean) * double(x[i] - mean);
  const float scale = 1.0f / std::sqrt(float(sum2 / double(n)) + eps);
  for (size_t i = 0; i < n; ++i) out[i] = (x[i] - mean) * scale * w[i] + (b ? b[i] : 0.0f);
}

float gelu1(float x) {
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  return f16_to_f32(gelu_f16_table()[f32_to_f16(x)]);
}

void gelu_ref(float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = gelu1(x[i]);
}

void geglu_ref(float* gate, const float* up, size_t n) {
  for (size_t i = 0; i < n; ++i) gate[i] = gelu1(gate[i]) * up[i];
}

void add_ref(float* y, const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += x[i];
}

size_t panel_at(size_t t, size_t i, size_t hd) { return (t / kAttnTile) * hd * kAttnTile + i * kAttnTile + t % kAttnTile; }

// Row by row over the visible keys, two passes (the block's max, then the
// weights), merged into the row's state as the online softmax defines it.
void attention_f32_ref(const AttentionRows& R, const float* kt, const float* v, size_t hd, size_t t0, size_t t1,
                       float scale, float cap, float* /*scratch*/) {
  const size_t ldv = attention_ldv(hd);
  for (size_t r = 0; r < R.rows; ++r) {
    const size_t lo = std::max(t0, size_t(R.lo[r])), hi = std::min(t1, size_t(R.hi[r]));
    if (lo >= hi) continue;
    auto score = [&](size_t t) {
      float s = 0.0f;
      for (size_t i = 0; i < hd; ++i) s += R.q[r][i] * kt[panel_at(t - t0, i, hd)];
      return softcap(s * scale, cap);
    };
    float m = R.m[r];
    for (size_t t = lo; t < hi; ++t) m = std::fmax(m, score(t));
    const float corr = std::exp(R.m[r] - m);
    float* o = R.o + r * R.ldo;
    float l = R.l[r] * corr;
    for (size_t i = 0; i < hd; ++i) o[i] *= corr;
    for (size_t t = lo; t < hi; ++t) {
      const float p = std::exp(score(t) - m);
      l += p;
      for (size_t i = 0; i < hd; ++i) o[i] += p * v[(t - t0) * ldv + i];
    }
    R.m[r] = m;
    R.l[r] = l;
  }
}

void attention_scores_f16_ref(const AttentionRows& R, const uint16_t* kt, size_t hd, size_t t0, size_t t1, float scale,
                              float cap, float* s, size_t lds, float* /*scratch*/) {
  const size_t end = t0 + (t1 - t0 + kAttnTile - 1) / kAttnTile * kAttnTile;
  for (size_t r = 0; r < R.rows; ++r) {
    const size_t lo = std::max(t0, size_t(R.lo[r])), hi = std::min(t1, size_t(R.hi[r]));
    float* sr = s + r * lds;
    for (size_t t = t0; t < end; ++t) sr[t - t0] = -INFINITY;
    if (lo >= hi) continue;
    float m = R.m[r];
    for (size_t t = lo; t < hi; ++t) {
      float x = 0.0f;
      for (size_t i = 0; i < hd; ++i) x += f16_to_f32(f32_to_f16(R.q[r][i])) * f16_to_f32(kt[panel_at(t - t0, i, hd)]);
      sr[t - t0] = softcap(x * scale, cap);
      m = std::fmax(m, sr[t - t0]);
    }
    R.m[r] = m;
  }
}

void attention_weights_f16_ref(const AttentionRows& R, size_t t0, size_t t1, float* s, size_t lds) {
  for (size_t r = 0; r < R.rows; ++r) {
    const size_t lo = std::max(t0, size_t(R.lo[r])), hi = std::min(t1, size_t(R.hi[r]));
    for (size_t t = lo; t < hi; ++t) {
      float& w = s[r * lds + t - t0];
      w = std::exp(w - R.m[r]);
      R.l[r] += w;
    }
  }
}

void attention_values_f16_ref(const AttentionRows& R, const uint16_t* v, size_t hd, size_t t0, size_t t1,
                              const float* s, size_t lds, float* /*scratch*/) {
  const size_t ldv = attention_ldv(hd);
  for (size_t r = 0; r < R.rows; ++r) {
    const size_t lo = std::max(t0, size_t(R.lo[r])), hi = std::min(t1, size_t(R.hi[r]));
    for (size_t t = lo; t < hi; ++t) {
      const float p = f16_to_f32(f32_to_f16(s[r * lds + t - t0] / R.l[r]));
      for (size_t i = 0; i < hd; ++i) R.o[r * R.ldo + i] += p * f16_to_f32(v[(t - t0) * ldv + i]);
    }
  }
}

void f16_to_f32_ref(const uint16_t* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

void round_f16_ref(const float* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(f32_to_f16(src[i]));
}

void transpose_f32_ref(const float* src, size_t lds, float* dst, size_t ldd, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
}

void transpose_f32_to_f16_ref(const float* src, size_t lds, uint16_t* dst, size_t ldd, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) dst[c * ldd + r] = f32_to_f16(src[r * lds + c]);
}

void f32_to_f16_ref(const float* src, uint16_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

double int8_peak_ref(size_t iters) {
  uint32_t acc[12];  // unsigned: wraps, never overflows
  for (int j = 0; j < 12; ++j) acc[j] = uint32_t(j);
  for (size_t i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) acc[j] = acc[j] * 3u + uint32_t(i & 7);  // one multiply and one add a chain
  volatile uint32_t sink = 0;
  for (int j = 0; j < 12; ++j) sink = sink + acc[j];
  return 24.0 * double(iters);
}

double fma_peak_ref(size_t iters) {
  float acc[12];
  for (int j = 0; j < 12; ++j) acc[j] = float(j);
  for (size_t i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) acc[j] = acc[j] * 0.999999f + 1e-7f;
  volatile float sink = 0.0f;
  for (int j = 0; j < 12; ++j) sink = sink + acc[j];
  return 24.0 * double(iters);
}

}  // namespace

const Kernels& reference_kernels() {
  static const Kernels k = [] {
    Kernels t{};  // every entry by name (tests check that none is left null)
    t.isa = "scalar";
    t.dot = dot_ref;
    t.matvec_f32 = matvec_f32_ref;
    t.matvec_f16 = matvec_f16_ref;
    t.matmul_f32 = matmul_f32_ref;
    t.matmul_f16 = matmul_f16_ref;
    t.matvec_f32_panels = matvec_panels_ref<float>;
    t.matvec_f16_panels = matvec_panels_ref<uint16_t>;
    t.matmul_f32_panels = matmul_panels_ref<float>;
    t.matmul_f16_panels = matmul_panels_ref<uint16_t>;
    t.rmsnorm = rmsnorm_ref;
    t.softmax = softmax_ref;
    t.swiglu = swiglu_ref;
    t.layernorm = layernorm_ref;
    t.gelu = gelu_ref;
    t.geglu = geglu_ref;
    t.add = add_ref;
    t.f16_to_f32 = f16_to_f32_ref;
    t.f32_to_f16 = f32_to_f16_ref;
    t.transpose_f32 = transpose_f32_ref;
    t.transpose_f32_to_f16 = transpose_f32_to_f16_ref;
    t.attention_f32 = attention_f32_ref;
    t.attention_scores_f16 = attention_scores_f16_ref;
    t.attention_weights_f16 = attention_weights_f16_ref;
    t.attention_values_f16 = attention_values_f16_ref;
    t.q8_0 = q8_0_products_ref();
    t.q4_0 = q4_0_products_ref();
    t.q4_K = q4_K_products_ref();
    t.q5_K = q5_K_products_ref();
    t.q6_K = q6_K_products_ref();
    t.quantize_q8_0 = quantize_q8_0_ref;
    t.quantize_q8_K = quantize_q8_K_ref;
    t.q4_1 = q4_1_products_ref();
    t.q5_0 = q5_0_products_ref();
    t.q5_1 = q5_1_products_ref();
    t.iq4_nl = iq4_nl_products_ref();
    t.q2_K = q2_K_products_ref();
    t.q3_K = q3_K_products_ref();
    t.iq4_xs = iq4_xs_products_ref();
    t.quantize_q8_1 = quantize_q8_1_ref;
    t.fma_peak = fma_peak_ref;
    t.int8_peak = int8_peak_ref;
    t.f32_to_bf16 = f32_to_bf16_ref;
    t.round_f16 = round_f16_ref;
    t.bf16 = bf16_products_ref();
    return t;
  }();
  return k;
}

}  // namespace qkv::ops
