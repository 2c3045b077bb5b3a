#include "engine/runtime/linear.h"

#include <algorithm>
#include <cstring>

#include "engine/error.h"
#include "ops/quant.h"

namespace qkv {
namespace {
constexpr size_t kRowBlock = 16;  // rows per scheduling unit (a multiple of every kernel's tile)

// The integer products of a weight type in this kernel table; null for float types.
const ops::QuantProducts* quant_products(const ops::Kernels& k, const Tensor& w) {
  const TypeInfo& info = w.info();
  return info.compute == ops::Compute::Integer ? &(k.*info.products) : nullptr;
}

// Rows [0, M) of x (M, n), each quantized by quantize_row(row m), rows split among threads.
template <class Fn>
void quantize_rows_into(const ExecContext& ctx, int M, size_t n, const Fn& quantize_row) {
  ctx.pool.parallel_for(
      size_t(M),
      [&](size_t b, size_t e, int) {
        for (size_t m = b; m < e; ++m) quantize_row(m);
      },
      1 + 8192 / n, ctx.n_threads);
}
}  // namespace

QuantizedInput quantize_input(const ExecContext& ctx, std::initializer_list<const Tensor*> weights, const float* x,
                              int M, int layer) {
  const Tensor* first = nullptr;
  bool want_q8_0 = false, want_q8_K = false;
  for (const Tensor* w : weights) {
    const ops::Activation act = w->info().activation;
    if (act == ops::Activation::None) continue;
    if (first && first->row_len() != w->row_len())
      throw Error(cat("tensors ", first->name, " and ", w->name, " do not take the same input"), Errc::Internal);
    first = first ? first : w;
    (act == ops::Activation::Q8_K ? want_q8_K : want_q8_0) = true;
  }
  QuantizedInput out;
  if (!first) return out;
  const size_t n = size_t(first->row_len());
  const Zone zq(ctx.prof, Op::Quantize, layer, 4.0 * double(M) * double(n), 4.0 * double(M) * double(n), nullptr,
                ZoneShape{M, int64_t(n), 0});
  if (want_q8_0) {
    // The blocks, then (8-byte aligned) their scales and sums.
    const size_t nb = size_t(M) * (n / ops::kQK8_0), sums_at = (nb * sizeof(ops::BlockQ8_0) + 7) / 8 * 8;
    if (sums_at + nb * sizeof(ops::Q8Sum) > ctx.qscratch_bytes)
      throw Error(cat("tensor ", first->name, ": quantization scratch too small"), Errc::Internal);
    auto* q = static_cast<ops::BlockQ8_0*>(ctx.qscratch);
    auto* sums = reinterpret_cast<ops::Q8Sum*>(static_cast<uint8_t*>(ctx.qscratch) + sums_at);
    const size_t per_row = n / ops::kQK8_0;
    quantize_rows_into(ctx, M, n, [&](size_t m) { ctx.k.quantize_q8_0(x + m * n, q + m * per_row, sums + m * per_row, n); });
    out.q8_0 = q;
    out.q8_0_sums = sums;
  }
  if (want_q8_K) {
    if (size_t(M) * (n / ops::kQK_K) * sizeof(ops::BlockQ8_K) > ctx.kscratch_bytes)
      throw Error(cat("tensor ", first->name, ": quantization scratch too small"), Errc::Internal);
    auto* q = static_cast<ops::BlockQ8_K*>(ctx.kscratch);
    const size_t per_row = n / ops::kQK_K;
    quantize_rows_into(ctx, M, n, [&](size_t m) { ctx.k.quantize_q8_K(x + m * n, q + m * per_row, n); });
    out.q8_K = q;
  }
  return out;
}

void linear(const ExecContext& ctx, const Tensor& w, const float* x, float* y, int M, int layer,
            const RowEpilogue* epilogue, const QuantizedInput* xq) {
  const size_t rows = size_t(w.n_rows()), n = size_t(w.row_len());
  const ops::Compute compute = w.info().compute;
  if (compute != ops::Compute::F32 && compute != ops::Compute::F16 && compute != ops::Compute::Integer)
    throw Error(cat("tensor ", w.name, ": ", w.info().name, " must be converted at load"), Errc::Internal);
  const ops::Kernels& k = ctx.k;
  // Integer products need x quantized to the blocks w takes; done here unless the caller did.
  const ops::QuantProducts* qp = quant_products(k, w);
  const void* xw = nullptr;
  QuantizedInput own;
  if (qp) {
    const bool kq = w.info().activation == ops::Activation::Q8_K;
    if (!xq || !(kq ? xq->q8_K : xq->q8_0)) {
      own = quantize_input(ctx, {&w}, x, M, layer);
      xq = &own;
    }
    xw = kq ? xq->q8_K : xq->q8_0;
  }
  const Zone zone(ctx.prof, Op::Matmul, layer, 2.0 * double(M) * double(rows) * double(n),
                  double(w.n_bytes()) + 4.0 * double(M) * double(n + rows), w.name.c_str(),
                  ZoneShape{M, int64_t(rows), int64_t(n)});
  const size_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  // Enough work per thread to pay for waking it: ~16k multiply-adds.
  const size_t grain = 1 + 16384 / (kRowBlock * n * size_t(M) + 1);
  ctx.pool.parallel_for(
      blocks,
      [&](size_t b, size_t e, int) {
        const size_t r0 = b * kRowBlock, r1 = e * kRowBlock < rows ? e * kRowBlock : rows;
        if (qp) {
          // Rows [r0, r1): whole groups of 8 from the row-interleaved copy, the rest as stored.
          size_t r = r0;
          if (w.packed && qp->matvec_x8 && r0 % 8 == 0 && r0 < size_t(w.packed_rows)) {
            const size_t g1 = std::min(r1, size_t(w.packed_rows)) / 8;
            if (M == 1) qp->matvec_x8(w.packed, xw, xq->q8_0_sums, y, n, r0 / 8, g1);
            else qp->matmul_x8(w.packed, xw, xq->q8_0_sums, y, size_t(M), n, rows, r0 / 8, g1);
            r = 8 * g1;
          }
          if (r < r1) {
            if (M == 1) qp->matvec(w.data, xw, y, n, r, r1);
            else qp->matmul(w.data, xw, y, size_t(M), n, rows, r, r1);
          }
        } else if (compute == ops::Compute::F32) {
          const float* wp = static_cast<const float*>(w.data);
          if (M == 1) k.matvec_f32(wp, x, y, n, r0, r1);
          else k.matmul_f32(wp, x, y, size_t(M), n, rows, r0, r1);
        } else {  // F16
          const uint16_t* wp = static_cast<const uint16_t*>(w.data);
          if (M == 1) k.matvec_f16(wp, x, y, n, r0, r1);
          else k.matmul_f16(wp, x, y, size_t(M), n, rows, r0, r1);
        }
        if (epilogue) epilogue->fn(epilogue->ctx, r0, r1);
      },
      grain, ctx.n_threads);
}

}  // namespace qkv
