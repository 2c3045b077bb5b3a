// The scalar reference of the BF16 products (ops.h, Bf16Products): plain
// loops in the order ops.h gives. Its own unit, built without the loop
// vectorizer: GCC 12's miscompiled the sum (each pair's odd product added
// before the even one: a strict-order reduction over loads in reverse
// order) into wrong values.
#include "ops/ops.h"

namespace qkv::ops {
namespace {

// BF16: one output over n values, w_at(k) its weights and x its bf16
// activations, in the order ops.h gives (pairs, odd column first).
template <class WeightAt>
float dot_bf16_ref(const WeightAt& w_at, const uint16_t* x, size_t n) {
  float s = 0.0f;
  size_t k = 0;
  for (; k + 1 < n; k += 2) {
    s += bf16_to_f32(w_at(k + 1)) * bf16_to_f32(x[k + 1]);
    s += bf16_to_f32(w_at(k)) * bf16_to_f32(x[k]);
  }
  if (k < n) s += bf16_to_f32(w_at(k)) * bf16_to_f32(x[k]);
  return s;
}

void matvec_bf16_ref(const uint16_t* w, const uint16_t* x, float* y, size_t n, size_t r0, size_t r1) {
  for (size_t r = r0; r < r1; ++r) y[r] = dot_bf16_ref([&](size_t k) { return w[r * n + k]; }, x, n);
}

void matmul_bf16_ref(const uint16_t* w, const uint16_t* x, float* y, size_t M, size_t n, size_t ldy, size_t r0,
                     size_t r1) {
  for (size_t m = 0; m < M; ++m) matvec_bf16_ref(w, x + m * n, y + m * ldy, n, r0, r1);
}

void matmul_bf16_panels_ref(const uint16_t* panels, const uint16_t* x, float* y, size_t M, size_t n, size_t ldy,
                            size_t p0, size_t p1) {
  for (size_t m = 0; m < M; ++m)
    for (size_t p = p0; p < p1; ++p)
      for (size_t j = 0; j < kPanelRows; ++j) {
        const uint16_t* pw = panels + p * n * kPanelRows;  // the layout of pack_panels_bf16
        const auto w_at = [&](size_t k) {
          return k + 1 == n && n % 2 ? pw[k * kPanelRows + j] : pw[k / 2 * 2 * kPanelRows + 2 * j + k % 2];
        };
        y[m * ldy + p * kPanelRows + j] = dot_bf16_ref(w_at, x + m * n, n);
      }
}

void matvec_bf16_panels_ref(const uint16_t* panels, const uint16_t* x, float* y, size_t n, size_t p0, size_t p1) {
  matmul_bf16_panels_ref(panels, x, y, 1, n, 0, p0, p1);
}

void matmul_bf16_batch_ref(const uint16_t* panels, Bf16Batch x, float* y, size_t M, size_t n, size_t ldy, size_t p0,
                           size_t p1) {
  matmul_bf16_panels_ref(panels, x.bits, y, M, n, ldy, p0, p1);
}

double bf16_peak_ref(size_t iters) {
  float acc[12];
  for (int j = 0; j < 12; ++j) acc[j] = float(j);
  for (size_t i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) acc[j] = (acc[j] + 0.5f * 0.999f) + 0.25f * 1e-3f;  // a pair of products a step
  volatile float sink = 0.0f;
  for (int j = 0; j < 12; ++j) sink = sink + acc[j];
  return 48.0 * double(iters);
}

}  // namespace

Bf16Products bf16_products_ref() {
  return Bf16Products{matvec_bf16_ref, matmul_bf16_ref, matvec_bf16_panels_ref, matmul_bf16_batch_ref, bf16_peak_ref,
                      "scalar"};
}

}  // namespace qkv::ops
