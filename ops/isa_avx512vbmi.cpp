// Q3_K's products over its 3-bit x8 layout (quant.h's BlockQ3_Kx8Bits) with
// AVX512_VBMI (Ice Lake, Zen 4 and later): 114 bytes a row's super-block
// instead of the nibble layout's 146, so one token's product, which streams
// the weights from memory, reads a fifth less. Built with -mavx512vbmi in a
// unit of its own; avx512_kernels() takes these products (and their packer)
// only where the CPU has the instructions.
//
// A piece (values 8P .. 8P + 7 of 8 rows, 24 bytes) unpacks into one zmm,
// qword r holding row r's 8 levels as bytes: vpermb puts each row's 3 bytes
// at the start of its qword, vpmultishiftqb takes bits 3i .. 3i + 7 into byte
// i, an and keeps the level's 3 bits. The activations' 8 matching bytes are
// one qword broadcast (a load, no shuffle); one vpdpbusd then sums, per row,
// values 0..3 in the qword's low int32 and 4..7 in its high one. A 16-value
// sub-block (two pieces) takes its scale by a 16-bit multiply-add, as the
// nibble layout's tile (quant_x86_x8k.h, x8_scale_sum): the same integers, and
// the same float epilogue, so the same bits as the AVX2 and AVX-512 products
// over the nibble layout.
#define QKV_ISA_NS isa_avx512vbmi
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ops/quant_x86_avx512.h"  // as isa_avx512.cpp: the batch product is the nibble layout's

namespace qkv::ops::isa_avx512vbmi {
namespace {

struct Constants {
  __m512i spread;       // vpermb: qword r <- bytes 3r, 3r + 1, 3r + 2 of a piece
  __m512i shifts;       // vpmultishiftqb: byte i <- bits 3i .. 3i + 7 of its qword
  __m512i three_bits;   // 0x07 in every byte
  __m512i scale_of[2];  // vpermw: int32 lane l <- (scale of row l / 2, 0), sub-block 2k (h = 0) or 2k + 1
  __m512i scale_bytes[2];  // vpermb: byte 8r + i <- row r's scale of sub-block 2k (e = 0) or 2k + 1, of its pairs
  __m512i rows;            // 8r in byte 8r + i
  Constants() {
    alignas(64) uint8_t sp[64], sh[64], sb[2][64], rw[64];
    for (int r = 0; r < 8; ++r)
      for (int b = 0; b < 8; ++b) {
        sp[8 * r + b] = uint8_t(b < 3 ? 3 * r + b : 0);
        sh[8 * r + b] = uint8_t(3 * b);
        for (int e = 0; e < 2; ++e) sb[e][8 * r + b] = uint8_t(2 * r + e);
        rw[8 * r + b] = uint8_t(8 * r);
      }
    spread = _mm512_load_si512(sp);
    shifts = _mm512_load_si512(sh);
    for (int e = 0; e < 2; ++e) scale_bytes[e] = _mm512_load_si512(sb[e]);
    rows = _mm512_load_si512(rw);
    three_bits = _mm512_set1_epi8(7);
    for (int h = 0; h < 2; ++h) {
      alignas(64) uint16_t idx[32];
      for (int w = 0; w < 32; ++w) idx[w] = uint16_t(2 * (w / 4) + h);  // the odd words are zeroed by the mask
      scale_of[h] = _mm512_load_si512(idx);
    }
  }
};

const Constants& constants() {
  static const Constants c;
  return c;
}

// Piece P of a group: row r's 8 levels (value + 4) as bytes in qword r.
inline __m512i unpack(const Constants& c, const uint8_t* piece) {
  const __m512i raw = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(piece)));
  return _mm512_and_si512(_mm512_multishift_epi64_epi8(c.shifts, _mm512_permutexvar_epi8(c.spread, raw)), c.three_bits);
}

// The activations' values 8P .. 8P + 7 in every qword.
inline __m512i bcast8(const int8_t* p) {
  int64_t v;
  __builtin_memcpy(&v, p, 8);
  return _mm512_set1_epi64(v);
}

