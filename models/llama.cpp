// Llama: RMSNorm, RoPE on adjacent pairs, grouped-query attention with a KV
// cache, SwiGLU feed-forward, tied or untied classifier. Built from ops only.
#include <cmath>
#include <memory>
#include <vector>

#include "engine/architecture.h"
#include "engine/error.h"
#include "engine/kv_cache.h"
#include "engine/linear.h"
#include "engine/profiler.h"

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
};

// hb[m, r] = silu(hb[m, r]) * hb2[m, r] for the rows r0..r1 of every token.
struct SwigluRows {
  const ops::Kernels* k;
  float* hb;
  const float* hb2;
  size_t hidden;
  int n;
  static void apply(const void* self, size_t r0, size_t r1) {
    const SwigluRows& s = *static_cast<const SwigluRows*>(self);
    for (int m = 0; m < s.n; ++m) s.k->swiglu(s.hb + size_t(m) * s.hidden + r0, s.hb2 + size_t(m) * s.hidden + r0, r1 - r0);
  }
};

// Activations for a batch of up to n_batch tokens, and the KV cache.
struct LlamaState : RunState {
  LlamaState(const ModelConfig& c, int n_ctx, int n_batch, int n_threads, bool kv_f16)
      : cache(c.n_layers, n_ctx, c.kv_dim(), kv_f16),
        x(size_t(n_batch) * size_t(c.dim)),
        xb(x.size()),
        xb2(x.size()),
        q(size_t(n_batch) * size_t(c.q_dim())),
        k(size_t(n_batch) * size_t(c.kv_dim())),
        v(k.size()),
        att_out(q.size()),
        hb(size_t(n_batch) * size_t(c.hidden_dim)),
        hb2(hb.size()),
        rope_cos(size_t(n_batch) * size_t(c.head_dim / 2)),
        rope_sin(rope_cos.size()),
        probs(size_t(c.n_heads) * size_t(n_ctx)),
        scores(kv_f16 ? size_t(n_threads) * size_t(n_ctx) : 0),
        n_ctx(n_ctx) {}

  KVCache cache;
  std::vector<float> x;        // (n, dim) residual stream
  std::vector<float> xb, xb2;  // (n, dim)
  std::vector<float> q;        // (n, q_dim)
  std::vector<float> k, v;     // (n, kv_dim)
  std::vector<float> att_out;  // (n, q_dim)
  std::vector<float> hb, hb2;  // (n, hidden)
  std::vector<float> rope_cos, rope_sin;  // (n, head_dim / 2)
  std::vector<float> probs;    // (n_heads, n_ctx) attention capture, one token at a time
  std::vector<float> scores;   // (threads, n_ctx) score rows of the f16-cache attention
  int n_ctx;
};

class Llama : public Architecture {
 public:
  explicit Llama(const WeightFile& wf) : c_(wf.config()) {
    const int64_t dim = c_.dim, hid = c_.hidden_dim, qd = c_.q_dim(), kvd = c_.kv_dim();
    if (c_.head_dim % 2) throw Error(cat(wf.path(), ": head size ", c_.head_dim, " is odd; RoPE needs pairs"));
    if (c_.vocab_size <= 0) throw Error(cat(wf.path(), ": no vocabulary size (missing token_embd.weight?)"));
    auto req = [&](const std::string& name, std::vector<int64_t> shape) {
      const Tensor* t = &wf.require(name, shape);
      n_params_ += t->n_elements();
      return t;
    };
    tok_embd_ = req("token_embd.weight", {dim, c_.vocab_size});
    for (int l = 0; l < c_.n_layers; ++l) {
      const std::string p = cat("blk.", l, ".");
      LayerWeights w;
      w.attn_norm = req(p + "attn_norm.weight", {dim});
      w.wq = req(p + "attn_q.weight", {dim, qd});
      w.wk = req(p + "attn_k.weight", {dim, kvd});
      w.wv = req(p + "attn_v.weight", {dim, kvd});
      w.wo = req(p + "attn_output.weight", {qd, dim});
      w.ffn_norm = req(p + "ffn_norm.weight", {dim});
      w.w_gate = req(p + "ffn_gate.weight", {dim, hid});
      w.w_up = req(p + "ffn_up.weight", {dim, hid});
      w.w_down = req(p + "ffn_down.weight", {hid, dim});
      for (const Tensor* t : {w.attn_norm, w.ffn_norm})
        if (t->type != DType::F32) throw Error(cat(wf.path(), ": norm weight ", t->name, " must be F32"));
      layers_.push_back(w);
    }
    if (wf.find(cat("blk.", c_.n_layers, ".attn_q.weight")))
      throw Error(cat(wf.path(), ": has tensors for more than block_count = ", c_.n_layers, " layers"));
    out_norm_ = req("output_norm.weight", {dim});
    if (out_norm_->type != DType::F32) throw Error(cat(wf.path(), ": output_norm.weight must be F32"));
    output_ = wf.find("output.weight") ? req("output.weight", {dim, c_.vocab_size}) : tok_embd_;
    // theta_i = base^(-2i / head_dim), as llama2.c computes it.
    for (int i = 0; i < c_.head_dim; i += 2)
      freqs_.push_back(1.0f / std::pow(c_.rope_base, float(i) / float(c_.head_dim)));
  }

