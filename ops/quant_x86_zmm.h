// The x8 products' vectors on AVX-512 (see X8Ymm in quant_x86_x8.h). X8Zmm,
// for a batch: two row groups side by side in a zmm, group g in the low 256
// bits and g + 1 (the same block, `stride` bytes on) in the high ones, so
// one vpdpbusd serves 16 rows. X8Pieces, for one token: two pieces of one
// group's block. Each lane does what X8Ymm's does, so the results are bit
// for bit the same. Needs AVX512F/BW/VNNI; included by isa_avx512.cpp before
// quant_x86.h.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace qkv::ops::QKV_ISA_NS {

struct X8Ymm;  // quant_x86_x8.h

struct X8Zmm {
  using I = __m512i;
  using F = __m512;
  static constexpr int kGroups = 2;
  static I load(const void* p, size_t stride) {
    const char* c = static_cast<const char*>(p);
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + stride));
    return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
  }
  static I load64(const void* p) { return _mm512_load_si512(p); }  // both groups' bytes, side by side (64-byte aligned)
  static void store64(void* p, I v) { _mm512_store_si512(p, v); }
  // 16 bytes at p in the low two 128-bit lanes, those at p + stride in the high two.
  static I lanes2(const void* p, size_t stride) {
    const char* c = static_cast<const char*>(p);
    const __m256i a = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)));
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c + stride)));
    return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
  }
  static F load_halves(const uint16_t* p, size_t stride) {
    const char* c = reinterpret_cast<const char*>(p);
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + stride));
    return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1));
  }
  static I bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
  }
  static constexpr int kPieces = 1;  // as X8Ymm's
  using E = X8Zmm;
  static I fold(I v) { return v; }
  static I load_bits(const void* p, size_t stride, int) { return load(p, stride); }
  static I lanes(__m128i v) { return _mm512_maskz_broadcast_i32x4(0xffff, v); }  // (maskz: GCC 12 warns on the plain form's undefined source)
  static I set1_8(char c) { return _mm512_set1_epi8(c); }
  static I set1_32(int v) { return _mm512_set1_epi32(v); }
  static I and_(I a, I b) { return _mm512_and_si512(a, b); }
  static I add_8(I a, I b) { return _mm512_add_epi8(a, b); }
  static I or_(I a, I b) { return _mm512_or_si512(a, b); }
  static I xor_(I a, I b) { return _mm512_xor_si512(a, b); }
  static I high_nibbles(I q) { return _mm512_and_si512(_mm512_srli_epi16(q, 4), _mm512_set1_epi8(0x0f)); }
  static I shuffle(I table, I idx) { return _mm512_shuffle_epi8(table, idx); }
  static I dot(I acc, I a, I b) { return _mm512_dpbusd_epi32(acc, a, b); }
  static I peak(I acc, I a, I b) { return _mm512_dpbusd_epi32(acc, a, b); }
  static I sub_32(I a, I b) { return _mm512_sub_epi32(a, b); }
  static I add_32(I a, I b) { return _mm512_add_epi32(a, b); }
  static I mullo_32(I a, I b) { return _mm512_mullo_epi32(a, b); }
  static I madd_acc(I acc, I a, I b) { return _mm512_dpwssd_epi32(acc, a, b); }
  static I load_u8_to_32(const uint8_t* p, size_t stride) {
    const __m128i a = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + stride));
    return _mm512_cvtepu8_epi32(_mm_unpacklo_epi64(a, b));
  }
  static I load_u8_to_16(const uint8_t* p, size_t stride) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + stride));
    return _mm512_cvtepu8_epi16(_mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1));
  }
  static I load_s8_to_16(const int8_t* p, size_t stride) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + stride));
    return _mm512_cvtepi8_epi16(_mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1));
  }
  static I slli_16(I a, int n) { return _mm512_slli_epi16(a, unsigned(n)); }
  static I srli_16(I a, int n) { return _mm512_srli_epi16(a, unsigned(n)); }
  static I slli_32(I a, int n) { return _mm512_slli_epi32(a, unsigned(n)); }
  static I srli_32(I a, int n) { return _mm512_srli_epi32(a, unsigned(n)); }
  static I srai_32(I a, int n) { return _mm512_srai_epi32(a, unsigned(n)); }
  static I lane32(__m256i v, int k) { return _mm512_permutexvar_epi32(_mm512_set1_epi32(k), _mm512_castsi256_si512(v)); }
  static I zero() { return _mm512_setzero_si512(); }
  static F zero_ps() { return _mm512_setzero_ps(); }
  static F set1_ps(float v) { return _mm512_set1_ps(v); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F fnmadd(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
  static F to_ps(I a) { return _mm512_cvtepi32_ps(a); }
  static void store(float* y, F v) { _mm512_storeu_ps(y, v); }
};

// One token's products over a row group (quant_x86_x8.h's x8_matvec and quant_x86_x8k.h's
// x8k_matvec): pieces P (low 256 bits) and P + 1 (high) of one block, read
// in order (one stream from memory: two groups or two blocks side by side
// read at half the rate on Zen 5). Scales and the like load the group's
// bytes into both halves; the halves' integer sums are added (fold) before
// the float epilogue, which runs in X8Ymm (E): exact integer sums, so the
// same bits as X8Ymm's GEMV.
struct X8Pieces : X8Zmm {
  static constexpr int kPieces = 2;
  using E = X8Ymm;
  static I load(const void* p, size_t) { return X8Zmm::load(p, 32); }  // two ymm loads: a block's pieces are 32-byte aligned, not 64
  static F load_halves(const uint16_t* p, size_t) { return X8Zmm::load_halves(p, 0); }
  static I load_u8_to_32(const uint8_t* p, size_t) { return X8Zmm::load_u8_to_32(p, 0); }
  static I load_u8_to_16(const uint8_t* p, size_t) { return X8Zmm::load_u8_to_16(p, 0); }
  static I load_s8_to_16(const int8_t* p, size_t) { return X8Zmm::load_s8_to_16(p, 0); }
  static I load_bits(const void* p, size_t, int next) {
    const __m256i a = _mm256_loadu_si256(static_cast<const __m256i*>(p));
    return _mm512_inserti64x4(_mm512_castsi256_si512(a), _mm256_srli_epi16(a, next), 1);
  }
  // The 4 activation bytes at p in the low half, the next piece's 4 (at p + 4) in the high one.
  static I bcast4_two(const int8_t* p) {
    const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_epi32(idx, _mm512_castsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  // The 4 activation bytes at p in the low half, those at p + 8 in the high one.
  static I bcast4_two_8apart(const int8_t* p) {
    const __m512i idx = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_epi32(idx, _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static __m256i fold(I v) { return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1)); }
};

}  // namespace qkv::ops::QKV_ISA_NS
