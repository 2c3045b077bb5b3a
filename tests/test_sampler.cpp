// The sampler on hand-made logits: greedy, filters, penalties, seeds.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "engine/api/qkv.hpp"
#include "test_util.h"

namespace qkv {
namespace {

SamplerParams greedy() { return test::greedy_params(); }

TEST(Sampler, GreedyPicksTheFirstMaximum) {
  Sampler s(5, greedy());
  const float l[5] = {0.5f, 3.0f, -1.0f, 3.0f, 2.0f};
  EXPECT_EQ(s.sample(l), 1);
}

TEST(Sampler, TopKOfOneIsGreedy) {
  SamplerParams p;
  p.top_k = 1;
  p.temperature = 5.0f;
  Sampler s(4, p);
  const float l[4] = {0.1f, 0.2f, 0.9f, 0.3f};
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s.sample(l), 2);
}

TEST(Sampler, TopPKeepsOnlyTheNucleus) {
  SamplerParams p{1.0f, 0, 0.5f, 0.0f, 1.0f, 0, 7};
  Sampler s(3, p);
  // probabilities ~ 0.665, 0.245, 0.090: top-p 0.5 keeps token 0 alone.
  const float l[3] = {2.0f, 1.0f, 0.0f};
  for (int i = 0; i < 100; ++i) EXPECT_EQ(s.sample(l), 0);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  SamplerParams p{1.0f, 0, 1.0f, 0.3f, 1.0f, 0, 7};
  Sampler s(3, p);
  // token 2 has e^-3 = 0.05 of the best's probability: below 0.3, never drawn.
  const float l[3] = {3.0f, 2.5f, 0.0f};
  std::map<int, int> seen;
  for (int i = 0; i < 400; ++i) ++seen[s.sample(l)];
  EXPECT_EQ(seen.count(2), 0u);
  EXPECT_GT(seen[0], 0);
  EXPECT_GT(seen[1], 0);
}

TEST(Sampler, FrequenciesFollowTheDistribution) {
  SamplerParams p{1.0f, 0, 1.0f, 0.0f, 1.0f, 0, 99};
  Sampler s(2, p);
  const float l[2] = {0.0f, std::log(3.0f)};  // probabilities 1/4, 3/4
  int ones = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ones += s.sample(l);
  EXPECT_NEAR(double(ones) / n, 0.75, 0.02);
}

TEST(Sampler, SameSeedSameSequence) {
  SamplerParams p;
  p.seed = 42;
  Sampler a(50, p), b(50, p);
  float l[50];
  for (int i = 0; i < 50; ++i) l[i] = float(i % 7) * 0.3f;
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.sample(l), b.sample(l));
  p.seed = 43;
  Sampler c(50, p);
  a.reset();
  int differ = 0;
  for (int i = 0; i < 100; ++i) differ += a.sample(l) != c.sample(l);
  EXPECT_GT(differ, 0);
}

TEST(Sampler, RepetitionPenaltyDemotesRecentTokens) {
  SamplerParams p = greedy();
  p.repeat_penalty = 2.0f;
  p.repeat_last_n = 4;
  Sampler s(3, p);
  const float l[3] = {1.0f, 1.5f, -0.5f};
  EXPECT_EQ(s.sample(l), 1);
  s.accept(1);  // 1.5 / 2 = 0.75 < 1.0
  EXPECT_EQ(s.sample(l), 0);
  for (int i = 0; i < 4; ++i) s.accept(2);  // token 1 leaves the window of 4
  EXPECT_EQ(s.sample(l), 1);
}

TEST(Sampler, InvalidParametersAreRefused) {
  EXPECT_THROW(Sampler(10, SamplerParams{-1.0f, 0, 1.0f, 0.0f, 1.0f, 0, 0}), Error);
  EXPECT_THROW(Sampler(10, SamplerParams{1.0f, -1, 1.0f, 0.0f, 1.0f, 0, 0}), Error);
  EXPECT_THROW(Sampler(10, SamplerParams{1.0f, 0, 0.0f, 0.0f, 1.0f, 0, 0}), Error);
  EXPECT_THROW(Sampler(10, SamplerParams{1.0f, 0, 1.5f, 0.0f, 1.0f, 0, 0}), Error);
  EXPECT_THROW(Sampler(10, SamplerParams{1.0f, 0, 1.0f, 2.0f, 1.0f, 0, 0}), Error);
  EXPECT_THROW(Sampler(10, SamplerParams{1.0f, 0, 1.0f, 0.0f, 0.0f, 0, 0}), Error);
  EXPECT_THROW(Sampler(0, SamplerParams{}), Error);
}

}  // namespace
}  // namespace qkv
