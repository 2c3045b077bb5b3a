// Threaded matrix products over weight tensors of any supported type:
//   y[m, r] = W[r, :] . x[m, :]   W: (rows, n), x: (M, n), y: (M, rows)
// Rows are split among threads in fixed blocks; every output value is
// computed by one thread in one order, so results do not depend on the
// thread count.
#pragma once

#include "engine/architecture.h"
#include "engine/tensor.h"

namespace qkv {

// Recorded as a "matmul" zone of `layer` (-1: none) named after the weight.
void linear(const ExecContext& ctx, const Tensor& w, const float* x, float* y, int M, int layer);

// Row `row` of an embedding table (rows, n), converted to f32: out (n).
void embedding_row(const ExecContext& ctx, const Tensor& table, int row, float* out);

}  // namespace qkv
