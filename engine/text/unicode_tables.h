// The Unicode tables the pre-tokenizers read, generated into
// unicode_tables.cpp by scripts/gen_unicode_tables.py from Debian's
// unicode-data package (the version is kVersion). Read them through
// engine/text/unicode.h.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qkv::unicode_tables {

struct ClassRun {
  uint32_t start;
  uint8_t cls;  // CharClass in engine/text/unicode.h
};
struct CaseMap {
  uint32_t from, to;
};

extern const char kVersion[];
extern const ClassRun kClassRuns[];
extern const size_t kClassRunCount;
extern const uint32_t kWhitespace[];
extern const size_t kWhitespaceCount;
extern const CaseMap kLowercase[];
extern const size_t kLowercaseCount;

}  // namespace qkv::unicode_tables
