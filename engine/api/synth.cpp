// synth_model (qkv.hpp): random-weight models of real shapes, in the tensor
// layout and metadata keys llama.cpp's converter writes for each architecture.
#include <algorithm>
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
  const char* arch;
  int dim, hidden, layers, heads, kv_heads, head_dim, vocab, ctx;
  bool tied;
  float rope_base, eps;
  int window;  // sliding window of the local layers (Gemma), 0: none
  bool llama3_rope = false;  // rope_freqs.weight with Llama 3.1's scaling (factor 32, 1..4, 8192)
};
// From the models' config.json files.
const std::map<std::string, Shape> kShapes = {
    {"stories15M", {"llama", 288, 768, 6, 6, 6, 48, 32000, 256, false, 10000, 1e-5f, 0}},
    {"stories42M", {"llama", 512, 1376, 8, 8, 8, 64, 32000, 1024, false, 10000, 1e-5f, 0}},
    {"stories110M", {"llama", 768, 2048, 12, 12, 12, 64, 32000, 1024, false, 10000, 1e-5f, 0}},
    {"tinyllama-1.1b", {"llama", 2048, 5632, 22, 32, 4, 64, 32000, 2048, false, 10000, 1e-5f, 0}},
    {"smollm2-135m", {"llama", 576, 1536, 30, 9, 3, 64, 49152, 8192, true, 100000, 1e-5f, 0}},
    {"llama3.2-1b", {"llama", 2048, 8192, 16, 32, 8, 64, 128256, 131072, true, 500000, 1e-5f, 0, true}},
    {"qwen2.5-0.5b", {"qwen2", 896, 4864, 24, 14, 2, 64, 151936, 32768, true, 1e6f, 1e-6f, 0}},
    {"qwen3-0.6b", {"qwen3", 1024, 3072, 28, 16, 8, 128, 151936, 40960, true, 1e6f, 1e-6f, 0}},
    {"gemma3-270m", {"gemma3", 640, 2048, 18, 4, 1, 256, 262144, 32768, true, 1e6f, 1e-6f, 512}},
    {"gpt2-124m", {"gpt2", 768, 3072, 12, 12, 12, 64, 50257, 1024, true, 10000, 1e-5f, 0}},
};

// The factors llama.cpp's converter writes as rope_freqs.weight for Llama 3.1
// scaling (factor 32, low 1, high 4, original context 8192): each rotary
// frequency's wavelength decides whether it is kept, divided by 32, or in
// between.
std::vector<float> llama3_rope_factors(int head_dim, float base) {
  const double factor = 32, low = 1, high = 4, old_ctx = 8192;
  const double low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
  std::vector<float> f;
  for (int i = 0; i < head_dim; i += 2) {
    const double freq = 1.0 / std::pow(double(base), double(i) / head_dim);
    const double wavelen = 2 * M_PI / freq;
    if (wavelen < high_wavelen) {
      f.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      f.push_back(float(factor));
    } else {
      const double smooth = (old_ctx / wavelen - low) / (high - low);
      f.push_back(float(1.0 / ((1 - smooth) / factor + smooth)));
    }
  }
  return f;
}

