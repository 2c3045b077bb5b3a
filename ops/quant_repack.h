// The row-interleaved copy of a 32-value block type (the BlockXx8 layouts
// of quant.h): 8 rows' blocks side by side, their scales (offsets m, fifth
// bits qh, in their pieces' order) per row, and piece c of row r's quant
// bytes at qs + 4 (8 c + r).
// For the quant*.cpp files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace qkv::ops {

template <class T, class = void>
struct HasQh : std::false_type {};
template <class T>
struct HasQh<T, std::void_t<decltype(T::qh)>> : std::true_type {};
template <class T, class = void>
struct HasM : std::false_type {};
template <class T>
struct HasM<T, std::void_t<decltype(T::m)>> : std::true_type {};

// A 32-value block's fifth bits (bit j: value j) into row r's 4 bytes of a
// Q5_0x8-order qh (quant.h): byte i, bit p: value 4p + i; bit 4 + p: 16 + 4p + i.
inline void spread_fifth_bits_x8(const uint8_t* qh, uint8_t* out, size_t r) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  for (int i = 0; i < 4; ++i) {
    uint8_t b = 0;
    for (int p = 0; p < 4; ++p)
      b = uint8_t(b | ((bits >> (4 * p + i)) & 1) << p | ((bits >> (16 + 4 * p + i)) & 1) << (4 + p));
    out[4 * r + size_t(i)] = b;
  }
}

// The first rows / 8 * 8 rows of w (rows, n) into out.
template <class Block, class Packed>
void repack_rows_x8(const Block* w, Packed* out, size_t rows, size_t n) {
  const size_t nb = n / 32, pieces = sizeof(w->qs) / 4;
  for (size_t g = 0; g < rows / 8; ++g)
    for (size_t b = 0; b < nb; ++b) {
      Packed& p = out[g * nb + b];
      for (size_t r = 0; r < 8; ++r) {
        const Block& src = w[(8 * g + r) * nb + b];
        p.d[r] = src.d;
        if constexpr (HasM<Block>::value) p.m[r] = src.m;
        if constexpr (HasQh<Block>::value) spread_fifth_bits_x8(src.qh, p.qh, r);
        for (size_t c = 0; c < pieces; ++c) std::memcpy(&p.qs[4 * (8 * c + r)], &src.qs[4 * c], 4);
      }
    }
}

// fn(p, src, r) for each block p of out (rows / 8 groups of n / values
// blocks, zeroed first) and its rows' blocks src (row r of the group).
template <class Block, class Packed, class Fn>
void repack_blocks_x8(const Block* w, Packed* out, size_t rows, size_t n, Fn fn) {
  const size_t nb = n / Block::kValues;
  for (size_t g = 0; g < rows / 8; ++g)
    for (size_t b = 0; b < nb; ++b) {
      Packed& p = out[g * nb + b];
      std::memset(&p, 0, sizeof p);
      for (int r = 0; r < 8; ++r) fn(p, w[(8 * g + size_t(r)) * nb + b], r);
    }
}

// Row r's 256 levels L (0..15) into a Q4_Kx8-order qs (quant.h): piece
// 8c + p's byte i, low nibble value 64c + 4p + i, high nibble value 64c + 32 + 4p + i.
inline void pack_nibbles_x8(const uint8_t* L, uint8_t* qs, int r) {
  for (int c = 0; c < 4; ++c)
    for (int p = 0; p < 8; ++p)
      for (int i = 0; i < 4; ++i) {
        const int v = 64 * c + 4 * p + i;
        qs[4 * (8 * (8 * c + p) + r) + i] = uint8_t((L[v] & 0x0f) | (L[v + 32] << 4));
      }
}

}  // namespace qkv::ops
