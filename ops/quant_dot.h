// Quantized matrix products, written once over an ISA's block primitive.
//
// Include from an isa_*.cpp (or the scalar reference) after defining, in
// namespace QKV_ISA_NS:
//   struct QAcc;                                   a float accumulator
//   QAcc qacc_zero();
//   void qacc_add(QAcc&, const Block& w, const Block::Act& x);  += w . x, both dequantized
//   float qacc_sum(const QAcc&);
// for each weight block type it supports (ops/quant.h).
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include "ops/ops.h"
#include "ops/quant.h"

namespace qkv::ops::QKV_ISA_NS {

// a[t] += w . x[t] for four activation rows; an ISA overloads it for the
// block types whose unpacking is worth sharing.
template <class Block, class Act>
inline void qacc_add4(QAcc (&a)[4], const Block& w, const Act* const (&x)[4]) {
  for (int t = 0; t < 4; ++t) qacc_add(a[t], w, *x[t]);
}

// An ISA may also give qacc_add8 (a[t] += w . x[t] for eight rows) for the
// block types whose unpacking costs as much as the products: the batch
// product then shares each block among eight activation rows.
template <class Block, class Act, class = void>
struct HasAdd8 : std::false_type {};
template <class Block, class Act>
struct HasAdd8<Block, Act,
               std::void_t<decltype(qacc_add8(std::declval<QAcc (&)[8]>(), std::declval<const Block&>(),
                                              std::declval<const Act* const (&)[8]>()))>> : std::true_type {};

// y[r] = W[r, :] . x for one quantized activation row.
// w: (rows, n / Block::kValues) blocks, xq: (n / Block::kValues) activation blocks.
template <class Block>
inline void qmatvec(const void* w, const void* xq, float* y, size_t n, size_t r0, size_t r1) {
  using Act = typename Block::Act;
  const size_t nb = n / Block::kValues;
  const Block* wb = static_cast<const Block*>(w);
  const Act* xb = static_cast<const Act*>(xq);
  for (size_t r = r0; r < r1; ++r) {
    QAcc acc = qacc_zero();
    const Block* row = wb + r * nb;
    for (size_t b = 0; b < nb; ++b) qacc_add(acc, row[b], xb[b]);
    y[r] = qacc_sum(acc);
  }
}

// y[t * ldy] = row . x[t] for N activation rows starting at x0 (row
// stride nb blocks), each of row's blocks shared by all N (add: the N-row
// primitive).
template <size_t N, class Block, class Act, class Add>
inline void qrow_times(const Block* row, const Act* x0, size_t nb, float* y, size_t ldy, Add add) {
  QAcc a[N];
  for (QAcc& e : a) e = qacc_zero();
  for (size_t b = 0; b < nb; ++b) {
    const Act* xs[N];
    for (size_t t = 0; t < N; ++t) xs[t] = x0 + t * nb + b;
    add(a, row[b], xs);
  }
  for (size_t t = 0; t < N; ++t) y[t * ldy] = qacc_sum(a[t]);
}

// Y[m, r] = W[r, :] . X[m, :]: each weight row is read once per group of
// eight (where the ISA gives qacc_add8) or four activation rows, which share
// its blocks while they are in L1.
// xq: (M, n / Block::kValues) activation blocks; y: (M, ldy).
template <class Block>
inline void qmatmul(const void* w, const void* xq, float* y, size_t M, size_t n, size_t ldy, size_t r0, size_t r1) {
  using Act = typename Block::Act;
  const size_t nb = n / Block::kValues;
  const Block* wb = static_cast<const Block*>(w);
  const Act* xb = static_cast<const Act*>(xq);
  for (size_t r = r0; r < r1; ++r) {
    const Block* row = wb + r * nb;
    size_t m = 0;
    if constexpr (HasAdd8<Block, Act>::value)
      for (; m + 8 <= M; m += 8)
        qrow_times<8>(row, xb + m * nb, nb, y + m * ldy + r, ldy,
                      [](QAcc (&a)[8], const Block& wk, const Act* const (&x)[8]) { qacc_add8(a, wk, x); });
    for (; m + 4 <= M; m += 4)
      qrow_times<4>(row, xb + m * nb, nb, y + m * ldy + r, ldy,
                    [](QAcc (&a)[4], const Block& wk, const Act* const (&x)[4]) { qacc_add4(a, wk, x); });
    for (; m < M; ++m) {
      QAcc a = qacc_zero();
      for (size_t b = 0; b < nb; ++b) qacc_add(a, row[b], xb[m * nb + b]);
      y[m * ldy + r] = qacc_sum(a);
    }
  }
}

}  // namespace qkv::ops::QKV_ISA_NS