const char* const kArchs[] = {"llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "gpt2"};

// The architecture's hyper-parameter keys, as llama.cpp's converter writes them.
void add_arch_metadata(GgufWriter& w, const SynthParams& s, int head_dim, const std::string& name, int file_type) {
  const std::string a = s.arch + ".";
  w.add_string("general.architecture", s.arch);
  w.add_string("general.name", name);
  w.add_u32("general.alignment", 32);
  w.add_u32("general.file_type", uint32_t(file_type));
  w.add_u32("general.quantization_version", 2);
  w.add_u32(a + "context_length", uint32_t(s.ctx));
  w.add_u32(a + "embedding_length", uint32_t(s.dim));
  w.add_u32(a + "block_count", uint32_t(s.layers));
  w.add_u32(a + "feed_forward_length", uint32_t(s.hidden));
  w.add_u32(a + "attention.head_count", uint32_t(s.heads));
  w.add_u32(a + "attention.head_count_kv", uint32_t(s.kv_heads));
  if (s.arch == "gpt2") {
    w.add_f32(a + "attention.layer_norm_epsilon", s.eps);
    return;
  }
  if (head_dim * s.heads != s.dim) {
    w.add_u32(a + "attention.key_length", uint32_t(head_dim));
    w.add_u32(a + "attention.value_length", uint32_t(head_dim));
  }
  if (s.arch == "llama" || s.arch == "phi3") w.add_u32(a + "rope.dimension_count", uint32_t(head_dim));
  w.add_f32(a + "attention.layer_norm_rms_epsilon", s.eps);
  w.add_f32(a + "rope.freq_base", s.rope_base);
  if (s.window > 0) w.add_u32(a + "attention.sliding_window", uint32_t(s.window));
  if (s.arch == "gemma3") w.add_f32(a + "rope.freq_base_swa", 10000.0f);
}

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
  p.arch = s.arch;
  p.dim = s.dim;
  p.hidden = s.hidden;
  p.layers = s.layers;
  p.heads = s.heads;
  p.kv_heads = s.kv_heads;
  p.head_dim = s.head_dim == s.dim / s.heads ? 0 : s.head_dim;
  p.vocab = s.vocab;
  p.ctx = s.ctx;
  p.tied = s.tied;
  p.rope_base = s.rope_base;
  p.eps = s.eps;
  p.window = s.window;
  p.llama3_rope = s.llama3_rope;
  p.name = name;
  return true;
}

