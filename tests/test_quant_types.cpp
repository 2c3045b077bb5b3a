// The weight types llama-quantize writes besides Q8_0/Q4_0/K: Q4_1, Q5_0,
// Q5_1, Q2_K, Q3_K, IQ4_NL, IQ4_XS. Their quantizers against llama-quantize
// tensor by tensor (../shared/models/quant/tensor-sha256.txt), and llama.cpp's
// perplexity and greedy ids on its files.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "engine/api/qkv.hpp"
#include "engine/format/gguf.h"
#include "engine/format/weight_file.h"
#include "engine/runtime/cpu.h"
#include "engine/runtime/thread_pool.h"
#include "ops/types.h"
#include "sha256.h"
#include "test_util.h"

namespace qkv {
namespace {

struct Digest {
  std::string file, tensor, type, shape, sha;
};

std::vector<Digest> load_digests() {
  std::ifstream f(test::model_path("quant/tensor-sha256.txt"));
  std::vector<Digest> out;
  Digest d;
  while (f >> d.file >> d.tensor >> d.type >> d.shape >> d.sha) out.push_back(d);
  return out;
}

// Every tensor llama-quantize wrote in a type qkv writes, quantized by qkv
// from the same F32 source: the same bytes.
TEST(QuantTypes, QuantizersMatchLlamaQuantizeTensorByTensor) {
  const std::vector<Digest> digests = load_digests();
  ASSERT_GT(digests.size(), 1000u);
  std::map<std::string, std::unique_ptr<WeightFile>> sources;
  auto source = [&](const std::string& file) -> const WeightFile& {
    const std::string path = file.rfind("kq256", 0) == 0 ? test::model_path("quant/kq256-f32.gguf")
                                                         : test::model_path("tinyllama-v0-f32.gguf");
    auto& wf = sources[path];
    if (!wf) wf = WeightFile::open(path);
    return *wf;
  };
  std::map<std::string, int> checked, differ;
  std::set<std::string> done;  // (source, tensor, type) already compared
  for (const Digest& d : digests) {
    if (d.file.find("f32") != std::string::npos) continue;  // the sources themselves
    const ops::TypeInfo* t = ops::find_type(d.type);
    ASSERT_NE(t, nullptr) << d.type;
    if (!t->from_float || t->type == ops::Type::F32) continue;
    const std::string key = d.file.substr(0, 5) + "/" + d.tensor + "/" + d.type;
    if (!done.insert(key).second) continue;
    const WeightFile& wf = source(d.file);
    const Tensor* src = wf.find(d.tensor);
    ASSERT_NE(src, nullptr) << d.tensor;
    ASSERT_EQ(src->info().type, ops::Type::F32);
    const size_t n = size_t(src->row_len()), rows = size_t(src->n_rows());
    std::vector<uint8_t> out(t->row_bytes(int64_t(n)) * rows);
    for (size_t r = 0; r < rows; ++r)
      t->from_float(static_cast<const float*>(src->data) + r * n, out.data() + r * t->row_bytes(int64_t(n)), n);
    ++checked[d.type];
    if (test::sha256_hex(out.data(), out.size()) != d.sha) {
      ++differ[d.type];
      ADD_FAILURE() << d.file << " " << d.tensor << " (" << d.type << ", " << d.shape << ") differs from llama-quantize's";
    }
  }
  for (const char* type : {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "iq4_nl", "iq4_xs"}) {
    EXPECT_GT(checked[type], 0) << type << ": no tensor of this type was checked";
    std::printf("%-5s %3d tensors, %d differ\n", type, checked[type], differ[type]);
  }
}

// `qkv quantize SOURCE OUT PRESET` for every file llama-quantize made (kept
// or not): every tensor in the type llama-quantize chose and with its bytes,
// and the tensors in its order.
TEST(QuantTypes, PresetsMatchLlamaQuantizeTensorByTensor) {
  std::map<std::string, std::vector<Digest>> files;
  for (const Digest& d : load_digests()) files[d.file].push_back(d);
  int presets = 0, whole = 0;
  for (const auto& [file, digests] : files) {
    if (file.find("f32") != std::string::npos) continue;
    const std::string preset = file.substr(file.rfind('-') + 1, file.size() - file.rfind('-') - 6);  // "Q4_K_M"
    const std::string src = file.rfind("kq256", 0) == 0 ? test::model_path("quant/kq256-f32.gguf")
                                                         : test::model_path("tinyllama-v0-f32.gguf");
    const std::string out = "/tmp/qkv-preset-" + std::to_string(::getpid()) + "-" + file;
    ::unlink(out.c_str());
    quantize_model(src, out, QuantizeParams(preset));
    ++presets;
    const GgufFile g(out);
    ASSERT_EQ(g.tensors().size(), digests.size()) << file;
    for (size_t i = 0; i < digests.size(); ++i) {
      const Digest& d = digests[i];
      const GgufTensorInfo& ti = g.tensors()[i];
      EXPECT_EQ(ti.name, d.tensor) << file << ": tensor " << i << " out of llama-quantize's order";
      const GgufTensorInfo* t = g.find_tensor(d.tensor);
      ASSERT_NE(t, nullptr) << file << " " << d.tensor;
      std::string type = ops::type_name(t->ggml_type);
      for (char& c : type) c = char(std::tolower(static_cast<unsigned char>(c)));
      std::string want = d.type;
      for (char& c : want) c = char(std::tolower(static_cast<unsigned char>(c)));
      EXPECT_EQ(type, want) << file << " " << d.tensor;
      const Tensor raw = g.tensor(*t);  // the bytes as stored (a loaded model packs a copy)
      EXPECT_EQ(test::sha256_hex(raw.data, t->n_bytes), d.sha) << file << " " << d.tensor << " (" << d.type << ")";
    }
    // Where llama-quantize's file is kept, the whole file is the same: its
    // metadata order, alignment and padding too.
    const std::string theirs = test::model_path("quant/" + file);
    if (::access(theirs.c_str(), R_OK) == 0) {
      ++whole;
      EXPECT_TRUE(test::read_file(out) == test::read_file(theirs)) << file << ": the file differs from llama-quantize's";
    }
    ::unlink(out.c_str());
  }
  EXPECT_EQ(presets, 25);
  EXPECT_EQ(whole, 13);
}

// A mixed file says what it holds and what runs each type: the load line's
// type counts, and describe_model_file's (qkv info's) per-type summary.
TEST(QuantTypes, MixedFilesNameTheirTypesAndWhatRunsThem) {
  const std::string path = test::model_path("quant/tinyllama-v0-Q3_K_M.gguf");
  // The manifest's census: 33 q4_0, 14 q5_0, 8 q4_K, 2 q5_1, 1 q8_0 (and 17 f32 vectors).
  EXPECT_EQ(Model::load(path)->info().weight_types, "Q4_0 x33, Q5_0 x14, Q4_K x8, Q5_1 x2, Q8_0 x1");
  EXPECT_EQ(Model::load(path)->info().file_type, "Q3_K - Medium");  // llama-bench's model column
  EXPECT_EQ(Model::load(test::model_path("tinyllama-v0-q8_0.gguf"))->info().weight_types, "Q8_0");
  const FileDescription d = describe_model_file(path);
  std::map<std::string, TypeDescription> by;
  for (const TypeDescription& t : d.types) by[t.type] = t;
  ASSERT_EQ(by.size(), 6u);
  EXPECT_EQ(by["Q4_0"].tensors, 33);
  EXPECT_EQ(by["F32"].tensors, 17);
  EXPECT_NE(by["Q5_1"].runs_with.find("integer products on Q8_1 activations"), std::string::npos) << by["Q5_1"].runs_with;
  EXPECT_NE(by["Q4_K"].runs_with.find("Q8_K activations"), std::string::npos) << by["Q4_K"].runs_with;
  EXPECT_NE(by["F32"].runs_with.find("f32 kernels"), std::string::npos);
  uint64_t bytes = 0;
  for (const TypeDescription& t : d.types) bytes += t.bytes;
  EXPECT_EQ(bytes, d.tensor_bytes);
  for (size_t i = 1; i < d.types.size(); ++i) EXPECT_GE(d.types[i - 1].bytes, d.types[i].bytes);
}

// At load every matrix whose type has a packed form gets it: whole groups of
// rows (8 for the integer types, 16-row panels for F32), the bytes the type's
// repacker makes of the file's rows at once, each copy cache-line aligned;
// the rest (1-D norms) have none; a row-read matrix keeps its data. Packed
// in pieces of 32 groups on three threads (output.weight: 4,000 groups of 8
// rows; kq256's ffn matrices 96).
TEST(QuantTypes, MatricesArePackedAtLoadAsTheProductsReadThem) {
  ThreadPool pool(3);
  pool.set_leave_out_helpers(false);
  for (const char* file : {"quant/tinyllama-v0-Q3_K_M.gguf", "quant/tinyllama-v0-Q5_K_M.gguf", "tinyllama-v0-f32.gguf",
                           "quant/kq256-Q2_K.gguf", "quant/kq256-Q6_K.gguf", "quant/kq256-IQ4_XS.gguf"}) {
    const std::string path = test::model_path(file);
    auto wf = WeightFile::open(path), plain = WeightFile::open(path);
    std::vector<const Tensor*> matmul, row_read;
    for (const std::string& name : wf->tensor_names()) {
      const Tensor* t = wf->find(name);
      if (t->n_dims == 2) matmul.push_back(t);
      if (name == "token_embd.weight") row_read.push_back(t);
    }
    ASSERT_FALSE(row_read.empty()) << file;
    const ParallelFor parallel = [&](size_t n, const std::function<void(size_t, size_t)>& fn) {
      pool.parallel_for(n, [&](size_t b, size_t e, int) { fn(b, e); }, 1, 0, 16);
    };
    wf->pack_for_products(matmul, row_read, active_kernels(), parallel);
    int packed = 0;
    for (const Tensor* t : matmul) {
      const ops::TypeInfo& info = t->info();
      const ops::Packing how = ops::packing_for(info, active_kernels());  // Q3_K's differs by kernel table
      const Tensor* orig = plain->find(t->name);
      if (!how.repack) {
        EXPECT_EQ(t->packed, nullptr) << file << " " << t->name;
        continue;
      }
      ++packed;
      const size_t n = size_t(t->row_len()), rows = size_t(t->n_rows()) / info.group_rows() * info.group_rows();
      ASSERT_NE(t->packed, nullptr) << file << " " << t->name;
      EXPECT_EQ(size_t(t->packed_rows), rows) << file << " " << t->name;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t->packed) % 64, 0u) << file << " " << t->name;
      std::vector<uint8_t> want(rows / info.group_rows() * (n / size_t(info.block)) * how.group_bytes);
      how.repack(orig->data, want.data(), rows, n);
      EXPECT_EQ(0, std::memcmp(want.data(), t->packed, want.size())) << file << " " << t->name;
    }
    EXPECT_GT(packed, 0) << file;
    const Tensor* embd = wf->find("token_embd.weight");
    EXPECT_EQ(0, std::memcmp(embd->data, plain->find("token_embd.weight")->data, embd->n_bytes())) << file;
  }
}

