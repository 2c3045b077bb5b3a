// qkv perplexity against llama.cpp's figures (../shared/reference/perplexity.txt),
// chunk by chunk, and qkv quantize against llama-quantize, byte for byte.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "engine/error.h"
#include "engine/format/gguf.h"
#include "engine/api/qkv.hpp"
#include "test_util.h"

namespace qkv {
namespace {

TEST(Perplexity, MatchesLlamaCppChunkByChunk) {
  const std::vector<test::PplRef> refs = test::load_perplexity_refs("perplexity.txt");
  ASSERT_EQ(refs.size(), 5u);
  const std::string text = test::read_file(test::reference_path("perplexity-text.txt"));
  for (const test::PplRef& ref : refs) {
    const auto model = Model::load(test::model_path(ref.model));
    const PerplexityResult r = perplexity(*model, text, 128, 128, 2);
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

// skip_chunks (imatrix's --chunk under it): the chunks after the skipped
// ones, scored as the full run scores them (each chunk from an empty cache,
// so chunk k's log-likelihood is the same wherever the run starts); and the
// skips that cannot be.
TEST(Perplexity, SkippedChunksLeaveTheRestAsTheyWere) {
  const auto model = Model::load(test::model_path("stories260K.gguf"));
  const std::string text = test::read_file(test::reference_path("perplexity-text.txt"));
  PerplexityOptions o;
  o.n_ctx = 64, o.n_batch = 64, o.n_threads = 2, o.max_chunks = 3;
  const PerplexityResult full = perplexity(*model, text, o);
  ASSERT_EQ(full.running.size(), 3u);
  o.skip_chunks = 1, o.max_chunks = 2;
  const PerplexityResult rest = perplexity(*model, text, o);
  ASSERT_EQ(rest.running.size(), 2u);
  // Every chunk scores the same number of tokens: chunks 2 and 3's mean NLL
  // from the full run's running estimates after chunks 1 and 3.
  const double want = std::exp((3 * std::log(full.running[2]) - std::log(full.running[0])) / 2);
  EXPECT_NEAR(rest.ppl, want, 1e-9 * want);
  EXPECT_EQ(rest.n_tokens, full.n_tokens - 64);
  o.skip_chunks = 1000;
  EXPECT_NE(test::error_of([&] { perplexity(*model, text, o); }).find("leaves none"), std::string::npos);
  o.skip_chunks = 1, o.kl = PerplexityOptions::Kl::Compare, o.kl_base = "/nonexistent.kld";
  EXPECT_NE(test::error_of([&] { perplexity(*model, text, o); }).find("cannot be skipped when comparing"),
            std::string::npos);
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
  EXPECT_NE(std::system((std::string("'") + QKV_CLI_PATH + "' quantize -m x --type q3_k -o y 2>/dev/null").c_str()), 0);
}

// Runs a CLI command; fails the test when it fails.
void run_cli(const std::string& args) {
  const std::string cmd = std::string("'") + QKV_CLI_PATH + "' " + args + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// Logits of a 6-token prompt (one batch: the GEMM path) and of 3 tokens
// decoded one at a time (the GEMV path), one row each.
std::vector<std::vector<float>> logit_rows(const std::string& path, int threads = 0) {
  const auto model = Model::load(path);
  SessionOptions so;
  so.n_threads = threads;
  Session s(model, so);
  const int V = model->info().vocab_size;
  const std::vector<int> prompt = {1, 7, 300, 42, 99, 511};
  std::vector<std::vector<float>> rows;
  s.eval(prompt.data(), int(prompt.size()), true);
  for (size_t i = 0; i < prompt.size(); ++i) rows.emplace_back(s.logits_at(int(i)), s.logits_at(int(i)) + V);
  for (int t : {3, 77, 250}) {
    s.eval(&t, 1);
    rows.emplace_back(s.logits(), s.logits() + V);
  }
  return rows;
}

// RMS of the difference over the RMS of b, the worst row.
double worst_relative_rms(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  double worst = 0;
  for (size_t r = 0; r < a.size(); ++r) {
    double d = 0, m = 0;
    for (size_t i = 0; i < a[r].size(); ++i) {
      d += (double(a[r][i]) - b[r][i]) * (double(a[r][i]) - b[r][i]);
      m += double(b[r][i]) * b[r][i];
    }
    worst = std::max(worst, std::sqrt(d / m));
  }
  return worst;
}

// Rows that do not fill 256-value super-blocks fall back to Q8_0 (32-value
// blocks fit) or F16 (they do not), and the tool says which.
TEST(Quantize, KQuantFallsBackWhereRowsDoNotFit) {
  const std::string out = "/tmp/qkv-kq-fallback-" + std::to_string(::getpid()) + ".gguf", log = out + ".log";
  const std::string cmd = std::string("'") + QKV_CLI_PATH + "' quantize -m '" + test::model_path("stories260K.bin") +
                          "' -z '" + test::model_path("tok512.bin") + "' --type q6_k -o " + out + " 2>" + log;
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  {
    const GgufFile g(out);
    EXPECT_EQ(g.find_tensor("blk.0.attn_q.weight")->ggml_type, 8u);    // rows of 64: Q8_0
    EXPECT_EQ(g.find_tensor("blk.0.ffn_gate.weight")->ggml_type, 8u);  // rows of 64
    EXPECT_EQ(g.find_tensor("blk.0.ffn_down.weight")->ggml_type, 1u);  // rows of 172: F16
    EXPECT_EQ(g.find_tensor("blk.0.ffn_norm.weight")->ggml_type, 0u);
    EXPECT_EQ(*g.get_uint("general.file_type"), 18u);  // MOSTLY_Q6_K
  }
  std::ifstream f(log);
  const std::string said((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(said.find("blk.0.attn_q.weight: rows of 64 values are not a multiple of 256 (Q6_K): written as Q8_0"), std::string::npos) << said;
  EXPECT_NE(said.find("blk.0.ffn_down.weight: rows of 172 values are not a multiple of 256 (Q6_K): written as F16"), std::string::npos) << said;
  // And it still tells the story.
  const auto model = Model::load(out);
  Session s(model, SessionOptions{});
  Sampler greedy(model->info().vocab_size, test::greedy_params());
  const GenerateResult r = generate(s, greedy, model->tokenize("Once upon a time", true), 8, nullptr);
  EXPECT_EQ(model->detokenize(r.tokens).substr(0, 6), ", ther");
  std::remove(out.c_str());
  std::remove(log.c_str());
}

// q4_k_m: Q4_K, with Q6_K for the classifier and for attn_v / ffn_down in
// the layers llama-quantize gives more bits (8 layers: 0, 3, 6, 7).
TEST(Quantize, Q4_K_MMixesQ4_KAndQ6_K) {
  const std::string base = "/tmp/qkv-q4km-" + std::to_string(::getpid());
  run_cli("synth --dim 256 --hidden 256 --layers 8 --heads 4 --kv-heads 4 --vocab 512 --ctx 32 --type f32 -o " + base +
          ".gguf");
  run_cli("quantize -m " + base + ".gguf --type q4_k_m -o " + base + "-q4km.gguf");
  {
    const GgufFile g(base + "-q4km.gguf");
    EXPECT_EQ(*g.get_uint("general.file_type"), 15u);  // MOSTLY_Q4_K_M
    EXPECT_EQ(g.find_tensor("output.weight")->ggml_type, 14u);
    EXPECT_EQ(g.find_tensor("token_embd.weight")->ggml_type, 12u);
    for (int l = 0; l < 8; ++l) {
      const uint32_t more = (l == 0 || l == 3 || l == 6 || l == 7) ? 14u : 12u;
      EXPECT_EQ(g.find_tensor(cat("blk.", l, ".attn_v.weight"))->ggml_type, more) << l;
      EXPECT_EQ(g.find_tensor(cat("blk.", l, ".ffn_down.weight"))->ggml_type, more) << l;
      EXPECT_EQ(g.find_tensor(cat("blk.", l, ".attn_q.weight"))->ggml_type, 12u) << l;
      EXPECT_EQ(g.find_tensor(cat("blk.", l, ".ffn_up.weight"))->ggml_type, 12u) << l;
    }
  }
  const auto ours = logit_rows(base + "-q4km.gguf"), f32 = logit_rows(base + ".gguf");
  EXPECT_LE(worst_relative_rms(ours, f32), 0.3);
  std::remove((base + ".gguf").c_str());
  std::remove((base + "-q4km.gguf").c_str());
}

// A model whose every matrix is a K-quant (dims multiples of 256), run end to
// end. Against the same file dequantized to F32 the logits differ only by
// the Q8_K rounding of the activations; against the F32 original, also by
// the weights' quantization, within what each type's bits give (random
// weights amplify it; measured 0.018 and 0.22, 0.11, 0.047).
TEST(Quantize, KQuantModelsRunEndToEnd) {
  const std::string base = "/tmp/qkv-kq-" + std::to_string(::getpid());
  run_cli("synth --dim 256 --hidden 512 --layers 2 --heads 4 --kv-heads 2 --vocab 512 --ctx 64 --seed 3 --type f32 -o " +
          base + ".gguf");
  const auto f32 = logit_rows(base + ".gguf");
  struct Want {
    const char* type;
    uint32_t ggml_type;
    double vs_dequantized, vs_original;
  };
  for (const Want& w : {Want{"q4_k_s", 12, 0.03, 0.3}, Want{"q5_k_s", 13, 0.03, 0.15}, Want{"q6_k", 14, 0.03, 0.07}}) {
    const std::string q = base + "-" + w.type + ".gguf", dq = base + "-" + w.type + "-f32.gguf";
    run_cli(std::string("quantize -m ") + base + ".gguf --type " + w.type + " --pure -o " + q);  // every matrix in the type
    run_cli("quantize -m " + q + " --type f32 -o " + dq);
    {
      const GgufFile g(q);
      for (const GgufTensorInfo& t : g.tensors()) EXPECT_EQ(t.ggml_type, t.n_dims >= 2 ? w.ggml_type : 0u) << t.name;
    }
    const auto ours = logit_rows(q, 1);
    EXPECT_EQ(logit_rows(q, 3), ours) << w.type << ": 3 threads give other logits than 1";
    const double vs_dq = worst_relative_rms(ours, logit_rows(dq)), vs_f32 = worst_relative_rms(ours, f32);
    std::printf("%s: logits' relative RMS difference %.4f from the dequantized file, %.4f from the F32 original\n",
                w.type, vs_dq, vs_f32);
    EXPECT_LE(vs_dq, w.vs_dequantized) << w.type;
    EXPECT_LE(vs_f32, w.vs_original) << w.type;
    std::remove(q.c_str());
    std::remove(dq.c_str());
  }
  std::remove((base + ".gguf").c_str());
}

}  // namespace
}  // namespace qkv
