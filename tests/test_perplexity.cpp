// qkv perplexity against llama.cpp's figures (../shared/reference/perplexity.txt),
// chunk by chunk, and qkv quantize against llama-quantize, byte for byte.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "engine/gguf.h"
#include "engine/qkv.hpp"
#include "test_util.h"
#include "tools/perplexity.h"

namespace qkv {
namespace {

struct PplRef {
  std::string model;
  double ppl = 0, err = 0;
  std::vector<double> chunks;
};

std::vector<PplRef> load_perplexity_refs() {
  std::ifstream f(test::reference_path("perplexity.txt"));
  std::vector<PplRef> refs;
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model: ", 0) == 0) {
      refs.push_back({});
      refs.back().model = line.substr(7);
    } else if (line.rfind("ppl: ", 0) == 0) {
      std::sscanf(line.c_str(), "ppl: %lf +/- %lf", &refs.back().ppl, &refs.back().err);
    } else if (line.rfind("chunks: ", 0) == 0) {
      refs.back().chunks = test::parse_list<double>(line.substr(8));
    }
  }
  return refs;
}

TEST(Perplexity, MatchesLlamaCppChunkByChunk) {
  const std::vector<PplRef> refs = load_perplexity_refs();
  ASSERT_EQ(refs.size(), 5u);
  const std::string text = test::read_file(test::reference_path("perplexity-text.txt"));
  for (const PplRef& ref : refs) {
    const auto model = Model::load(test::model_path(ref.model));
    const cli::PerplexityResult r = cli::perplexity(*model, text, 128, 128, 2);
    ASSERT_EQ(r.running.size(), ref.chunks.size()) << ref.model;
    double worst = 0;
    for (size_t i = 0; i < r.running.size(); ++i) {
      const double rel = std::fabs(r.running[i] / ref.chunks[i] - 1.0);
      worst = std::max(worst, rel);
      EXPECT_LE(rel, 0.005) << ref.model << " chunk " << i + 1 << ": " << r.running[i] << " vs " << ref.chunks[i];
    }
    EXPECT_LE(std::fabs(r.ppl / ref.ppl - 1.0), 0.005) << ref.model;
    EXPECT_LE(std::fabs(r.error / ref.err - 1.0), 0.01) << ref.model;
    std::printf("%s: PPL %.4f +/- %.5f (llama.cpp %.4f +/- %.5f), worst chunk %.3f%%\n", ref.model.c_str(), r.ppl,
                r.error, ref.ppl, ref.err, 100 * worst);
  }
}

TEST(Quantize, Q8_0OfTheF32FileEqualsLlamaQuantizeByteForByte) {
  const std::string out = "/tmp/qkv-quantize-" + std::to_string(::getpid()) + ".gguf";
  const std::string cmd = std::string("'") + QKV_CLI_PATH + "' quantize -m '" + test::model_path("tinyllama-v0-f32.gguf") +
                          "' --type q8_0 -o " + out + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  {
    const GgufFile ours(out), theirs(test::model_path("tinyllama-v0-q8_0.gguf"));
    ASSERT_EQ(ours.tensors().size(), theirs.tensors().size());
    for (const GgufTensorInfo& t : theirs.tensors()) {
      const GgufTensorInfo* u = ours.find_tensor(t.name);
      ASSERT_NE(u, nullptr) << t.name;
      ASSERT_EQ(u->ggml_type, t.ggml_type) << t.name;
      ASSERT_EQ(u->n_bytes, t.n_bytes) << t.name;
      EXPECT_EQ(std::memcmp(ours.tensor(*u).data, theirs.tensor(t).data, t.n_bytes), 0) << t.name;
    }
    EXPECT_EQ(*ours.get_uint("general.file_type"), 7u);
    EXPECT_EQ(ours.get_string("tokenizer.ggml.model"), "llama");
  }
  // And it runs: the same story as llama.cpp's Q8_0 file for its first ten tokens.
  const auto model = Model::load(out);
  Session s(model, SessionOptions{});
  Sampler greedy(model->info().vocab_size, test::greedy_params());
  const test::ReferenceCase c = test::load_case("tinyllama-v0-q8_0-once.txt");
  const GenerateResult r = generate(s, greedy, c.prompt_ids, 10, nullptr);
  EXPECT_TRUE(std::equal(r.tokens.begin(), r.tokens.end(), c.generated_ids.begin()));
  std::remove(out.c_str());
}

TEST(Quantize, Llama2cBinToMixedGguf) {
  // stories260K's ffn_down rows (172 values) do not fill Q4_0 blocks: kept F16.
  const std::string out = "/tmp/qkv-quantize-bin-" + std::to_string(::getpid()) + ".gguf";
  const std::string cmd = std::string("'") + QKV_CLI_PATH + "' quantize -m '" + test::model_path("stories260K.bin") +
                          "' -z '" + test::model_path("tok512.bin") + "' --type q4_0 -o " + out + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const GgufFile g(out);
  EXPECT_EQ(g.find_tensor("blk.0.ffn_down.weight")->ggml_type, 1u);
  EXPECT_EQ(g.find_tensor("blk.0.ffn_up.weight")->ggml_type, 2u);
  EXPECT_EQ(g.find_tensor("blk.0.attn_norm.weight")->ggml_type, 0u);
  EXPECT_EQ(g.find_tensor("output.weight"), nullptr);  // tied, as in the .bin
  const auto model = Model::load(out);
  Session s(model, SessionOptions{});
  Sampler greedy(model->info().vocab_size, test::greedy_params());
  const GenerateResult r = generate(s, greedy, model->tokenize("Once upon a time", true), 8, nullptr);
  EXPECT_EQ(model->detokenize(r.tokens).substr(0, 6), ", ther");  // still the story's start
  std::remove(out.c_str());
  EXPECT_NE(std::system((std::string("'") + QKV_CLI_PATH + "' quantize -m x --type q4_k -o y 2>/dev/null").c_str()), 0);
}

}  // namespace
}  // namespace qkv
