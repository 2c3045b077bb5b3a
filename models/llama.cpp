// Llama (and llama2.c's checkpoints): RMSNorm, RoPE on adjacent pairs,
// grouped-query attention with a KV cache, SwiGLU feed-forward, tied or
// untied classifier.
//
// GGUF keys: the common ones (runtime/architecture.h), with llama.rope.*
// GGUF tensors, per layer l: blk.l.{attn_norm, attn_q, attn_k, attn_v,
// attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}.weight; then
// token_embd.weight, output_norm.weight, (untied) output.weight and (Llama 3
// scaling) rope_freqs.weight: head_dim / 2 factors that divide the rotary
// frequencies.
#include <memory>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/runtime/architecture.h"
#include "engine/runtime/attention.h"
#include "engine/runtime/nn.h"
#include "models/registry.h"

namespace qkv {
namespace {

struct LayerWeights {
  const Tensor* attn_norm;  // (dim)
  const Tensor* wq;         // (q_dim rows, dim)
  const Tensor* wk;         // (kv_dim rows, dim)
  const Tensor* wv;         // (kv_dim rows, dim)
  const Tensor* wo;         // (dim rows, q_dim)
  const Tensor* ffn_norm;   // (dim)
  const Tensor* w_gate;     // (hidden rows, dim)   llama2.c w1
  const Tensor* w_up;       // (hidden rows, dim)   llama2.c w3
  const Tensor* w_down;     // (dim rows, hidden)   llama2.c w2
  std::string qkv_name;     // the profiler's name of the fused Q/K/V product
};

// Activations for a batch of up to n_batch tokens, and the KV cache.
struct LlamaState : RunState {
  LlamaState(const ModelConfig& c, const float* freq_factors, int n_ctx, int n_batch, int n_threads, bool kv_f16)
      : cache({c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim}, n_ctx, n_threads, kv_f16),
        rope(c.head_dim, c.rope_base, n_batch, nn::RopeStyle::Normal, freq_factors),
        x(size_t(n_batch) * size_t(c.dim)),
        xb(x.size()),
        xb2(x.size()),
        q(size_t(n_batch) * size_t(c.q_dim())),
        k(size_t(n_batch) * size_t(c.kv_dim())),
        v(k.size()),
        att_out(q.size()),
        hb(size_t(n_batch) * size_t(c.hidden_dim)),
        hb2(hb.size()) {}

  KVCache cache;
  nn::RopeTable rope;
  std::vector<float> x;        // (n, dim) residual stream
  std::vector<float> xb, xb2;  // (n, dim)
  std::vector<float> q;        // (n, q_dim)
  std::vector<float> k, v;     // (n, kv_dim)
  std::vector<float> att_out;  // (n, q_dim)
  std::vector<float> hb, hb2;  // (n, hidden)
};

class Llama : public Architecture {
 public:
  explicit Llama(const WeightFile& wf) : c_(read_common_hparams(wf)) {
    const int64_t dim = c_.dim, hid = c_.hidden_dim, qd = c_.q_dim(), kvd = c_.kv_dim();
    if (auto rd = wf.get_uint("llama.rope.dimension_count"); rd && int64_t(*rd) != c_.head_dim)
      throw Error(cat(wf.path(), ": rope.dimension_count ", *rd, " differs from the head size ", c_.head_dim,
                      " (partial RoPE is not supported)"));
    if (c_.head_dim % 2) throw Error(cat(wf.path(), ": head size ", c_.head_dim, " is odd; RoPE needs pairs"));
    if (c_.vocab_size <= 0) throw Error(cat(wf.path(), ": no vocabulary size (missing token_embd.weight?)"));
    // Emitting BOS mid-text ends a story (llama2.c's story models, with their
    // SentencePiece vocabulary, separate stories so); Llama 3's BOS is not an end.
    c_.stop_on_bos = !wf.vocab() || wf.vocab()->model == VocabModel::Spm;
    auto req = [&](const std::string& name, std::vector<int64_t> shape) {
      const Tensor* t = &wf.require(name, shape);
      n_params_ += t->n_elements();
      return t;
    };
    auto norm = [&](const std::string& name) {
      const Tensor* t = req(name, {dim});
      if (t->type != Type::F32) throw Error(cat(wf.path(), ": norm weight ", name, " must be F32"));
      return t;
    };
    tok_embd_ = req("token_embd.weight", {dim, c_.vocab_size});
    for (int l = 0; l < c_.n_layers; ++l) {
      const std::string p = cat("blk.", l, ".");
      LayerWeights w;
      w.attn_norm = norm(p + "attn_norm.weight");
      w.wq = req(p + "attn_q.weight", {dim, qd});
      w.wk = req(p + "attn_k.weight", {dim, kvd});
      w.wv = req(p + "attn_v.weight", {dim, kvd});
      w.wo = req(p + "attn_output.weight", {qd, dim});
      w.ffn_norm = norm(p + "ffn_norm.weight");
      w.w_gate = req(p + "ffn_gate.weight", {dim, hid});
      w.w_up = req(p + "ffn_up.weight", {dim, hid});
      w.w_down = req(p + "ffn_down.weight", {hid, dim});
      w.qkv_name = p + "attn_q+k+v.weight";
      layers_.push_back(w);
    }
    if (wf.find(cat("blk.", c_.n_layers, ".attn_q.weight")))
      throw Error(cat(wf.path(), ": has tensors for more than block_count = ", c_.n_layers, " layers"));
    out_norm_ = norm("output_norm.weight");
    if (wf.find("rope_freqs.weight")) {
      rope_freqs_ = req("rope_freqs.weight", {c_.head_dim / 2});
      if (rope_freqs_->type != Type::F32) throw Error(cat(wf.path(), ": rope_freqs.weight must be F32"));
    }
    output_ = wf.find("output.weight") ? req("output.weight", {dim, c_.vocab_size}) : tok_embd_;
  }