std::vector<std::string> synth_arch_names() { return std::vector<std::string>(std::begin(kArchs), std::end(kArchs)); }

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
  if (std::find(std::begin(kArchs), std::end(kArchs), s.arch) == std::end(kArchs)) {
    std::string known;
    for (const char* a : kArchs) known += cat(known.empty() ? "" : ", ", a);
    throw Error(cat("synth: architecture '", s.arch, "' is not one qkv writes (", known, ")"), Errc::InvalidArgument);
  }
  const int head_dim = s.head_dim > 0 ? s.head_dim : s.dim % s.heads == 0 ? s.dim / s.heads : 0;
  if (head_dim <= 0 || s.heads % s.kv_heads || head_dim % 2)
    throw Error("synth: the width must be a multiple of the heads (or --head-dim given), the heads of the KV heads, "
                "and the head size even",
                Errc::InvalidArgument);
  if (s.vocab == 0 && s.tokenizer_path.empty())
    throw Error("synth: a vocabulary size of 0 (the file's) needs a tokenizer file", Errc::InvalidArgument);
  const Vocab vocab = s.tokenizer_path.empty() ? made_up_vocab(s.vocab) : load_llama2c_vocab(s.tokenizer_path, s.vocab);
  s.vocab = vocab.size();
  const int64_t q_dim = int64_t(s.heads) * head_dim, kv_dim = int64_t(s.kv_heads) * head_dim;
  const bool gpt2 = s.arch == "gpt2", fused_qkv = gpt2 || s.arch == "phi3";
  // The file's size, estimated before its tensors are declared: an absurd
  // shape is refused at once, not after millions of declarations.
  {
    const double d = s.dim, per_layer = d * (2.0 * double(q_dim) + 2.0 * double(kv_dim)) + 3 * d * double(s.hidden) + 2 * d;
    const ops::TypeInfo& base = ops::type_info(ft->base);
    check_output_space(out, (per_layer * double(s.layers) + 2 * d * double(s.vocab) + d) * double(base.block_bytes) /
                                double(base.block));
  }
  GgufWriter w;
  add_arch_metadata(w, s, head_dim, "qkv synth " + s.name, ft->ftype);
  add_vocab_metadata(w, vocab);

  struct Decl {
    std::string name;
    int64_t cols, rows;  // ne[0], ne[1] (rows 1: a vector)
    bool f32 = false;    // kept F32 whatever the type (GPT-2's position table)
    std::vector<float> values = {};  // a vector's values (default: all 1)
  };
  std::vector<Decl> decls = {{"token_embd.weight", s.dim, s.vocab}};
  if (gpt2) decls.push_back({"position_embd.weight", s.dim, s.ctx, true});
  auto vec = [&](const std::string& name, int64_t n) { decls.push_back({name, n, 1}); };
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    vec(p + "attn_norm.weight", s.dim);
    if (gpt2) vec(p + "attn_norm.bias", s.dim);
    if (fused_qkv) {
      decls.push_back({p + "attn_qkv.weight", s.dim, q_dim + 2 * kv_dim});
      if (gpt2) vec(p + "attn_qkv.bias", q_dim + 2 * kv_dim);
    } else {
      decls.push_back({p + "attn_q.weight", s.dim, q_dim});
      decls.push_back({p + "attn_k.weight", s.dim, kv_dim});
      decls.push_back({p + "attn_v.weight", s.dim, kv_dim});
    }
    if (s.arch == "qwen2") {
      vec(p + "attn_q.bias", q_dim);
      vec(p + "attn_k.bias", kv_dim);
      vec(p + "attn_v.bias", kv_dim);
    }
    if (s.arch == "qwen3" || s.arch == "gemma3") {
      vec(p + "attn_q_norm.weight", head_dim);
      vec(p + "attn_k_norm.weight", head_dim);
    }
    decls.push_back({p + "attn_output.weight", q_dim, s.dim});
    if (gpt2) vec(p + "attn_output.bias", s.dim);
    if (s.arch == "gemma2" || s.arch == "gemma3") vec(p + "post_attention_norm.weight", s.dim);
    vec(p + "ffn_norm.weight", s.dim);
    if (gpt2) vec(p + "ffn_norm.bias", s.dim);
    if (s.arch == "phi3") {
      decls.push_back({p + "ffn_up.weight", s.dim, 2 * int64_t(s.hidden)});
    } else {
      if (!gpt2) decls.push_back({p + "ffn_gate.weight", s.dim, s.hidden});
      decls.push_back({p + "ffn_up.weight", s.dim, s.hidden});
      if (gpt2) vec(p + "ffn_up.bias", s.hidden);
    }
    decls.push_back({p + "ffn_down.weight", s.hidden, s.dim});
    if (gpt2) vec(p + "ffn_down.bias", s.dim);
    if (s.arch == "gemma2" || s.arch == "gemma3") vec(p + "post_ffw_norm.weight", s.dim);
  }
  vec("output_norm.weight", s.dim);
  if (gpt2) vec("output_norm.bias", s.dim);
  if (!s.tied) decls.push_back({"output.weight", s.dim, s.vocab});
  if (s.llama3_rope && s.arch == "llama")
    decls.push_back({"rope_freqs.weight", head_dim / 2, 1, true, llama3_rope_factors(head_dim, s.rope_base)});
  std::vector<const ops::TypeInfo*> types;
  // llama-quantize's choice per tensor (the layers come in its order here too).
  std::vector<std::string> names;
  for (const Decl& d : decls) names.push_back(d.name);
  TypePlanner planner(*ft, names, s.layers, s.heads / s.kv_heads, TypePlanner::Options{});
  for (const Decl& d : decls) {
    std::string note;
    const ops::Type t = d.f32 ? ops::Type::F32 : planner.next(d.name, d.rows == 1 ? 1 : 2, d.cols, ops::Type::F32, &note);
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
    if (!d.values.empty()) {
      values = d.values;
    } else if (d.rows == 1) {
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
    on_message(cat("wrote ", out, " (", s.arch, ", ", ft->name, ", dim ", s.dim, ", hidden ", s.hidden, ", ", s.layers,
                   " layers, ", s.heads, "/", s.kv_heads, " heads of ", head_dim, ", vocab ", s.vocab, ", ctx ", s.ctx,
                   s.tied ? ", tied" : "", ")"));
}

}  // namespace qkv
