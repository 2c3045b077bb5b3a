// The scalar reference's accumulator for the quantized products
// (quant_dot.h): one float; each block's integer sum is exact, so only the
// scaling and the sum over blocks round.
#pragma once

#include <cstddef>

#include "ops/ops.h"

namespace qkv::ops::quant_ref {

struct QAcc {
  float s;
};
inline QAcc qacc_zero() { return QAcc{0.0f}; }
inline float qacc_sum(const QAcc& a) { return a.s; }

// QuantProducts::matvec_x8 as Matmul (a matmul_x8) of one activation row.
template <void (*Matmul)(const void*, const void*, const Q8Sum*, float*, size_t, size_t, size_t, size_t, size_t)>
void x8_matvec(const void* packed, const void* xq, const Q8Sum* xs, float* y, size_t n, size_t g0, size_t g1) {
  Matmul(packed, xq, xs, y, 1, n, 0, g0, g1);
}

// The row-interleaved products, plainly: y[m, 8 g + r] = sum over the nb
// block columns b of term(block b of group g, r, activation block b of row
// m, its Q8Sum or null), in order.
template <class Packed, class Act, class Term>
void x8_products(const void* packed, const void* xq, const Q8Sum* xs, float* y, size_t M, size_t nb, size_t ldy,
                 size_t g0, size_t g1, Term term) {
  const Packed* w = static_cast<const Packed*>(packed);
  const Act* x = static_cast<const Act*>(xq);
  for (size_t g = g0; g < g1; ++g)
    for (size_t m = 0; m < M; ++m)
      for (int r = 0; r < 8; ++r) {
        float acc = 0.0f;
        for (size_t b = 0; b < nb; ++b) acc += term(w[g * nb + b], r, x[m * nb + b], xs ? &xs[m * nb + b] : nullptr);
        y[m * ldy + 8 * g + size_t(r)] = acc;
      }
}

}  // namespace qkv::ops::quant_ref
