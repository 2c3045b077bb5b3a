// One model shared read-only by two sessions generating at the same time in
// two threads: each gets exactly what it gets alone. Also built with
// ThreadSanitizer (qkv_tsan_tests).
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "engine/api/qkv.h"
#include "test_util.h"

namespace {

struct GenRun {
  std::vector<int32_t> ids;
  std::vector<float> last_logits;
};

int collect(void* user, int32_t token, const char*, size_t) {
  static_cast<std::vector<int32_t>*>(user)->push_back(token);
  return 1;
}

// A whole generation on its own session and sampler.
GenRun generate(const qkv_model* model, const std::string& prompt, uint64_t seed, int threads) {
  GenRun r;
  qkv_session_params sp = qkv_session_default_params();
  sp.n_threads = threads;
  qkv_session* s = nullptr;
  qkv_sampler* g = nullptr;
  qkv_sampler_params gp = qkv_sampler_default_params();
  gp.seed = seed;
  if (qkv_session_new(model, &sp, &s) == QKV_OK && qkv_sampler_new(model, &gp, &g) == QKV_OK) {
    std::vector<int32_t> toks(256);
    size_t n = 0;
    qkv_tokenize(model, prompt.data(), prompt.size(), 1, toks.data(), toks.size(), &n);
    qkv_generate(s, g, toks.data(), n, 40, collect, &r.ids, nullptr);
    const float* l = qkv_logits(s);
    r.last_logits.assign(l, l + qkv_model_n_vocab(model));
  }
  qkv_sampler_free(g);
  qkv_session_free(s);
  return r;
}

TEST(Concurrency, TwoSessionsOnOneModelMatchTheirSoloRuns) {
  for (const char* file : {"stories260K.gguf", "tinyllama-v0-f32.gguf"}) {
    qkv_model* model = nullptr;
    ASSERT_EQ(qkv_model_load(qkv::test::model_path(file).c_str(), nullptr, &model), QKV_OK)
        << qkv_model_last_error(model);
    for (int threads : {1, 2}) {
      const GenRun solo_a = generate(model, "Once upon a time", 1, threads);
      const GenRun solo_b = generate(model, "Lily and Tom", 2, threads);
      ASSERT_EQ(solo_a.ids.size(), 40u);
      GenRun a, b;
      std::thread ta([&] { a = generate(model, "Once upon a time", 1, threads); });
      std::thread tb([&] { b = generate(model, "Lily and Tom", 2, threads); });
      ta.join();
      tb.join();
      EXPECT_EQ(a.ids, solo_a.ids) << file;
      EXPECT_EQ(b.ids, solo_b.ids) << file;
      EXPECT_EQ(a.last_logits, solo_a.last_logits) << file;
      EXPECT_EQ(b.last_logits, solo_b.last_logits) << file;
    }
    qkv_model_free(model);
  }
}

}  // namespace
