// Threaded matrix products over weight tensors of any supported type:
//   y[m, r] = W[r, :] . x[m, :]   W: (rows, n), x: (M, n), y: (M, rows)
// Rows are split among threads in fixed blocks; every output value is
// computed by one thread in one order, so results do not depend on the
// thread count.
#pragma once

#include <initializer_list>

#include "engine/runtime/architecture.h"
#include "engine/format/tensor.h"

namespace qkv {

// x (M rows of n) in the forms the products over it take: quantized to Q8_0
// blocks (in ctx.qscratch) when a Q8_0/Q4_0 weight takes it, to Q8_K blocks
// (in ctx.kscratch) when a K-quant one does, rounded to bf16 (in
// ctx.bscratch) for a BF16 one, to f16 (as floats, in ctx.fscratch) for an
// F16 one; null where none does.
struct QuantizedInput {
  const void* q8_0 = nullptr;
  const ops::Q8Sum* q8_0_sums = nullptr;  // per Q8_0 block, for the row-interleaved products
  const void* q8_1 = nullptr;             // Q8_1 blocks, for Q4_1 / Q5_1 weights (in ctx.q1scratch)
  const ops::Q8Sum* q8_1_sums = nullptr;  // per Q8_1 block (d and s in f32), for the row-interleaved products
  const void* q8_K = nullptr;
  const uint16_t* bf16 = nullptr;
  const float* bf16_values = nullptr;  // the same widened to floats (a batch's: M > 1), in ctx.bscratch after them
  const float* f16 = nullptr;
  const void* blocks_for(ops::Activation a) const {
    switch (a) {
      case ops::Activation::Q8_K: return q8_K;
      case ops::Activation::Q8_1: return q8_1;
      case ops::Activation::Q8_0: return q8_0;
      case ops::Activation::BF16: return bf16;
      case ops::Activation::F16: return f16;
      case ops::Activation::None: break;
    }
    return nullptr;
  }
};

// Quantizes x once for every linear() over it with one of `weights`.
QuantizedInput quantize_input(const ExecContext& ctx, const Tensor* const* weights, size_t n_weights, const float* x,
                              int M, int layer);
inline QuantizedInput quantize_input(const ExecContext& ctx, std::initializer_list<const Tensor*> weights, const float* x,
                                     int M, int layer) {
  return quantize_input(ctx, weights.begin(), weights.size(), x, M, layer);
}

// Recorded as a "matmul" zone of `layer` (-1: none) named after the weight.
// xq: x as quantize_input() left it; when null (or lacking the form w
// takes), linear() quantizes x itself.
void linear(const ExecContext& ctx, const Tensor& w, const float* x, float* y, int M, int layer,
            const QuantizedInput* xq = nullptr);

// One product of a group: y (M, rows of w) = x W^T.
struct LinearOut {
  const Tensor* w;
  float* y;
};

// Several products of the same x (Q, K and V) as one threaded job: x
// quantized once, the row blocks of all the weights split together, one
// barrier instead of one per weight. Recorded as one "matmul" zone named
// `name` (storage that outlives the profile: the model's).
void linear_group(const ExecContext& ctx, std::initializer_list<LinearOut> outs, const float* x, int M, int layer,
                  const char* name);

// A gated feed-forward's first half as one job: for each block of rows,
// gate = x W_gate^T and up = x W_up^T, then gate = glu(gate, up) on those
// rows while they are in the thread's cache. x: (M, n); gate, up: (M, hidden).
// Recorded as one "matmul" zone named after w_gate.
void linear_gated(const ExecContext& ctx, const Tensor& w_gate, const Tensor& w_up, const float* x, float* gate, float* up,
                  int M, int layer, void (*glu)(float* gate, const float* up, size_t n));

}  // namespace qkv