// One token against one group: acc += the products of super-blocks
// [0, nb). Each piece's dot product against its activations' qword gives
// row r's values 0..3 in int32 lane 2r and 4..7 in 2r + 1; a sub-block's sums
// take its scale (an int16 over a zero in both of the row's lanes) by one
// 16-bit multiply-add; the lane pairs are added before the epilogue.
inline void gemv_group(const Constants& c, const BlockQ3_Kx8Bits* w, const BlockQ8_K* x, size_t nb, __m256& acc) {
  for (size_t b = 0; b < nb; ++b) {
    const BlockQ3_Kx8Bits& W = w[b];
    const BlockQ8_K& X = x[b];
    __m512i isum[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};  // two chains
    for (int k = 0; k < 8; ++k) {
      const __m512i pairs =
          _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(W.sc2[k][0]))));
      #pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        const int P = 4 * k + 2 * h;
        __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), unpack(c, W.q[P]), bcast8(X.qs + 8 * P));
        s = _mm512_dpbusd_epi32(s, unpack(c, W.q[P + 1]), bcast8(X.qs + 8 * P + 8));
        isum[h] = _mm512_dpwssd_epi32(isum[h], s, _mm512_maskz_permutexvar_epi16(0x55555555u, c.scale_of[h], pairs));
      }
    }
    // Per row: its two lanes added, then x8q6_tile's epilogue (the offset,
    // 4 sum_j sc_j bsums_j, taken off; the scales), so the same bits.
    const __m512i both = _mm512_add_epi32(isum[0], isum[1]);
    const __m256i si = _mm512_cvtepi64_epi32(_mm512_add_epi32(both, _mm512_srli_epi64(both, 32)));
    const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(X.bsums));
    __m256i msum = _mm256_setzero_si256();
    for (int k = 0; k < 8; ++k)
      msum = X8Ymm::madd_acc(msum, X8Ymm::load_s8_to_16(W.sc2[k][0], 0), X8Ymm::lane32(bs, k));
    const __m256 d = X8Ymm::load_halves(W.d, 0);
    acc = X8Ymm::fmadd(X8Ymm::mul(d, X8Ymm::set1_ps(X.d)),
                       X8Ymm::to_ps(X8Ymm::sub_32(si, X8Ymm::slli_32(msum, 2))), acc);
  }
}

// One token: a group at a time, its bytes in memory order (one stream).
void matvec(const void* packed, const void* xq, const Q8Sum*, float* y, size_t n, size_t g0, size_t g1) {
  const BlockQ3_Kx8Bits* w = static_cast<const BlockQ3_Kx8Bits*>(packed);
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(xq);
  const size_t nb = n / kQK_K;
  const Constants& c = constants();
  for (size_t g = g0; g < g1; ++g) {
    __m256 acc = _mm256_setzero_ps();
    gemv_group(c, w + g * nb, x, nb, acc);
    _mm256_storeu_ps(y + 8 * g, acc);
  }
}

// Blocks [0, count) of the 3-bit layout into the nibble layout (quant.h's
// BlockQ3_Kx8): a piece's levels b0..b7 (qword r) give row r's four bytes
// b_i | b_(i + 4) << 4 in the qword's low int32, kept by vpmovqd.
inline void to_nibbles(const Constants& c, const BlockQ3_Kx8Bits* src, BlockQ3_Kx8* dst, size_t count) {
  for (size_t b = 0; b < count; ++b) {
    __builtin_memcpy(dst[b].d, src[b].d, sizeof dst[b].d);
    __builtin_memcpy(dst[b].sc2, src[b].sc2, sizeof dst[b].sc2);
    for (int P = 0; P < 32; ++P) {
      const __m512i a = unpack(c, src[b].q[P]);
      const __m512i nib = _mm512_or_si512(a, _mm512_slli_epi64(_mm512_srli_epi64(a, 32), 4));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst[b].qs + 32 * P), _mm512_cvtepi64_epi32(nib));
    }
  }
}

// Sub-block j's table for one group's block: byte 8r + l = (l - 4) sc + 124,
// sc row r's scale: a level l (value + 4) of row r times its scale, + 124
// (0..252). Computed in wrapping bytes, exact since the result fits: 124 -
// 4 sc, plus sc, 2 sc and 4 sc where l has bits 1, 2 and 4 (byte masks).
inline __m512i scaled_table(const Constants& c, const BlockQ3_Kx8Bits& w, int j) {
  const __m512i pairs = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.sc2[j / 2][0])));
  const __m512i sc = _mm512_permutexvar_epi8(c.scale_bytes[j % 2], pairs);
  const __m512i sc2 = _mm512_add_epi8(sc, sc), sc4 = _mm512_add_epi8(sc2, sc2);
  __m512i t = _mm512_sub_epi8(_mm512_set1_epi8(BlockQ3_Kx16Scaled::kOffset), sc4);
  t = _mm512_mask_add_epi8(t, 0xAAAAAAAAAAAAAAAAull, t, sc);
  t = _mm512_mask_add_epi8(t, 0xCCCCCCCCCCCCCCCCull, t, sc2);
  return _mm512_mask_add_epi8(t, 0xF0F0F0F0F0F0F0F0ull, t, sc4);
}

