// llama2.c formats: the v0 model checkpoint (.bin) and tokenizer.bin.
//
// Checkpoint: 7 x int32 header (dim, hidden_dim, n_layers, n_heads,
// n_kv_heads, vocab_size, seq_len), then fp32 arrays in run.c's order:
//   token_embedding (vocab, dim), rms_att (L, dim), wq (L, dim, dim),
//   wk (L, kv_dim, dim), wv (L, kv_dim, dim), wo (L, dim, dim),
//   rms_ffn (L, dim), w1 (L, hidden, dim), w2 (L, dim, hidden),
//   w3 (L, hidden, dim), rms_final (dim), freq_cis_real and freq_cis_imag
//   (seq_len, head_dim/2 each; unused), then wcls (vocab, dim) only when
//   vocab_size is negative (untied classifier).
#include <cstring>
#include <iomanip>
#include <limits>
#include <map>

#include "engine/error.h"
#include "engine/format/mapped_file.h"
#include "engine/format/weight_file.h"

namespace qkv {
namespace {

class Llama2cFile : public WeightFile {
 public:
  Llama2cFile(const std::string& path, bool use_mmap) : file_(path, use_mmap) {
    path_ = path;
    format_ = "llama2.c";
    ByteReader r(file_.data(), file_.size(), path);
    int32_t h[7];
    const char* names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    for (int i = 0; i < 7; ++i) h[i] = r.read<int32_t>(names[i]);
    for (int i = 0; i < 7; ++i) {
      if (i == 5 ? h[i] == 0 || h[i] == std::numeric_limits<int32_t>::min() : h[i] <= 0)
        throw Error(cat(path, ": header field ", names[i], " = ", h[i], " is invalid (not a llama2.c checkpoint?)"));
    }
    // The header as the keys llama.cpp's converter writes (llama2.c models
    // use RoPE base 10000 and RMSNorm epsilon 1e-5).
    arch_ = "llama";
    const int64_t dim = h[0], hidden = h[1], n_layers = h[2], n_heads = h[3], n_kv_heads = h[4];
    const int64_t vocab = h[5] < 0 ? -int64_t(h[5]) : h[5], seq_len = h[6];
    const bool tied = h[5] > 0;
    meta_ = {{"llama.embedding_length", double(dim)},     {"llama.feed_forward_length", double(hidden)},
             {"llama.block_count", double(n_layers)},     {"llama.attention.head_count", double(n_heads)},
             {"llama.attention.head_count_kv", double(n_kv_heads)}, {"llama.context_length", double(seq_len)},
             {"llama.vocab_size", double(vocab)},         {"llama.rope.freq_base", 10000.0},
             {"llama.attention.layer_norm_rms_epsilon", double(1e-5f)}};
    if (dim % n_heads != 0) throw Error(cat(path, ": dim ", dim, " is not divisible by n_heads ", n_heads));
    if (n_kv_heads > n_heads || n_heads % n_kv_heads != 0)
      throw Error(cat(path, ": n_heads ", n_heads, " is not a multiple of n_kv_heads ", n_kv_heads));
    const int64_t head_dim = dim / n_heads, kv_dim = n_kv_heads * head_dim;

    // Expected size, in floats, with overflow-safe arithmetic.
    const long double D = dim, hid = hidden, L = n_layers, V = vocab, kv = kv_dim, seq = seq_len, hd = head_dim;
    const long double total = V * D * (tied ? 1 : 2) + L * D * 2 + L * D * D * 2 + L * D * kv * 2 + L * D * hid * 3 +
                              D + seq * hd;
    const long double expect = 28.0L + 4.0L * total;
    if (expect != (long double)file_.size())
      throw Error(cat(path, ": size ", file_.size(), " bytes does not match its header (dim ", dim, ", hidden ",
                      hidden, ", layers ", n_layers, ", heads ", n_heads, "/", n_kv_heads, ", vocab ",
                      h[5], ", seq_len ", seq_len, " imply ", std::fixed, std::setprecision(0), expect,
                      " bytes)"));

    const float* p = reinterpret_cast<const float*>(file_.data() + 28);
    auto take = [&](const std::string& name, int64_t ne0, int64_t ne1) {
      Tensor t;
      t.name = name;
      t.type = Type::F32;
      t.n_dims = ne1 == 1 ? 1 : 2;
      t.ne[0] = ne0;
      t.ne[1] = ne1;
      t.data = p;
      p += ne0 * ne1;
      add(std::move(t));
    };
    auto per_layer = [&](const char* name, int64_t ne0, int64_t ne1) {
      for (int64_t l = 0; l < n_layers; ++l) take(cat("blk.", l, ".", name), ne0, ne1);
    };
    take("token_embd.weight", dim, vocab);
    per_layer("attn_norm.weight", dim, 1);
    per_layer("attn_q.weight", dim, dim);
    per_layer("attn_k.weight", dim, kv_dim);
    per_layer("attn_v.weight", dim, kv_dim);
    per_layer("attn_output.weight", dim, dim);
    per_layer("ffn_norm.weight", dim, 1);
    per_layer("ffn_gate.weight", dim, hidden);
    per_layer("ffn_down.weight", hidden, dim);
    per_layer("ffn_up.weight", dim, hidden);
    take("output_norm.weight", dim, 1);
    p += seq_len * head_dim;  // legacy freq_cis_real + freq_cis_imag
    if (!tied) take("output.weight", dim, vocab);
  }

