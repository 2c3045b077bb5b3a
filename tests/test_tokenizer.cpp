// The tokenizer against SentencePiece's own ids (the 46 cases of
// ggml-vocab-llama-spm) from both vocabulary sources, and against the prompt
// ids llama2.c and llama.cpp produced for every reference case.
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/api/qkv.hpp"
#include "engine/text/tokenizer.h"
#include "test_util.h"

namespace qkv {
namespace {

using test::model_path;

struct VocabCase {
  std::string text;
  std::vector<int> ids;
};

// llama.cpp's test vectors of one vocabulary (.inp strings, .out ids: no
// BOS/EOS, special tokens not parsed).
std::vector<VocabCase> vocab_cases(const std::string& vocab) {
  const std::string inp = test::read_file(model_path("vocab/" + vocab + ".inp"));
  const std::string out = test::read_file(model_path("vocab/" + vocab + ".out"));
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0;;) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) break;
    texts.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<VocabCase> cases;
  size_t line_start = 0;
  for (const std::string& t : texts) {
    const size_t line_end = out.find('\n', line_start);
    if (line_end == std::string::npos) break;  // fewer lines than strings: the count check fails
    cases.push_back({t, test::parse_list<int>(out.substr(line_start, line_end - line_start))});
    line_start = line_end + 1;
  }
  return cases;
}

std::vector<VocabCase> llama_spm_cases() { return vocab_cases("ggml-vocab-llama-spm.gguf"); }

void check_cases(const Tokenizer& tok) {
  const auto cases = llama_spm_cases();
  ASSERT_EQ(cases.size(), 46u);
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(tok.encode(cases[i].text, false), cases[i].ids) << "case " << i << ": '" << cases[i].text << "'";
  }
}

TEST(Tokenizer, LlamaSpmCasesFromGgufVocab) {
  check_cases(Tokenizer(load_gguf_vocab(model_path("vocab/ggml-vocab-llama-spm.gguf"))));
}

TEST(Tokenizer, LlamaSpmCasesFromLlama2cTokenizerBin) {
  check_cases(Tokenizer(load_llama2c_vocab(model_path("llama2-tokenizer.bin"), 32000)));
}

TEST(Tokenizer, BothVocabSourcesDecodeAlike) {
  const Tokenizer a(load_gguf_vocab(model_path("vocab/ggml-vocab-llama-spm.gguf")));
  const Tokenizer b(load_llama2c_vocab(model_path("llama2-tokenizer.bin"), 32000));
  for (int id = 3; id < 32000; id += 7) EXPECT_EQ(a.decode(100, id), b.decode(100, id)) << id;
}

TEST(Tokenizer, InvalidUtf8GoesThroughByteFallback) {
  const Tokenizer tok(load_gguf_vocab(model_path("vocab/ggml-vocab-llama-spm.gguf")));
  const std::string bad = "a\xff\xfe\xc3 \xe2\x82";  // stray bytes, truncated sequences
  const std::vector<int> ids = tok.encode(bad, true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 1);
  // Decoding gives the original bytes back (after the dummy-prefix space is dropped).
  std::string back;
  int prev = -1;
  for (int id : ids) {
    back += tok.decode(prev, id);
    prev = id;
  }
  EXPECT_EQ(back, bad);
}

TEST(Tokenizer, EmptyTextIsJustBos) {
  const Tokenizer tok(load_llama2c_vocab(model_path("tok512.bin"), 512));
  EXPECT_EQ(tok.encode("", true), std::vector<int>{1});
  EXPECT_TRUE(tok.encode("", false).empty());
}

TEST(Tokenizer, DecodeDropsSpaceAfterBosAndMapsBytes) {
  const Tokenizer tok(load_llama2c_vocab(model_path("llama2-tokenizer.bin"), 32000));
  const std::vector<int> ids = tok.encode("Hello\n", true);
  EXPECT_EQ(tok.decode(1, ids[1]), "Hello");
  EXPECT_EQ(tok.decode(13, 13), "\n");  // <0x0A>
  EXPECT_EQ(tok.decode(5, 1), "");       // control tokens print nothing
}

// Every vocabulary in ../shared/models/vocab against llama.cpp's ids for its
// 46 strings: the byte-level BPE families with their pre-tokenizers, and
// SentencePiece with user-defined tokens (Gemma 3, Phi-3).
class VocabVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabVectors, MatchLlamaCpp) {
  const std::string file = "ggml-vocab-" + GetParam() + ".gguf";
  const Tokenizer tok(load_gguf_vocab(model_path("vocab/" + file)));
  const auto cases = vocab_cases(file);
  ASSERT_EQ(cases.size(), 46u);
  size_t failed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::vector<int> ids = tok.encode(cases[i].text, false, false);
    EXPECT_EQ(ids, cases[i].ids) << file << " case " << i << ": '" << cases[i].text << "'";
    failed += ids != cases[i].ids;
  }
  EXPECT_EQ(failed, 0u);
}

