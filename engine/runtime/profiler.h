// Per-op profiler. Off by default: every zone then costs one predictable
// branch and no timer read. On: each thread appends timestamped events to its
// own preallocated buffer (no locks, no allocation while running):
//   - zones: one op invocation on the calling thread (op, layer, FLOPs, bytes)
//   - slices: one thread's chunk of a parallel op
//   - waits: the calling thread waiting for the others at the end of a parallel op
//   - passes: a whole forward pass (its phase: prompt batch or generation)
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/api/qkv.hpp"

namespace qkv {

enum class Op : uint8_t {
  Embedding, Rmsnorm, Matmul, Rope, KvStore, Attention, Add, Sampling, Quantize, Layernorm, Activation, Copy, kCount
};
const char* op_name(Op op);

enum class Phase : uint8_t { Prompt, Generation };

class Profiler {
 public:
  enum class Kind : uint8_t { Zone, Slice, Wait, Pass };
  struct Event {
    uint64_t t0, t1;     // ns since start()
    uint32_t seq;        // parallel op number (slices, waits) or 0
    Kind kind;
    Op op;
    Phase phase;
    int16_t layer;       // -1: not in a layer
    int32_t tokens;      // passes: batch size
    const char* detail;  // e.g. the weight's name; static or model-owned storage
    double flops, bytes;
    int32_t shape[3];    // zones: the op's sizes, e.g. (tokens, rows, row length) of a matmul
  };

  explicit Profiler(int n_threads) : threads_(size_t(n_threads)) {}

#ifdef QKV_NO_PROFILER
  static constexpr bool kCompiledIn = false;
  static constexpr bool on() { return false; }  // compiled out: every zone folds away
#else
  static constexpr bool kCompiledIn = true;
  bool on() const { return on_; }
#endif
  void start(size_t events_per_thread = 1 << 18);  // allocates; clears earlier events
  void stop() { on_ = false; }

  uint64_t now() const {
    return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - epoch_).count());
  }
  void record(int thread, const Event& e) {
    std::vector<Event>& buf = threads_[size_t(thread)];
    if (buf.size() < buf.capacity()) buf.push_back(e);
    else ++dropped_;
  }
  uint32_t next_seq() { return ++seq_; }
  Phase phase() const { return phase_; }
  void set_phase(Phase p) { phase_ = p; }

  ProfileReport report(double peak_gflops, double peak_gbps) const;
  std::string trace_json() const;  // Chrome trace-event format
  std::string csv() const;         // one row per zone instance

 private:
  bool on_ = false;
  Phase phase_ = Phase::Prompt;
  uint32_t seq_ = 0;
  uint64_t dropped_ = 0;
  std::chrono::steady_clock::time_point epoch_;
  std::vector<std::vector<Event>> threads_;
};

// RAII zone on the calling thread (thread 0). When the profiler is off (or
// absent) this is a null check and nothing else.
struct ZoneShape {
  int64_t a = 0, b = 0, c = 0;
};

class Zone {
 public:
  Zone(Profiler* p, Op op, int layer, double flops, double bytes, const char* detail = nullptr, ZoneShape shape = {}) {
    if (p && p->on()) {
      p_ = p;
      e_ = Profiler::Event{p->now(), 0, 0, Profiler::Kind::Zone, op, p->phase(), int16_t(layer), 0, detail, flops, bytes,
                           {int32_t(shape.a), int32_t(shape.b), int32_t(shape.c)}};
    }
  }
  ~Zone() {
    if (p_) {
      e_.t1 = p_->now();
      p_->record(0, e_);
    }
  }
  Zone(const Zone&) = delete;
  Zone& operator=(const Zone&) = delete;

 private:
  Profiler* p_ = nullptr;
  Profiler::Event e_{};
};

}  // namespace qkv
