// The sampler on hand-made logits: greedy, filters, penalties, seeds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <vector>

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

// Greedy over vocabularies that do and do not fill the scans' chunks of 64:
// the first maximum as a float comparison finds it, with ties, -inf
// entries, and a maximum of 0 given as -0 before +0.
TEST(Sampler, GreedyMatchesTheFirstMaximumAtEveryWidth) {
  std::mt19937 rng(3);
  for (int n : {1, 2, 63, 64, 65, 127, 1000, 32000}) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> l(static_cast<size_t>(n));
      std::uniform_int_distribution<int> level(-40, 40);
      for (float& x : l) x = float(level(rng)) / 8.0f;  // many ties
      if (trial % 4 == 1)
        for (size_t i = 0; i < l.size(); i += 3) l[i] = -INFINITY;
      if (trial % 4 == 2) {  // a maximum of zero, -0 first
        for (float& x : l) x = -std::fabs(x) - 1.0f;
        l[size_t(n) / 2] = -0.0f;
        l[size_t(n) - 1] = 0.0f;
      }
      if (std::all_of(l.begin(), l.end(), [](float x) { return x == -INFINITY; })) l[0] = 1.0f;
      size_t want = 0;
      for (size_t i = 1; i < l.size(); ++i)
        if (l[i] > l[want]) want = i;
      Sampler s(n, greedy());
      ASSERT_EQ(s.sample(l.data()), int(want)) << "n=" << n << " trial " << trial;
    }
  }
}

// Top-k keeps exactly the k best by (logit, then the lower id), across chunk
// boundaries and ties at the k-th place: drawn often at a high temperature,
// every kept token appears and no other.
TEST(Sampler, TopKKeepsTheKBestWithTiesToTheLowerId) {
  std::mt19937 rng(5);
  for (int n : {50, 65, 1000, 4099}) {
    std::vector<float> l(static_cast<size_t>(n));
    std::uniform_int_distribution<int> level(0, 12);
    for (float& x : l) x = float(level(rng)) / 4.0f;
    for (size_t i = 7; i < l.size(); i += 64) l[i] = -INFINITY;
    const int k = 9;
    std::vector<int> order(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) order[size_t(i)] = i;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return l[size_t(a)] > l[size_t(b)]; });
    const std::set<int> want(order.begin(), order.begin() + k);
    SamplerParams p{50.0f, k, 1.0f, 0.0f, 1.0f, 0, 11};
    Sampler s(n, p);
    std::set<int> seen;
    for (int i = 0; i < 3000; ++i) seen.insert(s.sample(l.data()));
    EXPECT_EQ(seen, want) << "n=" << n;
  }
}

// A NaN or +inf anywhere (the last, partial chunk too) is an error; so is a
// row of -inf alone.
TEST(Sampler, NonFiniteLogitsAreRefusedAtEveryPlace) {
  for (int n : {1, 64, 100}) {
    for (float bad : {NAN, INFINITY})
      for (int at : {0, n / 2, n - 1}) {
        std::vector<float> l(static_cast<size_t>(n), 0.5f);
        l[size_t(at)] = bad;
        Sampler s(n, greedy());
        EXPECT_THROW(s.sample(l.data()), Error) << n << " " << at;
      }
    std::vector<float> l(static_cast<size_t>(n), -INFINITY);
    Sampler s(n, greedy());
    EXPECT_THROW(s.sample(l.data()), Error) << n;
    l[size_t(n) - 1] = -1e30f;
    EXPECT_EQ(s.sample(l.data()), n - 1);
  }
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