// A group's block a and the next group's (stride bytes on) into a scaled pair
// (quant_x86_x8_pairs.h's BlockQ3_Kx16Scaled): piece P's levels (row r's in
// qword r) index their sub-block's table (8r + level), and each qword's low
// 4 bytes (values 8P .. 8P + 3) go to slot 2P, its high 4 to slot 2P + 1.
inline void to_scaled_pair(const Constants& c, const BlockQ3_Kx8Bits& a, size_t stride, BlockQ3_Kx16Scaled& o) {
  const BlockQ3_Kx8Bits* src[2] = {&a, reinterpret_cast<const BlockQ3_Kx8Bits*>(reinterpret_cast<const char*>(&a) + stride)};
  __builtin_memcpy(o.d, src[0]->d, sizeof src[0]->d);
  __builtin_memcpy(o.d + 8, src[1]->d, sizeof src[1]->d);
  for (int j = 0; j < 16; ++j) {
    const __m512i table[2] = {scaled_table(c, *src[0], j), scaled_table(c, *src[1], j)};
    #pragma GCC unroll 2
    for (int u = 0; u < 2; ++u) {
      const int P = 2 * j + u;
      __m256i lo[2], hi[2];
      for (int h = 0; h < 2; ++h) {
        const __m512i v = _mm512_permutexvar_epi8(_mm512_or_si512(unpack(c, src[h]->q[P]), c.rows), table[h]);
        lo[h] = _mm512_cvtepi64_epi32(v);
        hi[h] = _mm512_cvtepi64_epi32(_mm512_srli_epi64(v, 32));
      }
      _mm512_store_si512(o.qs[2 * P], _mm512_inserti64x4(_mm512_castsi256_si512(lo[0]), lo[1], 1));
      _mm512_store_si512(o.qs[2 * P + 1], _mm512_inserti64x4(_mm512_castsi256_si512(hi[0]), hi[1], 1));
    }
  }
}

// Groups [g, g + count) (count even) of nb blocks into count / 2 scaled pairs.
inline void to_scaled_pairs(const Constants& c, const BlockQ3_Kx8Bits* w, BlockQ3_Kx16Scaled* out, size_t count,
                            size_t nb) {
  for (size_t p = 0; p < count / 2; ++p)
    for (size_t j = 0; j < nb; ++j) to_scaled_pair(c, w[2 * p * nb + j], nb * sizeof(BlockQ3_Kx8Bits), out[p * nb + j]);
}

// A batch (prefill, compute-bound): its rows' levels are unpacked anyway, for
// every tile of activation rows. So each pass's groups are unpacked once, in
// a scratch of this thread, and a product over the unpacked layout runs over
// them for all M rows (quant_x86_x8k.h's x8k_groups). The 3-bit layout's own
// unpack (three shuffles, on the pipes vpdpbusd runs on) in that product's
// tile ran it a third slower. From 24 tokens the pass goes into scaled pairs
// (each level times its scale, + 124: one vpdpbusd per 4 values of 16 rows,
// and no multiply-add of a scale per sub-block of 16 values on the same
// pipes; Zen 5, qmatmul M128, of the int8 probe: 56-57% -> 76-77%; 110M
// Q3_K_S, one thread: pp128 +21%, pp32 +12%, pp24 +8%, pp16 -2%, pp8 -22%),
// below that into the nibble layout (whose copy costs less).
constexpr size_t kScaledMinTokens = 24;

