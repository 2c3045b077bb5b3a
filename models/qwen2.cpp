// Qwen2 (Qwen2.5): Llama's block with biases on the q, k and v projections
// and RoPE on the two halves of each head (NEOX style).
//
// GGUF keys: the common ones (runtime/architecture.h) under "qwen2.".
// GGUF tensors, per layer l: blk.l.{attn_norm, attn_q, attn_k, attn_v,
// attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}.weight and
// blk.l.attn_{q,k,v}.bias; token_embd.weight, output_norm.weight and
// (untied) output.weight.
#include "models/decoder.h"
#include "models/registry.h"

namespace qkv {
namespace {

struct LayerWeights {
  AttentionWeights att;
  const Tensor *bq, *bk, *bv;  // (q_dim), (kv_dim), (kv_dim)
  GatedFfnWeights ffn;
};

class Qwen2 : public Decoder {
 public:
  explicit Qwen2(const WeightFile& wf) : Decoder(read_common_hparams(wf)) {
    check_vocab(wf);
    c_.stop_on_bos = false;
    TensorReader r(wf);
    for (int l = 0; l < c_.n_layers; ++l) {
      const std::string p = cat("blk.", l, ".");
      LayerWeights w;
      w.att = read_attention(r, l);
      w.bq = r.vector(p + "attn_q.bias", c_.q_dim());
      w.bk = r.vector(p + "attn_k.bias", c_.kv_dim());
      w.bv = r.vector(p + "attn_v.bias", c_.kv_dim());
      w.ffn = read_gated_ffn(r, l);
      layers_.push_back(w);
    }
    check_layer_count(r, "attn_q.weight");
    read_ends(r);
    n_params_ = r.n_params();
  }

  std::unique_ptr<RunState> new_state(int n_ctx, int n_batch, int n_threads, bool kv_f16) const override {
    return one_rope_state(n_ctx, n_batch, n_threads, kv_f16, nn::RopeStyle::Neox);
  }

  void forward(RunState& rs, const int* tokens, int n, int pos, float* logits, bool all_logits,
               const ExecContext& ctx) const override {
    DecoderState& s = static_cast<DecoderState&>(rs);
    nn::embed(ctx, *tok_embd_, tokens, n, s.x.data());  // x: (n, dim)

    for (int l = 0; l < c_.n_layers; ++l) {
      const LayerWeights& w = layers_[size_t(l)];
      const AttentionWeights& a = w.att;

      // Attention: q, k, v = rmsnorm(x) Wq + bq, ...; rotate q and k (NEOX);
      // cache k, v; attend; x += att_out Wo.
      nn::rmsnorm(ctx, *a.norm, s.x.data(), s.xb.data(), n, c_.rms_eps, l);
      linear_group(ctx, {{a.wq, s.q.data()}, {a.wk, s.k.data()}, {a.wv, s.v.data()}}, s.xb.data(), n, l,
                   a.qkv_name.c_str());
      nn::add_bias(ctx, *w.bq, s.q.data(), n, l);  // q: (n, q_dim)
      nn::add_bias(ctx, *w.bk, s.k.data(), n, l);  // k, v: (n, kv_dim)
      nn::add_bias(ctx, *w.bv, s.v.data(), n, l);
      nn::rope(ctx, s.ropes[0], pos, n, l, s.q.data(), c_.n_heads, s.k.data(), c_.n_kv_heads);
      s.cache.store(ctx, l, pos, n, s.k.data(), s.v.data());
      s.cache.attend(ctx, l, pos, n, s.q.data(), s.att_out.data());  // att_out: (n, q_dim)
      linear(ctx, *a.wo, s.att_out.data(), s.xb2.data(), n, l);      // xb2: (n, dim)
      nn::add(ctx, s.x.data(), s.xb2.data(), n, c_.dim, l);

      // Feed-forward: x += W_down (silu(rmsnorm(x) W_gate) * (rmsnorm(x) W_up)).
      gated_ffn(ctx, s, w.ffn, n, l, false);
    }
    classify(ctx, s, logits, n, all_logits);  // (1 or n, vocab)
  }

 private:
  std::vector<LayerWeights> layers_;
};

}  // namespace

std::unique_ptr<Architecture> make_qwen2(const WeightFile& wf) { return std::make_unique<Qwen2>(wf); }

}  // namespace qkv
