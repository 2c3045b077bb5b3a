// qkv synth: random-weight Llama models of exact real shapes, as standard
// GGUF files that llama.cpp loads too, so both engines can be timed on the
// same file. Speed does not depend on the weight values.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/gguf_writer.h"
#include "engine/quantize.h"
#include "engine/vocab.h"
#include "ops/ops.h"
#include "tools/args.h"
#include "tools/gguf_meta.h"

namespace qkv::cli {
namespace {

const char* kHelp =
    "usage: qkv synth --shape NAME --type f32|f16|q8_0|q4_0|q4_k|q5_k|q6_k|q4_k_m -o FILE.gguf [--seed S]\n"
    "                 [--dim N --hidden N --layers N --heads N --kv-heads N --vocab N --ctx N]\n"
    "\n"
    "Writes a Llama GGUF with weights ~ N(0, 0.02) and norms of 1.\n"
    "  --shape NAME   stories15M (288, 768, 6 layers, 6 heads, ctx 256), stories42M (512, 1376, 8, 8, 1024),\n"
    "                 stories110M (768, 2048, 12, 12, 1024), tinyllama-1.1b (2048, 5632, 22, 32 heads,\n"
    "                 4 KV heads, 2048); the flags below override any field, or give a shape alone\n"
    "  -z FILE        the vocabulary: a llama2.c tokenizer.bin (default $QKV_MODELS_DIR/llama2-tokenizer.bin,\n"
    "                 the Llama-2 32000-token vocabulary); with --vocab other than its size, a made-up\n"
    "                 vocabulary of that size (byte tokens plus placeholders) is written instead\n";

struct Shape {
  int dim = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, vocab = 32000, ctx = 0;
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
  if (n < 259) throw UsageError("--vocab must be at least 259 (3 special and 256 byte tokens)");
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

int cmd_synth(int argc, char** argv) {
  std::string shape_name, type = "f32", out, tokenizer = models_dir() + "/llama2-tokenizer.bin";
  uint64_t seed = 1;
  Shape s;
  bool have_vocab = false;
  try {
    ArgWalker a(argc, argv);
    std::map<std::string, int*> fields = {{"--dim", &s.dim},     {"--hidden", &s.hidden}, {"--layers", &s.layers},
                                          {"--heads", &s.heads}, {"--kv-heads", &s.kv_heads},
                                          {"--vocab", &s.vocab}, {"--ctx", &s.ctx}};
    std::map<std::string, int> overrides;
    while (a.next()) {
      const std::string f = a.flag();
      if (is_help(f)) return print_help(kHelp);
      else if (f == "--shape") shape_name = a.value();
      else if (f == "--type") type = a.value();
      else if (f == "-o" || f == "--output") out = a.value();
      else if (f == "--seed") seed = uint64_t(parse_int(f, a.value(), 0, 1ll << 62));
      else if (f == "-z" || f == "--tokenizer") tokenizer = a.value();
      else if (fields.count(f)) overrides[f] = int(parse_int(f, a.value(), 1, 1 << 20));
      else throw UsageError("unknown option '" + f + "' (see qkv synth --help)");
    }
    if (out.empty()) throw UsageError("-o FILE.gguf is required");
    if (!shape_name.empty()) {
      auto it = kShapes.find(shape_name);
      if (it == kShapes.end())
        throw UsageError("unknown shape '" + shape_name + "' (stories15M, stories42M, stories110M, tinyllama-1.1b)");
      s = it->second;
    }
    for (const auto& [f, v] : overrides) *fields[f] = v;
    have_vocab = overrides.count("--vocab") > 0;
    if (!overrides.count("--kv-heads") && shape_name.empty()) s.kv_heads = s.heads;
    if (s.ctx == 0) s.ctx = 2048;
    if (!s.dim || !s.hidden || !s.layers || !s.heads) throw UsageError("give --shape, or --dim --hidden --layers --heads");
    if (s.dim % s.heads || s.heads % s.kv_heads || (s.dim / s.heads) % 2)
      throw UsageError("--dim must be a multiple of --heads, --heads of --kv-heads, and the head size even");
    if (weight_type_id(type) == ~0u) throw UsageError("--type must be f32, f16, q8_0, q4_0, q4_k, q5_k, q6_k or q4_k_m");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "qkv synth: %s\n", e.what());
    return 2;
  }

  try {
    const Vocab vocab = have_vocab && s.vocab != 32000 ? made_up_vocab(s.vocab) : load_llama2c_vocab(tokenizer, s.vocab);
    const uint32_t wtype = weight_type_id(type);
    const uint32_t file_type = file_type_of(wtype);
    const int head_dim = s.dim / s.heads, kv_dim = s.kv_heads * head_dim;

    ModelConfig cfg;
    cfg.dim = s.dim;
    cfg.hidden_dim = s.hidden;
    cfg.n_layers = s.layers;
    cfg.n_heads = s.heads;
    cfg.n_kv_heads = s.kv_heads;
    cfg.head_dim = head_dim;
    cfg.context_length = s.ctx;
    GgufWriter w;
    add_llama_metadata(w, cfg, "qkv synth " + (shape_name.empty() ? std::string("custom") : shape_name), file_type);
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
    std::vector<uint32_t> dtypes;
    std::vector<std::string> kept;
    for (const Decl& d : decls) {
      // Vectors stay F32; a matrix whose rows do not fill whole blocks falls back.
      uint32_t t = d.rows == 1 ? 0 : matrix_type(wtype, d.name, s.layers);
      if (fitting_type(t, d.cols) != t) {
        t = fitting_type(t, d.cols);
        kept.push_back(d.name + " (" + dtype_name(t) + ")");
      }
      dtypes.push_back(t);
      std::vector<int64_t> ne = {d.cols};
      if (d.rows > 1) ne.push_back(d.rows);
      w.add_tensor(d.name, t, ne, quant_row_bytes(t, d.cols) * uint64_t(d.rows));
    }
    for (const std::string& k : kept)
      std::fprintf(stderr, "qkv synth: %s: rows not a multiple of the block size\n", k.c_str());

    std::vector<float> values;
    w.write(out, [&](size_t i, std::vector<uint8_t>& bytes) {
      const Decl& d = decls[i];
      values.resize(size_t(d.cols * d.rows));
      if (d.rows == 1) {
        std::fill(values.begin(), values.end(), 1.0f);
      } else {
        Normal rng(seed * 1000003u + i);
        for (float& v : values) v = rng.next(0.02f);
      }
      bytes.resize(size_t(quant_row_bytes(dtypes[i], d.cols) * uint64_t(d.rows)));
      quantize_rows(dtypes[i], values.data(), bytes.data(), d.rows, d.cols);
    });
    std::fprintf(stderr, "qkv synth: wrote %s (%s, dim %d, hidden %d, %d layers, %d/%d heads, vocab %d, ctx %d)\n",
                 out.c_str(), type.c_str(), s.dim, s.hidden, s.layers, s.heads, s.kv_heads, s.vocab, s.ctx);
    return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "qkv synth: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qkv: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace qkv::cli
