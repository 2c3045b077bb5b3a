// What the decoder-only architectures in models/ share, so that each file
// holds only what is its own (hyper-parameters, tensors, forward pass):
//  - TensorReader: a file's tensors by GGUF name, shape-checked and counted;
//  - DecoderState: the KV cache and the activation buffers of a pass;
//  - Decoder: the Architecture bookkeeping (config, parameter count, the
//    matrices the engine prepares, tied classifier, run state).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/runtime/architecture.h"
#include "engine/runtime/attention.h"
#include "engine/runtime/nn.h"

namespace qkv {

class TensorReader {
 public:
  explicit TensorReader(const WeightFile& wf) : wf_(wf) {}

  // A matrix of `rows` rows of `cols` values (GGUF shape {cols, rows}).
  const Tensor* matrix(const std::string& name, int64_t cols, int64_t rows) { return count(&wf_.require(name, {cols, rows})); }
  // An F32 vector of n values (a norm's weight, a bias).
  const Tensor* vector(const std::string& name, int64_t n) {
    const Tensor* t = count(&wf_.require(name, {n}));
    if (t->type != Type::F32) throw Error(cat(wf_.path(), ": ", name, " must be F32"));
    return t;
  }
  const Tensor* optional_vector(const std::string& name, int64_t n) { return wf_.find(name) ? vector(name, n) : nullptr; }
  bool has(const std::string& name) const { return wf_.find(name) != nullptr; }
  int64_t n_params() const { return n_params_; }
  const WeightFile& file() const { return wf_; }

 private:
  const Tensor* count(const Tensor* t) {
    n_params_ += t->n_elements();
    return t;
  }
  const WeightFile& wf_;
  int64_t n_params_ = 0;
};

// Activations for a batch of up to n_batch tokens, and the KV cache.
struct DecoderState : RunState {
  DecoderState(const ModelConfig& c, int n_ctx, int n_batch, int n_threads, bool kv_f16, int fused_width = 0)
      : cache({c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim}, n_ctx, n_threads, kv_f16),
        x(size_t(n_batch) * size_t(c.dim)),
        xb(x.size()),
        xb2(x.size()),
        q(size_t(n_batch) * size_t(c.q_dim())),
        k(size_t(n_batch) * size_t(c.kv_dim())),
        v(k.size()),
        att_out(q.size()),
        hb(size_t(n_batch) * size_t(c.hidden_dim)),
        hb2(hb.size()),
        fused(size_t(n_batch) * size_t(fused_width)) {}

  KVCache& kv_cache() override { return cache; }

  // The batch buffers are committed as rows are touched (ZeroedArray): a
  // session sized for 512-token prompts that generates touches one row.
  KVCache cache;
  std::vector<nn::RopeTable> ropes;  // one per distinct rotary base the layers use
  ZeroedArray<float> x;              // (n, dim) residual stream
  ZeroedArray<float> xb, xb2;        // (n, dim)
  ZeroedArray<float> q;              // (n, q_dim)
  ZeroedArray<float> k, v;           // (n, kv_dim)
  ZeroedArray<float> att_out;        // (n, q_dim)
  ZeroedArray<float> hb, hb2;        // (n, hidden)
  ZeroedArray<float> fused;          // (n, fused_width): a fused projection's output before it is split
};

// The attention projections of a Llama-style layer.
struct AttentionWeights {
  const Tensor* norm;          // (dim): attn_norm
  const Tensor *wq, *wk, *wv;  // (q_dim | kv_dim rows, dim)
  const Tensor* wo;            // (dim rows, q_dim)
  std::string qkv_name;        // the profiler's name of the grouped q/k/v product
};
// A gated feed-forward: x += W_down (act(norm(x) W_gate) * (norm(x) W_up)).
struct GatedFfnWeights {
  const Tensor* norm;             // (dim): ffn_norm
  const Tensor *w_gate, *w_up;    // (hidden rows, dim)
  const Tensor* w_down;           // (dim rows, hidden)
  const Tensor* post = nullptr;   // (dim): Gemma's post_ffw_norm of the branch, or none
};

class Decoder : public Architecture {
 public:
  const ModelConfig& config() const override { return c_; }
  int64_t n_params() const override { return n_params_; }
  bool tied_output() const override { return output_ == tok_embd_; }
  std::string weight_type() const override { return matmuls_.empty() ? "F32" : matmuls_[0]->info().name; }
  std::vector<const Tensor*> matmul_weights() const override {
    std::vector<const Tensor*> w(matmuls_);
    w.push_back(output_);
    return w;
  }
  std::vector<const Tensor*> row_read_weights() const override { return {tok_embd_}; }

