#include "engine/linear.h"

#include <algorithm>
#include <cstring>

#include "engine/error.h"
#include "engine/quantize.h"
#include "ops/quant.h"

namespace qkv {
namespace {
constexpr size_t kRowBlock = kKQuantRows;  // rows per scheduling unit (a multiple of the tile)

// K-quant weights have no integer kernels yet: each block of rows is
// dequantized into the thread's scratch and multiplied in f32.
void kquant_rows(const ExecContext& ctx, const Tensor& w, const float* x, float* y, int M, size_t r0, size_t r1, int t) {
  const size_t n = size_t(w.row_len()), rows = size_t(w.n_rows()), rb = dtype_row_bytes(w.type, int64_t(n));
  float* scratch = ctx.kscratch + size_t(t) * ctx.kscratch_per_thread;
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  for (size_t r = r0; r < r1; r += kKQuantRows) {
    const size_t nr = std::min(kKQuantRows, r1 - r);
    for (size_t j = 0; j < nr; ++j) dequantize_row(uint32_t(w.type), base + (r + j) * rb, scratch + j * n, int64_t(n));
    if (M == 1) ctx.k.matvec_f32(scratch, x, y + r, n, 0, nr);
    else ctx.k.matmul_f32(scratch, x, y + r, size_t(M), n, rows, 0, nr);
  }
}
}  // namespace

const void* quantize_input(const ExecContext& ctx, std::initializer_list<const Tensor*> weights, const float* x, int M,
                           int layer) {
  const Tensor* first = nullptr;
  for (const Tensor* w : weights)
    if (dtype_is_quantized(w->type)) {
      if (first && first->row_len() != w->row_len())
        throw Error(cat("tensors ", first->name, " and ", w->name, " do not take the same input"), Errc::Internal);
      first = first ? first : w;
    }
  if (!first) return nullptr;
  const size_t n = size_t(first->row_len());
  if (size_t(M) * (n / ops::kQK8_0) * sizeof(ops::BlockQ8_0) > ctx.qscratch_bytes)
    throw Error(cat("tensor ", first->name, ": quantization scratch too small"), Errc::Internal);
  const Zone zq(ctx.prof, Op::Quantize, layer, 4.0 * double(M) * double(n), 4.0 * double(M) * double(n), nullptr,
                ZoneShape{M, int64_t(n), 0});
  ops::BlockQ8_0* q = static_cast<ops::BlockQ8_0*>(ctx.qscratch);
  ctx.pool.parallel_for(
      size_t(M),
      [&](size_t b, size_t e, int) {
        for (size_t m = b; m < e; ++m) ops::quantize_row_q8_0_act(x + m * n, q + m * (n / ops::kQK8_0), n);
      },
      1 + 8192 / n, ctx.n_threads);
  return q;
}

void linear(const ExecContext& ctx, const Tensor& w, const float* x, float* y, int M, int layer,
            const RowEpilogue* epilogue, const void* xq) {
  const size_t rows = size_t(w.n_rows()), n = size_t(w.row_len());
  if (w.type == DType::BF16) throw Error(cat("tensor ", w.name, ": BF16 must be widened to F32 at load"));
  // Integer products need x quantized to Q8_0 blocks; done here unless the caller did.
  if (!xq && dtype_is_quantized(w.type)) xq = quantize_input(ctx, {&w}, x, M, layer);
  const Zone zone(ctx.prof, Op::Matmul, layer, 2.0 * double(M) * double(rows) * double(n),
                  double(w.n_bytes()) + 4.0 * double(M) * double(n + rows), w.name.c_str(),
                  ZoneShape{M, int64_t(rows), int64_t(n)});
  const size_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  // Enough work per thread to pay for waking it: ~16k multiply-adds.
  const size_t grain = 1 + 16384 / (kRowBlock * n * size_t(M) + 1);
  const ops::Kernels& k = ctx.k;
  if (dtype_is_kquant(w.type) && (!ctx.kscratch || ctx.kscratch_per_thread < kKQuantRows * n))
    throw Error(cat("tensor ", w.name, ": dequantization scratch too small"), Errc::Internal);
  ctx.pool.parallel_for(
      blocks,
      [&](size_t b, size_t e, int t) {
        const size_t r0 = b * kRowBlock, r1 = e * kRowBlock < rows ? e * kRowBlock : rows;
        switch (w.type) {
          case DType::F32: {
            const float* wp = static_cast<const float*>(w.data);
            if (M == 1) k.matvec_f32(wp, x, y, n, r0, r1);
            else k.matmul_f32(wp, x, y, size_t(M), n, rows, r0, r1);
            break;
          }
          case DType::F16: {
            const uint16_t* wp = static_cast<const uint16_t*>(w.data);
            if (M == 1) k.matvec_f16(wp, x, y, n, r0, r1);
            else k.matmul_f16(wp, x, y, size_t(M), n, rows, r0, r1);
            break;
          }
          case DType::Q8_0:
            if (M == 1) k.matvec_q8_0(w.data, xq, y, n, r0, r1);
            else k.matmul_q8_0(w.data, xq, y, size_t(M), n, rows, r0, r1);
            break;
          case DType::Q4_0:
            if (M == 1) k.matvec_q4_0(w.data, xq, y, n, r0, r1);
            else k.matmul_q4_0(w.data, xq, y, size_t(M), n, rows, r0, r1);
            break;
          case DType::Q4_K:
          case DType::Q5_K:
          case DType::Q6_K:
            kquant_rows(ctx, w, x, y, M, r0, r1, t);
            break;
          case DType::BF16:  // refused above, before any thread starts
            break;
        }
        if (epilogue) epilogue->fn(epilogue->ctx, r0, r1);
      },
      grain, ctx.n_threads);
}

void embedding_row(const ExecContext& ctx, const Tensor& table, int row, float* out) {
  const size_t n = size_t(table.row_len());
  switch (table.type) {
    case DType::F32:
      std::memcpy(out, static_cast<const float*>(table.data) + size_t(row) * n, n * sizeof(float));
      break;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) out[i] = ops::bf16_to_f32(static_cast<const uint16_t*>(table.data)[size_t(row) * n + i]);
      break;
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      dequantize_row(uint32_t(table.type), static_cast<const uint8_t*>(table.data) + size_t(row) * dtype_row_bytes(table.type, int64_t(n)),
                     out, int64_t(n));
      break;
    case DType::F16:
      ctx.k.f16_to_f32(static_cast<const uint16_t*>(table.data) + size_t(row) * n, out, n);
      break;
  }
}

}  // namespace qkv
