// Gemma 2 and Gemma 3: GeGLU feed-forward (tanh GELU), embeddings scaled by
// sqrt(dim), an RMSNorm after attention and after the feed-forward (on the
// branch, before the residual add), RoPE on the two halves of each head
// (NEOX style), and sliding-window (local) layers between global ones.
//  - Gemma 2: every other layer local (0, 2, ...); attention scores and the
//    final logits soft-capped (cap * tanh(x / cap)).
//  - Gemma 3: a per-head RMSNorm of q and k before RoPE; five local layers,
//    then a global one (sliding_window_pattern, default 6); local layers
//    rotate with their own base (rope.freq_base_swa, default 10000).
// The norm weights are stored as the converter writes them (1 + w) and are
// applied as a plain multiply.
//
// GGUF keys: the common ones (runtime/architecture.h) under "gemma2." or
// "gemma3.", with attention.key_length, attention.sliding_window and
// (Gemma 2) attn_logit_softcapping, final_logit_softcapping.
// GGUF tensors, per layer l: blk.l.{attn_norm, attn_q, attn_k, attn_v,
// [attn_q_norm, attn_k_norm,] attn_output, post_attention_norm, ffn_norm,
// ffn_gate, ffn_up, ffn_down, post_ffw_norm}.weight; token_embd.weight,
// output_norm.weight.
#include <cmath>

#include "models/decoder.h"
#include "models/registry.h"

namespace qkv {
namespace {

struct LayerWeights {
  AttentionWeights att;
  const Tensor *q_norm = nullptr, *k_norm = nullptr;  // (head_dim), Gemma 3
  const Tensor* post_attn_norm;                       // (dim)
  GatedFfnWeights ffn;                                // with its post_ffw_norm
  bool local;                                         // sliding-window layer
};

class Gemma : public Decoder {
 public:
  Gemma(const WeightFile& wf, int version) : Decoder(read_common_hparams(wf)) {
    check_vocab(wf);
    c_.stop_on_bos = false;
    const std::string a = c_.arch + ".";
    if (auto sw = wf.get_uint(a + "attention.sliding_window")) window_ = int(std::min<uint64_t>(*sw, 1u << 30));
    int pattern = version == 2 ? 2 : 6;  // llama.cpp's defaults
    if (auto p = wf.get_uint(a + "attention.sliding_window_pattern")) pattern = int(std::min<uint64_t>(*p, 1u << 20));
    if (version == 3) {
      if (auto b = wf.get_float(a + "rope.freq_base_swa")) local_base_ = float(*b);
      if (!(local_base_ > 0.0f) || !std::isfinite(local_base_))
        throw Error(cat(wf.path(), ": rope.freq_base_swa ", local_base_, " is not a positive number"));
    } else {
      local_base_ = c_.rope_base;
      if (auto cap = wf.get_float(a + "attn_logit_softcapping")) attn_softcap_ = float(*cap);
      if (auto cap = wf.get_float(a + "final_logit_softcapping")) final_softcap_ = float(*cap);
      if (!(attn_softcap_ >= 0.0f) || !(final_softcap_ >= 0.0f) || !std::isfinite(attn_softcap_) ||
          !std::isfinite(final_softcap_))
        throw Error(cat(wf.path(), ": soft-capping values must be non-negative numbers"));
    }
    TensorReader r(wf);
    for (int l = 0; l < c_.n_layers; ++l) {
      const std::string p = cat("blk.", l, ".");
      LayerWeights w;
      w.att = read_attention(r, l);
      if (version == 3) {
        w.q_norm = r.vector(p + "attn_q_norm.weight", c_.head_dim);
        w.k_norm = r.vector(p + "attn_k_norm.weight", c_.head_dim);
      }
      w.post_attn_norm = r.vector(p + "post_attention_norm.weight", c_.dim);
      w.ffn = read_gated_ffn(r, l);
      w.ffn.post = r.vector(p + "post_ffw_norm.weight", c_.dim);
      // llama.cpp's set_swa_pattern: layer l is local unless l % pattern == pattern - 1.
      w.local = window_ > 0 && (pattern == 0 || l % pattern < pattern - 1);
      layers_.push_back(w);
    }
    check_layer_count(r, "attn_q.weight");
    read_ends(r);
    n_params_ = r.n_params();
  }

