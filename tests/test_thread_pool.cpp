#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "engine/runtime/thread_pool.h"

namespace qkv {
namespace {

TEST(ThreadPool, CoversEveryIndexOnceInContiguousChunks) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (size_t n : {size_t(0), size_t(1), size_t(2), size_t(7), size_t(1000)}) {
      std::vector<std::atomic<int>> hits(n);
      std::atomic<int> chunks{0};
      pool.parallel_for(n, [&](size_t b, size_t e, int t) {
        EXPECT_LT(b, e);
        EXPECT_LT(t, threads);
        ++chunks;
        for (size_t i = b; i < e; ++i) ++hits[i];
      });
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
      EXPECT_LE(chunks.load(), threads);
    }
  }
}

TEST(ThreadPool, ManyJobsInARow) {
  ThreadPool pool(3);
  std::atomic<long> sum{0};
  for (int j = 0; j < 2000; ++j)
    pool.parallel_for(6, [&](size_t b, size_t e, int) { sum += long(e - b); });
  EXPECT_EQ(sum.load(), 2000L * 6);
}

TEST(ThreadPool, MaxThreadsAndGrainLimitTheSplit) {
  ThreadPool pool(4);
  std::atomic<int> chunks{0};
  pool.parallel_for(100, [&](size_t, size_t, int) { ++chunks; }, 1, 2);
  EXPECT_EQ(chunks.load(), 2);
  chunks = 0;
  pool.parallel_for(100, [&](size_t, size_t, int) { ++chunks; }, 60);
  EXPECT_EQ(chunks.load(), 1);
}

}  // namespace
}  // namespace qkv
