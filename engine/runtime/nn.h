// The named ops forward passes are written in. Each records its own profiler
// zone with its FLOP and byte counts (a model never writes a formula), and
// runs its kernels from the pass's kernel table, threaded where it pays.
// Activations are row-major batches: x (n, dim) holds token i's vector at
// x + i * dim.
//
// The matrix products themselves are runtime/linear.h; attention and its KV
// cache are runtime/attention.h.
#pragma once

#include <vector>

#include "engine/runtime/architecture.h"
#include "engine/runtime/linear.h"

namespace qkv::nn {

// x[i] = row tokens[i] of the embedding table (rows: vocabulary, n: dim),
// converted to f32. x: (n, dim).
void embed(const ExecContext& ctx, const Tensor& table, const int* tokens, int n, float* x);

// out[i] = x[i] / sqrt(mean(x[i]^2) + eps) * w for the tokens i in [first, n).
// w: (dim), F32; x, out: (n, dim); out may be x.
void rmsnorm(const ExecContext& ctx, const Tensor& w, const float* x, float* out, int n, float eps, int layer,
             int first = 0);

// x[i] += y[i]: the residual connection. x, y: (n, dim).
void add(const ExecContext& ctx, float* x, const float* y, int n, int dim, int layer);

// Rotary position embedding: cos and sin of position p times each pair's
// frequency theta_j = base^(-2j / head_dim), computed once for every
// position of the context (as llama2.c computes them).
class RopeTable {
 public:
  RopeTable(int head_dim, float base, int n_ctx);
  int head_dim() const { return head_dim_; }
  const float* cos(int pos) const { return cos_.data() + size_t(pos) * size_t(head_dim_ / 2); }
  const float* sin(int pos) const { return sin_.data() + size_t(pos) * size_t(head_dim_ / 2); }

 private:
  int head_dim_;
  std::vector<float> cos_, sin_;  // (n_ctx, head_dim / 2)
};

// Rotates the adjacent pairs (2j, 2j + 1) of every head of q (n, n_q_heads *
// head_dim) and k (n, n_k_heads * head_dim) of the tokens at positions
// [pos, pos + n).
void rope(const ExecContext& ctx, const RopeTable& table, int pos, int n, int layer, float* q, int n_q_heads, float* k,
          int n_k_heads);

// The SwiGLU feed-forward's first half: gate = x W_gate^T, up = x W_up^T,
// gate = silu(gate) * up (fused into the up projection: each thread applies
// it to the rows it has just computed, while they are in its cache).
// x: (n, dim); gate, up: (n, hidden), gate holds the result.
void swiglu_up(const ExecContext& ctx, const Tensor& w_gate, const Tensor& w_up, const float* x, float* gate, float* up,
               int n, int layer);

}  // namespace qkv::nn
