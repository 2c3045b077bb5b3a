// Threaded matrix products over weight tensors of any supported type:
//   y[m, r] = W[r, :] . x[m, :]   W: (rows, n), x: (M, n), y: (M, rows)
// Rows are split among threads in fixed blocks; every output value is
// computed by one thread in one order, so results do not depend on the
// thread count.
#pragma once

#include <initializer_list>

#include "engine/architecture.h"
#include "engine/tensor.h"

namespace qkv {

// Work a thread does on the output rows [r0, r1) it has just computed, while
// they are still in its cache (a fused elementwise op).
struct RowEpilogue {
  void (*fn)(const void* ctx, size_t r0, size_t r1);
  const void* ctx;
};

// x (M rows of n) quantized to Q8_0 blocks in ctx.qscratch, for the integer
// products of Q8_0/Q4_0 weights; null when none of `weights` needs it. Pass
// the result to every linear() over the same x, so x is quantized once.
const void* quantize_input(const ExecContext& ctx, std::initializer_list<const Tensor*> weights, const float* x, int M,
                           int layer);

// Recorded as a "matmul" zone of `layer` (-1: none) named after the weight.
// xq: x as quantize_input() left it; when null and w needs it, linear()
// quantizes x itself.
void linear(const ExecContext& ctx, const Tensor& w, const float* x, float* y, int M, int layer,
            const RowEpilogue* epilogue = nullptr, const void* xq = nullptr);

// Row `row` of an embedding table (rows, n), converted to f32: out (n).
void embedding_row(const ExecContext& ctx, const Tensor& table, int row, float* out);

}  // namespace qkv