  const ModelConfig& config() const override { return c_; }
  int64_t n_params() const override { return n_params_; }
  bool tied_output() const override { return output_ == tok_embd_; }
  std::string weight_type() const override { return layers_.empty() ? "F32" : type_name(layers_[0].wq->type); }

  std::unique_ptr<RunState> new_state(int n_ctx, int n_batch, int n_threads, bool kv_f16) const override {
    return std::make_unique<LlamaState>(c_, n_ctx, n_batch, n_threads, kv_f16);
  }

  void forward(RunState& rs, const int* tokens, int n, int pos, float* logits, bool all_logits,
               const ExecContext& ctx) const override;

 private:
  static std::string type_name(DType t) { return dtype_name(uint32_t(t)); }

  void attention(LlamaState& s, int layer, int n, int pos, const ExecContext& ctx) const;

  std::vector<const Tensor*> matmul_weights() const override {
    std::vector<const Tensor*> w;
    for (const LayerWeights& l : layers_) w.insert(w.end(), {l.wq, l.wk, l.wv, l.wo, l.w_gate, l.w_up, l.w_down});
    w.push_back(output_);
    return w;
  }
  std::vector<const Tensor*> row_read_weights() const override { return {tok_embd_}; }

  ModelConfig c_;
  const Tensor* tok_embd_ = nullptr;
  const Tensor* out_norm_ = nullptr;
  const Tensor* output_ = nullptr;
  std::vector<LayerWeights> layers_;
  std::vector<float> freqs_;  // (head_dim / 2)
  int64_t n_params_ = 0;
};

