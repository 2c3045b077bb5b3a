#include "engine/text/unicode.h"

#include <algorithm>
#include <array>

#include "engine/text/unicode_tables.h"

namespace qkv {
namespace {

using namespace unicode_tables;

constexpr uint32_t kBmp = 0x10000;
constexpr uint8_t kWhitespaceBit = 0x80;

// Class (low bits) and White_Space (high bit) of every BMP code point.
const std::vector<uint8_t>& bmp_table() {
  static const std::vector<uint8_t> table = [] {
    std::vector<uint8_t> t(kBmp);
    for (size_t i = 0; i < kClassRunCount; ++i) {
      const uint32_t end = i + 1 < kClassRunCount ? kClassRuns[i + 1].start : kBmp;
      for (uint32_t cp = kClassRuns[i].start; cp < std::min(end, kBmp); ++cp) t[cp] = kClassRuns[i].cls;
      if (end >= kBmp) break;
    }
    for (size_t i = 0; i < kWhitespaceCount; ++i)
      if (kWhitespace[i] < kBmp) t[kWhitespace[i]] |= kWhitespaceBit;
    return t;
  }();
  return table;
}

}  // namespace

CharClass char_class(uint32_t cp) {
  if (cp < kBmp) return CharClass(bmp_table()[cp] & ~kWhitespaceBit);
  if (cp >= 0x110000) return CharClass::Unassigned;
  const ClassRun* end = kClassRuns + kClassRunCount;
  const ClassRun* it = std::upper_bound(kClassRuns, end, cp, [](uint32_t c, const ClassRun& r) { return c < r.start; });
  return CharClass((it - 1)->cls);
}

bool is_whitespace(uint32_t cp) {
  if (cp < kBmp) return (bmp_table()[cp] & kWhitespaceBit) != 0;
  return std::binary_search(kWhitespace, kWhitespace + kWhitespaceCount, cp);
}

uint32_t to_lower(uint32_t cp) {
  const CaseMap* end = kLowercase + kLowercaseCount;
  const CaseMap* it = std::lower_bound(kLowercase, end, cp, [](const CaseMap& m, uint32_t c) { return m.from < c; });
  return it != end && it->from == cp ? it->to : cp;
}

const char* unicode_version() { return kVersion; }

std::vector<uint32_t> decode_utf8(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const auto cont = [&](size_t i) { return i < s.size() && (byte(i) & 0xC0) == 0x80; };
  for (size_t i = 0; i < s.size();) {
    const uint8_t b = byte(i);
    uint32_t cp = 0xFFFD;
    size_t len = 1;
    if (b < 0x80) {
      cp = b;
    } else if ((b & 0xE0) == 0xC0 && cont(i + 1)) {
      cp = (uint32_t(b & 0x1F) << 6) | (byte(i + 1) & 0x3F);
      len = 2;
    } else if ((b & 0xF0) == 0xE0 && cont(i + 1) && cont(i + 2)) {
      cp = (uint32_t(b & 0x0F) << 12) | (uint32_t(byte(i + 1) & 0x3F) << 6) | (byte(i + 2) & 0x3F);
      len = 3;
    } else if ((b & 0xF8) == 0xF0 && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
      const uint32_t v = (uint32_t(b & 0x07) << 18) | (uint32_t(byte(i + 1) & 0x3F) << 12) |
                         (uint32_t(byte(i + 2) & 0x3F) << 6) | (byte(i + 3) & 0x3F);
      if (v < 0x110000) {
        cp = v;
        len = 4;
      }
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

namespace {
struct ByteMap {
  std::array<uint32_t, 256> to_char{};
  bool printable(int b) const { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }
  ByteMap() {
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) to_char[size_t(b)] = printable(b) ? uint32_t(b) : next++;
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}
}  // namespace

uint32_t byte_to_char(uint8_t b) { return byte_map().to_char[b]; }

int char_to_byte(uint32_t cp) {
  const ByteMap& m = byte_map();
  if (cp < 256) return m.printable(int(cp)) ? int(cp) : -1;
  if (cp >= 256 + 68) return -1;  // 68 bytes are not printable
  for (int b = 0; b < 256; ++b)
    if (m.to_char[size_t(b)] == cp) return b;
  return -1;
}

}  // namespace qkv
