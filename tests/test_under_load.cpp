// More threads than cores, with busy processes beside them: generation
// completes and gives the same tokens, bit for bit, as one thread on a quiet
// machine (not timed: CI machines differ; bench/loaded.sh measures speed).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <vector>

#include "engine/api/qkv.hpp"
#include "engine/runtime/thread_pool.h"
#include "test_util.h"

namespace qkv {
namespace {

// n processes spinning on a core each, for at most 120 s; stopped when this goes.
class BusyNeighbours {
 public:
  explicit BusyNeighbours(int n) {
    for (int i = 0; i < n; ++i) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(120);
        volatile unsigned long x = 0;
        while (std::chrono::steady_clock::now() < end)
          for (int k = 0; k < 1000000; ++k) x = x + 1;
        ::_exit(0);
      }
      if (pid > 0) pids_.push_back(pid);
    }
  }
  ~BusyNeighbours() {
    for (pid_t p : pids_) ::kill(p, SIGKILL);
    for (pid_t p : pids_) ::waitpid(p, nullptr, 0);
  }

 private:
  std::vector<pid_t> pids_;
};

std::vector<int> greedy_tokens(const std::shared_ptr<const Model>& model, int threads, int n) {
  SessionOptions so;
  so.n_threads = threads;
  so.n_ctx = 128;
  Session s(model, so);
  Sampler greedy(model->info().vocab_size, test::greedy_params());
  return generate(s, greedy, model->tokenize("Once upon a time, there was a little", true), n, nullptr).tokens;
}

TEST(UnderLoad, MoreThreadsThanCoresWithBusyNeighboursGiveTheSameTokens) {
  for (const char* name : {"stories260K.gguf", "tinyllama-v0-q8_0.gguf", "tinyllama-v0-f32.gguf"}) {
    const auto model = Model::load(test::model_path(name));
    const std::vector<int> quiet = greedy_tokens(model, 1, 40);
    ASSERT_EQ(quiet.size(), 40u) << name;
    BusyNeighbours busy(2);
    for (int threads : {2, 3, 6}) EXPECT_EQ(greedy_tokens(model, threads, 40), quiet) << name << " threads " << threads;
  }
}

TEST(UnderLoad, ThePoolCoversEveryIndexWhenWorkersAreLate) {
  BusyNeighbours busy(2);
  ThreadPool pool(5);
  for (int job = 0; job < 300; ++job) {
    const size_t n = size_t(1 + job % 97);
    std::vector<std::atomic<int>> hits(n);
    pool.parallel_for(n, [&](size_t b, size_t e, int t) {
      ASSERT_LT(t, 5);
      if (job % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));  // a late thread
      for (size_t i = b; i < e; ++i) ++hits[i];
    });
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "job " << job << " i " << i;
  }
}

}  // namespace
}  // namespace qkv