// Causal attention of the n batch tokens (at positions pos..pos+n-1) over the
// cache, one (token, head) pair per task. Query head h reads KV head
// h / (n_heads / n_kv_heads).
void Llama::attention(LlamaState& s, int layer, int n, int pos, const ExecContext& ctx) const {
  const int hd = c_.head_dim, nh = c_.n_heads, group = c_.n_heads / c_.n_kv_heads, kvd = c_.kv_dim();
  const float scale = 1.0f / std::sqrt(float(hd));
  const float* kc = s.cache.f16 ? nullptr : s.cache.key(layer, 0);
  const float* vc = s.cache.f16 ? nullptr : s.cache.value(layer, 0);
  // Work: QK^T, softmax and AV for every (token, head) over its visible positions.
  const double positions = double(n) * (double(pos) + 0.5 * double(n + 1));  // sum of (pos + i + 1)
  const Zone z(ctx.prof, Op::Attention, layer, double(nh) * positions * (4.0 * hd + 5.0),
               positions * 2.0 * kvd * 4.0 + 2.0 * double(n) * c_.q_dim() * 4.0, nullptr,
               ZoneShape{n, nh, hd});
  // Query head h of token i over positions 0..pos+i on thread t; probs (or
  // null) receives the probabilities.
  auto head = [&](int i, int h, float* probs, int t) {
    const int kvh = h / group;
    const float* q = s.q.data() + size_t(i) * c_.q_dim() + size_t(h) * hd;
    float* out = s.att_out.data() + size_t(i) * c_.q_dim() + size_t(h) * hd;
    const size_t n_pos = size_t(pos + i + 1);
    if (s.cache.f16) {
      float* att = probs ? probs : s.scores.data() + size_t(t) * size_t(s.n_ctx);
      ctx.k.attention_f16(q, s.cache.key16(layer, 0) + size_t(kvh) * hd, s.cache.value16(layer, 0) + size_t(kvh) * hd,
                          size_t(kvd), size_t(hd), n_pos, scale, att, out);
    } else {
      ctx.k.attention(q, kc + size_t(kvh) * hd, vc + size_t(kvh) * hd, size_t(kvd), size_t(hd), n_pos, scale, probs, out);
    }
  };
  const size_t grain = size_t(1 + 4096 / (size_t(pos + 1) * size_t(hd)));
  const AttentionCapture* cap = ctx.capture;
  if (!cap || !cap->wants_layer(layer)) {
    // Task j is (token j / nh, head j % nh). Token i's tasks read pos + i + 1
    // positions each, so with a batch, equal counts of tasks are unequal
    // work: there the threads get runs of whole tokens of about equal cost.
    const size_t tasks = size_t(n) * size_t(nh);
    const size_t parts = std::min(size_t(ctx.n_threads), std::max(size_t(1), tasks / grain));
    if (size_t(n) < 2 * parts) {
      ctx.pool.parallel_for(
          tasks,
          [&](size_t b, size_t e, int t) {
            for (size_t j = b; j < e; ++j) head(int(j / size_t(nh)), int(j % size_t(nh)), nullptr, t);
          },
          grain, ctx.n_threads);
      return;
    }
    // Cost of tokens 0..i-1 (in positions; the same for every head).
    auto cost = [&](size_t i) { return double(i) * double(pos + 1) + 0.5 * double(i) * double(i - 1); };
    auto first_token = [&](size_t p) {  // of part p: the first token whose cost before it reaches p / parts
      const double target = cost(size_t(n)) * double(p) / double(parts);
      size_t lo = 0, hi = size_t(n);
      while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (cost(mid) < target) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    ctx.pool.parallel_for(
        parts,
        [&](size_t b, size_t e, int t) {
          for (size_t i = first_token(b); i < first_token(e); ++i)
            for (int h = 0; h < nh; ++h) head(int(i), h, nullptr, t);
        },
        1, ctx.n_threads);
    return;
  }
  // Capture: one token at a time, so a row per head is enough; the same
  // kernel computes the same values, and also writes the probabilities.
  for (int i = 0; i < n; ++i) {
    ctx.pool.parallel_for(
        size_t(nh),
        [&](size_t b, size_t e, int t) {
          for (size_t h = b; h < e; ++h)
            head(i, int(h), cap->wants_head(int(h)) ? s.probs.data() + h * size_t(s.n_ctx) : nullptr, t);
        },
        grain, ctx.n_threads);
    for (int h = 0; h < nh; ++h) {
      if (!cap->wants_head(h)) continue;
      AttentionRow row;
      row.layer = layer;
      row.head = h;
      row.kv_head = h / group;
      row.position = pos + i;
      row.probs = s.probs.data() + size_t(h) * size_t(s.n_ctx);
      row.q = s.q.data() + size_t(i) * c_.q_dim() + size_t(h) * hd;
      row.k = kc ? kc + size_t(row.kv_head) * hd : nullptr;  // null with an f16 cache
      row.k_stride = size_t(kvd);
      row.head_dim = hd;
      row.scale = scale;
      cap->callback(row);
    }
  }
}

void Llama::forward(RunState& rs, const int* tokens, int n, int pos, float* logits, bool all_logits,
                    const ExecContext& ctx) const {
  LlamaState& s = static_cast<LlamaState&>(rs);
  const ops::Kernels& k = ctx.k;
  Profiler* const prof = ctx.prof;
  const size_t dim = size_t(c_.dim), qd = size_t(c_.q_dim()), kvd = size_t(c_.kv_dim());
  const size_t hid = size_t(c_.hidden_dim), half = size_t(c_.head_dim / 2);
  const double N = n, D = double(dim), F = 4.0;  // F: bytes per float

  {
    const Zone z(prof, Op::Embedding, -1, 0.0, N * D * (double(dtype_size(tok_embd_->type)) + F), nullptr,
                 ZoneShape{n, int64_t(dim), 0});
    for (int i = 0; i < n; ++i) {
      embedding_row(ctx, *tok_embd_, tokens[i], s.x.data() + size_t(i) * dim);
      for (size_t j = 0; j < half; ++j) {
        const float angle = float(pos + i) * freqs_[j];
        s.rope_cos[size_t(i) * half + j] = std::cos(angle);
        s.rope_sin[size_t(i) * half + j] = std::sin(angle);
      }
    }
  }

  // xb[i] = rmsnorm(x[i]) * w for every token of the batch
  auto rmsnorm_rows = [&](const Tensor& w, int layer, int first) {
    const Zone z(prof, Op::Rmsnorm, layer, 4.0 * (n - first) * D, (2.0 * (n - first) + 1.0) * D * F, nullptr,
                 ZoneShape{n - first, int64_t(dim), 0});
    const float* wp = static_cast<const float*>(w.data);
    for (int i = first; i < n; ++i) k.rmsnorm(s.xb.data() + i * dim, s.x.data() + i * dim, wp, dim, c_.rms_eps);
  };
  // x[i] += xb2[i]: the residual connection
  auto residual = [&](int layer) {
    const Zone z(prof, Op::Add, layer, N * D, 3.0 * N * D * F, nullptr, ZoneShape{n, int64_t(dim), 0});
    for (int i = 0; i < n; ++i) k.add(s.x.data() + i * dim, s.xb2.data() + i * dim, dim);
  };

  for (int l = 0; l < c_.n_layers; ++l) {
    const LayerWeights& w = layers_[size_t(l)];

    // Attention block: q, k, v = rmsnorm(x) Wq, Wk, Wv; rotate q and k; cache k, v
    rmsnorm_rows(*w.attn_norm, l, 0);
    const QuantizedInput xq = quantize_input(ctx, {w.wq, w.wk, w.wv}, s.xb.data(), n, l);  // once for the three
    linear(ctx, *w.wq, s.xb.data(), s.q.data(), n, l, nullptr, &xq);
    linear(ctx, *w.wk, s.xb.data(), s.k.data(), n, l, nullptr, &xq);
    linear(ctx, *w.wv, s.xb.data(), s.v.data(), n, l, nullptr, &xq);
    {
      const Zone z(prof, Op::Rope, l, 3.0 * N * double(qd + kvd), 2.0 * N * double(qd + kvd) * F, nullptr,
                   ZoneShape{n, int64_t(qd + kvd), 0});
      for (int i = 0; i < n; ++i) {
        const float* cs = s.rope_cos.data() + size_t(i) * half;
        const float* sn = s.rope_sin.data() + size_t(i) * half;
        ops::rope(s.q.data() + i * qd, size_t(c_.n_heads), size_t(c_.head_dim), cs, sn);
        ops::rope(s.k.data() + i * kvd, size_t(c_.n_kv_heads), size_t(c_.head_dim), cs, sn);
      }
    }
    {
      const Zone z(prof, Op::KvStore, l, 0.0, 4.0 * N * double(kvd) * F, nullptr, ZoneShape{n, int64_t(kvd), 0});
      for (int i = 0; i < n; ++i) {
        if (s.cache.f16) {
          uint16_t* kd = s.cache.key16(l, pos + i);
          uint16_t* vd = s.cache.value16(l, pos + i);
          for (size_t j = 0; j < kvd; ++j) {
            kd[j] = ops::f32_to_f16(s.k[i * kvd + j]);
            vd[j] = ops::f32_to_f16(s.v[i * kvd + j]);
          }
        } else {
          std::copy_n(s.k.data() + i * kvd, kvd, s.cache.key(l, pos + i));
          std::copy_n(s.v.data() + i * kvd, kvd, s.cache.value(l, pos + i));
        }
      }
    }
    attention(s, l, n, pos, ctx);
    linear(ctx, *w.wo, s.att_out.data(), s.xb2.data(), n, l);
    residual(l);

    // Feed-forward block: x += W_down (silu(xb W_gate) * (xb W_up))
    rmsnorm_rows(*w.ffn_norm, l, 0);
    // SwiGLU is fused into the up projection: each thread applies it to the
    // rows it has just computed, hb = silu(hb) * hb2, while they are in cache.
    const QuantizedInput xq_ffn = quantize_input(ctx, {w.w_gate, w.w_up}, s.xb.data(), n, l);
    linear(ctx, *w.w_gate, s.xb.data(), s.hb.data(), n, l, nullptr, &xq_ffn);
    const SwigluRows sw{&k, s.hb.data(), s.hb2.data(), hid, n};
    const RowEpilogue swiglu{SwigluRows::apply, &sw};
    linear(ctx, *w.w_up, s.xb.data(), s.hb2.data(), n, l, &swiglu, &xq_ffn);
    linear(ctx, *w.w_down, s.hb.data(), s.xb2.data(), n, l);
    residual(l);
  }

  // Classifier: logits of the last token, or of all of them.
  const int first = all_logits ? 0 : n - 1;
  rmsnorm_rows(*out_norm_, -1, first);
  linear(ctx, *output_, s.xb.data() + size_t(first) * dim, logits, n - first, -1);
}

std::unique_ptr<Architecture> make_llama(const WeightFile& wf) { return std::make_unique<Llama>(wf); }

}  // namespace

void register_llama() { register_architecture("llama", make_llama); }

}  // namespace qkv
