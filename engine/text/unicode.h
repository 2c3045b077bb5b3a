// Unicode as the tokenizers need it: UTF-8 to code points (invalid bytes
// become U+FFFD one byte at a time, as llama.cpp decodes them), the general
// category class and White_Space property of a code point, lowercase, and
// GPT-2's byte <-> printable-character mapping. Tables: unicode_tables.cpp,
// generated from Debian's unicode-data (unicode_version()).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qkv {

// The first letter of a general category; Unassigned is Cn.
enum class CharClass : uint8_t { Unassigned = 0, Letter, Number, Punctuation, Symbol, Mark, Separator, Other };

CharClass char_class(uint32_t cp);
bool is_whitespace(uint32_t cp);  // the White_Space property
uint32_t to_lower(uint32_t cp);   // simple lowercase mapping, cp itself if none
const char* unicode_version();    // of the generated tables, e.g. "15.0.0"

// Code points of `text`. A byte that does not start a well-formed sequence
// (a stray continuation byte, a truncated sequence, a lead byte above F4, a
// value above U+10FFFF) becomes U+FFFD and decoding resumes at the next byte.
std::vector<uint32_t> decode_utf8(std::string_view text);
void append_utf8(std::string& out, uint32_t cp);

// GPT-2's byte-level BPE writes every byte as a printable character: the
// printable Latin-1 bytes as themselves, the rest as U+0100 upwards.
uint32_t byte_to_char(uint8_t b);
int char_to_byte(uint32_t cp);  // -1 when cp stands for no byte

}  // namespace qkv
