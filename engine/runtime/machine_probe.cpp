// Measures the machine's limits, so speeds can be shown as a fraction of them:
// the fp32 FMA rate of the active kernels, and the read bandwidth over a
// buffer far larger than the caches.
#include <algorithm>
#include <chrono>
#include <vector>

#include "engine/runtime/cpu.h"
#include "engine/api/qkv.hpp"
#include "engine/runtime/thread_pool.h"
#include "engine/format/zeroed_memory.h"

namespace qkv {

MachineLimits probe_machine(int threads, size_t buffer_bytes) {
  using clock = std::chrono::steady_clock;
  MachineLimits m;
  m.threads = std::max(threads, 1);
  const ops::Kernels& k = active_kernels();
  ThreadPool pool(m.threads);
  auto seconds = [](clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); };

  // Peak: every thread runs independent FMA chains; best of three.
  const size_t iters = size_t(1) << 21;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<double> flops(size_t(m.threads), 0.0);
    const auto t0 = clock::now();
    pool.parallel_for(size_t(m.threads), [&](size_t b, size_t e, int) {
      for (size_t i = b; i < e; ++i) flops[i] = k.fma_peak(iters);
    });
    const double s = seconds(t0);
    double total = 0;
    for (double f : flops) total += f;
    m.fma_gflops = std::max(m.fma_gflops, total / s * 1e-9);
  }

  // Bandwidth: each thread streams its own part of the buffer; best of three.
  // On huge pages, as the packed weights are (TLB misses would make the
  // probe slower than the products it measures).
  const size_t n = std::max<size_t>(buffer_bytes / sizeof(float), 1024);
  const ZeroedMemory mem(n * sizeof(float), true);
  float* buf = mem.as<float>();
  pool.parallel_for(n, [&](size_t b, size_t e, int) { std::fill(buf + b, buf + e, 1.0f); });
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<float> sink(size_t(m.threads));
    const auto t0 = clock::now();
    pool.parallel_for(n, [&](size_t b, size_t e, int t) { sink[size_t(t)] = k.dot(buf + b, buf + b, e - b); });
    const double s = seconds(t0);
    m.read_gbps = std::max(m.read_gbps, double(n) * sizeof(float) / s * 1e-9);
  }
  return m;
}

}  // namespace qkv
