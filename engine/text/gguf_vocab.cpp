// The tokenizer.ggml.* vocabulary of a GGUF file, with the defaults and the
// fix-ups llama.cpp applies when it loads one: default special ids per
// tokenizer model, add_bos/add_eos, the end-of-generation tokens found by
// their text, and Phi-3's right-stripped special tokens.
#include <algorithm>
#include <cctype>

#include "engine/error.h"
#include "engine/format/gguf.h"
#include "engine/text/pretokenizer.h"
#include "engine/text/vocab.h"

namespace qkv {

// Tokens llama.cpp ends generation at, found by their text (they become
// control tokens if the file says otherwise).
static const char* const kEndOfGenerationTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
    "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "[e~["};
// Fill-in-the-middle tokens that also end generation (the first of each kind found).
static const std::vector<std::vector<std::string>> kFimEndTexts = {
    {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"},
    {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"},
    {"<|file_sep|>"}};

Vocab read_gguf_vocab(const GgufFile& g) {
  const std::string model = g.get_string("tokenizer.ggml.model");
  Vocab v;
  v.source = g.path();
  if (model == "llama") {
    v.model = VocabModel::Spm;
    v.bos = 1, v.eos = 2, v.unk = 0;
    v.add_bos = true, v.add_eos = false, v.add_space_prefix = true;
  } else if (model == "gpt2") {
    v.model = VocabModel::Bpe;
    v.bos = 11, v.eos = 11, v.unk = -1;
    v.add_space_prefix = false;
    if (const GgufValue* pre = g.find("tokenizer.ggml.pre"); pre && pre->type == GgufType::STRING) v.pre = pre->str;
    v.add_bos = pretokenizer_adds_bos(v.pre, v.source);  // also refuses an unknown pre-tokenizer
    v.add_eos = false;
    if (!g.has("tokenizer.ggml.merges"))
      throw Error(cat(g.path(), ": tokenizer.ggml.model is gpt2 but the file has no tokenizer.ggml.merges"));
    v.merges = g.get_string_array("tokenizer.ggml.merges");
  } else {
    throw Error(cat(g.path(), ": tokenizer model '", model,
                    "' is not supported (supported: llama = SentencePiece, gpt2 = byte-level BPE)"));
  }

  if (const GgufValue* t = g.find("tokenizer.chat_template"); t && t->type == GgufType::STRING) v.chat_template = t->str;
  v.pieces = g.get_string_array("tokenizer.ggml.tokens");
  const size_t n = v.pieces.size();
  if (n == 0) throw Error(cat(g.path(), ": tokenizer.ggml.tokens is empty"));
  if (g.has("tokenizer.ggml.scores")) {
    v.scores = g.get_float_array("tokenizer.ggml.scores");
    if (v.scores.size() != n)
      throw Error(cat(g.path(), ": tokenizer.ggml.scores has ", v.scores.size(), " entries, expected ", n));
  } else {
    v.scores.assign(n, 0.0f);
  }
  v.kinds.assign(n, TokenKind::Normal);
  if (g.has("tokenizer.ggml.token_type")) {
    const std::vector<int64_t> types = g.get_int_array("tokenizer.ggml.token_type");
    if (types.size() != n)
      throw Error(cat(g.path(), ": tokenizer.ggml.token_type has ", types.size(), " entries, expected ", n));
    for (size_t i = 0; i < n; ++i) {
      if (types[i] < 1 || types[i] > 6)
        throw Error(cat(g.path(), ": tokenizer.ggml.token_type[", i, "] = ", types[i], " is not a token type"));
      v.kinds[i] = TokenKind(types[i]);
    }
  }

  // Special ids: a default outside the vocabulary means none; a key outside it is an error.
  auto id = [&](const char* key, int def) {
    const std::optional<uint64_t> x = g.get_uint(key);
    if (!x) return def >= 0 && size_t(def) < n ? def : -1;
    if (*x >= n) throw Error(cat(g.path(), ": ", key, " = ", *x, " is outside the vocabulary of ", n, " tokens"));
    return int(*x);
  };
  v.bos = id("tokenizer.ggml.bos_token_id", v.bos);
  v.eos = id("tokenizer.ggml.eos_token_id", v.eos);
  v.unk = id("tokenizer.ggml.unknown_token_id", v.unk);
  const int eot = id("tokenizer.ggml.eot_token_id", -1);
  const int eom = id("tokenizer.ggml.eom_token_id", -1);
  auto flag = [&](const char* key, bool& value) {
    if (const GgufValue* f = g.find(key); f && f->type == GgufType::BOOL) value = f->u != 0;
  };
  flag("tokenizer.ggml.add_bos_token", v.add_bos);
  flag("tokenizer.ggml.add_eos_token", v.add_eos);
  flag("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
  if (v.add_bos && v.bos < 0)
    throw Error(cat(g.path(), ": tokenizer.ggml.add_bos_token is true but the vocabulary has no BOS token"));
  if (v.add_eos && v.eos < 0)
    throw Error(cat(g.path(), ": tokenizer.ggml.add_eos_token is true but the vocabulary has no EOS token"));

  // End of generation: eos, eot, eom and the tokens named like them.
  auto end_of_generation = [&](int tok) {
    if (tok < 0) return;
    if (std::find(v.end_of_generation.begin(), v.end_of_generation.end(), tok) == v.end_of_generation.end())
      v.end_of_generation.push_back(tok);
  };
  for (size_t i = 0; i < n; ++i)
    for (const char* text : kEndOfGenerationTexts)
      if (v.pieces[i] == text) {
        end_of_generation(int(i));
        v.kinds[i] = TokenKind::Control;
      }
  for (const std::vector<std::string>& texts : kFimEndTexts)
    for (size_t i = 0; i < n; ++i)
      if (std::find(texts.begin(), texts.end(), v.pieces[i]) != texts.end()) {
        end_of_generation(int(i));
        v.kinds[i] = TokenKind::Control;
        break;
      }
  for (int tok : {v.eos, eot, eom}) end_of_generation(tok);
  std::sort(v.end_of_generation.begin(), v.end_of_generation.end());

  // Phi-3 (found by its general.name, as llama.cpp does): whitespace after a
  // special token is dropped, except after <unk>, <s> and <|endoftext|>.
  if (const GgufValue* name = g.find("general.name"); name && name->type == GgufType::STRING) {
    std::string lower = name->str;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    v.rstrip_special = lower.find("phi-3") != std::string::npos || lower.find("phi3") != std::string::npos;
  }

  // SentencePiece marks spaces with U+2581; normal pieces keep plain spaces here, as llama2.c's do.
  if (v.model == VocabModel::Spm) {
    static const std::string kSpace = "\xe2\x96\x81";
    for (size_t i = 0; i < n; ++i) {
      if (v.kinds[i] != TokenKind::Normal) continue;
      std::string& p = v.pieces[i];
      for (size_t pos = p.find(kSpace); pos != std::string::npos; pos = p.find(kSpace, pos + 1))
        p.replace(pos, kSpace.size(), " ");
    }
  }
  return v;
}

Vocab load_gguf_vocab(const std::string& path) {
  GgufFile g(path);
  if (!g.has("tokenizer.ggml.model")) throw Error(cat(path, ": no tokenizer.ggml.* metadata in this GGUF file"));
  return read_gguf_vocab(g);
}

}  // namespace qkv
