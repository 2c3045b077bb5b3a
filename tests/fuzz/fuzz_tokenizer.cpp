// libFuzzer target: any bytes as text to encode, and as token ids to decode.
// The first byte picks the vocabulary: the real Llama-2 SentencePiece one
// (llama2.c tokenizer.bin), or a byte-level BPE one with its pre-tokenizer
// (Llama 3, Qwen, DeepSeek LLM, Falcon), or Gemma 3's SentencePiece with its
// user-defined tokens. Encoding must round-trip: SentencePiece gives the text
// back, BPE gives it back with invalid UTF-8 as U+FFFD (as llama.cpp does).
#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "engine/text/tokenizer.h"
#include "engine/text/unicode.h"
#include "engine/text/vocab.h"
#include "fuzz_util.h"

namespace {

const std::vector<std::unique_ptr<qkv::Tokenizer>>& tokenizers() {
  static const std::vector<std::unique_ptr<qkv::Tokenizer>> t = [] {
    std::vector<std::unique_ptr<qkv::Tokenizer>> v;
    const std::string dir = qkv::fuzz::models_dir();
    v.push_back(std::make_unique<qkv::Tokenizer>(qkv::load_llama2c_vocab(dir + "/llama2-tokenizer.bin", 32000)));
    for (const char* name : {"llama-bpe", "qwen2", "deepseek-llm", "falcon", "gemma3"})
      v.push_back(std::make_unique<qkv::Tokenizer>(
          qkv::load_gguf_vocab(dir + "/vocab/ggml-vocab-" + std::string(name) + ".gguf")));
    return v;
  }();
  return t;
}

// Whether the vocabulary has GPT-2's character of every byte as a token.
bool every_byte_is_a_token(const qkv::Tokenizer& tok) {
  const std::vector<std::string>& pieces = tok.vocab().pieces;
  const std::set<std::string> all(pieces.begin(), pieces.end());
  for (int b = 0; b < 256; ++b) {
    std::string c;
    qkv::append_utf8(c, qkv::byte_to_char(uint8_t(b)));
    if (!all.count(c)) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto& all = tokenizers();
  const size_t which = data[0] % all.size();
  const qkv::Tokenizer& tok = *all[which];
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  const bool bpe = tok.vocab().model == qkv::VocabModel::Bpe;
  static std::vector<int> complete(all.size(), -1);  // every_byte_is_a_token, once per vocabulary
  if (complete[which] < 0) complete[which] = bpe && every_byte_is_a_token(tok);
  const std::vector<int> ids = tok.encode(text, true, (data[0] & 0x80) != 0);
  std::string back;
  int prev = -1;
  for (int id : ids) {
    if (id < 0 || id >= tok.size()) __builtin_trap();
    back += bpe ? tok.piece(id, true) : tok.decode(prev, id);
    prev = id;
  }
  if (which == 0) {
    // SentencePiece drops only the dummy prefix: decoding gives the text back
    // (the vocabulary has every byte, so nothing is lost).
    if (back != text) __builtin_trap();
  } else if (bpe && (data[0] & 0x80) == 0 && complete[which]) {
    // (A vocabulary without some byte's character, as Falcon's lacks the
    // control bytes, drops those bytes, as llama.cpp does.)
    std::string want;
    for (uint32_t cp : qkv::decode_utf8(text)) qkv::append_utf8(want, cp);
    const std::string bos = tok.vocab().add_bos ? tok.piece(tok.vocab().bos, true) : "";
    if (back != bos + want) __builtin_trap();
  }
  // The same bytes read as token ids (any value, in range or not).
  for (size_t i = 1; i + 4 <= size; i += 4) {
    int32_t id;
    std::memcpy(&id, data + i, 4);
    (void)tok.decode(prev, id);
    (void)tok.piece(id, true);
    prev = id;
  }
  return 0;
}
