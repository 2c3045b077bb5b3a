// The corruption corpus: broken variants of the shared models, made here by
// code, field by field (zero, negative, huge, off by one, truncated at every
// section boundary, wrong type, duplicate, overlapping). Each must be refused
// with a qkv::Error; each is loaded in a child process under an address-space
// limit, so a crash or a runaway allocation fails the case, not the machine.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <functional>
#include <map>

#include "engine/format/gguf.h"
#include "engine/api/qkv.hpp"
#include "engine/text/vocab.h"
#include "gguf_writer.h"
#include "test_util.h"

namespace qkv {
namespace {

using test::model_path;

// ---------------------------------------------------------------- where GGUF fields are

struct KvPos {
  std::string key;
  size_t key_len, type, value;  // offsets of the key's length, the value type, the value
  uint32_t vtype;
  size_t elem_type = 0, count = 0, first = 0;  // arrays
};
struct TensorPos {
  std::string name;
  size_t name_len, n_dims, dims, type, offset;
};
struct GgufLayout {
  std::vector<KvPos> kv;
  std::vector<TensorPos> tensors;
  size_t kv_end = 0, infos_end = 0, data = 0;
  const KvPos& key(const std::string& k) const {
    for (const KvPos& p : kv)
      if (p.key == k) return p;
    throw std::runtime_error("no key " + k);
  }
  const TensorPos& tensor(const std::string& n) const {
    for (const TensorPos& t : tensors)
      if (t.name == n) return t;
    throw std::runtime_error("no tensor " + n);
  }
};

template <class T>
T get(const std::string& b, size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}
template <class T>
std::string put(std::string b, size_t off, T v) {
  std::memcpy(&b[off], &v, sizeof v);
  return b;
}

// An independent walk over a well-formed file (not the engine's parser).
GgufLayout walk(const std::string& b) {
  GgufLayout L;
  size_t p = 24;
  const uint64_t n_tensors = get<uint64_t>(b, 8), n_kv = get<uint64_t>(b, 16);
  auto skip_value = [&](uint32_t t) {
    static const size_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (t == 8) p += 8 + get<uint64_t>(b, p);
    else p += sizes[t];
  };
  for (uint64_t i = 0; i < n_kv; ++i) {
    KvPos k;
    k.key_len = p;
    const uint64_t len = get<uint64_t>(b, p);
    k.key = b.substr(p + 8, len);
    p += 8 + len;
    k.type = p;
    k.vtype = get<uint32_t>(b, p);
    p += 4;
    k.value = p;
    if (k.vtype == 9) {
      k.elem_type = p;
      const uint32_t et = get<uint32_t>(b, p);
      k.count = p + 4;
      const uint64_t count = get<uint64_t>(b, p + 4);
      p += 12;
      k.first = p;
      for (uint64_t j = 0; j < count; ++j) skip_value(et);
    } else {
      skip_value(k.vtype);
    }
    L.kv.push_back(k);
  }
  L.kv_end = p;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorPos t;
    t.name_len = p;
    const uint64_t len = get<uint64_t>(b, p);
    t.name = b.substr(p + 8, len);
    p += 8 + len;
    t.n_dims = p;
    const uint32_t nd = get<uint32_t>(b, p);
    t.dims = p + 4;
    p += 4 + 8 * nd;
    t.type = p;
    t.offset = p + 4;
    p += 12;
    L.tensors.push_back(t);
  }
  L.infos_end = p;
  L.data = (p + 31) / 32 * 32;
  return L;
}

// ---------------------------------------------------------------- running a case

enum class Loader { GgufModel, BinModel, Tokenizer };

struct Case {
  std::string name;
  std::string bytes;
  Loader loader = Loader::GgufModel;
  std::string expect;  // a fragment of the error message ("" : any)
};

// Loads in a child process; returns "" when the load was refused with a
// qkv::Error whose message holds `expect`, else what went wrong.
std::string run_case(const Case& c) {
  test::TempFile f(c.bytes, c.loader == Loader::GgufModel ? ".gguf" : ".bin");
  int pipefd[2];
  if (::pipe(pipefd) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipefd[0]);
#ifndef QKV_UNDER_ASAN
    const rlimit cap{size_t(3) << 30, size_t(3) << 30};  // 3 GiB: a 1 TB allocation attempt must fail
    ::setrlimit(RLIMIT_AS, &cap);
#endif
    int code = 3;
    std::string msg;
    try {
      switch (c.loader) {
        case Loader::GgufModel: Model::load(f.path()); break;
        case Loader::BinModel: Model::load(f.path(), LoadOptions{model_path("tok512.bin")}); break;
        case Loader::Tokenizer: Model::load(model_path("stories260K.bin"), LoadOptions{f.path()}); break;
      }
      msg = "loaded without an error";
    } catch (const Error& e) {
      msg = e.what();
      code = 0;
    } catch (const std::exception& e) {
      msg = std::string("not a qkv::Error: ") + e.what();
      code = 4;
    }
    (void)!::write(pipefd[1], msg.data(), msg.size());
    ::_exit(code);
  }
  ::close(pipefd[1]);
  std::string msg;
  char buf[512];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) msg.append(buf, size_t(n));
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return "crashed with signal " + std::to_string(WTERMSIG(status));
  if (WEXITSTATUS(status) != 0) return msg;
  if (msg.find(f.path()) == std::string::npos && c.loader != Loader::Tokenizer)
    return "the message does not name the file: " + msg;
  if (!c.expect.empty() && msg.find(c.expect) == std::string::npos) return "expected '" + c.expect + "' in: " + msg;
  return "";
}

