// GPT-2: learned position embeddings added to the token embeddings, no RoPE;
// LayerNorm with bias before attention and before the feed-forward; q, k and
// v from one fused projection with bias; a GELU feed-forward (up, gelu, down)
// with biases; biases on the output projection too.
//
// GGUF keys: "gpt2." embedding_length, feed_forward_length, block_count,
// attention.head_count, context_length (the learned positions),
// attention.layer_norm_epsilon.
// GGUF tensors: token_embd.weight, position_embd.weight (dim x
// context_length, F32); per layer l: blk.l.{attn_norm, ffn_norm}.{weight,bias},
// blk.l.{attn_qkv, attn_output, ffn_up, ffn_down}.{weight,bias};
// output_norm.{weight,bias}, (untied) output.weight.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "models/decoder.h"
#include "models/registry.h"

namespace qkv {
namespace {

struct LayerWeights {
  const Tensor *attn_norm, *attn_norm_b;  // (dim)
  const Tensor *wqkv, *bqkv;              // (q_dim + 2 kv_dim rows, dim), (q_dim + 2 kv_dim)
  const Tensor *wo, *bo;                  // (dim rows, q_dim), (dim)
  const Tensor *ffn_norm, *ffn_norm_b;    // (dim)
  const Tensor *w_up, *b_up;              // (hidden rows, dim), (hidden)
  const Tensor *w_down, *b_down;          // (dim rows, hidden), (dim)
};

struct Gpt2State : DecoderState {
  using DecoderState::DecoderState;
  std::vector<int> positions;  // (n_batch): the rows of position_embd to add
};

class Gpt2 : public Decoder {
 public:
  explicit Gpt2(const WeightFile& wf) : Decoder(read_common_hparams(wf)) {
    if (c_.vocab_size <= 0) throw Error(cat(wf.path(), ": no vocabulary size (missing token_embd.weight?)"));
    c_.stop_on_bos = false;
    if (auto eps = wf.get_float("gpt2.attention.layer_norm_epsilon")) norm_eps_ = float(*eps);
    if (!(norm_eps_ >= 0.0f) || !std::isfinite(norm_eps_))
      throw Error(cat(wf.path(), ": layer_norm_epsilon ", norm_eps_, " is not a non-negative number"));
    TensorReader r(wf);
    const int64_t dim = c_.dim, hid = c_.hidden_dim, qd = c_.q_dim(), kvd = c_.kv_dim();
    pos_embd_ = r.matrix("position_embd.weight", dim, c_.context_length);
    if (pos_embd_->type != Type::F32 && pos_embd_->type != Type::F16)
      throw Error(cat(wf.path(), ": position_embd.weight must be F32 or F16"));
    for (int l = 0; l < c_.n_layers; ++l) {
      const std::string p = cat("blk.", l, ".");
      LayerWeights w;
      w.attn_norm = r.vector(p + "attn_norm.weight", dim);
      w.attn_norm_b = r.vector(p + "attn_norm.bias", dim);
      w.wqkv = r.matrix(p + "attn_qkv.weight", dim, qd + 2 * kvd);
      w.bqkv = r.vector(p + "attn_qkv.bias", qd + 2 * kvd);
      w.wo = r.matrix(p + "attn_output.weight", qd, dim);
      w.bo = r.vector(p + "attn_output.bias", dim);
      w.ffn_norm = r.vector(p + "ffn_norm.weight", dim);
      w.ffn_norm_b = r.vector(p + "ffn_norm.bias", dim);
      w.w_up = r.matrix(p + "ffn_up.weight", dim, hid);
      w.b_up = r.vector(p + "ffn_up.bias", hid);
      w.w_down = r.matrix(p + "ffn_down.weight", hid, dim);
      w.b_down = r.vector(p + "ffn_down.bias", dim);
      matmuls_.insert(matmuls_.end(), {w.wqkv, w.wo, w.w_up, w.w_down});
      layers_.push_back(w);
    }
    check_layer_count(r, "attn_qkv.weight");
    read_ends(r);
    out_norm_b_ = r.vector("output_norm.bias", dim);
    n_params_ = r.n_params();
  }

