// Our own thread pool. The caller is thread 0; n-1 workers spin for a while
// (an iteration count calibrated at start-up), then yield a few times, then
// sleep on a condition variable between jobs; no lock is taken while they
// spin (per token, nothing is locked or allocated). A job that needs t
// threads wakes workers 1..t-1 only, each through its own slot.
//
// parallel_for splits [0, n) into fixed contiguous chunks (two per thread
// where the grain allows, or as many as the caller asks), and the threads
// claim them one at a time: each its own share first (thread t: the t-th of
// nt contiguous runs of chunks, so that consecutive row-wise ops find their
// rows in their own core's cache), then what is left of the others': a
// worker that the OS has not scheduled yet (a loaded machine) leaves its
// chunks to the others instead of holding everyone at the end of the op. A
// chunk is computed by one thread in one order, so what each index computes
// never depends on the thread count or on who ran it.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/runtime/profiler.h"

namespace qkv {

// When the helpers cannot win, the caller goes on alone for a while (the
// workers sleep and leave their CPU time to it), then tries them again. Two
// signs, over the jobs the helpers were asked to join:
// - stalls: the caller, its own chunks done, waited for a worker longer than
//   twice its own work plus 100 us (the worker was descheduled in the middle
//   of a chunk). Two within 64 jobs.
// - absence: over a window of 64 jobs the helpers ran less than a quarter of
//   their share of the chunks ((nt-1)/nt of each job). The OS runs them
//   while the caller is descheduled and not while it works, and their
//   spinning only takes CPU time from it.
// The first time, kSoloJobs jobs run on the caller alone; when the helpers
// fail again in the first window after that, the period doubles (up to
// kMaxSoloJobs); a window they pass brings it back to kSoloJobs. Results do
// not change: chunks are fixed, whoever runs them.
class HelperRecord {
 public:
  static constexpr int kSoloJobs = 512;
  static constexpr int kMaxSoloJobs = 8192;
  static constexpr int kWindowJobs = 64;

  // After a job on nt > 1 threads of `chunks` chunks, `helped` of them run by
  // the helpers.
  void job_done(bool stalled, size_t chunks, size_t helped, size_t nt);
  // True (and counted) when the next job should run on the caller alone.
  bool take_solo_job() { return solo_left_ > 0 ? (--solo_left_, true) : false; }
  bool solo() const { return solo_left_ > 0; }
  int solo_left() const { return solo_left_; }

 private:
  uint64_t stalls_ = 0;      // bit i: job i back stalled
  int window_jobs_ = 0;      // jobs on helpers in this window
  size_t window_share_ = 0;  // chunks the helpers would have run on a quiet machine
  size_t window_helped_ = 0; // chunks they ran
  bool after_solo_ = false;  // no window passed since the last period alone
  int period_ = kSoloJobs;
  int solo_left_ = 0;
};

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

  static constexpr size_t kChunksPerThread = 2;  // parallel_for's default

  // fn(begin, end, thread) on each chunk of [0, n), using at most
  // max_threads threads (0: all); `thread` is the index (< size()) of the
  // thread running that chunk, for per-thread scratch. Chunks of fewer than
  // `grain` items are not worth waking a thread for; per_thread: the chunks
  // each thread's share is cut into.
  template <class F>
  void parallel_for(size_t n, F&& fn, size_t grain = 1, int max_threads = 0, size_t per_thread = kChunksPerThread) {
    size_t nt = size_t(max_threads > 0 && max_threads < n_ ? max_threads : n_);
    if (nt > 1 && leave_out_ && record_.take_solo_job()) nt = 1;  // the helpers cannot win now
    const size_t pieces = grain > 0 ? n / grain : n;
    if (pieces < nt) nt = pieces ? pieces : 1;
    const size_t chunks = nt <= 1 ? 1 : std::min(pieces, nt * per_thread);
    if constexpr (Profiler::kCompiledIn) {
      if (prof_ && prof_->on()) return profiled_for(n, nt, chunks, fn, *prof_);
    }
    split(n, nt, chunks, fn);
  }

  // Spin iterations a waiting thread makes before it yields (about 50 us on
  // this machine, measured once).
  static int spin_iterations();