// ---------------------------------------------------------------- the cases

std::vector<Case> gguf_byte_cases() {
  const std::string b = test::read_file(model_path("stories260K.gguf"));
  const GgufLayout L = walk(b);
  const uint64_t big = uint64_t(1) << 62;
  const KvPos& arch = L.key("general.architecture");
  const KvPos& tokens = L.key("tokenizer.ggml.tokens");
  const KvPos& dim = L.key("llama.embedding_length");
  const TensorPos& q0 = L.tensor("blk.0.attn_q.weight");
  const TensorPos& k0 = L.tensor("blk.0.attn_k.weight");
  const TensorPos& norm = L.tensor("output_norm.weight");
  const TensorPos& last = L.tensors.back();
  const uint64_t q0_off = get<uint64_t>(b, q0.offset), k0_off = get<uint64_t>(b, k0.offset);
  std::vector<Case> v = {
      {"magic zero", put<uint32_t>(b, 0, 0), Loader::GgufModel, ""},
      {"version 0", put<uint32_t>(b, 4, 0), Loader::GgufModel, "version 0"},
      {"version 1", put<uint32_t>(b, 4, 1), Loader::GgufModel, "version 1"},
      {"version 4", put<uint32_t>(b, 4, 4), Loader::GgufModel, "version 4"},
      {"version huge", put<uint32_t>(b, 4, 0xffffffffu), Loader::GgufModel, "version"},
      {"tensor count 0", put<uint64_t>(b, 8, 0), Loader::GgufModel, "missing tensor"},
      {"tensor count huge", put<uint64_t>(b, 8, big), Loader::GgufModel, "tensor count"},
      {"tensor count +1", put<uint64_t>(b, 8, get<uint64_t>(b, 8) + 1), Loader::GgufModel, ""},
      {"tensor count -1", put<uint64_t>(b, 8, get<uint64_t>(b, 8) - 1), Loader::GgufModel, ""},
      {"tensor count all ones", put<uint64_t>(b, 8, ~uint64_t(0)), Loader::GgufModel, "tensor count"},
      {"metadata count 0", put<uint64_t>(b, 16, 0), Loader::GgufModel, ""},
      {"metadata count huge", put<uint64_t>(b, 16, big), Loader::GgufModel, "metadata count"},
      {"metadata count +1", put<uint64_t>(b, 16, get<uint64_t>(b, 16) + 1), Loader::GgufModel, ""},
      {"metadata count -1", put<uint64_t>(b, 16, get<uint64_t>(b, 16) - 1), Loader::GgufModel, ""},
      {"key length huge", put<uint64_t>(b, L.kv[0].key_len, big), Loader::GgufModel, "string length"},
      {"key length past the end", put<uint64_t>(b, L.kv[0].key_len, b.size()), Loader::GgufModel, ""},
      {"value type 13", put<uint32_t>(b, arch.type, 13), Loader::GgufModel, "not a GGUF type"},
      {"value type huge", put<uint32_t>(b, arch.type, 0x80000000u), Loader::GgufModel, "not a GGUF type"},
      {"string value length huge", put<uint64_t>(b, arch.value, big), Loader::GgufModel, "string length"},
      {"u32 key retyped as f32", put<uint32_t>(b, dim.type, 6), Loader::GgufModel, "llama.embedding_length"},
      {"u32 key retyped as bool", put<uint32_t>(b, dim.type, 7), Loader::GgufModel, ""},
      {"array count huge", put<uint64_t>(b, tokens.count, big), Loader::GgufModel, "cannot fit"},
      {"array count +1", put<uint64_t>(b, tokens.count, get<uint64_t>(b, tokens.count) + 1), Loader::GgufModel, ""},
      {"array count -1", put<uint64_t>(b, tokens.count, get<uint64_t>(b, tokens.count) - 1), Loader::GgufModel, ""},
      {"array element type 13", put<uint32_t>(b, tokens.elem_type, 13), Loader::GgufModel, "not a GGUF type"},
      {"nested array", put<uint32_t>(b, tokens.elem_type, 9), Loader::GgufModel, "nested arrays"},
      {"array of strings retyped u8", put<uint32_t>(b, tokens.elem_type, 0), Loader::GgufModel, ""},
      {"string in array length huge", put<uint64_t>(b, tokens.first, big), Loader::GgufModel, "string 0"},
      {"tensor name length huge", put<uint64_t>(b, q0.name_len, big), Loader::GgufModel, "string length"},
      {"n_dims 0", put<uint32_t>(b, q0.n_dims, 0), Loader::GgufModel, "n_dims 0"},
      {"n_dims 5", put<uint32_t>(b, q0.n_dims, 5), Loader::GgufModel, "n_dims 5"},
      {"n_dims huge", put<uint32_t>(b, q0.n_dims, 0xffffffffu), Loader::GgufModel, "n_dims"},
      {"dimension 0", put<uint64_t>(b, q0.dims, 0), Loader::GgufModel, "dimension 0"},
      {"dimension huge", put<uint64_t>(b, q0.dims, big), Loader::GgufModel, ""},
      {"dimension negative", put<uint64_t>(b, q0.dims, uint64_t(-64)), Loader::GgufModel, "dimension 0"},
      {"dimensions overflow", put<uint64_t>(put<uint64_t>(b, q0.dims, uint64_t(1) << 33), q0.dims + 8, uint64_t(1) << 33),
       Loader::GgufModel, "overflows"},
      {"dimension +1", put<uint64_t>(b, q0.dims, 65), Loader::GgufModel, ""},
      {"tensor type 99", put<uint32_t>(b, q0.type, 99), Loader::GgufModel, "not supported"},
      {"tensor type I32", put<uint32_t>(b, q0.type, 26), Loader::GgufModel, "I32"},
      {"norm type F16", put<uint32_t>(b, norm.type, 1), Loader::GgufModel, "must be F32"},
      {"offset unaligned", put<uint64_t>(b, q0.offset, q0_off + 1), Loader::GgufModel, "not aligned"},
      {"offset huge", put<uint64_t>(b, q0.offset, big), Loader::GgufModel, "outside the data section"},
      {"offset all ones", put<uint64_t>(b, q0.offset, ~uint64_t(0) & ~uint64_t(31)), Loader::GgufModel, "outside"},
      {"last tensor one byte past the end", put<uint64_t>(b, last.offset, b.size() - L.data - 4 * 64 * 512 + 32),
       Loader::GgufModel, ""},
      {"overlapping tensors", put<uint64_t>(b, k0.offset, q0_off), Loader::GgufModel, "overlaps"},
      {"overlapping by a block", put<uint64_t>(b, k0.offset, k0_off - 32), Loader::GgufModel, "overlaps"},
      {"duplicate tensor name", [&] {
         std::string c = b;
         c.replace(k0.name_len + 8, k0.name.size(), std::string("blk.0.attn_q.weight").substr(0, k0.name.size()));
         return c;
       }(), Loader::GgufModel, "duplicate tensor"},
      {"empty file", "", Loader::GgufModel, "empty"},
  };
  // Truncated at every section boundary, and inside each section.
  const size_t cuts[] = {3, 4, 8, 16, 23, 24, L.kv[0].type, arch.value + 3, tokens.first + 100, L.kv_end - 1,
                         L.kv_end, q0.dims + 4, L.infos_end - 1, L.infos_end, L.data, L.data + 1000, b.size() - 1};
  for (size_t cut : cuts) v.push_back({"truncated at " + std::to_string(cut), b.substr(0, cut), Loader::GgufModel, ""});
  return v;
}

