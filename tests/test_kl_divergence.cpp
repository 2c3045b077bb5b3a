// qkv perplexity's KL divergence (--kl-divergence-base / --kl-divergence):
// the saved base read back, the statistics against a direct computation from
// two sessions, and hostile base files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/api/qkv.hpp"
#include "test_util.h"

namespace qkv {
namespace {

using Kl = PerplexityOptions::Kl;

PerplexityOptions options(Kl kl, const std::string& base, int n_ctx = 32, int chunks = 2) {
  PerplexityOptions o;
  o.n_ctx = n_ctx;
  o.n_batch = 16;  // two batches per chunk: positions straddle a batch boundary
  o.n_threads = 2;
  o.max_chunks = chunks;
  o.kl = kl;
  o.kl_base = base;
  return o;
}

std::vector<double> log_softmax(const float* l, int V) {
  std::vector<double> lp(static_cast<size_t>(V));
  const double mx = *std::max_element(l, l + V);
  double s = 0;
  for (int v = 0; v < V; ++v) s += std::exp(double(l[v]) - mx);
  for (int v = 0; v < V; ++v) lp[size_t(v)] = double(l[v]) - mx - std::log(s);
  return lp;
}

TEST(KlDivergence, SelfComparisonIsZero) {
  const auto model = Model::load(test::model_path("stories260K.gguf"));
  const std::string text = test::read_file(test::reference_path("perplexity-text.txt"));
  test::TempFile base("", ".kld");
  std::remove(base.path().c_str());
  const PerplexityResult saved = perplexity(*model, text, options(Kl::SaveBase, base.path()));
  EXPECT_FALSE(saved.has_kl);
  // Saving changes nothing about the perplexity itself.
  const PerplexityResult plain = perplexity(*model, text, options(Kl::None, ""));
  EXPECT_EQ(saved.ppl, plain.ppl);
  const PerplexityResult r = perplexity(*model, "", options(Kl::Compare, base.path(), 999, 0));
  ASSERT_TRUE(r.has_kl);
  EXPECT_EQ(r.n_ctx, 32);  // the file's, not the option's
  EXPECT_EQ(r.n_chunks, 2);
  EXPECT_EQ(r.ppl, plain.ppl);
  EXPECT_EQ(r.kl.n_positions, 2 * (32 - 1 - 16));
  EXPECT_LT(r.kl.kld, 1e-6);    // only the 16-bit storage differs
  EXPECT_LT(r.kl.kld_max, 1e-5);
  EXPECT_EQ(r.kl.same_top, 1.0);
  EXPECT_NEAR(r.kl.ppl_base, r.ppl, 1e-3 * r.ppl);
  EXPECT_LT(std::fabs(r.kl.ln_ppl_ratio), 1e-4);
  EXPECT_LT(r.kl.dp_rms, 1e-3);
}

// The f32 model as base, its Q4_0 quantization compared: every statistic
// against the same numbers computed here from two sessions in double.
TEST(KlDivergence, QuantizedModelMatchesADirectComputation) {
  const auto f32 = Model::load(test::model_path("tinyllama-v0-f32.gguf"));
  const auto q4 = Model::load(test::model_path("tinyllama-v0-q4_0.gguf"));
  const std::string text = test::read_file(test::reference_path("perplexity-text.txt"));
  test::TempFile base("", ".kld");
  std::remove(base.path().c_str());
  const int n_ctx = 32, chunks = 2;
  const PerplexityResult fb = perplexity(*f32, text, options(Kl::SaveBase, base.path(), n_ctx, chunks));
  const PerplexityResult r = perplexity(*q4, "", options(Kl::Compare, base.path()));
  ASSERT_TRUE(r.has_kl);
  EXPECT_EQ(r.ppl, perplexity(*q4, text, options(Kl::None, "", n_ctx, chunks)).ppl);
  EXPECT_NEAR(r.kl.ppl_base, fb.ppl, 1e-3 * fb.ppl);

  const std::vector<int> tokens = f32->tokenize(text, true);
  ASSERT_GE(tokens.size(), size_t(chunks * n_ctx));
  const int V = f32->info().vocab_size;
  SessionOptions so;
  so.n_ctx = n_ctx;
  so.n_threads = 1;
  Session a(f32, so), b(q4, so);
  std::vector<double> kld, dp;
  int same = 0;
  double ln_ratio = 0;
  for (int c = 0; c < chunks; ++c) {
    std::vector<int> chunk(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
    chunk[0] = f32->bos_id();
    a.reset(), b.reset();
    a.eval(chunk.data(), n_ctx, true);
    b.eval(chunk.data(), n_ctx, true);
    for (int i = n_ctx / 2; i < n_ctx - 1; ++i) {
      const std::vector<double> p = log_softmax(a.logits_at(i), V), q = log_softmax(b.logits_at(i), V);
      double k = 0;
      for (int v = 0; v < V; ++v) k += std::exp(p[size_t(v)]) * (p[size_t(v)] - q[size_t(v)]);
      kld.push_back(k);
      const int next = chunk[size_t(i) + 1];
      dp.push_back(std::exp(q[size_t(next)]) - std::exp(p[size_t(next)]));
      ln_ratio += p[size_t(next)] - q[size_t(next)];
      same += std::max_element(p.begin(), p.end()) - p.begin() == std::max_element(q.begin(), q.end()) - q.begin();
    }
  }
  const double n = double(kld.size());
  ASSERT_EQ(r.kl.n_positions, int(kld.size()));
  double mean_kld = 0, mean_dp = 0;
  for (size_t i = 0; i < kld.size(); ++i) mean_kld += kld[i] / n, mean_dp += dp[i] / n;
  EXPECT_GT(mean_kld, 1e-4);  // Q4_0 really differs, so the comparison means something
  EXPECT_NEAR(r.kl.kld, mean_kld, 1e-3 * mean_kld + 1e-6);
  EXPECT_NEAR(r.kl.kld_max, *std::max_element(kld.begin(), kld.end()), 2e-3 * r.kl.kld_max + 1e-6);
  EXPECT_NEAR(r.kl.dp_mean, mean_dp, 1e-4);
  EXPECT_NEAR(r.kl.ln_ppl_ratio, ln_ratio / n, 1e-4);
  EXPECT_NEAR(r.kl.same_top, same / n, 1.5 / n);  // a tie stored in 16 bits may flip one
  EXPECT_LE(r.kl.kld_min, r.kl.kld_median);
  EXPECT_LE(r.kl.kld_median, r.kl.kld_p99);
  EXPECT_LE(r.kl.kld_p99, r.kl.kld_max);
  std::printf("Q4_0 vs F32: KLD %.6f +/- %.6f, same top %.1f%%, PPL %.4f vs %.4f\n", r.kl.kld, r.kl.kld_error,
              100 * r.kl.same_top, r.ppl, r.kl.ppl_base);
}

TEST(KlDivergence, HostileOrMismatchedBaseFilesAreRefused) {
  const auto model = Model::load(test::model_path("stories260K.gguf"));
  const std::string text = test::read_file(test::reference_path("perplexity-text.txt"));
  test::TempFile base("", ".kld");
  std::remove(base.path().c_str());
  perplexity(*model, text, options(Kl::SaveBase, base.path(), 16, 1));
  const std::string bytes = test::read_file(base.path());
  ASSERT_EQ(bytes.size(), 24u + 16 * 4 + 7 * (8 + 2 * size_t(model->info().vocab_size)));
  auto refused = [&](const std::string& content, const std::string& expect_in_message) {
    test::TempFile f(content, ".kld");
    try {
      perplexity(*model, "", options(Kl::Compare, f.path()));
      ADD_FAILURE() << "accepted: " << expect_in_message;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expect_in_message), std::string::npos) << e.what();
    }
  };
  refused(bytes.substr(0, bytes.size() - 1), "needs");
  refused(bytes + "x", "needs");
  refused(bytes.substr(0, 10), "header");
  refused("GGUF" + bytes.substr(4), "not a qkv KL base file");
  std::string other_vocab = bytes;
  const uint32_t v = 32000;
  std::memcpy(&other_vocab[12], &v, 4);
  refused(other_vocab, "vocabulary");
  std::string bad_token = bytes;
  const int32_t t = 1 << 20;
  std::memcpy(&bad_token[24 + 4 * 5], &t, 4);
  refused(bad_token, "token 5");
  std::string huge = bytes;
  const uint32_t c = 0xffffffffu;
  std::memcpy(&huge[8], &c, 4);
  refused(huge, "implausible");
  // Saving over a directory is refused, and the directory stays.
  EXPECT_THROW(perplexity(*model, text, options(Kl::SaveBase, "/tmp", 16, 1)), Error);
  EXPECT_THROW(perplexity(*model, text, options(Kl::Compare, "")), Error);
}

}  // namespace
}  // namespace qkv
