// synth_model (qkv.hpp): random-weight llama models of real shapes.
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "engine/api/model_files.h"
#include "engine/api/qkv.hpp"
#include "engine/error.h"
#include "engine/format/gguf_writer.h"
#include "engine/format/output_file.h"

namespace qkv {
namespace {

struct Shape {
  int dim, hidden, layers, heads, kv_heads, vocab, ctx;
};
const std::map<std::string, Shape> kShapes = {
    {"stories15M", {288, 768, 6, 6, 6, 32000, 256}},
    {"stories42M", {512, 1376, 8, 8, 8, 32000, 1024}},
    {"stories110M", {768, 2048, 12, 12, 12, 32000, 1024}},
    {"tinyllama-1.1b", {2048, 5632, 22, 32, 4, 32000, 2048}},
};

// splitmix64 + Box-Muller: a fixed stream of N(0, sigma) values per tensor.
class Normal {
 public:
  explicit Normal(uint64_t seed) : s_(seed) {}
  float next(float sigma) {
    if (have_) {
      have_ = false;
      return spare_ * sigma;
    }
    const double u1 = (double(next_u64() >> 11) + 1.0) / 9007199254740993.0;
    const double u2 = double(next_u64() >> 11) / 9007199254740992.0;
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = float(r * std::sin(2.0 * M_PI * u2));
    have_ = true;
    return float(r * std::cos(2.0 * M_PI * u2)) * sigma;
  }

 private:
  uint64_t next_u64() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t s_;
  bool have_ = false;
  float spare_ = 0;
};

Vocab made_up_vocab(int n) {
  if (n < 259)
    throw Error(cat("synth: a vocabulary of ", n, " tokens is too small (at least 259: 3 special and 256 byte tokens)"),
                Errc::InvalidArgument);
  Vocab v;
  v.pieces = {"<unk>", "<s>", "</s>"};
  v.kinds = {TokenKind::Unknown, TokenKind::Control, TokenKind::Control};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    v.pieces.push_back(name);
    v.kinds.push_back(TokenKind::Byte);
  }
  for (int i = int(v.pieces.size()); i < n; ++i) {
    v.pieces.push_back(" t" + std::to_string(i));
    v.kinds.push_back(TokenKind::Normal);
  }
  v.scores.assign(size_t(n), 0.0f);
  for (int i = 259; i < n; ++i) v.scores[size_t(i)] = -float(i);
  return v;
}

}  // namespace

bool synth_shape(const std::string& name, SynthParams& p) {
  auto it = kShapes.find(name);
  if (it == kShapes.end()) return false;
  const Shape& s = it->second;
  p.dim = s.dim;
  p.hidden = s.hidden;
  p.layers = s.layers;
  p.heads = s.heads;
  p.kv_heads = s.kv_heads;
  p.vocab = s.vocab;
  p.ctx = s.ctx;
  p.name = name;
  return true;
}

std::vector<std::string> synth_shape_names() {
  std::vector<std::string> names;
  for (const auto& [n, s] : kShapes) names.push_back(n);
  return names;
}

