// Qwen3: Llama's block with a per-head RMSNorm of q and of k (before RoPE),
// RoPE on the two halves of each head (NEOX style), and heads whose width is
// attention.key_length (q is wider than the model: 16 heads of 128 on a
// 1024-wide Qwen3-0.6B).
//
// GGUF keys: the common ones (runtime/architecture.h) under "qwen3.", with
// attention.key_length. GGUF tensors, per layer l: blk.l.{attn_norm, attn_q,
// attn_k, attn_v, attn_q_norm, attn_k_norm, attn_output, ffn_norm, ffn_gate,
// ffn_up, ffn_down}.weight; token_embd.weight, output_norm.weight and
// (untied) output.weight.
#include "models/decoder.h"
#include "models/registry.h"

namespace qkv {
namespace {

struct LayerWeights {
  const Tensor* attn_norm;         // (dim)
  const Tensor *wq, *wk, *wv;      // (q_dim | kv_dim rows, dim)
  const Tensor *q_norm, *k_norm;   // (head_dim)
  const Tensor* wo;                // (dim rows, q_dim)
  const Tensor* ffn_norm;          // (dim)
  const Tensor *w_gate, *w_up;     // (hidden rows, dim)
  const Tensor* w_down;            // (dim rows, hidden)
  std::string qkv_name;
};

class Qwen3 : public Decoder {
 public:
  explicit Qwen3(const WeightFile& wf) : Decoder(read_common_hparams(wf)) {
    check_vocab(wf);
    c_.stop_on_bos = false;
    TensorReader r(wf);
    const int64_t dim = c_.dim, hid = c_.hidden_dim, qd = c_.q_dim(), kvd = c_.kv_dim();
    for (int l = 0; l < c_.n_layers; ++l) {
      const std::string p = cat("blk.", l, ".");
      LayerWeights w;
      w.attn_norm = r.vector(p + "attn_norm.weight", dim);
      w.wq = r.matrix(p + "attn_q.weight", dim, qd);
      w.wk = r.matrix(p + "attn_k.weight", dim, kvd);
      w.wv = r.matrix(p + "attn_v.weight", dim, kvd);
      w.q_norm = r.vector(p + "attn_q_norm.weight", c_.head_dim);
      w.k_norm = r.vector(p + "attn_k_norm.weight", c_.head_dim);
      w.wo = r.matrix(p + "attn_output.weight", qd, dim);
      w.ffn_norm = r.vector(p + "ffn_norm.weight", dim);
      w.w_gate = r.matrix(p + "ffn_gate.weight", dim, hid);
      w.w_up = r.matrix(p + "ffn_up.weight", dim, hid);
      w.w_down = r.matrix(p + "ffn_down.weight", hid, dim);
      w.qkv_name = p + "attn_q+k+v.weight";
      matmuls_.insert(matmuls_.end(), {w.wq, w.wk, w.wv, w.wo, w.w_gate, w.w_up, w.w_down});
      layers_.push_back(w);
    }
    check_layer_count(r, "attn_q.weight");
    read_ends(r);
    n_params_ = r.n_params();
  }

  std::unique_ptr<RunState> new_state(int n_ctx, int n_batch, int n_threads, bool kv_f16) const override {
    auto s = std::make_unique<DecoderState>(c_, n_ctx, n_batch, n_threads, kv_f16);
    s->ropes.emplace_back(c_.head_dim, c_.rope_base, n_batch, nn::RopeStyle::Neox);
    return s;
  }

  void forward(RunState& rs, const int* tokens, int n, int pos, float* logits, bool all_logits,
               const ExecContext& ctx) const override {
    DecoderState& s = static_cast<DecoderState&>(rs);
    const int dim = c_.dim;
    nn::embed(ctx, *tok_embd_, tokens, n, s.x.data());  // x: (n, dim)

    for (int l = 0; l < c_.n_layers; ++l) {
      const LayerWeights& w = layers_[size_t(l)];

      // Attention: q, k, v = rmsnorm(x) Wq, Wk, Wv; each head of q and of k
      // RMS-normed, then rotated (NEOX); cache k, v; attend; x += att_out Wo.
      nn::rmsnorm(ctx, *w.attn_norm, s.x.data(), s.xb.data(), n, c_.rms_eps, l);
      linear_group(ctx, {{w.wq, s.q.data()}, {w.wk, s.k.data()}, {w.wv, s.v.data()}}, s.xb.data(), n, l,
                   w.qkv_name.c_str());
      nn::rmsnorm_heads(ctx, *w.q_norm, s.q.data(), n, c_.n_heads, c_.rms_eps, l);     // q: (n, q_dim)
      nn::rmsnorm_heads(ctx, *w.k_norm, s.k.data(), n, c_.n_kv_heads, c_.rms_eps, l);  // k: (n, kv_dim)
      nn::rope(ctx, s.ropes[0], pos, n, l, s.q.data(), c_.n_heads, s.k.data(), c_.n_kv_heads);
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

    const int first = all_logits ? 0 : n - 1;
    nn::rmsnorm(ctx, *out_norm_, s.x.data(), s.xb.data(), n, c_.rms_eps, -1, first);
    linear(ctx, *output_, s.xb.data() + size_t(first) * size_t(dim), logits, n - first, -1);  // (n - first, vocab)
  }

 private:
  std::vector<LayerWeights> layers_;
};

}  // namespace

std::unique_ptr<Architecture> make_qwen3(const WeightFile& wf) { return std::make_unique<Qwen3>(wf); }

}  // namespace qkv