// The pass loop of both batch products below: passes of kG vectors of groups
// (the next pass's 3-bit groups coming into L2 meanwhile), then single
// vectors; unpack(g, count) puts groups [g, g + count) into `unpacked`, which
// x8k_groups reads. Returns the first group left (fewer than a vector's).
template <int kG, int kT, class Unpacked, class Unpack>
size_t unpacked_passes(const BlockQ3_Kx8Bits* w, const Unpacked* unpacked, Unpack&& unpack, const BlockQ8_K* xb, float* y,
                       size_t M, size_t nb, size_t ldy, size_t g0, size_t g1) {
  using V = X8Zmm;
  constexpr size_t kPass = size_t(kG) * V::kGroups;
  size_t g = g0;
  for (; g + kPass <= g1; g += kPass) {
    unpack(g, kPass);
    x8k_groups<V, kG, kT>(unpacked, xb, y + 8 * g, M, nb, ldy, 0, next_pass(w, nb, g, kPass, g1, M, kT));
  }
  for (; g + V::kGroups <= g1; g += V::kGroups) {
    unpack(g, V::kGroups);
    x8k_groups<V, 1, kT>(unpacked, xb, y + 8 * g, M, nb, ldy, 0);
  }
  return g;
}

void matmul_nibbles(const void* packed, const void* xq, float* y, size_t M, size_t n, size_t ldy, size_t g0,
                    size_t g1) {
  constexpr int kG = x8k_vectors<BlockQ3_Kx8>(), kT = x8k_tokens<BlockQ3_Kx8>();
  const size_t nb = n / kQK_K;
  const BlockQ3_Kx8Bits* w = static_cast<const BlockQ3_Kx8Bits*>(packed);
  const BlockQ8_K* xb = static_cast<const BlockQ8_K*>(xq);
  const Constants& c = constants();
  thread_local std::vector<BlockQ3_Kx8> scratch;  // grows to a pass's blocks once per thread
  if (scratch.size() < size_t(kG) * X8Zmm::kGroups * nb) scratch.resize(size_t(kG) * X8Zmm::kGroups * nb);
  BlockQ3_Kx8* nib = scratch.data();
  const auto unpack = [&](size_t g, size_t count) { to_nibbles(c, w + g * nb, nib, count * nb); };
  for (size_t g = unpacked_passes<kG, kT>(w, nib, unpack, xb, y, M, nb, ldy, g0, g1); g < g1; ++g) {
    unpack(g, 1);
    x8k_groups<X8Ymm, 1, kT>(nib, xb, y + 8 * g, M, nb, ldy, 0);
  }
}

// Scaled pairs: two of them (32 rows) against 5 tokens, as Q2_K's.
void matmul(const void* packed, const void* xq, const Q8Sum*, float* y, size_t M, size_t n, size_t ldy, size_t g0,
            size_t g1) {
  if (M < kScaledMinTokens) return matmul_nibbles(packed, xq, y, M, n, ldy, g0, g1);
  constexpr int kG = 2, kT = 5;
  const size_t nb = n / kQK_K;
  const BlockQ3_Kx8Bits* w = static_cast<const BlockQ3_Kx8Bits*>(packed);
  const BlockQ8_K* xb = static_cast<const BlockQ8_K*>(xq);
  const Constants& c = constants();
  thread_local std::vector<BlockQ3_Kx16Scaled> scratch;  // a pair per two groups
  if (scratch.size() < size_t(kG) * nb) scratch.resize(size_t(kG) * nb);
  BlockQ3_Kx16Scaled* pairs = scratch.data();
  const auto unpack = [&](size_t g, size_t count) { to_scaled_pairs(c, w + g * nb, pairs, count, nb); };
  const size_t g = unpacked_passes<kG, kT>(w, pairs, unpack, xb, y, M, nb, ldy, g0, g1);
  if (g < g1) matmul_nibbles(packed, xq, y, M, n, ldy, g, g1);
}

void repack(const void* w, void* out, size_t rows, size_t n) {
  repack_x8(static_cast<const BlockQ3_K*>(w), static_cast<BlockQ3_Kx8Bits*>(out), rows, n);
}

}  // namespace

}  // namespace qkv::ops::isa_avx512vbmi

qkv::ops::QuantProducts qkv::ops::avx512vbmi_q3_K_products(const QuantProducts& plain) {
  QuantProducts p = plain;  // the products over rows as the file holds them
  p.matvec_x8 = isa_avx512vbmi::matvec;
  p.matmul_x8 = isa_avx512vbmi::matmul;
  p.x8_repack = isa_avx512vbmi::repack;
  p.x8_group_bytes = sizeof(BlockQ3_Kx8Bits);
  p.x8_layout = "levels in 3 bits, unpacked by vpermb + vpmultishiftqb";
  return p;
}