  const ModelConfig& config() const override { return c_; }
  int64_t n_params() const override { return n_params_; }
  bool tied_output() const override { return output_ == tok_embd_; }
  std::string weight_type() const override { return layers_.empty() ? "F32" : layers_[0].wq->info().name; }
  std::vector<const Tensor*> matmul_weights() const override {
    std::vector<const Tensor*> w;
    for (const LayerWeights& l : layers_) w.insert(w.end(), {l.wq, l.wk, l.wv, l.wo, l.w_gate, l.w_up, l.w_down});
    w.push_back(output_);
    return w;
  }
  std::vector<const Tensor*> row_read_weights() const override { return {tok_embd_}; }

  std::unique_ptr<RunState> new_state(int n_ctx, int n_batch, int n_threads, bool kv_f16) const override {
    return std::make_unique<LlamaState>(c_, rope_freqs_ ? static_cast<const float*>(rope_freqs_->data) : nullptr, n_ctx, n_batch, n_threads,
                                        kv_f16);
  }

  void forward(RunState& rs, const int* tokens, int n, int pos, float* logits, bool all_logits,
               const ExecContext& ctx) const override;

 private:
  ModelConfig c_;
  const Tensor* tok_embd_ = nullptr;  // (vocab rows, dim)
  const Tensor* out_norm_ = nullptr;  // (dim)
  const Tensor* output_ = nullptr;    // (vocab rows, dim): the classifier, or tok_embd_ when tied
  const Tensor* rope_freqs_ = nullptr;  // (head_dim / 2) or none
  std::vector<LayerWeights> layers_;
  int64_t n_params_ = 0;
};

// tokens[0, n) at positions [pos, pos + n): logits of the last (or every) token.
void Llama::forward(RunState& rs, const int* tokens, int n, int pos, float* logits, bool all_logits,
                    const ExecContext& ctx) const {
  LlamaState& s = static_cast<LlamaState&>(rs);
  const int dim = c_.dim;
  nn::embed(ctx, *tok_embd_, tokens, n, s.x.data());  // x: (n, dim)

  for (int l = 0; l < c_.n_layers; ++l) {
    const LayerWeights& w = layers_[size_t(l)];

    // Attention: q, k, v = rmsnorm(x) Wq, Wk, Wv; rotate q and k; cache k, v;
    // attend; x += att_out Wo.
    nn::rmsnorm(ctx, *w.attn_norm, s.x.data(), s.xb.data(), n, c_.rms_eps, l);
    // q: (n, q_dim), k, v: (n, kv_dim), as one job
    linear_group(ctx, {{w.wq, s.q.data()}, {w.wk, s.k.data()}, {w.wv, s.v.data()}}, s.xb.data(), n, l,
                 w.qkv_name.c_str());
    nn::rope(ctx, s.rope, pos, n, l, s.q.data(), c_.n_heads, s.k.data(), c_.n_kv_heads);
    s.cache.store(ctx, l, pos, n, s.k.data(), s.v.data());
    s.cache.attend(ctx, l, pos, n, s.q.data(), s.att_out.data());  // att_out: (n, q_dim)
    linear(ctx, *w.wo, s.att_out.data(), s.xb2.data(), n, l);      // xb2: (n, dim)
    nn::add(ctx, s.x.data(), s.xb2.data(), n, dim, l);

    // Feed-forward: x += W_down (silu(rmsnorm(x) W_gate) * (rmsnorm(x) W_up)).
    nn::rmsnorm(ctx, *w.ffn_norm, s.x.data(), s.xb.data(), n, c_.rms_eps, l);
    nn::swiglu_up(ctx, *w.w_gate, *w.w_up, s.xb.data(), s.hb.data(), s.hb2.data(), n, l);  // hb: (n, hidden)
    linear(ctx, *w.w_down, s.hb.data(), s.xb2.data(), n, l);
    nn::add(ctx, s.x.data(), s.xb2.data(), n, dim, l);
  }

  // Classifier: logits of the last token, or of all of them.
  const int first = all_logits ? 0 : n - 1;
  nn::rmsnorm(ctx, *out_norm_, s.x.data(), s.xb.data(), n, c_.rms_eps, -1, first);
  linear(ctx, *output_, s.xb.data() + size_t(first) * size_t(dim), logits, n - first, -1);  // (n - first, vocab)
}

}  // namespace

std::unique_ptr<Architecture> make_llama(const WeightFile& wf) { return std::make_unique<Llama>(wf); }

}  // namespace qkv
