// libFuzzer target: any bytes as text to encode with the real Llama-2
// vocabulary, and as token ids to decode; encode must round-trip.
#include <cstring>
#include <memory>

#include "engine/text/tokenizer.h"
#include "engine/text/vocab.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<qkv::Tokenizer> tok = std::make_unique<qkv::Tokenizer>(
      qkv::load_llama2c_vocab(qkv::fuzz::models_dir() + "/llama2-tokenizer.bin", 32000));
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::vector<int> ids = tok->encode(text, true);
  std::string back;
  int prev = -1;
  for (int id : ids) {
    if (id < 0 || id >= tok->size()) __builtin_trap();
    back += tok->decode(prev, id);
    prev = id;
  }
  // SentencePiece drops only the dummy prefix: decoding gives the text back
  // (the vocabulary has every byte, so nothing is lost).
  if (back != text) __builtin_trap();
  // The same bytes read as token ids (any value, in range or not).
  for (size_t i = 0; i + 4 <= size; i += 4) {
    int32_t id;
    std::memcpy(&id, data + i, 4);
    (void)tok->decode(prev, id);
    prev = id;
  }
  return 0;
}
