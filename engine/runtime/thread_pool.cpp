#include "engine/runtime/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <string>

#include <system_error>

#include "engine/error.h"
#include "ops/platform.h"

namespace qkv {
int ThreadPool::spin_iterations() {
  // About 50 us of cpu_relax(), timed once: long enough to catch the next op
  // of a forward pass without a sleep, short enough to give a loaded core back.
  static const int n = [] {
    constexpr int kProbe = 20000;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kProbe; ++i) ops::cpu_relax();
    const double ns = double(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
    const double per = std::max(ns / kProbe, 0.5);
    return std::clamp(int(50000.0 / per), 256, 1 << 20);
  }();
  return n;
}

ThreadPool::ThreadPool(int n_threads)
    : n_(n_threads < 1 ? 1 : n_threads), slots_(new Slot[size_t(n_)]), shares_(new Share[size_t(n_)]) {
  spin_iterations();  // calibrated before any job
  threads_.reserve(size_t(n_ - 1));
  try {
    for (int i = 1; i < n_; ++i) threads_.emplace_back([this, i] { worker(i); });
  } catch (const std::system_error& e) {  // out of threads or memory: stop those started, then say so
    const size_t started = threads_.size();
    stop_.store(true);
    for (size_t i = 1; i <= started; ++i) wake(slots_[i], ~uint64_t(0));
    for (std::thread& t : threads_) t.join();
    throw Error(cat("cannot start thread ", started + 2, " of ", n_, ": ", e.what()), Errc::OutOfMemory);
  }
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  for (int i = 1; i < n_; ++i) wake(slots_[i], ~uint64_t(0));
  for (std::thread& t : threads_) t.join();
}

// Hands the slot its ticket; the lock and the notify are only needed when its
// worker went to sleep (sequentially consistent: the worker either sees the
// new ticket, or is seen sleeping here).
void ThreadPool::wake(Slot& s, uint64_t ticket) {
  s.ticket.store(ticket, std::memory_order_seq_cst);
  if (s.sleeping.load(std::memory_order_seq_cst)) {
    { std::lock_guard<std::mutex> lock(s.mu); }
    s.cv.notify_one();
  }
}

size_t ThreadPool::work(int thread) {
  size_t ran = 0;
  const int nt = job_threads_;
  for (int k = 0; k < nt; ++k) {
    Share& s = shares_[size_t((thread + k) % nt)];
    for (size_t c; (c = s.next.fetch_add(1, std::memory_order_relaxed)) < s.end; ++ran) job_.call(job_.ctx, c, thread);
  }
  return ran;
}

void ThreadPool::run(Job job, int nt) {
  job_ = job;
  const uint64_t number = ++job_number_ & 0xffffffffu;
  job_threads_ = nt;
  for (int t = 0; t < nt; ++t) {
    shares_[size_t(t)].next.store(job.chunks * size_t(t) / size_t(nt), std::memory_order_relaxed);
    shares_[size_t(t)].end = job.chunks * size_t(t + 1) / size_t(nt);
  }
  state_.store(number << 32 | kOpen, std::memory_order_release);  // publishes job_ to those who join
  for (int i = 1; i < nt; ++i) wake(slots_[i], number);
  using clock = std::chrono::steady_clock;
  const clock::time_point t0 = clock::now();
  const size_t mine = work(0);
  // Every chunk is claimed: no one may join any more. Wait for those inside
  // (running their last chunk) to leave; a worker the OS never ran in time
  // never joined, and its chunks were done here.
  uint64_t st = state_.fetch_and(~kOpen, std::memory_order_acq_rel) & ~kOpen;
  const int spins = spin_iterations();
  bool stalled = false;
  if ((st & kInside) != 0) {
    const clock::time_point t1 = clock::now();
    for (int i = 0; (st & kInside) != 0; ++i) {
      if (i < spins) ops::cpu_relax();
      else std::this_thread::yield();
      st = state_.load(std::memory_order_acquire);
    }
    const auto waited = clock::now() - t1, worked = t1 - t0;
    stalled = waited > 2 * worked + std::chrono::microseconds(100);
  }
  record_.job_done(stalled, job.chunks, job.chunks - mine, size_t(nt));
}

void HelperRecord::job_done(bool stalled, size_t chunks, size_t helped, size_t nt) {
  stalls_ = stalls_ << 1 | uint64_t(stalled);
  window_share_ += chunks * (nt - 1) / nt;
  window_helped_ += helped;
  bool fail = __builtin_popcountll(stalls_) >= 2;
  const bool window_end = ++window_jobs_ == kWindowJobs;
  if (window_end && !fail) {
    fail = 4 * window_helped_ < window_share_;
    if (!fail) {  // the helpers earned their place: a later failure starts from the shortest period
      period_ = kSoloJobs;
      after_solo_ = false;
    }
  }
  if (fail) {
    if (after_solo_) period_ = std::min(2 * period_, kMaxSoloJobs);
    solo_left_ = period_;
    after_solo_ = true;
    stalls_ = 0;
  }
  if (fail || window_end) {
    window_jobs_ = 0;
    window_share_ = window_helped_ = 0;
  }
}

void ThreadPool::worker(int index) {
  Slot& s = slots_[index];
  uint64_t seen = 0;
  const int spins = spin_iterations();
  for (;;) {
    uint64_t g = s.ticket.load(std::memory_order_acquire);
    for (int i = 0; g == seen && i < spins + kYields; ++i) {
      if (i < spins) ops::cpu_relax();
      else std::this_thread::yield();
      g = s.ticket.load(std::memory_order_acquire);
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lock(s.mu);
      s.sleeping.store(true, std::memory_order_seq_cst);
      s.cv.wait(lock, [&] { return s.ticket.load(std::memory_order_seq_cst) != seen; });
      s.sleeping.store(false, std::memory_order_relaxed);
      g = s.ticket.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load()) return;
    // Join job g if it is still open; a late worker finds it closed (or
    // another job) and goes back to waiting without touching it.
    uint64_t st = state_.load(std::memory_order_acquire);
    bool joined = false;
    while ((st >> 32) == g && (st & kOpen)) {
      if (state_.compare_exchange_weak(st, st + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        joined = true;
        break;
      }
    }
    if (!joined) continue;
    work(index);
    state_.fetch_sub(1, std::memory_order_release);
  }
}

int physical_cores() {
  // Count distinct (physical id, core id) pairs in /proc/cpuinfo.
  std::ifstream f("/proc/cpuinfo");
  std::set<std::pair<int, int>> cores;
  std::string line;
  int phys = 0;
  while (std::getline(f, line)) {
    if (line.rfind("physical id", 0) == 0) phys = std::atoi(line.substr(line.find(':') + 1).c_str());
    if (line.rfind("core id", 0) == 0) cores.insert({phys, std::atoi(line.substr(line.find(':') + 1).c_str())});
  }
  if (!cores.empty()) return int(cores.size());
  const unsigned n = std::thread::hardware_concurrency();
  return n ? int(n) : 1;
}

}  // namespace qkv