void synth_model(const std::string& out, const SynthParams& params, const MessageCallback& on_message) {
  SynthParams s = params;
  const FileType* ft = find_file_type(s.type);
  if (!ft) throw Error(cat("synth: type '", s.type, "' is not one of ", file_type_names()), Errc::InvalidArgument);
  if (s.dim <= 0 || s.hidden <= 0 || s.layers <= 0 || s.heads <= 0 || s.kv_heads <= 0 || s.vocab < 0 || s.ctx <= 0)
    throw Error("synth: every dimension must be positive", Errc::InvalidArgument);
  if (s.dim % s.heads || s.heads % s.kv_heads || (s.dim / s.heads) % 2)
    throw Error("synth: the width must be a multiple of the heads, the heads of the KV heads, and the head size even",
                Errc::InvalidArgument);
  if (s.vocab == 0 && s.tokenizer_path.empty())
    throw Error("synth: a vocabulary size of 0 (the file's) needs a tokenizer file", Errc::InvalidArgument);
  const Vocab vocab = s.tokenizer_path.empty() ? made_up_vocab(s.vocab) : load_llama2c_vocab(s.tokenizer_path, s.vocab);
  s.vocab = vocab.size();
  const int head_dim = s.dim / s.heads, kv_dim = s.kv_heads * head_dim;

  ModelConfig cfg;
  cfg.dim = s.dim;
  cfg.hidden_dim = s.hidden;
  cfg.n_layers = s.layers;
  cfg.n_heads = s.heads;
  cfg.n_kv_heads = s.kv_heads;
  cfg.head_dim = head_dim;
  cfg.context_length = s.ctx;
  // The file's size, estimated before its 9 x layers tensors are declared:
  // an absurd shape is refused at once, not after millions of declarations.
  {
    const double d = s.dim, per_layer = d * (2 * d + 2.0 * kv_dim) + 3 * d * double(s.hidden) + 2 * d;
    const ops::TypeInfo& base = ops::type_info(ft->base);
    check_output_space(out, (per_layer * double(s.layers) + 2 * d * double(s.vocab) + d) * double(base.block_bytes) /
                                double(base.block));
  }
  GgufWriter w;
  add_llama_metadata(w, cfg, "qkv synth " + s.name, ft->ftype);
  add_vocab_metadata(w, vocab);

  struct Decl {
    std::string name;
    int64_t cols, rows;  // ne[0], ne[1] (rows 1: a vector)
  };
  std::vector<Decl> decls = {{"token_embd.weight", s.dim, s.vocab}};
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    decls.push_back({p + "attn_norm.weight", s.dim, 1});
    decls.push_back({p + "attn_q.weight", s.dim, s.dim});
    decls.push_back({p + "attn_k.weight", s.dim, kv_dim});
    decls.push_back({p + "attn_v.weight", s.dim, kv_dim});
    decls.push_back({p + "attn_output.weight", s.dim, s.dim});
    decls.push_back({p + "ffn_norm.weight", s.dim, 1});
    decls.push_back({p + "ffn_gate.weight", s.dim, s.hidden});
    decls.push_back({p + "ffn_up.weight", s.dim, s.hidden});
    decls.push_back({p + "ffn_down.weight", s.hidden, s.dim});
  }
  decls.push_back({"output_norm.weight", s.dim, 1});
  decls.push_back({"output.weight", s.dim, s.vocab});
  std::vector<const ops::TypeInfo*> types;
  // llama-quantize's choice per tensor (the layers come in its order here too).
  TypePlanner planner(*ft, s.layers, true, s.layers, s.heads / s.kv_heads, TypePlanner::Options{});
  for (const Decl& d : decls) {
    std::string note;
    const ops::Type t = planner.next(d.name, d.rows == 1 ? 1 : 2, d.cols, ops::Type::F32, &note);
    if (!note.empty() && on_message) on_message(note);
    if (!ops::type_info(t).from_float)
      throw Error(cat("synth: ", d.name, " would be ", ops::type_name(t), ", which qkv cannot write yet"), Errc::InvalidArgument);
    types.push_back(&ops::type_info(t));
    std::vector<int64_t> ne = {d.cols};
    if (d.rows > 1) ne.push_back(d.rows);
    w.add_tensor(d.name, uint32_t(t), ne, uint64_t(types.back()->row_bytes(d.cols)) * uint64_t(d.rows));
  }

  std::vector<float> values;
  w.write(out, [&](size_t i, std::vector<uint8_t>& bytes) {
    const Decl& d = decls[i];
    values.resize(size_t(d.cols * d.rows));
    if (d.rows == 1) {
      std::fill(values.begin(), values.end(), 1.0f);
    } else {
      Normal rng(s.seed * 1000003u + i);
      for (float& v : values) v = rng.next(0.02f);
    }
    const size_t rb = types[i]->row_bytes(d.cols);
    bytes.resize(rb * size_t(d.rows));
    for (int64_t r = 0; r < d.rows; ++r)
      types[i]->from_float(values.data() + r * d.cols, bytes.data() + size_t(r) * rb, size_t(d.cols));
  });
  if (on_message)
    on_message(cat("wrote ", out, " (", ft->name, ", dim ", s.dim, ", hidden ", s.hidden, ", ", s.layers, " layers, ",
                   s.heads, "/", s.kv_heads, " heads, vocab ", s.vocab, ", ctx ", s.ctx, ")"));
}

}  // namespace qkv