// Semantic variants, rebuilt with the test writer: hyper-parameters and
// vocabulary that do not fit the tensors, wrong value types, duplicates.
std::vector<Case> gguf_semantic_cases() {
  const GgufFile src(model_path("stories260K.gguf"));
  // Copies every key except `drop`, adds what `extra` writes, then every tensor.
  auto rebuild = [&](const std::string& drop, const std::function<void(test::GgufWriter&)>& extra) {
    test::GgufWriter w(3);
    for (const auto& [key, v] : src.metadata()) {
      if (key == drop) continue;
      w.kv_copy(key, v);
    }
    extra(w);
    for (const GgufTensorInfo& ti : src.tensors()) {
      const Tensor t = src.tensor(ti);
      w.tensor(ti.name, ti.ggml_type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.data, t.n_bytes());
    }
    return w.bytes();
  };
  auto u32 = [&](const std::string& key, uint32_t value) {
    return rebuild(key, [&](test::GgufWriter& w) { w.kv(key, GgufType::U32, value); });
  };
  auto f32 = [&](const std::string& key, float value) {
    return rebuild(key, [&](test::GgufWriter& w) { w.kv(key, GgufType::F32, value); });
  };
  auto str = [&](const std::string& key, const std::string& value) {
    return rebuild(key, [&](test::GgufWriter& w) { w.kv_string(key, value); });
  };
  // Every tensor as it is, but value i (-1: every value) of F32 tensor `name` set to v.
  // Value i of each named tensor set to v (every value where i < 0).
  struct Change {
    std::string name;
    long i;
    float v;
  };
  auto with_values = [&](const std::vector<Change>& changes) {
    test::GgufWriter w(3);
    for (const auto& [key, val] : src.metadata()) w.kv_copy(key, val);
    std::vector<std::vector<float>> copies;
    copies.reserve(changes.size());
    for (const GgufTensorInfo& ti : src.tensors()) {
      const Tensor t = src.tensor(ti);
      const void* data = t.data;
      if (std::any_of(changes.begin(), changes.end(), [&](const Change& c) { return c.name == ti.name; })) {
        std::vector<float>& copy = copies.emplace_back(static_cast<const float*>(t.data),
                                                       static_cast<const float*>(t.data) + t.n_elements());
        for (const Change& c : changes) {
          if (c.name != ti.name) continue;
          if (c.i < 0) std::fill(copy.begin(), copy.end(), c.v);
          else copy.at(size_t(c.i)) = c.v;
        }
        data = copy.data();
      }
      w.tensor(ti.name, ti.ggml_type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), data, t.n_bytes());
    }
    return w.bytes();
  };
  auto with_value = [&](const std::string& name, long i, float v) { return with_values({{name, i, v}}); };
  const std::vector<std::string> toks = src.get_string_array("tokenizer.ggml.tokens");
  std::vector<float> scores = src.get_float_array("tokenizer.ggml.scores");
  return {
      {"embedding_length 0", u32("llama.embedding_length", 0), Loader::GgufModel, "out of range"},
      {"embedding_length 65", u32("llama.embedding_length", 65), Loader::GgufModel, ""},
      {"embedding_length 128", u32("llama.embedding_length", 128), Loader::GgufModel, "rope.dimension_count"},
      {"head_count 0", u32("llama.attention.head_count", 0), Loader::GgufModel, "out of range"},
      {"head_count 7", u32("llama.attention.head_count", 7), Loader::GgufModel, "not divisible"},
      {"head_count_kv 3", u32("llama.attention.head_count_kv", 3), Loader::GgufModel, "multiple of head_count_kv"},
      {"head_count_kv 16", u32("llama.attention.head_count_kv", 16), Loader::GgufModel, "multiple of head_count_kv"},
      {"head_count 64 (head size 1)", u32("llama.attention.head_count", 64), Loader::GgufModel, ""},
      {"block_count 4", u32("llama.block_count", 4), Loader::GgufModel, "more than block_count"},
      {"block_count 6", u32("llama.block_count", 6), Loader::GgufModel, "missing tensor blk.5"},
      {"block_count huge", u32("llama.block_count", 0x7fffffff), Loader::GgufModel, ""},
      {"feed_forward_length 173", u32("llama.feed_forward_length", 173), Loader::GgufModel, "has shape"},
      {"context_length 0", u32("llama.context_length", 0), Loader::GgufModel, "out of range"},
      {"rope dimension 7", u32("llama.rope.dimension_count", 7), Loader::GgufModel, "rope.dimension_count"},
      {"rope base negative", f32("llama.rope.freq_base", -1.0f), Loader::GgufModel, "freq_base"},
      {"rope base NaN", f32("llama.rope.freq_base", NAN), Loader::GgufModel, "freq_base"},
      {"rms epsilon negative", f32("llama.attention.layer_norm_rms_epsilon", -1e-5f), Loader::GgufModel, "epsilon"},
      {"embedding_length as a string", str("llama.embedding_length", "64"), Loader::GgufModel, "expected an integer"},
      {"architecture mamba", str("general.architecture", "mamba"), Loader::GgufModel, "'mamba' is not supported"},
      {"architecture gpt2 on llama keys", str("general.architecture", "gpt2"), Loader::GgufModel, "gpt2.embedding_length"},
      {"architecture missing", rebuild("general.architecture", [](test::GgufWriter&) {}), Loader::GgufModel,
       "general.architecture"},
      {"architecture as a number", u32("general.architecture", 7), Loader::GgufModel, "expected string"},
      {"tokenizer model rwkv", str("tokenizer.ggml.model", "rwkv"), Loader::GgufModel, "'rwkv' is not supported"},
      {"gpt2 without merges", str("tokenizer.ggml.model", "gpt2"), Loader::GgufModel, "tokenizer.ggml.merges"},
      {"bos id 512", u32("tokenizer.ggml.bos_token_id", 512), Loader::GgufModel, "outside the vocabulary"},
      {"eos id huge", u32("tokenizer.ggml.eos_token_id", 0xffffffffu), Loader::GgufModel, "outside the vocabulary"},
      {"unk id as f32", f32("tokenizer.ggml.unknown_token_id", 0.5f), Loader::GgufModel, "expected an integer"},
      {"511 tokens", rebuild("tokenizer.ggml.tokens", [&](test::GgufWriter& w) {
         w.kv_string_array("tokenizer.ggml.tokens", std::vector<std::string>(toks.begin(), toks.end() - 1));
       }), Loader::GgufModel, "511"},
      {"scores shorter", rebuild("tokenizer.ggml.scores", [&](test::GgufWriter& w) {
         w.kv_array("tokenizer.ggml.scores", GgufType::F32, std::vector<float>(scores.begin(), scores.end() - 3));
       }), Loader::GgufModel, "tokenizer.ggml.scores"},
      {"scores as strings", rebuild("tokenizer.ggml.scores", [&](test::GgufWriter& w) {
         w.kv_string_array("tokenizer.ggml.scores", toks);
       }), Loader::GgufModel, "not an array of f32"},
      {"token type 9", rebuild("tokenizer.ggml.token_type", [&](test::GgufWriter& w) {
         w.kv_array("tokenizer.ggml.token_type", GgufType::I32, std::vector<int32_t>(toks.size(), 9));
       }), Loader::GgufModel, "not a token type"},
      {"duplicate key", rebuild("", [&](test::GgufWriter& w) { w.kv("llama.block_count", GgufType::U32, uint32_t(5)); }),
       Loader::GgufModel, "duplicate metadata key"},
      {"alignment 0", u32("general.alignment", 0), Loader::GgufModel, "power of two"},
      {"alignment 48", u32("general.alignment", 48), Loader::GgufModel, "power of two"},
      {"alignment 2^31", u32("general.alignment", 0x80000000u), Loader::GgufModel, "power of two"},
      {"bool 2", rebuild("", [](test::GgufWriter& w) { w.kv("x.flag", GgufType::BOOL, uint8_t(2)); }), Loader::GgufModel,
       "not 0 or 1"},
      // Non-finite weights: refused at load, naming the tensor.
      {"NaN in a norm", with_value("blk.1.ffn_norm.weight", 3, NAN), Loader::GgufModel, "blk.1.ffn_norm.weight"},
      {"+Inf in the embedding", with_value("token_embd.weight", 1000, INFINITY), Loader::GgufModel, "not finite"},
      {"-Inf in a matrix", with_value("blk.4.attn_q.weight", 4095, -INFINITY), Loader::GgufModel, "not finite"},
      {"NaN everywhere in a matrix", with_value("blk.0.ffn_up.weight", -1, NAN), Loader::GgufModel, "not finite"},
      // Checked on several threads at load: still the first tensor by name, and its first bad element.
      {"NaN in two matrices", with_values({{"blk.4.ffn_up.weight", 7, NAN}, {"blk.0.attn_k.weight", 900, NAN},
                                           {"blk.0.attn_k.weight", 100, INFINITY}}),
       Loader::GgufModel, "blk.0.attn_k.weight holds a value that is not finite (NaN or infinite) in its element 100"},
  };
}

