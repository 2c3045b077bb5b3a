// The abstract model interface: what the engine asks of an architecture, and
// the registry architectures add themselves to. Each architecture (one file
// in models/) reads its own hyper-parameters and tensors from the weights
// file; the public API registers them (models/registry.h) and never names a
// concrete one.
#pragma once

#include <memory>
#include <string>

#include "engine/runtime/model_config.h"
#include "engine/api/qkv.hpp"
#include "engine/runtime/thread_pool.h"
#include "engine/format/weight_file.h"
#include "ops/ops.h"

namespace qkv {

// Per-session state of an architecture: KV cache and activation buffers,
// allocated once for n_ctx positions, batches of up to n_batch tokens and
// passes on up to n_threads threads.
class KVCache;
class RunState {
 public:
  virtual ~RunState() = default;
  virtual KVCache& kv_cache() = 0;  // what a session's saved state holds
};

// Which attention rows to hand out (see Session::set_attention_capture).
struct AttentionCapture {
  AttentionCallback callback;
  std::vector<bool> layers, heads;  // by index; empty: all
  bool wants_layer(int l) const { return layers.empty() || (size_t(l) < layers.size() && layers[size_t(l)]); }
  bool wants_head(int h) const { return heads.empty() || (size_t(h) < heads.size() && heads[size_t(h)]); }
};

// What a forward pass runs with.
struct ExecContext {
  ThreadPool& pool;
  const ops::Kernels& k;
  int n_threads;     // how many of the pool's threads this pass may use
  Profiler* prof;    // zones are recorded here when it is on (may be null)
  const AttentionCapture* capture = nullptr;  // attention rows to hand out (may be null)
  // Room for activations quantized for integer products: at least
  // n_batch * (widest matmul input / 32) Q8_0 blocks, and as many / 256
  // Q8_K blocks.
  void* qscratch = nullptr;
  size_t qscratch_bytes = 0;
  void* kscratch = nullptr;
  size_t kscratch_bytes = 0;
  void* q1scratch = nullptr;  // as many Q8_1 blocks as Q8_0 ones
  size_t q1scratch_bytes = 0;
  uint16_t* bscratch = nullptr;  // activations rounded to bf16: as many values, and as many floats after them
  size_t bscratch_bytes = 0;
  float* fscratch = nullptr;     // activations rounded to f16 (as floats): as many values
  size_t fscratch_bytes = 0;
  const MatmulInputCallback* matmul_input = nullptr;  // every weight product's input (may be null)
};

class Architecture {
 public:
  virtual ~Architecture() = default;
  virtual const ModelConfig& config() const = 0;
  virtual int64_t n_params() const = 0;
  virtual std::string weight_type() const = 0;
  virtual bool tied_output() const = 0;  // classifier shares the token embedding
  // The matrices forward() multiplies with (linear()), and those of them
  // whose rows it also reads one at a time (an embedding table tied to the
  // classifier).
  virtual std::vector<const Tensor*> matmul_weights() const = 0;
  virtual std::vector<const Tensor*> row_read_weights() const = 0;

  // kv_f16: keep the KV cache in f16 (and compute attention as llama.cpp does on it).
  virtual std::unique_ptr<RunState> new_state(int n_ctx, int n_batch, int n_threads, bool kv_f16) const = 0;

  // Runs tokens[0, n) at positions [pos, pos + n) (n <= n_batch, pos + n <=
  // n_ctx), appending to the KV cache. Writes the logits of the last token to
  // logits[0, vocab), or of every token i to logits[i * vocab, ...) when
  // all_logits is set.
  virtual void forward(RunState& state, const int* tokens, int n, int pos, float* logits, bool all_logits,
                       const ExecContext& ctx) const = 0;
};

using ArchitectureFactory = std::unique_ptr<Architecture> (*)(const WeightFile& weights);

void register_architecture(const std::string& name, ArchitectureFactory factory);
// The architecture wf.architecture() names, built over wf. Throws qkv::Error
// naming the file, the architecture and those registered if none is
// registered for it.
std::unique_ptr<Architecture> make_architecture(const WeightFile& wf);

// The hyper-parameters every GGUF architecture stores under the same keys
// ("{arch}.embedding_length", ".feed_forward_length", ".block_count",
// ".attention.head_count", ".attention.head_count_kv", ".context_length",
// ".rope.freq_base", ".attention.layer_norm_rms_epsilon"), read and checked;
// head_dim = dim / n_heads and vocab_size from the rows of
// token_embd.weight. An architecture adds what is its own.
ModelConfig read_common_hparams(const WeightFile& wf);

}  // namespace qkv