  // Whether the next jobs run on the caller alone (HelperRecord).
  bool solo() const { return record_.solo(); }
  // Off: every job is offered to the helpers, whatever their record (for
  // tests of the split itself).
  void set_leave_out_helpers(bool on) { leave_out_ = on; }

 private:
  // Yields a waiting worker makes after spinning, before it sleeps. Few: on a
  // loaded core each yield hands the CPU to another thread for a time slice,
  // and a thread that keeps yielding stays runnable, taking its share.
  static constexpr int kYields = 8;

  // Runs fn on `chunks` contiguous chunks of [0, n) on up to nt threads.
  template <class F>
  void split(size_t n, size_t nt, size_t chunks, F& fn) {
    if (nt <= 1) {
      if (n) fn(size_t(0), n, 0);
      return;
    }
    auto job = [&](size_t c, int t) {
      const size_t b = n * c / chunks, e = n * (c + 1) / chunks;
      if (b < e) fn(b, e, t);
    };
    run(Job{&job, [](void* f, size_t c, int t) { (*static_cast<decltype(job)*>(f))(c, t); }, chunks}, int(nt));
  }

  // split(), recording each chunk as a slice and the caller's wait for the rest.
  template <class F>
  void profiled_for(size_t n, size_t nt, size_t chunks, F& fn, Profiler& p) {
    const uint32_t seq = p.next_seq();
    // When the caller's work ended: the job's start if the workers claimed
    // every chunk before it took one (never 0, which would be a wait from the
    // profiler's start).
    uint64_t caller_done = p.now();
    auto timed = [&](size_t b, size_t e, int t) {
      const uint64_t t0 = p.now();
      fn(b, e, t);
      const uint64_t t1 = p.now();
      p.record(t, Profiler::Event{t0, t1, seq, Profiler::Kind::Slice, Op::kCount, p.phase(), -1, 0, nullptr, 0, 0, {}});
      if (t == 0) caller_done = t1;
    };
    split(n, nt, chunks, timed);
    if (n) p.record(0, Profiler::Event{caller_done, p.now(), seq, Profiler::Kind::Wait, Op::kCount, p.phase(), -1, 0, nullptr, 0, 0, {}});
  }

  struct Job {
    void* ctx;
    void (*call)(void*, size_t chunk, int thread);
    size_t chunks;
  };
  // Runs the job's chunks on the caller and on workers 1..nt-1, and returns
  // when every chunk is done and no worker touches the job any more.
  void run(Job job, int nt);
  void worker(int index);
  // Claims and runs chunks until none is left (its own share, then the
  // others'); returns how many it ran.
  size_t work(int thread);

  // Worker i's mailbox: the number of the job it is asked to join (or, past
  // the last, to stop).
  struct alignas(64) Slot {
    std::atomic<uint64_t> ticket{0};
    std::atomic<bool> sleeping{false};  // waiting on cv
    std::mutex mu;
    std::condition_variable cv;
  };
  void wake(Slot& s, uint64_t ticket);

  // The job's state in one word, so that joining it is one compare-and-swap:
  // bits 63..32 its number, bit 31 open (chunks may still be claimed), bits
  // 30..0 the workers in it. A worker joins only the job it was asked to
  // while it is open; the caller closes it when every chunk is claimed and
  // waits for the workers in it to leave.
  static constexpr uint64_t kOpen = uint64_t(1) << 31;
  static constexpr uint64_t kInside = kOpen - 1;

  int n_;
  Profiler* prof_ = nullptr;
  std::unique_ptr<Slot[]> slots_;  // [n_]; slot 0 (the caller) unused
  std::vector<std::thread> threads_;
  Job job_{nullptr, nullptr, 0};
  uint64_t job_number_ = 0;
  alignas(64) std::atomic<uint64_t> state_{0};
  // Thread t's share of the job's chunks: [next, end), claimed from the front.
  struct alignas(64) Share {
    std::atomic<size_t> next{0};
    size_t end = 0;
  };
  std::unique_ptr<Share[]> shares_;  // [n_]
  int job_threads_ = 1;
  std::atomic<bool> stop_{false};
  HelperRecord record_;  // caller's thread only
  bool leave_out_ = true;
};

// Physical cores of this machine (logical CPUs when that is unknown).
int physical_cores();

}  // namespace qkv