// llama-perplexity on every llama-quantize file (tinyllama-v0 in each
// preset, kq256 in the K and IQ4_XS ones): within 0.5%, chunk by chunk.
TEST(QuantTypes, PerplexityMatchesLlamaCppOnEveryFile) {
  const std::vector<test::PplRef> refs = test::load_perplexity_refs("perplexity-quant.txt");
  ASSERT_GE(refs.size(), 14u);
  const std::string text = test::read_file(test::reference_path("perplexity-text.txt"));
  for (const test::PplRef& ref : refs) {
    const auto model = Model::load(test::model_path(ref.model));
#ifdef QKV_UNDER_ASAN
    const int chunks = 3;  // the sanitizer run checks the arithmetic, not the whole text
#else
    const int chunks = 0;
#endif
    const PerplexityResult r = perplexity(*model, text, 128, 128, 2, nullptr, chunks, true);  // llama.cpp's f16 cache
    ASSERT_EQ(r.running.size(), chunks ? size_t(chunks) : ref.chunks.size()) << ref.model;
    double worst = 0;
    for (size_t i = 0; i < r.running.size(); ++i) worst = std::max(worst, std::fabs(r.running[i] / ref.chunks[i] - 1.0));
    // The final figure within 0.5%; single chunks of these tiny models move
    // more (a last-bit difference in an activation flips a quantized level).
    EXPECT_LE(worst, 0.01) << ref.model;
    if (!chunks) {
      EXPECT_LE(std::fabs(r.ppl / ref.ppl - 1.0), 0.005) << ref.model << ": " << r.ppl << " vs " << ref.ppl;
    }
    std::printf("%-32s PPL %9.4f (llama.cpp %9.4f), worst chunk %.3f%%\n", ref.model.c_str(), r.ppl, ref.ppl,
                100 * worst);
  }
}

