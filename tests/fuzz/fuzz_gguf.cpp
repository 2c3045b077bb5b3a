// libFuzzer target: any bytes as a GGUF file. The parser, the model loader and
// the importance-matrix reader must answer with qkv::Error or a result, never
// crash, hang or read out of bounds.
#include "engine/format/gguf.h"
#include "engine/api/qkv.hpp"
#include "engine/format/imatrix.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qkv::fuzz::MemFile f(data, size);
  try {
    qkv::GgufFile g(f.path(), /*use_mmap=*/false);
    for (const qkv::GgufTensorInfo& t : g.tensors()) {
      try {
        (void)g.tensor(t);
      } catch (const qkv::Error&) {
      }
    }
  } catch (const qkv::Error&) {
  }
  try {
    const auto model = qkv::Model::load(f.path());
    // A model that loads must also run.
    qkv::SessionOptions so;
    so.n_ctx = 8;
    so.n_threads = 1;
    qkv::Session s(model, so);
    const std::vector<int> ids = model->tokenize("Once upon", true);
    s.eval(ids);
    // ... and sampling from what it computed: a token, or qkv::Error for
    // non-finite logits (NaN or infinite weights), never garbage.
    qkv::Sampler sampler(model->info().vocab_size, qkv::SamplerParams{});
    const int t = s.sample(sampler);
    if (t < 0 || t >= model->info().vocab_size) __builtin_trap();
  } catch (const qkv::Error&) {
  }
  try {  // as an importance matrix (llama-imatrix's GGUF form)
    (void)qkv::load_imatrix(f.path());
  } catch (const qkv::Error&) {
  }
  return 0;
}
