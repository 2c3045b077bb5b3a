// The tokenizer against SentencePiece's own ids (the 46 cases of
// ggml-vocab-llama-spm) from both vocabulary sources, and against the prompt
// ids llama2.c and llama.cpp produced for every reference case.
#include <gtest/gtest.h>

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

std::vector<VocabCase> llama_spm_cases() {
  const std::string inp = test::read_file(model_path("vocab/ggml-vocab-llama-spm.gguf.inp"));
  const std::string out = test::read_file(model_path("vocab/ggml-vocab-llama-spm.gguf.out"));
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
    cases.push_back({t, test::parse_list<int>(out.substr(line_start, line_end - line_start))});
    line_start = line_end + 1;
  }
  return cases;
}

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
