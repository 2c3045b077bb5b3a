#include "engine/runtime/thread_pool.h"

#include <fstream>
#include <set>
#include <string>

#include <system_error>

#include "engine/error.h"
#include "ops/platform.h"

namespace qkv {
namespace {
constexpr int kSpinIterations = 1 << 14;  // ~50-100 us of spinning before sleeping
}

ThreadPool::ThreadPool(int n_threads) : n_(n_threads < 1 ? 1 : n_threads), slots_(new Slot[size_t(n_)]) {
  threads_.reserve(size_t(n_ - 1));
  try {
    for (int i = 1; i < n_; ++i) threads_.emplace_back([this, i] { worker(i); });
  } catch (const std::system_error& e) {  // out of threads or memory: stop those started, then say so
    const size_t started = threads_.size();
    stop_.store(true);
    for (size_t i = 1; i <= started; ++i) wake(slots_[i]);
    for (std::thread& t : threads_) t.join();
    throw Error(cat("cannot start thread ", started + 2, " of ", n_, ": ", e.what()), Errc::OutOfMemory);
  }
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  for (int i = 1; i < n_; ++i) wake(slots_[i]);
  for (std::thread& t : threads_) t.join();
}

// Moves the slot's ticket on; the lock and the notify are only needed when
// its worker went to sleep (sequentially consistent: the worker either sees
// the new ticket, or is seen sleeping here).
void ThreadPool::wake(Slot& s) {
  s.ticket.fetch_add(1, std::memory_order_seq_cst);
  if (s.sleeping.load(std::memory_order_seq_cst)) {
    { std::lock_guard<std::mutex> lock(s.mu); }
    s.cv.notify_one();
  }
}

void ThreadPool::run(Job job, int nt) {
  job_ = job;
  pending_.store(nt - 1, std::memory_order_relaxed);
  for (int i = 1; i < nt; ++i) wake(slots_[i]);
  job.call(job.ctx, 0);
  // Spin while the workers finish; yield if they are slow (more threads than cores).
  for (int i = 0; pending_.load(std::memory_order_acquire) != 0; ++i) {
    if (i < kSpinIterations) ops::cpu_relax();
    else std::this_thread::yield();
  }
}

void ThreadPool::worker(int index) {
  Slot& s = slots_[index];
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = s.ticket.load(std::memory_order_acquire);
    for (int i = 0; g == seen && i < kSpinIterations; ++i) {
      if (i < kSpinIterations / 4) ops::cpu_relax();
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
    job_.call(job_.ctx, index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
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
