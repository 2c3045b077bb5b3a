// Keys into the K cache's panels on AVX-512 (Kernels::transpose_f32 and
// transpose_f32_to_f16): 16 x 16 tiles transposed in registers, the edges
// of a block loaded and stored under masks. The f16 form converts each
// transposed column as f32_to_f16 does (round to nearest even).
// Included by isa_avx512.cpp.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace qkv::ops::QKV_ISA_NS {

// r[0..15] (rows) -> r[0..15] (columns): pairs interleaved at 32 and 64
// bits within 128-bit lanes, then the lanes exchanged in two rounds.
inline void transpose16(__m512* r) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xee);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int h = 0; h < 16; h += 8)
    for (int i = 0; i < 4; ++i) {
      t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
    }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
}

// A few rows (a decoded token's keys: one): each row's values stored down
// their columns one by one (f16: converted 16 at a time first), without the
// 16 x 16 transposes of a mostly empty tile.
template <class Out>
inline void scatter_rows(const float* src, size_t lds, Out* dst, size_t ldd, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r)
    for (size_t c0 = 0; c0 < cols; c0 += 16) {
      const size_t nc = std::min<size_t>(16, cols - c0);
      const __m512 v = _mm512_maskz_loadu_ps(__mmask16((1u << nc) - 1), src + r * lds + c0);
      alignas(64) Out piece[16];
      if constexpr (std::is_same_v<Out, float>) _mm512_store_ps(piece, v);
      else _mm256_store_si256(reinterpret_cast<__m256i*>(piece), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
      for (size_t j = 0; j < nc; ++j) dst[(c0 + j) * ldd + r] = piece[j];
    }
}

template <class Out>
inline void transpose_tiles(const float* src, size_t lds, Out* dst, size_t ldd, size_t rows, size_t cols) {
  if (rows < 4) return scatter_rows(src, lds, dst, ldd, rows, cols);
  for (size_t r0 = 0; r0 < rows; r0 += 16) {
    const size_t nr = std::min<size_t>(16, rows - r0);
    const __mmask16 out_mask = __mmask16((1u << nr) - 1);
    for (size_t c0 = 0; c0 < cols; c0 += 16) {
      const size_t nc = std::min<size_t>(16, cols - c0);
      const __mmask16 in_mask = __mmask16((1u << nc) - 1);
      __m512 v[16];
      for (size_t i = 0; i < 16; ++i)
        v[i] = i < nr ? _mm512_maskz_loadu_ps(in_mask, src + (r0 + i) * lds + c0) : _mm512_setzero_ps();
      transpose16(v);
      for (size_t j = 0; j < nc; ++j) {
        Out* d = dst + (c0 + j) * ldd + r0;
        if constexpr (std::is_same_v<Out, float>) _mm512_mask_storeu_ps(d, out_mask, v[j]);
        else _mm256_mask_storeu_epi16(d, out_mask, _mm512_cvtps_ph(v[j], _MM_FROUND_TO_NEAREST_INT));
      }
    }
  }
}

void transpose_f32_zmm(const float* src, size_t lds, float* dst, size_t ldd, size_t rows, size_t cols) {
  transpose_tiles(src, lds, dst, ldd, rows, cols);
}
void transpose_f32_to_f16_zmm(const float* src, size_t lds, uint16_t* dst, size_t ldd, size_t rows, size_t cols) {
  transpose_tiles(src, lds, dst, ldd, rows, cols);
}

}  // namespace qkv::ops::QKV_ISA_NS