INSTANTIATE_TEST_SUITE_P(AllVocabularies, VocabVectors,
                         ::testing::Values("gpt-2", "llama-bpe", "qwen2", "starcoder", "falcon", "deepseek-llm",
                                           "deepseek-coder", "mpt", "gpt-neox", "gemma3", "phi-3", "llama-spm"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

// Byte-level BPE is lossless: the pieces of a text's tokens are its bytes.
TEST(Tokenizer, BpeDecodesBackToTheText) {
  for (const char* v : {"gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "falcon"}) {
    const std::string file = std::string("ggml-vocab-") + v + ".gguf";
    const Tokenizer tok(load_gguf_vocab(model_path("vocab/" + file)));
    for (const VocabCase& c : vocab_cases(file)) {
      std::string back;
      for (int id : tok.encode(c.text, false)) back += tok.decode(-1, id);
      EXPECT_EQ(back, c.text) << v;
    }
  }
}

// llama.cpp's add_special: BOS only where the vocabulary asks for it.
TEST(Tokenizer, AddSpecialFollowsTheVocabulary) {
  const Tokenizer llama3(load_gguf_vocab(model_path("vocab/ggml-vocab-llama-bpe.gguf")));
  EXPECT_EQ(llama3.encode("Hello world", true), (std::vector<int>{128000, 9906, 1917}));
  const Tokenizer qwen(load_gguf_vocab(model_path("vocab/ggml-vocab-qwen2.gguf")));
  EXPECT_EQ(qwen.encode("Hello world", true), (std::vector<int>{9707, 1879}));
  const Tokenizer gpt2(load_gguf_vocab(model_path("vocab/ggml-vocab-gpt-2.gguf")));
  EXPECT_EQ(gpt2.encode("Hello world", true), (std::vector<int>{15496, 995}));
  EXPECT_TRUE(gpt2.encode("", true).empty());
}

// Control tokens in the text are tokens only with parse_special; user-defined
// ones (Qwen3's <think>) always are.
TEST(Tokenizer, SpecialTokensInTheText) {
  const Tokenizer qwen(load_gguf_vocab(model_path("vocab/ggml-vocab-qwen2.gguf")));
  const std::string text = "<|im_start|>user\nHello <think> world!<|im_end|>";
  EXPECT_EQ(qwen.encode(text, false, true),
            (std::vector<int>{151644, 872, 198, 9707, 220, 151667, 1879, 0, 151645}));
  EXPECT_EQ(qwen.encode(text, false, false), (std::vector<int>{27, 91, 318, 4906, 91, 29, 872, 198, 9707, 220, 151667,
                                                               1879, 86932, 91, 318, 6213, 91, 29}));
  // Phi-3: the whitespace after a special token goes (llama.cpp's rstrip), and
  // SentencePiece's dummy space starts the text after it.
  const Tokenizer phi3(load_gguf_vocab(model_path("vocab/ggml-vocab-phi-3.gguf")));
  EXPECT_EQ(phi3.encode("<|user|>\n  Hi<|end|>\n", true, true), (std::vector<int>{1, 32010, 6324, 32007}));
  EXPECT_EQ(phi3.encode("<|user|>Hi", true, true), phi3.encode("<|user|>\n Hi", true, true));
  // llama2.c's tokenizer.bin reads "<s>" as text.
  const Tokenizer bin(load_llama2c_vocab(model_path("llama2-tokenizer.bin"), 32000));
  const std::vector<int> ids = bin.encode("<s>", false, true);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 0);
}

TEST(Tokenizer, EndOfGenerationTokensAsLlamaCppFindsThem) {
  const Tokenizer qwen(load_gguf_vocab(model_path("vocab/ggml-vocab-qwen2.gguf")));
  for (int id : {151643, 151645, 151662, 151663, 151664}) EXPECT_TRUE(qwen.is_end_of_generation(id)) << id;
  EXPECT_FALSE(qwen.is_end_of_generation(151644));  // <|im_start|>
  const Tokenizer llama3(load_gguf_vocab(model_path("vocab/ggml-vocab-llama-bpe.gguf")));
  EXPECT_TRUE(llama3.is_end_of_generation(128001));
  EXPECT_TRUE(llama3.is_end_of_generation(128009));  // <|eot_id|>
  EXPECT_FALSE(llama3.is_end_of_generation(128000));
  const Tokenizer gemma(load_gguf_vocab(model_path("vocab/ggml-vocab-gemma3.gguf")));
  EXPECT_TRUE(gemma.is_end_of_generation(106));  // <end_of_turn>
  EXPECT_TRUE(gemma.is_end_of_generation(1));    // <eos>
  // Control tokens decode to nothing, unless asked for their text.
  EXPECT_EQ(qwen.decode(-1, 151645), "");
  EXPECT_EQ(qwen.piece(151645, true), "<|im_end|>");
  EXPECT_EQ(qwen.piece(151667, false), "<think>");  // user-defined: always its text
}

// Every reference case's prompt_ids, through the public API.
class PromptIds : public ::testing::TestWithParam<std::string> {};

TEST_P(PromptIds, MatchReferenceEngine) {
  const test::ReferenceCase c = test::load_case(GetParam());
  if (c.tokenizer.find("(in the model file)") != std::string::npos) {
    // The GGUF's own vocabulary (read without the weights, which may be of a
    // type this build does not compute with).
    const Tokenizer tok(load_gguf_vocab(model_path(c.model)));
    EXPECT_EQ(tok.encode(c.prompt, true), c.prompt_ids) << c.file;
  } else {
    LoadOptions lo;
    lo.tokenizer_path = model_path(c.tokenizer);
    const auto model = Model::load(model_path(c.model), lo);
    EXPECT_EQ(model->tokenize(c.prompt, true), c.prompt_ids) << c.file;
  }
}

INSTANTIATE_TEST_SUITE_P(AllCases, PromptIds,
                         ::testing::Values("stories260K-once.txt", "stories260K-lily.txt", "stories260K-bos.txt",
                                           "stories260K-gguf-once.txt", "aidreams260K-bos.txt",
                                           "tinyllama-v0-once.txt", "tinyllama-v0-f32-once.txt",
                                           "tinyllama-v0-q8_0-once.txt", "tinyllama-v0-q4_0-once.txt"),
                         [](const auto& info) { return test::case_test_name(info.param); });

}  // namespace
}  // namespace qkv
