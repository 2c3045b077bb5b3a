#include "engine/linear.h"

#include <cstring>

#include "engine/error.h"
#include "ops/quant.h"

namespace qkv {
namespace {
constexpr size_t kRowBlock = 16;  // rows per scheduling unit (a multiple of the tile)
}

void linear(const ExecContext& ctx, const Tensor& w, const float* x, float* y, int M, int layer) {
  const size_t rows = size_t(w.n_rows()), n = size_t(w.row_len());
  const Zone zone(ctx.prof, Op::Matmul, layer, 2.0 * double(M) * double(rows) * double(n),
                  double(w.n_bytes()) + 4.0 * double(M) * double(n + rows), w.name.c_str());
  const size_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  // Enough work per thread to pay for waking it: ~16k multiply-adds.
  const size_t grain = 1 + 16384 / (kRowBlock * n * size_t(M) + 1);
  const ops::Kernels& k = ctx.k;
  if (w.type == DType::BF16) throw Error(cat("tensor ", w.name, ": BF16 must be widened to F32 at load"));
  const void* xq = nullptr;
  if (dtype_is_quantized(w.type)) {
    // Integer products: the activations are quantized to Q8_0 blocks first.
    const size_t blocks = size_t(M) * (n / ops::kQK8_0);
    if (blocks * sizeof(ops::BlockQ8_0) > ctx.qscratch_bytes)
      throw Error(cat("tensor ", w.name, ": quantization scratch too small"), Errc::Internal);
    const Zone zq(ctx.prof, Op::Quantize, layer, 4.0 * double(M) * double(n), 4.0 * double(M) * double(n));
    ops::BlockQ8_0* q = static_cast<ops::BlockQ8_0*>(ctx.qscratch);
    for (int m = 0; m < M; ++m) ops::quantize_row_q8_0_act(x + size_t(m) * n, q + size_t(m) * (n / ops::kQK8_0), n);
    xq = q;
  }
  ctx.pool.parallel_for(
      blocks,
      [&](size_t b, size_t e, int) {
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
          case DType::BF16:  // refused above, before any thread starts
            break;
        }
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
      ops::dequantize_row_q8_0(static_cast<const ops::BlockQ8_0*>(table.data) + size_t(row) * (n / 32), out, n);
      break;
    case DType::Q4_0:
      ops::dequantize_row_q4_0(static_cast<const ops::BlockQ4_0*>(table.data) + size_t(row) * (n / 32), out, n);
      break;
    case DType::F16:
      ctx.k.f16_to_f32(static_cast<const uint16_t*>(table.data) + size_t(row) * n, out, n);
      break;
  }
}

}  // namespace qkv
