// libFuzzer target: any bytes as a llama2.c checkpoint (with tok512.bin), as
// a llama2.c tokenizer.bin (for a 512-token model) and as a legacy importance matrix.
#include "engine/api/qkv.hpp"
#include "engine/text/vocab.h"
#include "engine/format/imatrix.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qkv::fuzz::MemFile f(data, size);
  try {
    const auto model = qkv::Model::load(f.path(), qkv::LoadOptions{qkv::fuzz::models_dir() + "/tok512.bin"});
    qkv::SessionOptions so;
    so.n_ctx = 8;
    so.n_threads = 1;
    qkv::Session s(model, so);
    s.eval(model->tokenize("Lily", true));
  } catch (const qkv::Error&) {
  }
  try {
    (void)qkv::load_llama2c_vocab(f.path(), 512);
  } catch (const qkv::Error&) {
  }
  try {  // as an importance matrix (llama-imatrix's legacy .dat)
    (void)qkv::load_imatrix(f.path());
  } catch (const qkv::Error&) {
  }
  return 0;
}
