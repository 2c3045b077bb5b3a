// Phi-3: Llama's block with the q, k and v projections fused into one matrix
// (attn_qkv) and the gate and up projections fused into one (ffn_up: gate
// rows first), RoPE on the two halves of each head (NEOX style). Like
// llama.cpp, the sliding_window key is read and not applied.
//
// GGUF keys: the common ones (runtime/architecture.h) under "phi3.".
// GGUF tensors, per layer l: blk.l.{attn_norm, attn_qkv, attn_output,
// ffn_norm, ffn_up, ffn_down}.weight; token_embd.weight, output_norm.weight
// and output.weight.
#include <algorithm>

#include "models/decoder.h"
#include "models/registry.h"

namespace qkv {
namespace {

struct LayerWeights {
  const Tensor* attn_norm;  // (dim)
  const Tensor* wqkv;       // (q_dim + 2 kv_dim rows, dim): q, then k, then v
  const Tensor* wo;         // (dim rows, q_dim)
  const Tensor* ffn_norm;   // (dim)
  const Tensor* w_gate_up;  // (2 hidden rows, dim): gate, then up
  const Tensor* w_down;     // (dim rows, hidden)
};

class Phi3 : public Decoder {
 public:
  explicit Phi3(const WeightFile& wf) : Decoder(read_common_hparams(wf)) {
    check_vocab(wf);
    c_.stop_on_bos = false;
    if (auto rd = wf.get_uint("phi3.rope.dimension_count"); rd && int64_t(*rd) != c_.head_dim)
      throw Error(cat(wf.path(), ": rope.dimension_count ", *rd, " differs from the head size ", c_.head_dim,
                      " (partial RoPE is not supported)"));
    if (wf.find("rope_factors_long.weight") || wf.find("rope_factors_short.weight"))
      throw Error(cat(wf.path(), ": Phi-3's long-context RoPE factors (rope_factors_long/short) are not supported yet"));
    TensorReader r(wf);
    const int64_t dim = c_.dim, hid = c_.hidden_dim, qd = c_.q_dim(), kvd = c_.kv_dim();
    for (int l = 0; l < c_.n_layers; ++l) {
      const std::string p = cat("blk.", l, ".");
      LayerWeights w;
      w.attn_norm = r.vector(p + "attn_norm.weight", dim);
      w.wqkv = r.matrix(p + "attn_qkv.weight", dim, qd + 2 * kvd);
      w.wo = r.matrix(p + "attn_output.weight", qd, dim);
      w.ffn_norm = r.vector(p + "ffn_norm.weight", dim);
      w.w_gate_up = r.matrix(p + "ffn_up.weight", dim, 2 * hid);
      w.w_down = r.matrix(p + "ffn_down.weight", hid, dim);
      matmuls_.insert(matmuls_.end(), {w.wqkv, w.wo, w.w_gate_up, w.w_down});
      layers_.push_back(w);
    }
    check_layer_count(r, "attn_qkv.weight");
    read_ends(r);
    n_params_ = r.n_params();
  }

  std::unique_ptr<RunState> new_state(int n_ctx, int n_batch, int n_threads, bool kv_f16) const override {
    const int fused = std::max(c_.q_dim() + 2 * c_.kv_dim(), 2 * c_.hidden_dim);
    return one_rope_state(n_ctx, n_batch, n_threads, kv_f16, nn::RopeStyle::Neox, nullptr, fused);
  }

  void forward(RunState& rs, const int* tokens, int n, int pos, float* logits, bool all_logits,
               const ExecContext& ctx) const override {
    DecoderState& s = static_cast<DecoderState&>(rs);
    const int dim = c_.dim;
    nn::embed(ctx, *tok_embd_, tokens, n, s.x.data());  // x: (n, dim)

    for (int l = 0; l < c_.n_layers; ++l) {
      const LayerWeights& w = layers_[size_t(l)];

      // Attention: [q k v] = rmsnorm(x) Wqkv, split; rotate q and k (NEOX);
      // cache k, v; attend; x += att_out Wo.
      nn::rmsnorm(ctx, *w.attn_norm, s.x.data(), s.xb.data(), n, c_.rms_eps, l);
      linear(ctx, *w.wqkv, s.xb.data(), s.fused.data(), n, l);  // fused: (n, q_dim + 2 kv_dim)
      nn::split_qkv(ctx, s.fused.data(), n, c_.q_dim(), c_.kv_dim(), s.q.data(), s.k.data(), s.v.data(), l);
      nn::rope(ctx, s.ropes[0], pos, n, l, s.q.data(), c_.n_heads, s.k.data(), c_.n_kv_heads);
      s.cache.store(ctx, l, pos, n, s.k.data(), s.v.data());
      s.cache.attend(ctx, l, pos, n, s.q.data(), s.att_out.data());  // att_out: (n, q_dim)
      linear(ctx, *w.wo, s.att_out.data(), s.xb2.data(), n, l);      // xb2: (n, dim)
      nn::add(ctx, s.x.data(), s.xb2.data(), n, dim, l);

      // Feed-forward: [gate up] = rmsnorm(x) W_gate_up; x += W_down (silu(gate) * up).
      nn::rmsnorm(ctx, *w.ffn_norm, s.x.data(), s.xb.data(), n, c_.rms_eps, l);
      linear(ctx, *w.w_gate_up, s.xb.data(), s.fused.data(), n, l);         // fused: (n, 2 hidden)
      nn::swiglu_split(ctx, s.fused.data(), s.hb.data(), n, c_.hidden_dim, l);  // hb: (n, hidden)
      linear(ctx, *w.w_down, s.hb.data(), s.xb2.data(), n, l);
      nn::add(ctx, s.x.data(), s.xb2.data(), n, dim, l);
    }

    classify(ctx, s, logits, n, all_logits);  // (1 or n, vocab)
  }

 private:
  std::vector<LayerWeights> layers_;
};

}  // namespace

std::unique_ptr<Architecture> make_phi3(const WeightFile& wf) { return std::make_unique<Phi3>(wf); }

}  // namespace qkv
