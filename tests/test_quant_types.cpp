// The weight types llama-quantize writes besides Q8_0/Q4_0/K: Q4_1, Q5_0,
// Q5_1, Q2_K, Q3_K, IQ4_NL, IQ4_XS. Their quantizers against llama-quantize
// tensor by tensor (../shared/models/quant/tensor-sha256.txt), and llama.cpp's
// perplexity and greedy ids on its files.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "engine/api/qkv.hpp"
#include "engine/format/weight_file.h"
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
  for (const char* type : {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K"}) {
    EXPECT_GT(checked[type], 0) << type << ": no tensor of this type was checked";
    std::printf("%-5s %3d tensors, %d differ\n", type, checked[type], differ[type]);
  }
}

}  // namespace
}  // namespace qkv
