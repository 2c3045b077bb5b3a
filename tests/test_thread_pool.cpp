#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
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
      EXPECT_LE(chunks.load(), 2 * threads);  // two chunks per thread, claimed as they come
    }
  }
}

// Each thread starts on its own share (thread t: the t-th of nt runs of
// chunks), so that consecutive row-wise ops find their rows where they left
// them. The caller holds its first chunk until the worker has begun one: that
// one must open the worker's share, and the caller's be chunk 0. (A caller
// descheduled for the whole job runs none: the worker, done with its share,
// takes the caller's, as it should. That happened once in a loaded ctest -j2;
// such a job checks the worker alone, and most jobs must see the caller. A
// caller descheduled until the worker has taken chunk 0 too opens its share
// at the next one, chunk 1: seen once in a fresh-clone CI run.)
TEST(ThreadPool, EachThreadStartsOnItsOwnShare) {
  ThreadPool pool(2);
  pool.set_leave_out_helpers(false);
  int caller_ran = 0;
  for (int job = 0; job < 20; ++job) {
    std::atomic<long> worker_first{-1};
    std::atomic<bool> worker_took_0{false};
    long caller_first = -1;
    bool waited_out = false;
    pool.parallel_for(400, [&](size_t b, size_t, int t) {
      if (t == 1) {
        long none = -1;
        worker_first.compare_exchange_strong(none, long(b));
        if (b == 0) worker_took_0 = true;
      } else if (caller_first < 0) {
        caller_first = long(b);
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (worker_first.load() < 0 && !(waited_out = std::chrono::steady_clock::now() > until)) std::this_thread::yield();
      }
    });
    ASSERT_FALSE(waited_out) << "the worker never ran";
    if (caller_first >= 0) {
      ++caller_ran;
      EXPECT_EQ(caller_first, worker_took_0 ? 100 : 0) << "job " << job;
    }
    EXPECT_EQ(worker_first.load(), 200) << "job " << job;  // 4 chunks of 100: the worker's share is chunks 2 and 3
  }
  EXPECT_GE(caller_ran, 10) << "the caller ran a chunk in " << caller_ran << " jobs of 20";
}

// A job cut finer (per_thread chunks each): every index once, in chunks of
// the requested size, and the threads still open their own shares.
TEST(ThreadPool, FinerChunksWhenAsked) {
  ThreadPool pool(2);
  pool.set_leave_out_helpers(false);
  for (int job = 0; job < 20; ++job) {
    std::vector<std::atomic<int>> hits(1600);
    std::atomic<int> chunks{0};
    std::atomic<long> worker_first{-1};
    pool.parallel_for(
        1600,
        [&](size_t b, size_t e, int t) {
          EXPECT_EQ(e - b, 100u);  // 16 chunks of 100
          EXPECT_EQ(b % 100, 0u);
          ++chunks;
          for (size_t i = b; i < e; ++i) ++hits[i];
          long none = -1;
          if (t == 1) worker_first.compare_exchange_strong(none, long(b));
        },
        1, 0, 8);
    EXPECT_EQ(chunks.load(), 16);
    for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i].load(), 1) << "i=" << i;
    // The worker's first chunk, if it ran one, is in its own share (chunks
    // 8 .. 15): it never takes the caller's before its own.
    if (worker_first.load() >= 0) {
      EXPECT_GE(worker_first.load(), 800) << "job " << job;
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
  pool.set_leave_out_helpers(false);  // empty chunks: the helpers could be found absent
  std::atomic<int> chunks{0};
  std::atomic<unsigned> threads_seen{0};
  for (int rep = 0; rep < 50; ++rep)
    pool.parallel_for(100, [&](size_t, size_t, int t) { ++chunks, threads_seen |= 1u << t; }, 1, 2);
  EXPECT_EQ(chunks.load(), 50 * 4);          // 2 threads, two chunks each
  EXPECT_EQ(threads_seen.load() & ~3u, 0u);  // never a thread beyond the two asked for
  chunks = 0;
  pool.parallel_for(100, [&](size_t, size_t, int) { ++chunks; }, 60);
  EXPECT_EQ(chunks.load(), 1);
  chunks = 0;
  pool.parallel_for(100, [&](size_t, size_t, int) { ++chunks; }, 30);  // 3 grains: 3 threads, a chunk each
  EXPECT_EQ(chunks.load(), 3);
}

// Chunks are fixed by n and the thread count, whoever runs them.
TEST(ThreadPool, ChunksAreFixedWhoeverRunsThem) {
  ThreadPool pool(3);
  pool.set_leave_out_helpers(false);
  std::vector<std::pair<size_t, size_t>> first;
  for (int rep = 0; rep < 200; ++rep) {
    std::vector<std::pair<size_t, size_t>> seen(6);
    std::atomic<int> k{0};
    pool.parallel_for(1000, [&](size_t b, size_t e, int) {
      seen[size_t(k++)] = {b, e};
    });
    ASSERT_EQ(k.load(), 6);
    std::sort(seen.begin(), seen.end());
    if (first.empty()) first = seen;
    ASSERT_EQ(seen, first);
  }
  EXPECT_EQ(first.front().first, 0u);
  EXPECT_EQ(first.back().second, 1000u);
}

