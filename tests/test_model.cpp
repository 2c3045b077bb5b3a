// The KV cache, batching and threading: decoding token by token must give
// the logits of one batched pass; 1, 2 and 3 threads must agree bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <cstdio>
#include <cstring>

#include <unistd.h>

#include "engine/api/qkv.hpp"
#include "test_util.h"

namespace qkv {
namespace {

using test::model_path;

std::shared_ptr<const Model> stories_bin() {
  return Model::load(model_path("stories260K.bin"), LoadOptions{model_path("tok512.bin")});
}
std::shared_ptr<const Model> tinyllama_gguf() { return Model::load(model_path("tinyllama-v0-f32.gguf")); }

std::vector<int> some_tokens(const Model& m, int n) {
  std::vector<int> t = m.tokenize("Once upon a time, there was a little girl named Lily. She loved to play", true);
  while (int(t.size()) < n) t.push_back(t[t.size() % 7 + 1]);
  t.resize(size_t(n));
  return t;
}

float max_abs_diff(const float* a, const float* b, int n) {
  float m = 0.0f;
  for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

void check_cache_matches_batch(const std::shared_ptr<const Model>& model, int n_tokens, int n_batch) {
  const int V = model->info().vocab_size;
  const std::vector<int> toks = some_tokens(*model, n_tokens);
  // The f32 cache: an f16 cache rounds K and V, and a last-bit difference
  // between the batched and the one-token products can cross a rounding step.
  SessionOptions so;
  so.n_batch = n_batch;
  so.kv_f16 = false;
  Session batched(model, so);
  batched.eval(toks, true);
  so.n_batch = 512;
  Session stepped(model, so);
  for (int i = 0; i < n_tokens; ++i) {
    stepped.eval(&toks[size_t(i)], 1);
    ASSERT_LE(max_abs_diff(stepped.logits(), batched.logits_at(i), V), 1e-4f)
        << model->info().path << " position " << i << " n_batch " << n_batch;
  }
  EXPECT_EQ(stepped.n_past(), n_tokens);
}

TEST(KVCache, TokenByTokenEqualsOneBatch) {
  check_cache_matches_batch(stories_bin(), 40, 512);   // GQA 2:1, head_dim 8
  check_cache_matches_batch(tinyllama_gguf(), 24, 512);  // head_dim 4, vocab 32000
}

TEST(KVCache, BatchesSplitAcrossCallsAgree) {
  check_cache_matches_batch(stories_bin(), 37, 5);  // batches of 5, last one of 2
  check_cache_matches_batch(stories_bin(), 3, 1);
}

TEST(KVCache, FullContextThenError) {
  const auto model = stories_bin();
  SessionOptions so;
  so.n_ctx = 16;
  Session s(model, so);
  const std::vector<int> toks = some_tokens(*model, 16);
  s.eval(toks.data(), 15);
  s.eval(&toks[15], 1);  // exactly the context
  EXPECT_EQ(s.n_past(), 16);
  const int one = toks[1];
  EXPECT_THROW(s.eval(&one, 1), Error);
  // Truncating frees room; re-evaluating the same token the same way gives the same logits.
  std::vector<float> last(s.logits(), s.logits() + model->info().vocab_size);
  s.truncate(15);
  s.eval(&toks[15], 1);
  EXPECT_EQ(max_abs_diff(s.logits(), last.data(), model->info().vocab_size), 0.0f);
  s.reset();
  EXPECT_EQ(s.n_past(), 0);
}

TEST(KVCache, GenerateStopsAtContextLimitAndRefusesLongPrompts) {
  const auto model = stories_bin();
  const std::vector<int> prompt = model->tokenize("Once upon a time", true);  // 5 tokens
  for (int n_ctx : {12, 4}) {
    SessionOptions so;
    so.n_ctx = n_ctx;
    Session s(model, so);
    Sampler greedy(model->info().vocab_size, test::greedy_params());
    if (n_ctx < int(prompt.size())) {
      EXPECT_THROW(generate(s, greedy, prompt, 10, nullptr), Error);
      EXPECT_EQ(s.n_past(), 0);
      continue;
    }
    const GenerateResult r = generate(s, greedy, prompt, 100, nullptr);
    EXPECT_EQ(r.stop, StopReason::ContextFull);
    EXPECT_EQ(s.n_past(), 12);
    EXPECT_EQ(r.tokens.size(), 8u);  // 7 fed after the prompt, plus the last sampled
  }
}

TEST(KVCache, BadTokenIdsAreRefused) {
  const auto model = stories_bin();
  Session s(model, SessionOptions{});
  const int bad[2] = {1, 512};
  EXPECT_THROW(s.eval(bad, 2), Error);
  const int neg = -1;
  EXPECT_THROW(s.eval(&neg, 1), Error);
  EXPECT_EQ(s.n_past(), 0);
}

// Greedy text and every logit, for a thread count.
struct ThreadRun {
  std::vector<int> ids;
  std::vector<float> logits;
};

ThreadRun run_with_threads(const std::shared_ptr<const Model>& model, int threads) {
  SessionOptions so;
  so.n_threads = threads;
  Session s(model, so);
  Sampler greedy(model->info().vocab_size, test::greedy_params());
  ThreadRun r;
  const std::vector<int> prompt = model->tokenize("Lily and Tom were playing with a ball", true);
  s.eval(prompt, true);
  const int V = model->info().vocab_size;
  r.logits.assign(s.logits_at(0), s.logits_at(0) + size_t(V) * prompt.size());
  for (int i = 0; i < 30; ++i) {
    const int t = greedy.sample(s.logits());
    r.ids.push_back(t);
    r.logits.insert(r.logits.end(), s.logits(), s.logits() + V);
    s.eval(&t, 1);
  }
  return r;
}

TEST(Threads, OneTwoThreeThreadsAgreeBitForBit) {
  for (const auto& model : {stories_bin(), tinyllama_gguf(), Model::load(test::model_path("tinyllama-v0-q8_0.gguf")),
                            Model::load(test::model_path("tinyllama-v0-q4_0.gguf"))}) {
    const ThreadRun one = run_with_threads(model, 1);
    for (int t : {2, 3}) {
      const ThreadRun other = run_with_threads(model, t);
      EXPECT_EQ(other.ids, one.ids) << t << " threads";
      ASSERT_EQ(other.logits.size(), one.logits.size());
      EXPECT_EQ(std::memcmp(other.logits.data(), one.logits.data(), one.logits.size() * sizeof(float)), 0)
          << t << " threads";
    }
  }
}

TEST(KVCache, F16CacheIsCloseToF32AndThreadIndependent) {
  const auto model = tinyllama_gguf();
  const std::vector<int> toks = some_tokens(*model, 20);
  const int V = model->info().vocab_size;
  SessionOptions f32_cache;
  f32_cache.kv_f16 = false;
  Session f32(model, f32_cache);
  f32.eval(toks);
  std::vector<float> first;
  for (int threads : {1, 2, 3}) {
    SessionOptions so;
    so.kv_f16 = true;
    so.n_threads = threads;
    Session f16(model, so);
    f16.eval(toks.data(), 12);  // a batch, then one token at a time
    for (size_t i = 12; i < toks.size(); ++i) f16.eval(&toks[i], 1);
    EXPECT_LE(max_abs_diff(f16.logits(), f32.logits(), V), 0.05f) << threads << " threads";
    if (first.empty()) first.assign(f16.logits(), f16.logits() + V);
    EXPECT_EQ(std::memcmp(first.data(), f16.logits(), size_t(V) * 4), 0) << threads << " threads";
  }
}

// A model wide enough that every matmul and attention pass splits across
// threads (dim 512, hidden 1376, 8 heads over 2 KV heads of 64), a prompt in
// batches of 128 to position 300, then tokens one by one past 512 (split-K
// over up to three chunks): 1, 2 and 3 threads give the same bits, on
// either cache type.
TEST(Threads, WideModelAtDepthAgreesBitForBit) {
  SynthParams p;
  p.dim = 512, p.hidden = 1376, p.layers = 2, p.heads = 8, p.kv_heads = 2, p.vocab = 600, p.ctx = 1024;
  p.type = "q8_0";
  const std::string path = "/tmp/qkv-wide-" + std::to_string(::getpid()) + ".gguf";
  synth_model(path, p);
  const auto model = Model::load(path);
  std::remove(path.c_str());  // mapped: the model stays readable
  std::vector<int> prompt(300);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int(3 + (i * 37) % 590);
  for (bool f16 : {false, true}) {
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
      SessionOptions so;
      so.n_threads = threads;
      so.n_batch = 128;
      so.kv_f16 = f16;
      Session s(model, so);
      s.eval(prompt);
      std::vector<float> got(s.logits(), s.logits() + p.vocab);
      for (int i = 0; i < 230; ++i) {
        const int t = int(std::max_element(s.logits(), s.logits() + p.vocab) - s.logits());
        s.eval(&t, 1);
        if (i % 23 == 0) got.insert(got.end(), s.logits(), s.logits() + p.vocab);
      }
      ASSERT_EQ(s.n_past(), 530);
      if (first.empty()) first = got;
      ASSERT_EQ(got.size(), first.size());
      EXPECT_EQ(std::memcmp(got.data(), first.data(), got.size() * sizeof(float)), 0)
          << threads << " threads, " << (f16 ? "f16" : "f32") << " cache";
    }
  }
}

TEST(Threads, SeededSamplingIsTheSameOnAnyThreadCount) {
  const auto model = stories_bin();
  std::vector<int> first;
  for (int threads : {1, 2, 3}) {
    SessionOptions so;
    so.n_threads = threads;
    Session s(model, so);
    SamplerParams sp;
    sp.seed = 1234;
    Sampler sampler(model->info().vocab_size, sp);
    const GenerateResult r = generate(s, sampler, model->tokenize("Once", true), 50, nullptr);
    if (first.empty()) first = r.tokens;
    EXPECT_EQ(r.tokens, first) << threads << " threads";
  }
}

TEST(ModelApi, InfoAndDetokenize) {
  const auto model = stories_bin();
  const ModelInfo& i = model->info();
  EXPECT_EQ(i.dim, 64);
  EXPECT_EQ(i.hidden_dim, 172);
  EXPECT_EQ(i.n_layers, 5);
  EXPECT_EQ(i.n_heads, 8);
  EXPECT_EQ(i.n_kv_heads, 4);
  EXPECT_EQ(i.head_dim, 8);
  EXPECT_EQ(i.vocab_size, 512);
  EXPECT_EQ(i.context_length, 512);
  EXPECT_EQ(model->detokenize(model->tokenize("Once upon a time", true)), "Once upon a time");
  EXPECT_TRUE(model->is_end_of_text(1));
  EXPECT_TRUE(model->is_end_of_text(2));
  EXPECT_FALSE(model->is_end_of_text(3));
}

TEST(ModelApi, GenerateCallbackCanStop) {
  const auto model = stories_bin();
  Session s(model, SessionOptions{});
  Sampler greedy(model->info().vocab_size, test::greedy_params());
  int calls = 0;
  const GenerateResult r =
      generate(s, greedy, model->tokenize("Once upon a time", true), 100, [&](int, const std::string&) {
        return ++calls < 3;
      });
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(r.stop, StopReason::Callback);
  EXPECT_EQ(r.tokens, (std::vector<int>{432, 383, 286}));  // ", there was"
}

}  // namespace
}  // namespace qkv
