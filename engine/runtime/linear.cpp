#include "engine/runtime/linear.h"

#include <algorithm>
#include <cstring>

#include "engine/error.h"
#include "ops/quant.h"

namespace qkv {
namespace {
constexpr size_t kRowBlock = 16;  // rows per scheduling unit (a multiple of every packed group: 8 rows, kPanelRows)
static_assert(kRowBlock % ops::kPanelRows == 0 && kRowBlock % 8 == 0, "row blocks start on group boundaries");

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

QuantizedInput quantize_input(const ExecContext& ctx, const Tensor* const* weights, size_t n_weights, const float* x,
                              int M, int layer) {
  const Tensor* first = nullptr;
  bool want_q8_0 = false, want_q8_1 = false, want_q8_K = false, want_bf16 = false, want_f16 = false;
  for (size_t i = 0; i < n_weights; ++i) {
    const Tensor* w = weights[i];
    const ops::Activation act = w->info().activation;
    if (act == ops::Activation::None) continue;
    if (first && first->row_len() != w->row_len())
      throw Error(cat("tensors ", first->name, " and ", w->name, " do not take the same input"), Errc::Internal);
    first = first ? first : w;
    (act == ops::Activation::Q8_K   ? want_q8_K
     : act == ops::Activation::Q8_1 ? want_q8_1
     : act == ops::Activation::BF16 ? want_bf16
     : act == ops::Activation::F16  ? want_f16
                                    : want_q8_0) = true;
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
  if (want_q8_1) {
    // The blocks, then (8-byte aligned) their scales in f32.
    const size_t nb = size_t(M) * (n / 32), sums_at = (nb * sizeof(ops::BlockQ8_1) + 7) / 8 * 8;
    if (sums_at + nb * sizeof(ops::Q8Sum) > ctx.q1scratch_bytes)
      throw Error(cat("tensor ", first->name, ": quantization scratch too small"), Errc::Internal);
    auto* q = static_cast<ops::BlockQ8_1*>(ctx.q1scratch);
    auto* sums = reinterpret_cast<ops::Q8Sum*>(static_cast<uint8_t*>(ctx.q1scratch) + sums_at);
    const size_t per_row = n / 32;
    quantize_rows_into(ctx, M, n, [&](size_t m) {
      ctx.k.quantize_q8_1(x + m * n, q + m * per_row, n);
      ops::q8_1_sums(q + m * per_row, sums + m * per_row, per_row);
    });
    out.q8_1 = q;
    out.q8_1_sums = sums;
  }
  if (want_q8_K) {
    if (size_t(M) * (n / ops::kQK_K) * sizeof(ops::BlockQ8_K) > ctx.kscratch_bytes)
      throw Error(cat("tensor ", first->name, ": quantization scratch too small"), Errc::Internal);
    auto* q = static_cast<ops::BlockQ8_K*>(ctx.kscratch);
    const size_t per_row = n / ops::kQK_K;
    quantize_rows_into(ctx, M, n, [&](size_t m) { ctx.k.quantize_q8_K(x + m * n, q + m * per_row, n); });
    out.q8_K = q;
  }
  if (want_bf16) {
    // The bf16 values, then (a batch's, at the next multiple of 64 bytes) the same as floats.
    const size_t values_at = (size_t(M) * n * sizeof(uint16_t) + 63) / 64 * 64;
    if (values_at + (M > 1 ? size_t(M) * n * sizeof(float) : 0) > ctx.bscratch_bytes)
      throw Error(cat("tensor ", first->name, ": bf16 activation scratch too small"), Errc::Internal);
    uint16_t* b = ctx.bscratch;
    float* f = M > 1 ? reinterpret_cast<float*>(reinterpret_cast<char*>(b) + values_at) : nullptr;
    quantize_rows_into(ctx, M, n, [&](size_t m) {
      ctx.k.f32_to_bf16(x + m * n, b + m * n, n);
      if (f) ops::widen_bf16(b + m * n, f + m * n, n);
    });
    out.bf16 = b;
    out.bf16_values = f;
  }
  if (want_f16) {
    if (size_t(M) * n * sizeof(float) > ctx.fscratch_bytes)
      throw Error(cat("tensor ", first->name, ": f16 activation scratch too small"), Errc::Internal);
    float* f = ctx.fscratch;
    quantize_rows_into(ctx, M, n, [&](size_t m) { ctx.k.round_f16(x + m * n, f + m * n, n); });
    out.f16 = f;
  }
  return out;
}

namespace {

// One weight's product, ready to run over any range of its rows.
struct Product {
  const Tensor* w = nullptr;
  float* y = nullptr;
  ops::Compute compute = ops::Compute::F32;
  const ops::QuantProducts* qp = nullptr;  // integer products, or null for float weights
  const void* xw = nullptr;                // x quantized to the blocks w takes (or rounded to its F16/BF16 type)
  const float* xv = nullptr;               // BF16, a batch: xw widened to floats
  const ops::Q8Sum* sums = nullptr;
  size_t rows = 0, n = 0, blocks = 0;      // blocks: of kRowBlock rows
  double flops(int M) const { return 2.0 * double(M) * double(rows) * double(n); }
  double bytes(int M) const { return double(w->n_bytes()) + 4.0 * double(M) * double(n + rows); }
};

Product prepare(const ops::Kernels& k, const Tensor& w, float* y, const QuantizedInput* xq) {
  Product p;
  p.w = &w;
  p.y = y;
  p.rows = size_t(w.n_rows());
  p.n = size_t(w.row_len());
  p.blocks = (p.rows + kRowBlock - 1) / kRowBlock;
  p.compute = w.info().compute;
  if (p.compute == ops::Compute::None)
    throw Error(cat("tensor ", w.name, ": qkv cannot compute with ", w.info().name), Errc::Internal);
  p.qp = quant_products(k, w);
  if (w.info().activation != ops::Activation::None) {
    p.xw = xq ? xq->blocks_for(w.info().activation) : nullptr;
    p.sums = !xq ? nullptr : w.info().activation == ops::Activation::Q8_1 ? xq->q8_1_sums : xq->q8_0_sums;
    p.xv = xq && w.info().activation == ops::Activation::BF16 ? xq->bf16_values : nullptr;
    if (!p.xw) throw Error(cat("tensor ", w.name, ": its input was not quantized"), Errc::Internal);
  }
  return p;
}

// Float weights: whole panels from the packed copy, the rest (fewer than
// kPanelRows last rows, or a tensor without a copy) as stored.
template <class T, class X, class PanelVec, class PanelMat, class Vec, class Mat>
void run_float_rows(const T* w, const T* panels, size_t packed_rows, PanelVec matvec_panels, PanelMat matmul_panels,
                    Vec matvec, Mat matmul, const X* x, float* y, int M, size_t n, size_t rows, size_t r0,
                    size_t r1) {
  size_t r = r0;
  if (panels && r0 % ops::kPanelRows == 0 && r0 < packed_rows) {
    const size_t p1 = std::min(r1, packed_rows) / ops::kPanelRows;
    if (M == 1) matvec_panels(panels, x, y, n, r0 / ops::kPanelRows, p1);
    else matmul_panels(panels, x, y, size_t(M), n, rows, r0 / ops::kPanelRows, p1);
    r = p1 * ops::kPanelRows;
  }
  if (r < r1) {
    if (M == 1) matvec(w, x, y, n, r, r1);
    else matmul(w, x, y, size_t(M), n, rows, r, r1);
  }
}

// y[m, r] for the rows [r0, r1) of p.
void run_rows(const ops::Kernels& k, const Product& p, const float* x, int M, size_t r0, size_t r1) {
  const Tensor& w = *p.w;
  const size_t n = p.n, rows = p.rows;
  float* y = p.y;
  if (p.qp) {
    // Whole groups of 8 from the row-interleaved copy, the rest as stored.
    size_t r = r0;
    if (w.packed && p.qp->matvec_x8 && r0 % 8 == 0 && r0 < size_t(w.packed_rows)) {
      const size_t g1 = std::min(r1, size_t(w.packed_rows)) / 8;
      if (M == 1) p.qp->matvec_x8(w.packed, p.xw, p.sums, y, n, r0 / 8, g1);
      else p.qp->matmul_x8(w.packed, p.xw, p.sums, y, size_t(M), n, rows, r0 / 8, g1);
      r = 8 * g1;
    }
    if (r < r1) {
      if (M == 1) p.qp->matvec(w.data, p.xw, y, n, r, r1);
      else p.qp->matmul(w.data, p.xw, y, size_t(M), n, rows, r, r1);
    }
  } else if (p.compute == ops::Compute::F32) {
    run_float_rows(static_cast<const float*>(w.data), static_cast<const float*>(w.packed), size_t(w.packed_rows),
                   k.matvec_f32_panels, k.matmul_f32_panels, k.matvec_f32, k.matmul_f32, x, y, M, n, rows, r0, r1);
  } else if (p.compute == ops::Compute::F16) {  // on x rounded to f16
    run_float_rows(static_cast<const uint16_t*>(w.data), static_cast<const uint16_t*>(w.packed), size_t(w.packed_rows),
                   k.matvec_f16_panels, k.matmul_f16_panels, k.matvec_f16, k.matmul_f16,
                   static_cast<const float*>(p.xw), y, M, n, rows, r0, r1);
  } else {  // BF16, on x rounded to bf16 (a batch's also as floats)
    const auto matmul_panels = [&](const uint16_t* panels, const uint16_t* x, float* yb, size_t Mb, size_t nb,
                                   size_t ldy, size_t p0, size_t p1) {
      k.bf16.matmul_panels(panels, ops::Bf16Batch{x, p.xv}, yb, Mb, nb, ldy, p0, p1);
    };
    run_float_rows(static_cast<const uint16_t*>(w.data), static_cast<const uint16_t*>(w.packed), size_t(w.packed_rows),
                   k.bf16.matvec_panels, matmul_panels, k.bf16.matvec, k.bf16.matmul,
                   static_cast<const uint16_t*>(p.xw), y, M, n, rows, r0, r1);
  }
}

// Enough work per thread to pay for waking it: ~16k multiply-adds.
size_t grain_of(size_t n, int M) { return 1 + 16384 / (kRowBlock * n * size_t(M) + 1); }

// Chunks per thread: a batch's products in 8 (two cores rarely run at the
// same speed on a shared host, and a thread that finishes its own share
// takes the other's chunks, so finer chunks end the op together: pp128 on
// 2 threads, Zen 5 VM with one core 25% slower: 110M F32 1,395 -> 1,671,
// Q4_K_M 3,120 -> 4,181 (4 and 16 chunks: less); one token's in the pool's 2
// (8 cost 42M Q4_0 decoding 10%: each thread's rows stay in its cache).
size_t chunks_per_thread(int M) { return M > 1 ? 8 : ThreadPool::kChunksPerThread; }

// A batch's row blocks go to the threads in pairs: the AVX-512 float tile
// spans two panels (32 rows) and the integer ones several 8-row groups, so a
// chunk of an odd number of blocks leaves its last to a narrower, slower tile
// (on 2 threads a 768-row matrix is 16 chunks of 3 blocks: a third of its
// panels ran one at a time). fn(b, e) for the blocks [b, e) of each chunk.
template <class F>
void each_block_chunk(const ExecContext& ctx, size_t blocks, size_t grain, int M, F&& fn) {
  const size_t per = M > 1 ? 2 : 1;
  ctx.pool.parallel_for(
      (blocks + per - 1) / per, [&](size_t b, size_t e, int) { fn(b * per, std::min(e * per, blocks)); },
      (grain + per - 1) / per, ctx.n_threads, chunks_per_thread(M));
}

// Hands x, the input of a product with w, to the session's matmul input
// callback where it has one.
void observe(const ExecContext& ctx, const Tensor& w, const float* x, int M, int layer) {
  if (ctx.matmul_input) (*ctx.matmul_input)(MatmulInput{w.name.c_str(), layer, x, M, int(w.ne[0])});
}

}  // namespace

void linear(const ExecContext& ctx, const Tensor& w, const float* x, float* y, int M, int layer,
            const QuantizedInput* xq) {
  observe(ctx, w, x, M, layer);
  // Integer, F16 and BF16 products need x quantized to the blocks (or
  // rounded to the type) w takes; done here unless the caller did.
  QuantizedInput own;
  if (w.info().activation != ops::Activation::None) {
    if (!xq || !xq->blocks_for(w.info().activation)) {
      own = quantize_input(ctx, {&w}, x, M, layer);
      xq = &own;
    }
  }
  const Product p = prepare(ctx.k, w, y, xq);
  const Zone zone(ctx.prof, Op::Matmul, layer, p.flops(M), p.bytes(M), w.name.c_str(), ZoneShape{M, int64_t(p.rows), int64_t(p.n)});
  each_block_chunk(ctx, p.blocks, grain_of(p.n, M), M, [&](size_t b, size_t e) {
    run_rows(ctx.k, p, x, M, b * kRowBlock, std::min(e * kRowBlock, p.rows));
  });
}

void linear_group(const ExecContext& ctx, std::initializer_list<LinearOut> outs, const float* x, int M, int layer,
                  const char* name) {
  constexpr size_t kMax = 4;
  if (outs.size() == 0 || outs.size() > kMax) throw Error(cat("linear_group: ", outs.size(), " products"), Errc::Internal);
  const Tensor* ws[kMax] = {};
  size_t i = 0;
  for (const LinearOut& o : outs) {
    ws[i++] = o.w;
    observe(ctx, *o.w, x, M, layer);
  }
  const QuantizedInput xq = quantize_input(ctx, ws, outs.size(), x, M, layer);  // once for all
  Product ps[kMax];
  size_t first_block[kMax + 1] = {0};
  double flops = 0, bytes = 0;
  i = 0;
  for (const LinearOut& o : outs) {
    ps[i] = prepare(ctx.k, *o.w, o.y, &xq);
    if (ps[i].n != ps[0].n) throw Error(cat("tensors ", ws[0]->name, " and ", o.w->name, " do not take the same input"), Errc::Internal);
    flops += ps[i].flops(M);
    bytes += ps[i].bytes(M);
    first_block[i + 1] = first_block[i] + ps[i].blocks;
    ++i;
  }
  const size_t count = i, total = first_block[count];
  size_t rows = 0;
  for (size_t j = 0; j < count; ++j) rows += ps[j].rows;
  const Zone zone(ctx.prof, Op::Matmul, layer, flops, bytes, name, ZoneShape{M, int64_t(rows), int64_t(ps[0].n)});
  // The row blocks of all products in a row, split as one job: a chunk that
  // straddles two products runs its part of each.
  each_block_chunk(ctx, total, grain_of(ps[0].n, M), M, [&](size_t b, size_t e) {
    for (size_t j = 0; j < count; ++j) {
      const size_t lo = std::max(b, first_block[j]), hi = std::min(e, first_block[j + 1]);
      if (lo < hi)
        run_rows(ctx.k, ps[j], x, M, (lo - first_block[j]) * kRowBlock, std::min((hi - first_block[j]) * kRowBlock, ps[j].rows));
    }
  });
}

void linear_gated(const ExecContext& ctx, const Tensor& w_gate, const Tensor& w_up, const float* x, float* gate, float* up,
                  int M, int layer, void (*glu)(float* gate, const float* up, size_t n)) {
  observe(ctx, w_gate, x, M, layer);
  observe(ctx, w_up, x, M, layer);
  const QuantizedInput xq = quantize_input(ctx, {&w_gate, &w_up}, x, M, layer);  // once for both
  const Product g = prepare(ctx.k, w_gate, gate, &xq), u = prepare(ctx.k, w_up, up, &xq);
  if (g.rows != u.rows || g.n != u.n)
    throw Error(cat("tensors ", w_gate.name, " and ", w_up.name, " differ in shape"), Errc::Internal);
  const Zone zone(ctx.prof, Op::Matmul, layer, g.flops(M) + u.flops(M), g.bytes(M) + u.bytes(M), w_gate.name.c_str(),
                  ZoneShape{M, int64_t(2 * g.rows), int64_t(g.n)});
  const size_t hidden = g.rows;
  each_block_chunk(ctx, g.blocks, grain_of(g.n, M) / 2 + 1, M, [&](size_t b, size_t e) {
    const size_t r0 = b * kRowBlock, r1 = std::min(e * kRowBlock, hidden);
    run_rows(ctx.k, g, x, M, r0, r1);
    run_rows(ctx.k, u, x, M, r0, r1);
    // gate = act(gate) * up on these rows of every token, while they are in this thread's cache.
    for (int m = 0; m < M; ++m) glu(gate + size_t(m) * hidden + r0, up + size_t(m) * hidden + r0, r1 - r0);
  });
}

}  // namespace qkv