TEST(ThreadPool, SpinIterationsAreCalibrated) {
  EXPECT_GE(ThreadPool::spin_iterations(), 256);
  EXPECT_LE(ThreadPool::spin_iterations(), 1 << 20);
}

// A worker that keeps stalling (here: sleeping in every chunk, as one the OS
// descheduled would) sends the pool to the caller alone for a while; the
// results stay whole.
TEST(ThreadPool, StallingHelpersAreLeftOut) {
  ThreadPool pool(2);
  // Each job: the caller's first chunk waits until the worker has taken a
  // chunk, and the worker then sleeps 50 ms in it, as a worker the OS
  // descheduled would: the caller waits far longer than it worked.
  for (int job = 0; job < 2; ++job) {
    std::atomic<bool> worker_in{false};
    pool.parallel_for(4, [&](size_t, size_t, int t) {
      if (t != 0) {
        worker_in = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        return;
      }
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (!worker_in && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
    });
    ASSERT_TRUE(worker_in) << "the worker never ran in 5 s";
  }
  EXPECT_TRUE(pool.solo());
  {
    std::vector<int> hits(100, 0);
    pool.parallel_for(100, [&](size_t b, size_t e, int t) {
      EXPECT_EQ(t, 0);
      for (size_t i = b; i < e; ++i) ++hits[i];
    });
    for (int h : hits) ASSERT_EQ(h, 1);
  }
  // Jobs that the worker takes its part of (the caller's chunk waits until
  // the worker has run one): no stall, no absence, the helpers stay in.
  ThreadPool quiet(2);
  for (int job = 0; job < 3 * HelperRecord::kWindowJobs; ++job) {
    std::atomic<bool> worker_ran{false};
    quiet.parallel_for(4, [&](size_t, size_t, int t) {
      if (t != 0) {
        worker_ran = true;
        return;
      }
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (!worker_ran && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
    });
    ASSERT_TRUE(worker_ran) << "job " << job << ": the worker never ran in 5 s";
  }
  EXPECT_FALSE(quiet.solo());
}

// The record's rules, on made-up jobs of 4 chunks on 2 threads (the helper's
// share: 2 chunks a job).
TEST(HelperRecord, AbsentHelpersAreLeftOutForPeriodsThatGrowWhileTheyFail) {
  HelperRecord r;
  const int w = HelperRecord::kWindowJobs;
  auto window = [&](size_t helped_per_job) {
    for (int j = 0; j < w; ++j) {
      ASSERT_FALSE(r.solo()) << "job " << j;
      r.job_done(false, 4, helped_per_job, 2);
    }
  };
  auto drain = [&] {  // the period alone; returns its length
    int n = 0;
    while (r.take_solo_job()) ++n;
    return n;
  };
  // Helpers that take half the chunks, or a quarter of their share, stay in.
  window(2);
  window(1);
  EXPECT_FALSE(r.solo());
  // Ran less than a quarter of their share (1 chunk in 2 jobs of 4, where 4 were theirs).
  for (int j = 0; j < w; ++j) r.job_done(false, 4, j % 8 == 0 ? 1 : 0, 2);
  ASSERT_TRUE(r.solo());
  EXPECT_EQ(drain(), HelperRecord::kSoloJobs);
  // Failing the first window after it doubles the next period, up to the cap.
  int expect = HelperRecord::kSoloJobs;
  for (int round = 0; round < 6; ++round) {
    window(0);
    expect = std::min(2 * expect, HelperRecord::kMaxSoloJobs);
    EXPECT_EQ(drain(), expect) << "round " << round;
  }
  EXPECT_EQ(expect, HelperRecord::kMaxSoloJobs);
  // A window passed: the next failure starts from the shortest period again.
  window(2);
  window(0);
  EXPECT_EQ(drain(), HelperRecord::kSoloJobs);
}

TEST(HelperRecord, TwoStallsWithin64JobsLeaveTheHelpersOut) {
  HelperRecord r;
  r.job_done(true, 4, 2, 2);
  for (int j = 0; j < 62; ++j) r.job_done(false, 4, 2, 2);
  EXPECT_FALSE(r.solo());
  r.job_done(true, 4, 2, 2);  // the 64th job back from the first stall
  EXPECT_TRUE(r.solo());
  EXPECT_EQ(r.solo_left(), HelperRecord::kSoloJobs);
  HelperRecord spaced;  // stalls 64 jobs apart are forgotten
  spaced.job_done(true, 4, 2, 2);
  for (int j = 0; j < 63; ++j) spaced.job_done(false, 4, 2, 2);
  spaced.job_done(true, 4, 2, 2);
  EXPECT_FALSE(spaced.solo());
}

}  // namespace
}  // namespace qkv
