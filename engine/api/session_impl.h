// What a Session holds (engine/api/api.cpp builds it; the state, generation
// and chat files of the API use it).
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "engine/api/qkv.hpp"
#include "engine/runtime/architecture.h"
#include "engine/runtime/profiler.h"
#include "engine/runtime/thread_pool.h"

namespace qkv {

struct Session::Impl {
  std::shared_ptr<const Model> model;
  const Architecture* arch = nullptr;
  const ops::Kernels* kernels = nullptr;
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<Profiler> prof;
  std::unique_ptr<RunState> state;
  int n_ctx = 0, n_batch = 0, n_threads = 0, n_threads_batch = 0;
  int n_past = 0;
  int vocab = 0;
  std::unique_ptr<AttentionCapture> capture;  // null: off
  std::unique_ptr<MatmulInputCallback> matmul_input;  // null: off
  std::vector<uint8_t> qscratch;             // activations quantized to Q8_0 blocks
  std::vector<uint8_t> kscratch;             // activations quantized to Q8_K blocks
  std::vector<uint8_t> q1scratch;            // activations quantized to Q8_1 blocks
  std::vector<uint16_t> bscratch;            // activations rounded to bf16 (BF16 weights)
  std::vector<float> fscratch;               // activations rounded to f16 (F16 weights)
  int widest = 0;                            // widest matmul input
  std::vector<float> logits;  // (vocab) or (n, vocab) after an all-logits eval
  int n_logits = 0;           // rows in `logits`; 0: none since the session was made or reset
  int pending = -1;           // a token of the history not evaluated yet (append_pending)
  std::vector<int> tokens;    // what the cache holds, position by position (reserved for n_ctx)
  bool kv_f16 = true;
  std::atomic<bool> cancel{false};  // Session::cancel() asked the running eval to stop
};

}  // namespace qkv
