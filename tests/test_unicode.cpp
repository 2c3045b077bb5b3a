// The Unicode tables (generated from Debian's unicode-data), llama.cpp's way
// of decoding bad UTF-8, GPT-2's byte characters, and the pre-tokenizer
// regular expressions on cases worked out by hand from the ECMAScript rules.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "engine/error.h"
#include "engine/text/pretokenizer.h"
#include "engine/text/pretokenizer_regex.h"
#include "engine/text/unicode.h"
#include "test_util.h"

namespace qkv {
namespace {

TEST(Unicode, CategoriesWhitespaceAndCase) {
  EXPECT_STREQ(unicode_version(), "15.0.0");
  EXPECT_EQ(char_class('A'), CharClass::Letter);
  EXPECT_EQ(char_class(0x4E2D), CharClass::Letter);       // 中, inside a First..Last range
  EXPECT_EQ(char_class(0x20000), CharClass::Letter);      // CJK extension B, beyond the BMP
  EXPECT_EQ(char_class('7'), CharClass::Number);
  EXPECT_EQ(char_class(0x0663), CharClass::Number);       // ٣
  EXPECT_EQ(char_class(0x2167), CharClass::Number);       // Ⅷ (Nl)
  EXPECT_EQ(char_class(0x3001), CharClass::Punctuation);  // 、
  EXPECT_EQ(char_class('_'), CharClass::Punctuation);
  EXPECT_EQ(char_class('$'), CharClass::Symbol);
  EXPECT_EQ(char_class(0x1F600), CharClass::Symbol);      // 😀
  EXPECT_EQ(char_class(0x0301), CharClass::Mark);
  EXPECT_EQ(char_class(0x00A0), CharClass::Separator);
  EXPECT_EQ(char_class(0x0007), CharClass::Other);
  EXPECT_EQ(char_class(0xE000), CharClass::Other);        // private use
  EXPECT_EQ(char_class(0x0378), CharClass::Unassigned);
  EXPECT_EQ(char_class(0x10FFFF), CharClass::Unassigned);
  EXPECT_EQ(char_class(0x110000), CharClass::Unassigned);
  for (uint32_t c : {0x09u, 0x0Au, 0x0Du, 0x20u, 0x85u, 0xA0u, 0x1680u, 0x2000u, 0x2028u, 0x3000u})
    EXPECT_TRUE(is_whitespace(c)) << std::hex << c;
  for (uint32_t c : {0x1Cu, 0x200Bu, 0x41u, 0x180Eu}) EXPECT_FALSE(is_whitespace(c)) << std::hex << c;
  EXPECT_EQ(to_lower('S'), uint32_t('s'));
  EXPECT_EQ(to_lower(0xC4), 0xE4u);      // Ä
  EXPECT_EQ(to_lower(0x0394), 0x03B4u);  // Δ
  EXPECT_EQ(to_lower('s'), uint32_t('s'));
}

TEST(Unicode, DecodesBadUtf8AsLlamaCppDoes) {
  // é, a stray continuation byte, a truncated 3-byte sequence, F8, a value
  // above U+10FFFF, then 😀.
  const std::vector<uint32_t> cps =
      decode_utf8("\xc3\xa9" "\x80" "\xe2\x82" "A" "\xf8" "\xf4\x90\x80\x80" "\xf0\x9f\x98\x80");
  const std::vector<uint32_t> want = {0xE9, 0xFFFD, 0xFFFD, 0xFFFD, 'A', 0xFFFD,
                                      0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0x1F600};
  EXPECT_EQ(cps, want);
  std::string s;
  for (uint32_t c : {0x41u, 0xE9u, 0x20ACu, 0x1F600u}) append_utf8(s, c);
  EXPECT_EQ(s, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
}

TEST(Unicode, Gpt2ByteCharactersRoundTrip) {
  EXPECT_EQ(byte_to_char(' '), 0x120u);  // Ġ
  EXPECT_EQ(byte_to_char('\n'), 0x10Au); // Ċ
  EXPECT_EQ(byte_to_char('A'), uint32_t('A'));
  EXPECT_EQ(byte_to_char(0xAD), 0x143u);
  std::vector<bool> seen(512);
  for (int b = 0; b < 256; ++b) {
    const uint32_t c = byte_to_char(uint8_t(b));
    ASSERT_LT(c, 512u);
    EXPECT_FALSE(seen[c]) << b;
    seen[c] = true;
    EXPECT_EQ(char_to_byte(c), b);
  }
  EXPECT_EQ(char_to_byte(' '), -1);
  EXPECT_EQ(char_to_byte(0x4E2D), -1);
}

std::vector<std::string> split(const PreRegex& r, const std::string& text) {
  const std::vector<uint32_t> cps = decode_utf8(text);
  std::vector<std::string> out;
  size_t at = 0;
  for (size_t n : r.split(cps, {cps.size()})) {
    std::string w;
    for (size_t i = at; i < at + n; ++i) append_utf8(w, cps[i]);
    out.push_back(w);
    at += n;
  }
  EXPECT_EQ(at, cps.size());
  return out;
}

using Words = std::vector<std::string>;

TEST(PreRegex, EcmascriptSemanticsOnHandWorkedCases) {
  const PreRegex gpt2("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)");
  EXPECT_EQ(split(gpt2, "Hello world's 42!!"), (Words{"Hello", " world", "'s", " 42", "!!"}));
  // \s+(?!\S) leaves the last space for the word; a lone newline before a
  // letter matches nothing and stays a piece of its own.
  EXPECT_EQ(split(gpt2, "a   b\nc  "), (Words{"a", "  ", " b", "\n", "c", "  "}));
  // Leftmost-first alternation: 're before ' ?[^\s...]'.
  EXPECT_EQ(split(gpt2, "we're"), (Words{"we", "'re"}));
  const PreRegex digits3("\\p{N}{1,3}");
  EXPECT_EQ(split(digits3, "1234567x89"), (Words{"123", "456", "7", "x", "89"}));
  const PreRegex tail("\\s+$");
  EXPECT_EQ(split(tail, "a  b   "), (Words{"a  b", "   "}));
  const PreRegex group("(?:'[sS]|'[tT])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+");
  EXPECT_EQ(split(group, "IT'S ok"), (Words{"IT", "'S", " ok"}));
  const PreRegex ranges("[0-9][0-9][0-9]");
  EXPECT_EQ(split(ranges, "12345"), (Words{"123", "45"}));
  const PreRegex literal("\\s?[!-/:-~\xef\xbc\x81-\xef\xbc\x8f]+");  // ！-／
  EXPECT_EQ(split(literal, "a !?\xef\xbc\x81" "5"), (Words{"a", " !?\xef\xbc\x81", "5"}));  // a is in :-~
}

TEST(PreRegex, RefusesSyntaxOutsideTheSubset) {
  for (const char* bad : {"a.b", "(a)+", "[abc", "\\p{Zz}", "a+?", "(?=x)", "x{3,1}", "\\q"})
    EXPECT_THROW(PreRegex{bad}, Error) << bad;
}

// Long runs must not cost the square of their length: 400,000 spaces would
// take minutes if every start position recounted the run.
TEST(PreRegex, LongRunsStayLinear) {
  const PreRegex tail("\\s+$");
  const std::string spaces(400000, ' ');
  const Words w = split(tail, spaces + "x" + spaces);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].size(), spaces.size() + 1);
  EXPECT_EQ(w[1].size(), spaces.size());
}

// Every supported pre-tokenizer keeps every code point, in order, on text
// that mixes scripts, digits, spaces, newlines and invalid bytes.
TEST(PreTokenizer, SplitsLoseNothingOnMixedText) {
  std::mt19937 rng(5);
  const std::vector<std::string> atoms = {"a",  "Zz", " ",  "  ", "\n", "\r\n", "\t", "7",  "123456", "'s", "'LL",
                                          "!", "?!", "\xe4\xb8\xad", "\xc3\xa9", "\xd9\xa3", "\xe3\x80\x80",
                                          "\xf0\x9f\x98\x80", "\xcc\x81", "\xff", "$", "~", "`"};
  std::string text;
  for (int i = 0; i < 20000; ++i) text += atoms[rng() % atoms.size()];
  const std::vector<uint32_t> cps = decode_utf8(text);
  for (const char* pre : {"", "gpt-2", "llama-bpe", "qwen2", "smollm", "starcoder", "falcon", "deepseek-llm",
                          "deepseek-coder", "mpt"}) {
    const PreTokenizer p(pre, "test");
    size_t total = 0;
    for (size_t n : p.split(cps)) {
      EXPECT_GT(n, 0u) << pre;
      total += n;
    }
    EXPECT_EQ(total, cps.size()) << pre;
  }
}

TEST(PreTokenizer, UnknownNameListsTheSupportedOnes) {
  try {
    PreTokenizer("no-such-pre", "file.gguf");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("file.gguf"), std::string::npos) << m;
    EXPECT_NE(m.find("'no-such-pre'"), std::string::npos) << m;
    for (const char* name : {"gpt-2", "llama-bpe", "qwen2", "smollm", "starcoder", "falcon", "deepseek-llm",
                             "deepseek-coder", "default"})
      EXPECT_NE(m.find(name), std::string::npos) << name << " missing from: " << m;
  }
}

// The generated tables are what the script makes from the installed
// unicode-data (scripts/setup.sh installs it).
TEST(Unicode, TablesAreTheGeneratorsOutput) {
  const std::string src = QKV_SOURCE_DIR;
  const std::string out = "/tmp/qkv-unicode-tables-" + std::to_string(::getpid()) + ".cpp";
  const std::string cmd = "python3 '" + src + "/scripts/gen_unicode_tables.py' > '" + out + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << " (needs python3 and unicode-data)";
  const std::string made = test::read_file(out);
  std::remove(out.c_str());
  EXPECT_EQ(made, test::read_file(src + "/engine/text/unicode_tables.cpp"));
}

}  // namespace
}  // namespace qkv