// Greedy ids with the f16 cache llama.cpp ran: the same as its, for both
// prompts of every tinyllama-v0 file, except past a step where llama.cpp's
// top two logits are within 0.01 of each other (a near-tie the last bit
// decides; the reference notes a few): there ours must be a near-tie too.
TEST(QuantTypes, GreedyIdsMatchLlamaCpp) {
  for (const char* type : {"Q4_1", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "IQ4_NL", "IQ4_XS"})
    for (int prompt : {1, 2}) {
      const std::string name = "quant/tinyllama-v0-" + std::string(type) + "-" + std::to_string(prompt) + ".txt";
      const test::ReferenceCase c = test::load_case(name);
      ASSERT_FALSE(c.generated_ids.empty()) << name;
      const auto model = Model::load(test::model_path(c.model));
      float margin = 0;
      const std::vector<int> ids = test::greedy_run(model, c, true, &margin);
      const size_t same = test::common_prefix(ids, c.generated_ids);
      if (same < c.generated_ids.size()) {
        EXPECT_LT(margin, 0.01f) << name << ": parts at token " << same << " by a margin of " << margin;
        EXPECT_GE(same, 16u) << name;
      }
      std::printf("%-40s %zu of %zu ids as llama.cpp's\n", name.c_str(), same, c.generated_ids.size());
    }
}

}  // namespace
}  // namespace qkv
