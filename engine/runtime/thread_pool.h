// Our own thread pool. The caller is thread 0; n-1 workers spin briefly, then
// sleep, between jobs; no lock is taken while they spin (per token, nothing is
// locked or allocated). A job that needs t threads wakes workers 1..t-1 only,
// each through its own slot. parallel_for splits [0, n) into fixed contiguous
// chunks, one per thread, so what each index computes never depends on the
// count.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/runtime/profiler.h"

namespace qkv {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_; }

  // With a profiler that is on, every chunk is recorded as a slice on its
  // thread, and the caller's wait for the others as a wait.
  void set_profiler(Profiler* p) { prof_ = p; }

  // fn(begin, end, thread) on each thread's chunk of [0, n), using at most
  // max_threads threads (0: all). Chunks of fewer than `grain` items are not
  // worth waking a thread for.
  template <class F>
  void parallel_for(size_t n, F&& fn, size_t grain = 1, int max_threads = 0) {
    size_t nt = size_t(max_threads > 0 && max_threads < n_ ? max_threads : n_);
    if (grain > 0 && n / grain < nt) nt = n / grain ? n / grain : 1;
    if constexpr (Profiler::kCompiledIn) {
      if (prof_ && prof_->on()) return profiled_for(n, nt, fn, *prof_);
    }
    split(n, nt, fn);
  }

 private:
  // Runs fn on nt contiguous chunks of [0, n), chunk t on thread t.
  template <class F>
  void split(size_t n, size_t nt, F& fn) {
    if (nt <= 1) {
      if (n) fn(size_t(0), n, 0);
      return;
    }
    auto job = [&](int t) {
      const size_t b = n * size_t(t) / nt, e = n * size_t(t + 1) / nt;
      if (b < e) fn(b, e, t);
    };
    run(Job{&job, [](void* f, int t) { (*static_cast<decltype(job)*>(f))(t); }}, int(nt));
  }

  // split(), recording each chunk as a slice and the caller's wait for the rest.
  template <class F>
  void profiled_for(size_t n, size_t nt, F& fn, Profiler& p) {
    const uint32_t seq = p.next_seq();
    uint64_t caller_done = 0;
    auto timed = [&](size_t b, size_t e, int t) {
      const uint64_t t0 = p.now();
      fn(b, e, t);
      const uint64_t t1 = p.now();
      p.record(t, Profiler::Event{t0, t1, seq, Profiler::Kind::Slice, Op::kCount, p.phase(), -1, 0, nullptr, 0, 0, {}});
      if (t == 0) caller_done = t1;
    };
    split(n, nt, timed);
    if (n) p.record(0, Profiler::Event{caller_done, p.now(), seq, Profiler::Kind::Wait, Op::kCount, p.phase(), -1, 0, nullptr, 0, 0, {}});
  }

  struct Job {
    void* ctx;
    void (*call)(void*, int);
  };
  // Runs job on threads 0..nt-1 (the caller is 0) and returns when all are done.
  void run(Job job, int nt);
  void worker(int index);

  // Worker i's mailbox: its ticket moves on when it has a job (or must stop).
  struct alignas(64) Slot {
    std::atomic<uint64_t> ticket{0};
    std::atomic<bool> sleeping{false};  // waiting on cv
    std::mutex mu;
    std::condition_variable cv;
  };
  void wake(Slot& s);

  int n_;
  Profiler* prof_ = nullptr;
  std::unique_ptr<Slot[]> slots_;  // [n_]; slot 0 (the caller) unused
  std::vector<std::thread> threads_;
  Job job_{nullptr, nullptr};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

// Physical cores of this machine (logical CPUs when that is unknown).
int physical_cores();

}  // namespace qkv