  std::optional<uint64_t> get_uint(const std::string& key) const override {
    auto it = meta_.find(key);
    if (it == meta_.end()) return std::nullopt;
    if (it->second != double(uint64_t(it->second)))
      throw Error(cat(path_, ": key ", key, " has type f32, expected an integer"));
    return uint64_t(it->second);
  }
  std::optional<double> get_float(const std::string& key) const override {
    auto it = meta_.find(key);
    return it == meta_.end() ? std::nullopt : std::optional<double>(it->second);
  }

 private:
  MappedFile file_;
  std::map<std::string, double> meta_;
};

}  // namespace

std::unique_ptr<WeightFile> open_llama2c_bin(const std::string& path, bool use_mmap) {
  return std::make_unique<Llama2cFile>(path, use_mmap);
}

Vocab load_llama2c_vocab(const std::string& path, int n_vocab) {
  MappedFile f(path);
  ByteReader r(f.data(), f.size(), path);
  Vocab v;
  v.source = path;
  const int32_t max_len = r.read<int32_t>("max_token_length");
  if (max_len <= 0 || max_len > (1 << 16))
    throw Error(cat(path, ": max_token_length ", max_len, " is invalid (not a llama2.c tokenizer?)"));
  while (r.remaining() > 0) {
    if (n_vocab > 0 && int(v.pieces.size()) == n_vocab)
      throw Error(cat(path, ": tokenizer has more than the model's ", n_vocab,
                      " tokens (", r.remaining(), " bytes left): it does not match the model"));
    const float score = r.read<float>("token score");
    const int32_t len = r.read<int32_t>("token length");
    if (len < 0 || len > max_len)
      throw Error(cat(path, ": token ", v.pieces.size(), " has length ", len, " (max_token_length is ", max_len, ")"));
    r.need(size_t(len), "token bytes");
    v.pieces.emplace_back(reinterpret_cast<const char*>(r.here()), size_t(len));
    r.skip(size_t(len), "token bytes");
    v.scores.push_back(score);
  }
  if (n_vocab > 0 && int(v.pieces.size()) != n_vocab)
    throw Error(cat(path, ": tokenizer has ", v.pieces.size(), " tokens but the model's vocabulary has ", n_vocab,
                    ": it does not match the model"));
  // llama2.c's exporter writes BOS/EOS as "\n<s>\n" / "\n</s>\n" and the
  // byte-fallback tokens as "<0xNN>".
  v.kinds.assign(v.pieces.size(), TokenKind::Normal);
  v.match_special = false;  // llama2.c reads "<s>" in a prompt as text
  v.unk = v.size() > 0 ? 0 : -1;
  v.bos = v.size() > 1 ? 1 : -1;
  v.eos = v.size() > 2 ? 2 : -1;
  if (v.eos >= 0) v.end_of_generation = {v.eos};
  for (int id : {v.unk, v.bos, v.eos})
    if (id >= 0) v.kinds[size_t(id)] = id == v.unk ? TokenKind::Unknown : TokenKind::Control;
  for (size_t i = 0; i < v.pieces.size(); ++i) {
    const std::string& s = v.pieces[i];
    if (s.size() == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>') v.kinds[i] = TokenKind::Byte;
  }
  return v;
}

}  // namespace qkv
