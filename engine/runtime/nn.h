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

// Per head: x[i, h] = rmsnorm(x[i, h]) * w for the n_heads heads of each
// token (the q/k norms of Qwen3 and Gemma 3). w: (head_dim); x: (n, n_heads * head_dim).
void rmsnorm_heads(const ExecContext& ctx, const Tensor& w, float* x, int n, int n_heads, float eps, int layer);

// out[i] = (x[i] - mean) / sqrt(var + eps) * w + b for every token (GPT-2's
// LayerNorm; b may be null). w, b: (dim); x, out: (n, dim); out may be x.
void layernorm(const ExecContext& ctx, const Tensor& w, const Tensor* b, const float* x, float* out, int n, float eps,
               int layer);

// x[i] += y[i]: the residual connection. x, y: (n, dim).
void add(const ExecContext& ctx, float* x, const float* y, int n, int dim, int layer);

// x[i] += b for every token: a projection's bias. b: (dim), F32; x: (n, dim).
void add_bias(const ExecContext& ctx, const Tensor& b, float* x, int n, int layer);

// x = gelu(x) elementwise (tanh approximation). x: (n, dim).
void gelu(const ExecContext& ctx, float* x, int n, int dim, int layer);

// x *= s elementwise (Gemma's embeddings times sqrt(dim)). x: (n, dim).
void scale(const ExecContext& ctx, float* x, int n, int dim, float s, int layer);

// x = cap * tanh(x / cap) elementwise (Gemma 2's final logit soft-capping).
// x: (n, dim).
void softcap(const ExecContext& ctx, float* x, int n, int dim, float cap, int layer);

// A fused projection's output split into its parts: row i of `fused`
// (n, q_dim + 2 * kv_dim) is q[i] (q_dim), then k[i], then v[i] (kv_dim each),
// as GPT-2's and Phi-3's attn_qkv lay them out.
void split_qkv(const ExecContext& ctx, const float* fused, int n, int q_dim, int kv_dim, float* q, float* k, float* v,
               int layer);

// A fused gate/up projection's second half (Phi-3's ffn_up): out[i] =
// silu(gate_up[i, 0:hidden]) * gate_up[i, hidden:2 hidden]. gate_up: (n, 2 hidden); out: (n, hidden).
void swiglu_split(const ExecContext& ctx, const float* gate_up, float* out, int n, int hidden, int layer);

// How RoPE pairs a head's values: adjacent (2j, 2j + 1), as Llama; or the
// two halves (j, j + head_dim / 2), as GPT-NeoX, Qwen, Gemma and Phi-3.
enum class RopeStyle { Normal, Neox };

// Rotary position embedding: cos and sin of position p times each pair's
// frequency theta_j = base^(-2j / head_dim) / factor_j (as llama2.c computes
// them), for the positions of the batch at hand: rope() fills them in on the
// first layer of a pass and the other layers reuse them. freq_factors
// (head_dim / 2 values, Llama 3's rope_freqs.weight) may be null: all 1.
class RopeTable {
 public:
  RopeTable(int head_dim, float base, int n_batch, RopeStyle style = RopeStyle::Normal, const float* freq_factors = nullptr);
  int head_dim() const { return head_dim_; }
  RopeStyle style() const { return style_; }
  // Makes the angles of positions [pos, pos + n) (n <= n_batch) available.
  void prepare(int pos, int n);
  // Position pos's cos and sin (head_dim / 2 each), after prepare() covered it.
  const float* cos(int pos) const { return cos_.data() + size_t(pos - first_) * size_t(head_dim_ / 2); }
  const float* sin(int pos) const { return sin_.data() + size_t(pos - first_) * size_t(head_dim_ / 2); }

 private:
  int head_dim_;
  RopeStyle style_;
  int n_batch_;
  int first_ = 0, count_ = 0;     // the positions the rows hold
  std::vector<float> freqs_;      // (head_dim / 2)
  std::vector<float> cos_, sin_;  // (n_batch, head_dim / 2)
};

// Rotates the pairs of every head of q (n, n_q_heads * head_dim) and k (n,
// n_k_heads * head_dim) of the tokens at positions [pos, pos + n).
void rope(const ExecContext& ctx, RopeTable& table, int pos, int n, int layer, float* q, int n_q_heads, float* k,
          int n_k_heads);

// The SwiGLU feed-forward's first half: gate = x W_gate^T, up = x W_up^T,
// gate = silu(gate) * up (fused into the up projection: each thread applies
// it to the rows it has just computed, while they are in its cache).
// x: (n, dim); gate, up: (n, hidden), gate holds the result.
void swiglu_up(const ExecContext& ctx, const Tensor& w_gate, const Tensor& w_up, const float* x, float* gate, float* up,
               int n, int layer);

// The same with GeGLU (Gemma): gate = gelu(gate) * up.
void geglu_up(const ExecContext& ctx, const Tensor& w_gate, const Tensor& w_up, const float* x, float* gate, float* up,
              int n, int layer);

}  // namespace qkv::nn
