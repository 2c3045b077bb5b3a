// Llama (and llama2.c's checkpoints): RMSNorm, RoPE on adjacent pairs,
// grouped-query attention with a KV cache, SwiGLU feed-forward, tied or
// untied classifier; Llama 3's rotary frequency factors.
//
// GGUF keys: the common ones (runtime/architecture.h), with llama.rope.*
// GGUF tensors, per layer l: blk.l.{attn_norm, attn_q, attn_k, attn_v,
// attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}.weight; then
// token_embd.weight, output_norm.weight, (untied) output.weight and (Llama 3
// scaling) rope_freqs.weight: head_dim / 2 factors that divide the rotary
// frequencies.
#include "models/decoder.h"
#include "models/registry.h"

namespace qkv {
namespace {

struct LayerWeights {
  AttentionWeights att;  // wq: (q_dim rows, dim), wk, wv: (kv_dim rows, dim), wo: (dim rows, q_dim)
  GatedFfnWeights ffn;   // w_gate (llama2.c w1), w_up (w3): (hidden rows, dim); w_down (w2): (dim rows, hidden)
};

class Llama : public Decoder {
 public:
  explicit Llama(const WeightFile& wf) : Decoder(read_common_hparams(wf)) {
    if (auto rd = wf.get_uint("llama.rope.dimension_count"); rd && int64_t(*rd) != c_.head_dim)
      throw Error(cat(wf.path(), ": rope.dimension_count ", *rd, " differs from the head size ", c_.head_dim,
                      " (partial RoPE is not supported)"));
    check_vocab(wf);
    // Emitting BOS mid-text ends a story (llama2.c's story models, with their
    // SentencePiece vocabulary, separate stories so); Llama 3's BOS is not an end.
    c_.stop_on_bos = !wf.vocab() || wf.vocab()->model == VocabModel::Spm;
    TensorReader r(wf);
    for (int l = 0; l < c_.n_layers; ++l) layers_.push_back({read_attention(r, l), read_gated_ffn(r, l)});
    check_layer_count(r, "attn_q.weight");
    read_ends(r);
    if (r.has("rope_freqs.weight")) rope_freqs_ = r.vector("rope_freqs.weight", c_.head_dim / 2);
    n_params_ = r.n_params();
  }

  std::unique_ptr<RunState> new_state(int n_ctx, int n_batch, int n_threads, bool kv_f16) const override {
    return one_rope_state(n_ctx, n_batch, n_threads, kv_f16, nn::RopeStyle::Normal,
                          rope_freqs_ ? static_cast<const float*>(rope_freqs_->data) : nullptr);
  }

  // tokens[0, n) at positions [pos, pos + n): logits of the last (or every) token.
  void forward(RunState& rs, const int* tokens, int n, int pos, float* logits, bool all_logits,
               const ExecContext& ctx) const override {
    DecoderState& s = static_cast<DecoderState&>(rs);
    nn::embed(ctx, *tok_embd_, tokens, n, s.x.data());  // x: (n, dim)

    for (int l = 0; l < c_.n_layers; ++l) {
      const AttentionWeights& a = layers_[size_t(l)].att;

      // Attention: q, k, v = rmsnorm(x) Wq, Wk, Wv; rotate q and k; cache k, v;
      // attend; x += att_out Wo.
      nn::rmsnorm(ctx, *a.norm, s.x.data(), s.xb.data(), n, c_.rms_eps, l);
      // q: (n, q_dim), k, v: (n, kv_dim), as one job
      linear_group(ctx, {{a.wq, s.q.data()}, {a.wk, s.k.data()}, {a.wv, s.v.data()}}, s.xb.data(), n, l,
                   a.qkv_name.c_str());
      nn::rope(ctx, s.ropes[0], pos, n, l, s.q.data(), c_.n_heads, s.k.data(), c_.n_kv_heads);
      s.cache.store(ctx, l, pos, n, s.k.data(), s.v.data());
      s.cache.attend(ctx, l, pos, n, s.q.data(), s.att_out.data());  // att_out: (n, q_dim)
      linear(ctx, *a.wo, s.att_out.data(), s.xb2.data(), n, l);      // xb2: (n, dim)
      nn::add(ctx, s.x.data(), s.xb2.data(), n, c_.dim, l);

      // Feed-forward: x += W_down (silu(rmsnorm(x) W_gate) * (rmsnorm(x) W_up)).
      gated_ffn(ctx, s, layers_[size_t(l)].ffn, n, l, false);
    }
    classify(ctx, s, logits, n, all_logits);  // (1 or n, vocab)
  }

 private:
  const Tensor* rope_freqs_ = nullptr;  // (head_dim / 2) or none
  std::vector<LayerWeights> layers_;
};

}  // namespace

std::unique_ptr<Architecture> make_llama(const WeightFile& wf) { return std::make_unique<Llama>(wf); }

}  // namespace qkv