  std::unique_ptr<RunState> new_state(int n_ctx, int n_batch, int n_threads, bool kv_f16) const override {
    auto s = std::make_unique<DecoderState>(c_, n_ctx, n_batch, n_threads, kv_f16);
    s->ropes.emplace_back(c_.head_dim, c_.rope_base, n_batch, nn::RopeStyle::Neox);   // global layers
    s->ropes.emplace_back(c_.head_dim, local_base_, n_batch, nn::RopeStyle::Neox);    // local layers
    return s;
  }

  void forward(RunState& rs, const int* tokens, int n, int pos, float* logits, bool all_logits,
               const ExecContext& ctx) const override {
    DecoderState& s = static_cast<DecoderState&>(rs);
    nn::embed(ctx, *tok_embd_, tokens, n, s.x.data());  // x: (n, dim)
    nn::scale(ctx, s.x.data(), n, c_.dim, std::sqrt(float(c_.dim)), -1);

    for (int l = 0; l < c_.n_layers; ++l) {
      const LayerWeights& w = layers_[size_t(l)];
      const AttentionWeights& a = w.att;
      AttentionOptions att;
      att.window = w.local ? window_ : 0;
      att.softcap = attn_softcap_;

      // Attention: q, k, v = rmsnorm(x) Wq, Wk, Wv; (Gemma 3) each head of q
      // and k RMS-normed; rotate (NEOX, the local or global base); cache k, v;
      // attend (local layers: the last `window` positions);
      // x += rmsnorm(att_out Wo).
      nn::rmsnorm(ctx, *a.norm, s.x.data(), s.xb.data(), n, c_.rms_eps, l);
      linear_group(ctx, {{a.wq, s.q.data()}, {a.wk, s.k.data()}, {a.wv, s.v.data()}}, s.xb.data(), n, l,
                   a.qkv_name.c_str());
      if (w.q_norm) {
        nn::rmsnorm_heads(ctx, *w.q_norm, s.q.data(), n, c_.n_heads, c_.rms_eps, l);     // q: (n, q_dim)
        nn::rmsnorm_heads(ctx, *w.k_norm, s.k.data(), n, c_.n_kv_heads, c_.rms_eps, l);  // k: (n, kv_dim)
      }
      nn::rope(ctx, s.ropes[w.local ? 1 : 0], pos, n, l, s.q.data(), c_.n_heads, s.k.data(), c_.n_kv_heads);
      s.cache.store(ctx, l, pos, n, s.k.data(), s.v.data());
      s.cache.attend(ctx, l, pos, n, s.q.data(), s.att_out.data(), att);  // att_out: (n, q_dim)
      linear(ctx, *a.wo, s.att_out.data(), s.xb2.data(), n, l);           // xb2: (n, dim)
      nn::rmsnorm(ctx, *w.post_attn_norm, s.xb2.data(), s.xb2.data(), n, c_.rms_eps, l);
      nn::add(ctx, s.x.data(), s.xb2.data(), n, c_.dim, l);

      // Feed-forward: x += rmsnorm(W_down (gelu(rmsnorm(x) W_gate) * (rmsnorm(x) W_up))).
      gated_ffn(ctx, s, w.ffn, n, l, true);
    }
    classify(ctx, s, logits, n, all_logits);  // (1 or n, vocab)
    const int rows = all_logits ? n : 1;
    if (final_softcap_ > 0.0f) nn::softcap(ctx, logits, rows, c_.vocab_size, final_softcap_, -1);
  }

 private:
  int window_ = 0;          // sliding window of the local layers (0: none)
  float local_base_ = 10000.0f;
  float attn_softcap_ = 0.0f, final_softcap_ = 0.0f;
  std::vector<LayerWeights> layers_;
};

}  // namespace

std::unique_ptr<Architecture> make_gemma2(const WeightFile& wf) { return std::make_unique<Gemma>(wf, 2); }
std::unique_ptr<Architecture> make_gemma3(const WeightFile& wf) { return std::make_unique<Gemma>(wf, 3); }

}  // namespace qkv