 protected:
  explicit Decoder(ModelConfig c) : c_(std::move(c)) {}
  // The embedding table, the classifier (output.weight, or the embedding
  // when the file has none) and the final norm, which every decoder has.
  void read_ends(TensorReader& r) {
    tok_embd_ = r.matrix("token_embd.weight", c_.dim, c_.vocab_size);
    output_ = r.has("output.weight") ? r.matrix("output.weight", c_.dim, c_.vocab_size) : tok_embd_;
    out_norm_ = r.vector("output_norm.weight", c_.dim);
  }
  // After the layers: refuses a file with more of them than block_count says.
  void check_layer_count(const TensorReader& r, const std::string& probe) const {
    if (r.has(cat("blk.", c_.n_layers, ".", probe)))
      throw Error(cat(r.file().path(), ": has tensors for more than block_count = ", c_.n_layers, " layers"));
  }
  // blk.l.{attn_norm, attn_q, attn_k, attn_v, attn_output}.weight, and the
  // feed-forward's blk.l.{ffn_norm, ffn_gate, ffn_up, ffn_down}.weight; both
  // registered as the layer's matrices.
  AttentionWeights read_attention(TensorReader& r, int l) {
    const std::string p = cat("blk.", l, ".");
    const int64_t dim = c_.dim, qd = c_.q_dim(), kvd = c_.kv_dim();
    AttentionWeights a{r.vector(p + "attn_norm.weight", dim), r.matrix(p + "attn_q.weight", dim, qd),
                       r.matrix(p + "attn_k.weight", dim, kvd), r.matrix(p + "attn_v.weight", dim, kvd),
                       r.matrix(p + "attn_output.weight", qd, dim), p + "attn_q+k+v.weight"};
    matmuls_.insert(matmuls_.end(), {a.wq, a.wk, a.wv, a.wo});
    return a;
  }
  GatedFfnWeights read_gated_ffn(TensorReader& r, int l) {
    const std::string p = cat("blk.", l, ".");
    const int64_t dim = c_.dim, hid = c_.hidden_dim;
    GatedFfnWeights f{r.vector(p + "ffn_norm.weight", dim), r.matrix(p + "ffn_gate.weight", dim, hid),
                      r.matrix(p + "ffn_up.weight", dim, hid), r.matrix(p + "ffn_down.weight", hid, dim)};
    matmuls_.insert(matmuls_.end(), {f.w_gate, f.w_up, f.w_down});
    return f;
  }

  // x += [post-norm](W_down (act(rmsnorm(x) W_gate) * (rmsnorm(x) W_up))),
  // act silu (SwiGLU) or tanh GELU (GeGLU). x: (n, dim).
  void gated_ffn(const ExecContext& ctx, DecoderState& s, const GatedFfnWeights& f, int n, int l, bool gelu) const {
    nn::rmsnorm(ctx, *f.norm, s.x.data(), s.xb.data(), n, c_.rms_eps, l);
    (gelu ? nn::geglu_up : nn::swiglu_up)(ctx, *f.w_gate, *f.w_up, s.xb.data(), s.hb.data(), s.hb2.data(), n, l);
    linear(ctx, *f.w_down, s.hb.data(), s.xb2.data(), n, l);  // xb2: (n, dim)
    if (f.post) nn::rmsnorm(ctx, *f.post, s.xb2.data(), s.xb2.data(), n, c_.rms_eps, l);
    nn::add(ctx, s.x.data(), s.xb2.data(), n, c_.dim, l);
  }

  // logits = rmsnorm(x) W_out of the last token (or of every token), (n', vocab).
  void classify(const ExecContext& ctx, DecoderState& s, float* logits, int n, bool all_logits) const {
    const int first = all_logits ? 0 : n - 1;
    nn::rmsnorm(ctx, *out_norm_, s.x.data(), s.xb.data(), n, c_.rms_eps, -1, first);
    linear(ctx, *output_, s.xb.data() + size_t(first) * size_t(c_.dim), logits, n - first, -1);
  }

  // A run state whose layers all rotate with one table (base rope_base).
  std::unique_ptr<DecoderState> one_rope_state(int n_ctx, int n_batch, int n_threads, bool kv_f16, nn::RopeStyle style,
                                               const float* freq_factors = nullptr, int fused_width = 0) const {
    auto s = std::make_unique<DecoderState>(c_, n_ctx, n_batch, n_threads, kv_f16, fused_width);
    s->ropes.emplace_back(c_.head_dim, c_.rope_base, n_batch, style, freq_factors);
    return s;
  }

  void check_vocab(const WeightFile& wf) const {
    if (c_.vocab_size <= 0) throw Error(cat(wf.path(), ": no vocabulary size (missing token_embd.weight?)"));
    if (c_.head_dim % 2) throw Error(cat(wf.path(), ": head size ", c_.head_dim, " is odd; RoPE needs pairs"));
  }

  ModelConfig c_;
  const Tensor* tok_embd_ = nullptr;  // (vocab rows, dim)
  const Tensor* out_norm_ = nullptr;  // (dim)
  const Tensor* output_ = nullptr;    // (vocab rows, dim): the classifier, or tok_embd_ when tied
  std::vector<const Tensor*> matmuls_;  // every layer's matrices, for the engine to prepare
  int64_t n_params_ = 0;
};

}  // namespace qkv