std::vector<Case> llama2c_cases() {
  const std::string b = test::read_file(model_path("stories260K.bin"));
  const std::string t = test::read_file(model_path("tok512.bin"));
  std::vector<Case> v;
  const char* fields[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  for (int i = 0; i < 7; ++i) {
    v.push_back({std::string(fields[i]) + " 0", put<int32_t>(b, size_t(4 * i), 0), Loader::BinModel, fields[i]});
    v.push_back({std::string(fields[i]) + " huge", put<int32_t>(b, size_t(4 * i), 0x7fffffff), Loader::BinModel, ""});
    v.push_back({std::string(fields[i]) + " +1", put<int32_t>(b, size_t(4 * i), get<int32_t>(b, size_t(4 * i)) + 1),
                 Loader::BinModel, ""});
  }
  v.push_back({"dim negative", put<int32_t>(b, 0, -64), Loader::BinModel, "dim"});
  v.push_back({"vocab INT_MIN", put<int32_t>(b, 20, INT32_MIN), Loader::BinModel, "vocab_size"});
  v.push_back({"n_kv_heads > n_heads", put<int32_t>(b, 16, 16), Loader::BinModel, "multiple of n_kv_heads"});
  v.push_back({"truncated by 4 bytes", b.substr(0, b.size() - 4), Loader::BinModel, "does not match its header"});
  v.push_back({"4 bytes too many", b + std::string(4, '\0'), Loader::BinModel, "does not match its header"});
  v.push_back({"header only", b.substr(0, 28), Loader::BinModel, "does not match its header"});
  v.push_back({"half a header", b.substr(0, 10), Loader::BinModel, "truncated"});
  // The tokenizer.bin that goes with it.
  v.push_back({"tokenizer: max_token_length 0", put<int32_t>(t, 0, 0), Loader::Tokenizer, "max_token_length"});
  v.push_back({"tokenizer: max_token_length negative", put<int32_t>(t, 0, -1), Loader::Tokenizer, "max_token_length"});
  v.push_back({"tokenizer: token length negative", put<int32_t>(t, 8, -5), Loader::Tokenizer, "length -5"});
  v.push_back({"tokenizer: token length past max", put<int32_t>(t, 8, 1000), Loader::Tokenizer, "length 1000"});
  v.push_back({"tokenizer: token length huge", put<int32_t>(t, 8, 0x7fffffff), Loader::Tokenizer, ""});
  v.push_back({"tokenizer: truncated mid-token", t.substr(0, t.size() - 2), Loader::Tokenizer, "truncated"});
  v.push_back({"tokenizer: one token too many", t + t.substr(4, 12), Loader::Tokenizer, "does not match"});
  v.push_back({"tokenizer: empty", "", Loader::Tokenizer, "empty"});
  v.push_back({"tokenizer: only the header", t.substr(0, 4), Loader::Tokenizer, "0 tokens"});
  return v;
}

TEST(Corruption, EveryBrokenVariantIsRefusedWithAnError) {
  std::vector<Case> all = gguf_byte_cases();
  for (auto& c : gguf_semantic_cases()) all.push_back(std::move(c));
  for (auto& c : llama2c_cases()) all.push_back(std::move(c));
  EXPECT_GE(all.size(), 60u);
  std::map<std::string, int> names;
  for (const Case& c : all) ASSERT_EQ(++names[c.name], 1) << "duplicate case name " << c.name;
  int failures = 0;
  for (const Case& c : all) {
    const std::string problem = run_case(c);
    if (!problem.empty()) {
      ADD_FAILURE() << c.name << ": " << problem;
      ++failures;
    }
  }
  std::printf("%zu corrupted files, %d not refused cleanly\n", all.size(), failures);
}

TEST(Corruption, TheUnbrokenFilesLoad) {
  // The cases above are only meaningful if the originals load.
  EXPECT_NO_THROW(Model::load(model_path("stories260K.gguf")));
  EXPECT_NO_THROW(Model::load(model_path("stories260K.bin"), LoadOptions{model_path("tok512.bin")}));
}

}  // namespace
}  // namespace qkv