  std::unique_ptr<RunState> new_state(int n_ctx, int n_batch, int n_threads, bool kv_f16) const override {
    if (n_ctx > c_.context_length)
      throw Error(cat("GPT-2 learned ", c_.context_length, " positions (position_embd.weight); a context of ", n_ctx,
                      " tokens needs more (use -c ", c_.context_length, " or less)"),
                  Errc::InvalidArgument);
    auto s = std::make_unique<Gpt2State>(c_, n_ctx, n_batch, n_threads, kv_f16, c_.q_dim() + 2 * c_.kv_dim());
    s->positions.resize(size_t(n_batch));
    return s;
  }

  void forward(RunState& rs, const int* tokens, int n, int pos, float* logits, bool all_logits,
               const ExecContext& ctx) const override {
    Gpt2State& s = static_cast<Gpt2State&>(rs);
    const int dim = c_.dim;
    // x = token_embd[tokens] + position_embd[pos .. pos + n): (n, dim)
    nn::embed(ctx, *tok_embd_, tokens, n, s.x.data());
    std::iota(s.positions.begin(), s.positions.begin() + n, pos);
    nn::embed(ctx, *pos_embd_, s.positions.data(), n, s.xb.data());
    nn::add(ctx, s.x.data(), s.xb.data(), n, dim, -1);

    for (int l = 0; l < c_.n_layers; ++l) {
      const LayerWeights& w = layers_[size_t(l)];

      // Attention: [q k v] = layernorm(x) Wqkv + bqkv, split; cache k, v;
      // attend; x += att_out Wo + bo.
      nn::layernorm(ctx, *w.attn_norm, w.attn_norm_b, s.x.data(), s.xb.data(), n, norm_eps_, l);
      linear(ctx, *w.wqkv, s.xb.data(), s.fused.data(), n, l);  // fused: (n, q_dim + 2 kv_dim)
      nn::add_bias(ctx, *w.bqkv, s.fused.data(), n, l);
      nn::split_qkv(ctx, s.fused.data(), n, c_.q_dim(), c_.kv_dim(), s.q.data(), s.k.data(), s.v.data(), l);
      s.cache.store(ctx, l, pos, n, s.k.data(), s.v.data());
      s.cache.attend(ctx, l, pos, n, s.q.data(), s.att_out.data());  // att_out: (n, q_dim)
      linear(ctx, *w.wo, s.att_out.data(), s.xb2.data(), n, l);      // xb2: (n, dim)
      nn::add_bias(ctx, *w.bo, s.xb2.data(), n, l);
      nn::add(ctx, s.x.data(), s.xb2.data(), n, dim, l);

      // Feed-forward: x += W_down gelu(layernorm(x) W_up + b_up) + b_down.
      nn::layernorm(ctx, *w.ffn_norm, w.ffn_norm_b, s.x.data(), s.xb.data(), n, norm_eps_, l);
      linear(ctx, *w.w_up, s.xb.data(), s.hb.data(), n, l);  // hb: (n, hidden)
      nn::add_bias(ctx, *w.b_up, s.hb.data(), n, l);
      nn::gelu(ctx, s.hb.data(), n, c_.hidden_dim, l);
      linear(ctx, *w.w_down, s.hb.data(), s.xb2.data(), n, l);
      nn::add_bias(ctx, *w.b_down, s.xb2.data(), n, l);
      nn::add(ctx, s.x.data(), s.xb2.data(), n, dim, l);
    }

    const int first = all_logits ? 0 : n - 1;
    const size_t off = size_t(first) * size_t(dim);
    nn::layernorm(ctx, *out_norm_, out_norm_b_, s.x.data() + off, s.xb.data() + off, n - first, norm_eps_, -1);
    linear(ctx, *output_, s.xb.data() + off, logits, n - first, -1);  // (n - first, vocab)
  }

 private:
  float norm_eps_ = 1e-5f;
  const Tensor* pos_embd_ = nullptr;    // (context_length rows, dim)
  const Tensor* out_norm_b_ = nullptr;  // (dim)
  std::vector<LayerWeights> layers_;
};

}  // namespace

std::unique_ptr<Architecture> make_gpt2(const WeightFile& wf) { return std::make_unique<Gpt2>(wf); }

}  // namespace qkv
