#include "engine/runtime/nn.h"

#include <cmath>
#include <cstring>

#include "engine/error.h"
#include "engine/runtime/profiler.h"

namespace qkv::nn {
namespace {
constexpr double kF = 4.0;  // bytes per float

// fn(i) for each row i in [first, n), rows of `width` values, split over the
// threads when there are enough (a prompt; one token runs here): each row is
// computed alone, so the result depends on neither the split nor the thread
// count.
template <class F>
void each_row(const ExecContext& ctx, int first, int n, size_t width, F&& fn) {
  if (n <= first) return;
  const size_t grain = 1 + 16384 / (width + 1);  // ~64 KiB of a row's floats per chunk, at least
  ctx.pool.parallel_for(
      size_t(n - first),
      [&](size_t b, size_t e, int) {
        for (size_t i = b; i < e; ++i) fn(first + int(i));
      },
      grain, ctx.n_threads);
}
}  // namespace

void embed(const ExecContext& ctx, const Tensor& table, const int* tokens, int n, float* x) {
  const size_t dim = size_t(table.row_len()), rb = table.row_bytes();
  const Zone z(ctx.prof, Op::Embedding, -1, 0.0, double(n) * (double(rb) + double(dim) * kF), nullptr,
               ZoneShape{n, int64_t(dim), 0});
  const uint8_t* rows = static_cast<const uint8_t*>(table.data);
  for (int i = 0; i < n; ++i) {
    float* out = x + size_t(i) * dim;
    const void* row = rows + size_t(tokens[i]) * rb;
    switch (table.info().compute) {
      case ops::Compute::F32: std::memcpy(out, row, dim * sizeof(float)); break;
      case ops::Compute::F16: ctx.k.f16_to_f32(static_cast<const uint16_t*>(row), out, dim); break;
      default: table.info().to_float(row, out, dim); break;
    }
  }
}

void rmsnorm(const ExecContext& ctx, const Tensor& w, const float* x, float* out, int n, float eps, int layer, int first) {
  const size_t dim = size_t(w.row_len());
  const double rows = double(n - first), D = double(dim);
  const Zone z(ctx.prof, Op::Rmsnorm, layer, 4.0 * rows * D, (2.0 * rows + 1.0) * D * kF, nullptr,
               ZoneShape{n - first, int64_t(dim), 0});
  const float* wp = static_cast<const float*>(w.data);
  each_row(ctx, first, n, dim, [&](int i) { ctx.k.rmsnorm(out + size_t(i) * dim, x + size_t(i) * dim, wp, dim, eps); });
}

void rmsnorm_heads(const ExecContext& ctx, const Tensor& w, float* x, int n, int n_heads, float eps, int layer) {
  const size_t hd = size_t(w.row_len());
  const double rows = double(n) * n_heads, D = double(hd);
  const Zone z(ctx.prof, Op::Rmsnorm, layer, 4.0 * rows * D, (2.0 * rows + 1.0) * D * kF, nullptr,
               ZoneShape{n * n_heads, int64_t(hd), 0});
  const float* wp = static_cast<const float*>(w.data);
  each_row(ctx, 0, n * n_heads, hd, [&](int r) { ctx.k.rmsnorm(x + size_t(r) * hd, x + size_t(r) * hd, wp, hd, eps); });
}

void layernorm(const ExecContext& ctx, const Tensor& w, const Tensor* b, const float* x, float* out, int n, float eps,
               int layer) {
  const size_t dim = size_t(w.row_len());
  const double N = n, D = double(dim);
  const Zone z(ctx.prof, Op::Layernorm, layer, 8.0 * N * D, (2.0 * N + 2.0) * D * kF, nullptr,
               ZoneShape{n, int64_t(dim), 0});
  const float* wp = static_cast<const float*>(w.data);
  const float* bp = b ? static_cast<const float*>(b->data) : nullptr;
  each_row(ctx, 0, n, dim, [&](int i) { ctx.k.layernorm(out + size_t(i) * dim, x + size_t(i) * dim, wp, bp, dim, eps); });
}

void add_bias(const ExecContext& ctx, const Tensor& b, float* x, int n, int layer) {
  const size_t dim = size_t(b.row_len());
  const double N = n, D = double(dim);
  const Zone z(ctx.prof, Op::Add, layer, N * D, (2.0 * N + 1.0) * D * kF, b.name.c_str(), ZoneShape{n, int64_t(dim), 0});
  const float* bp = static_cast<const float*>(b.data);
  each_row(ctx, 0, n, dim, [&](int i) { ctx.k.add(x + size_t(i) * dim, bp, dim); });
}

void gelu(const ExecContext& ctx, float* x, int n, int dim, int layer) {
  const double N = n, D = dim;
  const Zone z(ctx.prof, Op::Activation, layer, 12.0 * N * D, 2.0 * N * D * kF, "gelu", ZoneShape{n, dim, 0});
  each_row(ctx, 0, n, size_t(dim), [&](int i) { ctx.k.gelu(x + size_t(i) * size_t(dim), size_t(dim)); });
}

void scale(const ExecContext& ctx, float* x, int n, int dim, float s, int layer) {
  const double N = n, D = dim;
  const Zone z(ctx.prof, Op::Activation, layer, N * D, 2.0 * N * D * kF, "scale", ZoneShape{n, dim, 0});
  for (size_t i = 0; i < size_t(n) * size_t(dim); ++i) x[i] *= s;
}

void softcap(const ExecContext& ctx, float* x, int n, int dim, float cap, int layer) {
  const double N = n, D = dim;
  const Zone z(ctx.prof, Op::Activation, layer, 22.0 * N * D, 2.0 * N * D * kF, "softcap", ZoneShape{n, dim, 0});
  for (size_t i = 0; i < size_t(n) * size_t(dim); ++i) x[i] = ops::softcap(x[i], cap);
}

void split_qkv(const ExecContext& ctx, const float* fused, int n, int q_dim, int kv_dim, float* q, float* k, float* v,
               int layer) {
  const size_t qd = size_t(q_dim), kd = size_t(kv_dim), row = qd + 2 * kd;
  const double bytes = 2.0 * double(n) * double(row) * kF;
  const Zone z(ctx.prof, Op::Copy, layer, 0.0, bytes, "split q, k, v", ZoneShape{n, int64_t(row), 0});
  for (size_t i = 0; i < size_t(n); ++i) {
    const float* r = fused + i * row;
    std::memcpy(q + i * qd, r, qd * sizeof(float));
    std::memcpy(k + i * kd, r + qd, kd * sizeof(float));
    std::memcpy(v + i * kd, r + qd + kd, kd * sizeof(float));
  }
}

void swiglu_split(const ExecContext& ctx, const float* gate_up, float* out, int n, int hidden, int layer) {
  const size_t h = size_t(hidden);
  const double N = n, H = hidden;
  const Zone z(ctx.prof, Op::Activation, layer, 6.0 * N * H, 3.0 * N * H * kF, "swiglu", ZoneShape{n, hidden, 0});
  each_row(ctx, 0, n, 2 * h, [&](int i) {
    float* o = out + size_t(i) * h;
    std::memcpy(o, gate_up + size_t(i) * 2 * h, h * sizeof(float));
    ctx.k.swiglu(o, gate_up + size_t(i) * 2 * h + h, h);
  });
}

void add(const ExecContext& ctx, float* x, const float* y, int n, int dim, int layer) {
  const double N = n, D = dim;
  const Zone z(ctx.prof, Op::Add, layer, N * D, 3.0 * N * D * kF, nullptr, ZoneShape{n, dim, 0});
  each_row(ctx, 0, n, size_t(dim), [&](int i) { ctx.k.add(x + size_t(i) * size_t(dim), y + size_t(i) * size_t(dim), size_t(dim)); });
}

RopeTable::RopeTable(int head_dim, float base, int n_batch, RopeStyle style, const float* freq_factors)
    : head_dim_(head_dim),
      style_(style),
      n_batch_(n_batch),
      freqs_(size_t(head_dim / 2)),
      cos_(size_t(n_batch) * size_t(head_dim / 2)),
      sin_(cos_.size()) {
  // theta_j = base^(-2j / head_dim), as llama2.c computes it.
  for (size_t j = 0; j < freqs_.size(); ++j) {
    freqs_[j] = 1.0f / std::pow(base, float(2 * j) / float(head_dim));
    if (freq_factors) freqs_[j] /= freq_factors[j];
  }
}

void RopeTable::prepare(int pos, int n) {
  if (pos >= first_ && pos + n <= first_ + count_) return;
  if (n > n_batch_) throw Error(cat("rope: ", n, " positions at once, more than the batch of ", n_batch_), Errc::Internal);
  const size_t half = freqs_.size();
  for (int i = 0; i < n; ++i)
    for (size_t j = 0; j < half; ++j) {
      const float angle = float(pos + i) * freqs_[j];
      cos_[size_t(i) * half + j] = std::cos(angle);
      sin_[size_t(i) * half + j] = std::sin(angle);
    }
  first_ = pos;
  count_ = n;
}

void rope(const ExecContext& ctx, RopeTable& table, int pos, int n, int layer, float* q, int n_q_heads, float* k,
          int n_k_heads) {
  const size_t hd = size_t(table.head_dim()), qd = size_t(n_q_heads) * hd, kd = size_t(n_k_heads) * hd;
  const double N = n, W = double(qd + kd);
  const Zone z(ctx.prof, Op::Rope, layer, 3.0 * N * W, 2.0 * N * W * kF, nullptr, ZoneShape{n, int64_t(qd + kd), 0});
  table.prepare(pos, n);
  const auto rotate = table.style() == RopeStyle::Neox ? ops::rope_neox : ops::rope;
  each_row(ctx, 0, n, qd + kd, [&](int i) {
    rotate(q + size_t(i) * qd, size_t(n_q_heads), hd, table.cos(pos + i), table.sin(pos + i));
    rotate(k + size_t(i) * kd, size_t(n_k_heads), hd, table.cos(pos + i), table.sin(pos + i));
  });
}

void swiglu_up(const ExecContext& ctx, const Tensor& w_gate, const Tensor& w_up, const float* x, float* gate, float* up,
               int n, int layer) {
  linear_gated(ctx, w_gate, w_up, x, gate, up, n, layer, ctx.k.swiglu);
}

void geglu_up(const ExecContext& ctx, const Tensor& w_gate, const Tensor& w_up, const float* x, float* gate, float* up,
              int n, int layer) {
  linear_gated(ctx, w_gate, w_up, x, gate, up, n, layer, ctx.k.geglu);
}

}  // namespace qkv::nn
