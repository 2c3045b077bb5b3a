// The integer products of the 256-value types (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
// IQ4_XS) over their row-interleaved layouts (quant.h's Block*_Kx8) against
// Q8_K activations: the pieces, tiles, GEMV and GEMM of quant_x86_x8.h's
// scheme, with each sub-block's scale applied to its integer sums. Included
// by quant_x86.h after quant_x86_x8.h, with the same macros.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <type_traits>

#include "ops/ops.h"
#include "ops/prefetch.h"
#include "ops/quant.h"
#include "ops/quant_x86_x8.h"

namespace qkv::ops::QKV_ISA_NS {

// ------------------------------------------- the 256-value types' pieces
//
// The loops over a chunk's pieces carry `#pragma GCC unroll`: GCC 12 leaves
// them rolled and copies every accumulator to another register on each pass
// (IQ4_XS and Q5_K batch products ran at 36-38% of the int8 probe, 55%
// unrolled; Q6_K 40 -> 46%, Q3_K 46 -> 50%).

// The first and the second int16 of each int32 lane (a scale pair), sign-extended.
template <class V>
inline typename V::I x8_pair_first(typename V::I pairs) { return V::srai_32(V::slli_32(pairs, 16), 16); }
template <class V>
inline typename V::I x8_pair_second(typename V::I pairs) { return V::srai_32(pairs, 16); }

// Piece p of 64-value chunk c in Q4_Kx8's order (lo: values 64c + 4p + i,
// hi: 64c + 32 + 4p + i, as unsigned levels) of G vectors of groups against
// T Q8_K activation rows: each activation broadcast feeds the G vectors.
template <class V, int G, int T>
inline void x8k_piece_dots(typename V::I (&slo)[G][T], typename V::I (&shi)[G][T], const typename V::I (&lo)[G],
                           const typename V::I (&hi)[G], const BlockQ8_K* const (&x)[T], int c, int p) {
  for (int t = 0; t < T; ++t) {
    const auto xlo = x8_bcast4<V>(x[t]->qs + 64 * c + 4 * p), xhi = x8_bcast4<V>(x[t]->qs + 64 * c + 32 + 4 * p);
    for (int g = 0; g < G; ++g) {
      slo[g][t] = x8_dot<V>(slo[g][t], lo[g], xlo);
      shi[g][t] = x8_dot<V>(shi[g][t], hi[g], xhi);
    }
  }
}

// Lane k (k < 4, in both halves): the pair (sum of x over sub-block 2k of
// 32 values, over 2k + 1) as two int16, from the sums of 16.
inline __m256i x8k_pair_sums(const BlockQ8_K* x) {
  const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x->bsums));
  return _mm256_broadcastsi128_si256(_mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1)));
}

// The pair (sums of x over sub-blocks 2k and 2k + 1 of 16 values) as two
// int16 in every lane: a broadcast from memory (was a permute of the loaded
// sums, on the vector pipes the products need). With the rows' scale pairs
// loaded once for a tile's tokens (x8q6_tile): qmatmul M128, Zen 5, Q2_K and
// Q3_K +0-3% (AVX-512), +4-7% (AVX2).
template <class E>
inline typename E::I x8k_bsum_pair(const BlockQ8_K* x, int k) {
  return E::bcast4(reinterpret_cast<const int8_t*>(x->bsums + 2 * k));
}

// ---------------------------------------------------------------- Q4_K, Q5_K, IQ4_XS

// Q4_K groups against T Q8_K activation rows. Per super-block and 64-value
// chunk c: each 32-byte piece load gives 8 rows' 4 bytes, whose low nibbles
// belong to sub-block 2c and high ones to 2c + 1; their sums (8 rows in the
// 8 lanes) take the rows' scales by a 32-bit multiply. The mins go against
// the activations' sums of 32 by 16-bit multiply-adds, two sub-blocks at a time.
// Q5_K (BlockQ5_Kx8) likewise, each piece's fifth bits (bit p of each byte
// of the chunk's two 32-byte vectors) added as 0x10; BlockQ5_Kx8Bytes, its
// levels read as bytes.
// IQ4_XS (BlockIQ4_XSx8) likewise, the nibbles looked up in iq4_levels (+ 128
// for VNNI's unsigned operand: the sums then carry 128 sum_j sc_j (sum of x
// over sub-block j), taken off per super-block the way Q4_K's mins are;
// signed for the sign trick), its signed scales in pairs (sc2), no mins.
template <class V, int G, int T, class Packed>
inline void x8q45_tile(const Packed* w, const BlockQ8_K* x0, size_t nb, typename V::E::F (&acc)[G][T]) {
  using I = typename V::I;
  using E = typename V::E;
  constexpr bool kFifth = std::is_same_v<Packed, BlockQ5_Kx8>;
  constexpr bool kIq4 = std::is_same_v<Packed, BlockIQ4_XSx8> || std::is_same_v<Packed, BlockIQ4_XSx16>;
  constexpr bool kBytes = std::is_same_v<Packed, BlockQ5_Kx8Bytes> || std::is_same_v<Packed, BlockQ5_Kx16Bytes>;
  constexpr bool kSignTrick = kIq4 && QKV_Q8_BIAS == 0;  // signed levels: no offset to take off
  // With QKV_SHORT_SUMS, pieces summed in int16 before their scales multiply
  // them (madd): 8 of nibbles (8 * 2 * 15 * 128 < 32768), 4 with a fifth bit.
  constexpr int kRun = !QKV_SHORT_SUMS || kSignTrick ? 0 : kFifth || kBytes ? 4 : 8;
  // Q4_K with int32 sums: the high nibbles where they are (16 x level, one
  // mask instead of a shift and a mask per piece); the low ones' scales
  // times 16 to match, and the sum shifted back (exact: a multiple of 16;
  // 16 x 256 x 63 x 15 x 128 < 2^31) before the epilogue.
  constexpr bool kHigh16 = !kFifth && !kIq4 && !kBytes && kRun == 0;
  const size_t stride = x8_stride<Packed>(nb);
  [[maybe_unused]] I table;
  if constexpr (kIq4) table = iq4_levels<V>();
  for (size_t b = 0; b < nb; ++b) {
    const Packed* W[G];
    for (int g = 0; g < G; ++g) W[g] = w + g * x8_structs<V, Packed>() * nb + b;
    const BlockQ8_K* x[T];
    for (int t = 0; t < T; ++t) x[t] = x0 + t * nb + b;
    I isum[G][T];
    for (int g = 0; g < G; ++g)
      for (int t = 0; t < T; ++t) isum[g][t] = V::zero();
    for (int c = 0; c < 4; ++c) {
      // Sub-blocks 2c (low nibbles) and 2c + 1 (high)'s scales in int32 lanes
      // (with short sums: in both int16 halves of each, for madd), loaded
      // where they multiply (registers are few on AVX2).
      const auto scales = [&](int g, I& sc_lo, I& sc_hi) {
        if constexpr (kIq4) {
          const I pair = V::load_s8_to_16(W[g]->sc2[c][0], stride);
          sc_lo = x8_pair_first<V>(pair), sc_hi = x8_pair_second<V>(pair);
        } else {
          sc_lo = V::load_u8_to_32(W[g]->sc[2 * c], stride), sc_hi = V::load_u8_to_32(W[g]->sc[2 * c + 1], stride);
        }
        if constexpr (kRun > 0) sc_lo = V::or_(sc_lo, V::slli_32(sc_lo, 16)), sc_hi = V::or_(sc_hi, V::slli_32(sc_hi, 16));
        if constexpr (kHigh16) sc_lo = V::slli_32(sc_lo, 4);
      };
      I slo[G][T], shi[G][T];
      for (int g = 0; g < G; ++g)
        for (int t = 0; t < T; ++t) slo[g][t] = shi[g][t] = V::zero();
      #pragma GCC unroll 8
      for (int p = 0; p < 8; p += V::kPieces) {
        I lo[G], hi[G];
        for (int g = 0; g < G; ++g) {
          if constexpr (kBytes) {
            lo[g] = x8_load_qs<V, Packed>(W[g]->qs[c][p][0], stride);
            hi[g] = x8_load_qs<V, Packed>(W[g]->qs[c][p][1], stride);
          } else if constexpr (kFifth) {
            x8_unpack_with_bits<V>(W[g]->chunks[c], stride, p, 1, lo[g], hi[g],
                                   [](typename V::I h, int k) { return x8q5_fifth<V>(h, k); });
          } else if constexpr (kHigh16) {
            const I q = x8_load_piece<V>(W[g], 8 * c + p, stride);
            lo[g] = V::and_(q, V::set1_8(0x0f)), hi[g] = V::and_(q, V::set1_8(char(0xf0)));
          } else {
            x8_split_nibbles<V>(x8_load_piece<V>(W[g], 8 * c + p, stride), lo[g], hi[g]);
            if constexpr (kIq4) {
              lo[g] = V::shuffle(table, lo[g]);
              hi[g] = V::shuffle(table, hi[g]);
            }
          }
        }
        if constexpr (kSignTrick) {
          for (int g = 0; g < G; ++g) {
            const I alo = V::sign(lo[g], lo[g]), ahi = V::sign(hi[g], hi[g]);
            for (int t = 0; t < T; ++t) {
              slo[g][t] = V::dot(slo[g][t], alo, V::sign(x8_bcast4<V>(x[t]->qs + 64 * c + 4 * p), lo[g]));
              shi[g][t] = V::dot(shi[g][t], ahi, V::sign(x8_bcast4<V>(x[t]->qs + 64 * c + 32 + 4 * p), hi[g]));
            }
          }
        } else {
          x8k_piece_dots<V, G, T>(slo, shi, lo, hi, x, c, p);
        }
        if constexpr (kRun > 0) {  // the int16 sums times the scales, into int32
          if ((p + 1) % kRun == 0) {
            for (int g = 0; g < G; ++g) {
              I sc_lo, sc_hi;
              scales(g, sc_lo, sc_hi);
              for (int t = 0; t < T; ++t) {
                isum[g][t] = V::madd_acc(V::madd_acc(isum[g][t], slo[g][t], sc_lo), shi[g][t], sc_hi);
                slo[g][t] = shi[g][t] = V::zero();
              }
            }
          }
        }
      }
      if constexpr (kRun == 0)
        for (int g = 0; g < G; ++g) {
          I sc_lo, sc_hi;
          scales(g, sc_lo, sc_hi);
          for (int t = 0; t < T; ++t)
            isum[g][t] = V::add_32(isum[g][t], V::add_32(V::mullo_32(slo[g][t], sc_lo), V::mullo_32(shi[g][t], sc_hi)));
        }
    }
    __m256i bp[T];  // the activations' sums of 32, once for every vector of groups
    if constexpr (!kSignTrick)
      for (int t = 0; t < T; ++t) bp[t] = x8k_pair_sums(x[t]);
    for (int g = 0; g < G; ++g) {
      const auto d = E::load_halves(W[g]->d, stride);
      [[maybe_unused]] typename E::F dmin;
      if constexpr (!kIq4) dmin = E::load_halves(W[g]->dmin, stride);
      for (int t = 0; t < T; ++t) {
        const auto xd = E::set1_ps(x[t]->d);
        typename E::I si = V::fold(isum[g][t]), msum = E::zero();
        if constexpr (kHigh16) si = E::srai_32(si, 4);
        if constexpr (kIq4) {  // the offset: 128 sum_j sc_j (sum of x over sub-block j)
          if constexpr (!kSignTrick) {
            for (int k = 0; k < 4; ++k) msum = E::madd_acc(msum, E::load_s8_to_16(W[g]->sc2[k][0], stride), E::lane32(bp[t], k));
            si = E::sub_32(si, E::slli_32(msum, 7));
          }
          acc[g][t] = E::fmadd(E::mul(d, xd), E::to_ps(si), acc[g][t]);
        } else {  // the mins
          for (int k = 0; k < 4; ++k) msum = E::madd_acc(msum, E::load_u8_to_16(W[g]->m2[k][0], stride), E::lane32(bp[t], k));
          acc[g][t] = E::fmadd(E::mul(d, xd), E::to_ps(si), acc[g][t]);
          acc[g][t] = E::fnmadd(E::mul(dmin, xd), E::to_ps(msum), acc[g][t]);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- Q6_K

// acc + s * sc in int32 lanes. Int16: a 16-value sub-block's byte products
// fit in 16 bits where the levels are small (Q2_K: 3 * 128 * 16, Q3_K:
// 7 * 128 * 16), and sc holds the scale in each lane's low int16 over a zero
// one, so one 16-bit multiply-add (VNNI: vpdpwssd) does it exactly, where a
// 32-bit multiply and an add take longer (Q6_K's 63 * 128 * 16 does not fit).
template <class V, bool Int16>
inline typename V::I x8_scale_sum(typename V::I acc, typename V::I s, typename V::I sc) {
  if constexpr (Int16) return V::madd_acc(acc, s, sc);
  else return V::add_32(acc, V::mullo_32(s, sc));
}

// A piece's 4 activation bytes at p in every lane; X8Pieces: the next
// piece's in the high half, 8 bytes on (Q3_Kx8's and Q6_Kx8's pieces hold 8
// values of a row).
template <class V>
inline typename V::I x8_bcast4_of8(const int8_t* p) {
  if constexpr (V::kPieces == 2) return V::bcast4_two_8apart(p);
  else return V::bcast4(p);
}

// Q6_K groups (G vectors) against T Q8_K activation rows: each level is a
// nibble plus its 2 high bits (0x30) from the quad's bit planes, 0..63
// unsigned for the byte products, so the sums carry 32 sum_j sc_j bsums_j
// (bsums: the activations' sums of 16, one per sub-block), taken off per
// super-block. Sub-block j is pieces 2j and 2j + 1 (values 16j .. 16j + 15):
// its byte products summed, then multiplied by its scale (x8_scale_sum).
// Q3_K (BlockQ3_Kx8) likewise: the levels are the nibbles, 0..7 (value + 4).
// BlockQ6_Kx8Bytes likewise, its levels read as bytes.
template <class V, int G, int T, class Packed>
inline void x8q6_tile(const Packed* w, const BlockQ8_K* x0, size_t nb, typename V::E::F (&acc)[G][T]) {
  using I = typename V::I;
  using E = typename V::E;
  constexpr bool kBytes = std::is_same_v<Packed, BlockQ6_Kx8Bytes> || std::is_same_v<Packed, BlockQ6_Kx16Bytes>;
  constexpr bool kQ6 = std::is_same_v<Packed, BlockQ6_Kx8> || kBytes;
  constexpr int kOffsetShift = kQ6 ? 5 : 2;  // the levels' offset: 32 or 4
  // With QKV_SHORT_SUMS, byte products summed in int16 lanes, then times the
  // scales by madd: a Q6_K piece's (2 * 2 * 63 * 128 = 32256 at most), a
  // Q3_K sub-block's (4 * 2 * 7 * 128).
  constexpr bool kShort = QKV_SHORT_SUMS;
  const size_t stride = x8_stride<Packed>(nb);
  for (size_t b = 0; b < nb; ++b) {
    const Packed* W[G];
    for (int g = 0; g < G; ++g) W[g] = w + g * x8_structs<V, Packed>() * nb + b;
    const BlockQ8_K* x[T];
    for (int t = 0; t < T; ++t) x[t] = x0 + t * nb + b;
    I isum[G][T];
    for (int g = 0; g < G; ++g)
      for (int t = 0; t < T; ++t) isum[g][t] = V::zero();
    for (int k = 0; k < 8; ++k) {
      // Sub-blocks 2k and 2k + 1's scales in int32 lanes, from the int16 pairs.
      I sc[G][2];
      for (int g = 0; g < G; ++g) {
        const I pair = V::load_s8_to_16(W[g]->sc2[k][0], stride);
        if constexpr (kShort) {  // each scale in both int16 halves, for madd
          const I low = V::and_(pair, V::set1_32(0xffff)), high = V::srli_32(pair, 16);
          sc[g][0] = V::or_(low, V::slli_32(low, 16)), sc[g][1] = V::or_(high, V::slli_32(high, 16));
        } else if constexpr (kQ6) {
          sc[g][0] = x8_pair_first<V>(pair), sc[g][1] = x8_pair_second<V>(pair);
        } else {  // int16 scales over zeros, for x8_scale_sum
          sc[g][0] = V::and_(pair, V::set1_32(0xffff)), sc[g][1] = V::srli_32(pair, 16);
        }
      }
      #pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        I s[G][T];  // sub-block 2k + h's byte products
        for (int g = 0; g < G; ++g)
          for (int t = 0; t < T; ++t) s[g][t] = V::zero();
        #pragma GCC unroll 2
        for (int q = 0; q < 2; q += V::kPieces) {
          const int u = 2 * h + q, P = 4 * k + u;  // piece P, the u-th of quad k (u known when unrolled)
          I lo[G], hi[G];
          for (int g = 0; g < G; ++g) {
            if constexpr (kBytes) {
              lo[g] = x8_load_qs<V, Packed>(W[g]->qs[k][u][0], stride);
              hi[g] = x8_load_qs<V, Packed>(W[g]->qs[k][u][1], stride);
            } else if constexpr (kQ6) {
              x8_unpack_with_bits<V>(W[g]->quads[k], stride, u, 2, lo[g], hi[g],
                                     [](typename V::I h, int j) { return x8q6_high<V>(h, j); });
            } else {
              x8_split_nibbles<V>(x8_load_piece<V>(W[g], P, stride), lo[g], hi[g]);
            }
          }
          for (int t = 0; t < T; ++t) {
            const I xlo = x8_bcast4_of8<V>(x[t]->qs + 8 * P), xhi = x8_bcast4_of8<V>(x[t]->qs + 8 * P + 4);
            for (int g = 0; g < G; ++g) {
              if constexpr (kShort) s[g][t] = V::dot_short(V::dot_short(s[g][t], lo[g], xlo), hi[g], xhi);
              else s[g][t] = V::dot(V::dot(s[g][t], lo[g], xlo), hi[g], xhi);
            }
          }
          if constexpr (kShort && kQ6) {  // a piece's int16 sums times the scale
            for (int g = 0; g < G; ++g)
              for (int t = 0; t < T; ++t) isum[g][t] = V::madd_acc(isum[g][t], s[g][t], sc[g][h]), s[g][t] = V::zero();
          }
        }
        if constexpr (kShort && !kQ6) {  // the sub-block's int16 sums times the scale
          for (int g = 0; g < G; ++g)
            for (int t = 0; t < T; ++t) isum[g][t] = V::madd_acc(isum[g][t], s[g][t], sc[g][h]);
        } else if constexpr (!kShort) {
          for (int g = 0; g < G; ++g)
            for (int t = 0; t < T; ++t) isum[g][t] = x8_scale_sum<V, !kQ6>(isum[g][t], s[g][t], sc[g][h]);
        }
      }
    }
    for (int g = 0; g < G; ++g) {
      const auto d = E::load_halves(W[g]->d, stride);
      // The rows' scale pairs, loaded once for the T rows where registers
      // allow (with 16, AVX2's Q6_K spilled them: -4%).
      constexpr bool kHoist = QKV_X8_GROUPS == 2;
      typename E::I pairs[kHoist ? 8 : 1];
      if constexpr (kHoist)
        for (int k = 0; k < 8; ++k) pairs[k] = E::load_s8_to_16(W[g]->sc2[k][0], stride);
      const auto pair = [&](int k) {
        if constexpr (kHoist) return pairs[k];
        else return E::load_s8_to_16(W[g]->sc2[k][0], stride);
      };
      for (int t = 0; t < T; ++t) {
        typename E::I msum = E::zero();
        for (int k = 0; k < 8; ++k) msum = E::madd_acc(msum, pair(k), x8k_bsum_pair<E>(x[t], k));
        acc[g][t] = E::fmadd(E::mul(d, E::set1_ps(x[t]->d)),
                             E::to_ps(E::sub_32(V::fold(isum[g][t]), E::slli_32(msum, kOffsetShift))), acc[g][t]);
      }
    }
  }
}

// ---------------------------------------------------------------- Q2_K

// Q2_K groups against T Q8_K activation rows. Piece P's bits 2s hold values
// 64s + 4P + i: pieces 4m .. 4m + 3 give sub-blocks m, 4 + m, 8 + m, 12 + m
// (one per s), whose sums take the rows' scales by a 16-bit multiply-add; the
// mins go against the activations' sums of 16 by 16-bit multiply-adds.
template <class V, int T>
inline void x8q2_tile(const BlockQ2_Kx8* w, const BlockQ8_K* x0, size_t nb, typename V::E::F (&acc)[T]) {
  using I = typename V::I;
  // With QKV_SHORT_SUMS, a sub-block's byte products summed in int16 lanes
  // (4 * 2 * 3 * 128 at most), then times the scale by madd.
  constexpr bool kShort = QKV_SHORT_SUMS;
  // int32 sums of one or two tokens: a shift per level and sum, not per piece
  // (Zen 5, one token from cache: +4-5%; 4 tokens: as many shifts either way).
  constexpr bool kInPlace = !kShort && T <= 2;
  const size_t stride = nb * sizeof(BlockQ2_Kx8);
  for (size_t b = 0; b < nb; ++b) {
    const BlockQ2_Kx8& W = w[b];
    const BlockQ8_K* x[T];
    for (int t = 0; t < T; ++t) x[t] = x0 + t * nb + b;
    I isum[T];
    for (int t = 0; t < T; ++t) isum[t] = V::zero();
    for (int u = 0; u < 2; ++u) {
      // Sub-blocks 4s + 2u and 4s + 2u + 1's scale bytes, a pair per row.
      I pairs[4];
      for (int s = 0; s < 4; ++s) pairs[s] = V::load_u8_to_16(W.scm[2 * s + u][0], stride);
      #pragma GCC unroll 2
      for (int m = 2 * u; m < 2 * u + 2; ++m) {
        // Sub-block 4s + m's scale: the low nibble of its byte (short sums:
        // in both int16 halves of the lane).
        const auto scale = [&](int s) {
          const I sc = V::and_(m == 2 * u ? pairs[s] : V::srli_32(pairs[s], 16), V::set1_32(0x0f));
          return kShort ? V::or_(sc, V::slli_32(sc, 16)) : sc;
        };
        if constexpr (kShort && T > 2) {
          // A batch: one sub-block at a time (each piece loaded once per level;
          // 16 registers hold one level's sums of 4 tokens, not four levels').
          #pragma GCC unroll 4
          for (int s = 0; s < 4; ++s) {
            I sums[T];
            for (int t = 0; t < T; ++t) sums[t] = V::zero();
            #pragma GCC unroll 4
            for (int k = 0; k < 4; ++k) {
              const int P = 4 * m + k;
              const I q = V::load(W.qs + 32 * P, stride);
              const I lv = V::and_(s == 0 ? q : V::srli_16(q, 2 * s), V::set1_8(0x03));
              for (int t = 0; t < T; ++t) sums[t] = V::dot_short(sums[t], lv, x8_bcast4<V>(x[t]->qs + 64 * s + 4 * P));
            }
            const I sc = scale(s);
            for (int t = 0; t < T; ++t) isum[t] = x8_scale_sum<V, true>(isum[t], sums[t], sc);
          }
          continue;
        }
        // One or two tokens: each piece loaded once for its four levels.
        I sums[4][T];
        for (int s = 0; s < 4; ++s)
          for (int t = 0; t < T; ++t) sums[s][t] = V::zero();
        #pragma GCC unroll 4
        for (int k = 0; k < 4; k += V::kPieces) {
          const int P = 4 * m + k;
          const I q = V::load(W.qs + 32 * P, stride);
          for (int s = 0; s < 4; ++s) {
            // kInPlace: level s where it is (4^s x its value; one mask, no
            // shift), the sums shifted back below (exact).
            const I lv = !kInPlace ? V::and_(s == 0 ? q : V::srli_16(q, 2 * s), V::set1_8(0x03))
                                   : V::and_(q, V::set1_8(char(0x03 << (2 * s))));
            for (int t = 0; t < T; ++t) {
              const I xb = x8_bcast4<V>(x[t]->qs + 64 * s + 4 * P);
              if constexpr (kShort) sums[s][t] = V::dot_short(sums[s][t], lv, xb);
              else sums[s][t] = V::dot(sums[s][t], lv, xb);
            }
          }
        }
        for (int s = 0; s < 4; ++s) {
          const I sc = scale(s);
          for (int t = 0; t < T; ++t) {
            if (kInPlace && s > 0) sums[s][t] = V::srai_32(sums[s][t], 2 * s);  // < 16 x 3 x 128 again: int16, for madd
            isum[t] = x8_scale_sum<V, true>(isum[t], sums[s][t], sc);
          }
        }
      }
    }
    using E = typename V::E;
    const auto d = E::load_halves(W.d, stride), dmin = E::load_halves(W.dmin, stride);
    typename E::I mins[8];  // row r's mins of sub-blocks 2k and 2k + 1, the high nibbles of its pair k
    for (int k = 0; k < 8; ++k) mins[k] = E::srli_16(E::load_u8_to_16(W.scm[k][0], stride), 4);
    for (int t = 0; t < T; ++t) {
      typename E::I msum = E::zero();
      for (int k = 0; k < 8; ++k) msum = E::madd_acc(msum, mins[k], x8k_bsum_pair<E>(x[t], k));
      const auto xd = E::set1_ps(x[t]->d);
      acc[t] = E::fmadd(E::mul(d, xd), E::to_ps(V::fold(isum[t])), acc[t]);
      acc[t] = E::fnmadd(E::mul(dmin, xd), E::to_ps(msum), acc[t]);
    }
  }
}

// The sum of a Q8_K row's values (of its sums of 16).
inline int x8k_value_sum(const BlockQ8_K* x) {
  const __m256i s = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x->bsums)), _mm256_set1_epi16(1));
  __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
  return _mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1)));
}

// Pairs of each level times its scale (BlockQ2_Kx16Scaled, BlockQ3_Kx16Scaled),
// G of them against T Q8_K activation rows: one int32 sum per row over the
// super-block, then Q2_K's mins against the activations' sums of 16, or
// Q3_K's offset (124 x the activations' sum) taken off: the integers of the
// packed tiles (x8q2_tile, x8q6_tile), and their float epilogues.
template <class V, int G, int T, class Pair>
inline void x8k_scaled_tile(const Pair* w, const BlockQ8_K* x0, size_t nb, typename V::E::F (&acc)[G][T]) {
  using I = typename V::I;
  constexpr bool kQ2 = std::is_same_v<Pair, BlockQ2_Kx16Scaled>;
  constexpr size_t stride = Pair::kStride;
  for (size_t b = 0; b < nb; ++b) {
    const Pair* W[G];
    for (int g = 0; g < G; ++g) W[g] = w + g * nb + b;
    const BlockQ8_K* x[T];
    for (int t = 0; t < T; ++t) x[t] = x0 + t * nb + b;
    I isum[G][T];
    for (int g = 0; g < G; ++g)
      for (int t = 0; t < T; ++t) isum[g][t] = V::zero();
    #pragma GCC unroll 8
    for (int j = 0; j < 64; ++j) {  // values 4j .. 4j + 3 of every row
      I q[G];
      for (int g = 0; g < G; ++g) q[g] = V::load64(W[g]->qs[j]);
      for (int t = 0; t < T; ++t) {
        const I xb = V::bcast4(x[t]->qs + 4 * j);
        for (int g = 0; g < G; ++g) isum[g][t] = V::dot(isum[g][t], q[g], xb);
      }
    }
    [[maybe_unused]] I offset[T];
    if constexpr (!kQ2)
      for (int t = 0; t < T; ++t) offset[t] = V::set1_32(BlockQ3_Kx16Scaled::kOffset * x8k_value_sum(x[t]));
    for (int g = 0; g < G; ++g) {
      const auto d = V::load_halves(W[g]->d, stride);
      [[maybe_unused]] typename V::F dmin;
      if constexpr (kQ2) dmin = V::load_halves(W[g]->dmin, stride);
      for (int t = 0; t < T; ++t) {
        const auto xd = V::set1_ps(x[t]->d);
        if constexpr (kQ2) {
          I msum = V::zero();
          for (int k = 0; k < 8; ++k) msum = V::madd_acc(msum, V::load64(W[g]->m16[k]), x8k_bsum_pair<V>(x[t], k));
          acc[g][t] = V::fmadd(V::mul(d, xd), V::to_ps(isum[g][t]), acc[g][t]);
          acc[g][t] = V::fnmadd(V::mul(dmin, xd), V::to_ps(msum), acc[g][t]);
        } else {
          acc[g][t] = V::fmadd(V::mul(d, xd), V::to_ps(V::sub_32(isum[g][t], offset[t])), acc[g][t]);
        }
      }
    }
  }
}

// ------------------------- The 256-value types (Q2_K .. IQ4_XS): rows, GEMV, GEMM

// acc[i][t] += the products of super-blocks [0, nb) of G vectors of groups
// from w (a row group's nb blocks apart) and T activation rows from x (nb
// blocks apart) (Q6_K, Q3_K and Q2_K: one vector).
template <class V, int G, int T, class Packed>
inline void x8k_tile(const Packed* w, const BlockQ8_K* x, size_t nb, typename V::E::F (&acc)[G][T]) {
  if constexpr (std::is_same_v<Packed, BlockQ6_Kx8> || std::is_same_v<Packed, BlockQ3_Kx8> ||
                std::is_same_v<Packed, BlockQ6_Kx8Bytes> || std::is_same_v<Packed, BlockQ6_Kx16Bytes>) {
    x8q6_tile<V, G, T>(w, x, nb, acc);
  } else if constexpr (std::is_same_v<Packed, BlockQ2_Kx16Scaled> || std::is_same_v<Packed, BlockQ3_Kx16Scaled>) {
    x8k_scaled_tile<V, G, T>(w, x, nb, acc);
  } else if constexpr (std::is_same_v<Packed, BlockQ2_Kx8>) {
    static_assert(G == 1, "one vector of groups");
    x8q2_tile<V, T>(w, x, nb, acc[0]);
  } else {  // Q4_K, Q5_K, IQ4_XS
    x8q45_tile<V, G, T>(w, x, nb, acc);
  }
}

// Y[m + t, 8 g .. 8 g + 8 V::kGroups G) for T activation rows from m and
// G vectors of groups from g.
template <class V, int G, int T, class Packed>
inline void x8k_rows(const Packed* w, const BlockQ8_K* xb, float* y, size_t nb, size_t ldy, size_t m, size_t g) {
  typename V::F acc[G][T];
  for (int i = 0; i < G; ++i)
    for (int t = 0; t < T; ++t) acc[i][t] = V::zero_ps();
  const size_t first = x8_is_pair<Packed>::value ? g / 2 : g;  // group g's struct
  x8k_tile<V, G, T>(w + first * nb, xb + m * nb, nb, acc);
  for (int i = 0; i < G; ++i)
    for (int t = 0; t < T; ++t) V::store(y + (m + t) * ldy + 8 * (g + V::kGroups * i), acc[i][t]);
}

// One token: a group at a time, its bytes in memory order (a single stream:
// two groups side by side, two streams a matrix row apart, halved the rate
// from DRAM on Zen 5; so would two blocks side by side). AVX-512: two pieces
// of a block per zmm (QKV_X8_GEMV_VEC); the same bits as one per ymm.
template <class Packed>
inline void x8k_matvec(const void* packed, const void* xq, const Q8Sum*, float* y, size_t n, size_t g0, size_t g1) {
  using P = QKV_X8_GEMV_VEC;
  const size_t nb = n / kQK_K;
  const Packed* w = static_cast<const Packed*>(packed);
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(xq);
  for (size_t g = g0; g < g1; ++g) {
    X8Ymm::F acc[1][1] = {{X8Ymm::zero_ps()}};
    x8k_tile<P, 1, 1>(w + g * nb, x, nb, acc);
    X8Ymm::store(y + 8 * g, acc[0][0]);
  }
}

// G vectors of QKV_X8_VEC's groups against T activation rows per pass (then
// 2, then 1).
// Meanwhile `next` comes into L2, a share before each tile.
template <class V, int G, int T, class Packed>
inline void x8k_groups(const Packed* w, const BlockQ8_K* xb, float* y, size_t M, size_t nb, size_t ldy, size_t g,
                       SpreadPrefetch next = {}) {
  size_t m = 0;
  for (; m + T <= M; m += T) next.next(), x8k_rows<V, G, T>(w, xb, y, nb, ldy, m, g);
  next.next();
  if constexpr (T > 4)
    if (m + 4 <= M) x8k_rows<V, G, 4>(w, xb, y, nb, ldy, m, g), m += 4;
  for (; m + 2 <= M; m += 2) x8k_rows<V, G, 2>(w, xb, y, nb, ldy, m, g);
  for (; m < M; ++m) x8k_rows<V, G, 1>(w, xb, y, nb, ldy, m, g);
}

// With 32 registers, the vectors of groups and the activation rows of a
// tile. Q4_K, Q5_K, IQ4_XS and Q3_K: two vectors (32 rows) against 4 rows,
// so that each activation broadcast feeds two products (Zen 5: Q4_K and
// IQ4_XS +10-15% over one vector, Q3_K +10%; Q5_K about as fast as one
// vector against 8 rows, and 3 or 5 rows slower). Q6_K: one vector against
// 8 rows, so that each unpacked piece feeds 8 products (+8-10% over 4 rows;
// two vectors against 4 rows: the same speed as one against 4, with the
// registers full of its high bits' masks; Q3_K against 8 rows: -6%). Q2_K:
// one vector against 4 rows (its tile holds four levels' sums per row). With
// 16 registers (AVX2): one vector against 4 rows, which its short int16 sums
// leave registers for (Zen 3 qmatmul M128 over 2 rows: Q4_K +13%, Q3_K +26%,
// Q6_K +20%, IQ4_XS +15%, Q5_K +7%; Q2_K, a level at a time: +17-22%).
template <class Packed>
constexpr int x8k_vectors() {
  constexpr bool two = std::is_same_v<Packed, BlockQ4_Kx8> || std::is_same_v<Packed, BlockQ5_Kx8> ||
                       std::is_same_v<Packed, BlockIQ4_XSx8> || std::is_same_v<Packed, BlockQ3_Kx8>;
  return QKV_X8_GROUPS == 2 && two ? 2 : 1;
}
template <class Packed>
constexpr int x8k_tokens() {
  if constexpr (QKV_X8_GROUPS == 2 && std::is_same_v<Packed, BlockQ6_Kx8>) return 8;
  return 4;
}

// The tiles on bytes: the packed layout's, but for Q6_K with 32 registers,
// two vectors against 4 rows, as Q5_K's: each activation broadcast feeds two
// products (Zen 5, qmatmul M128, with x8k_bsum_pair: 51-52 -> 53-54% of the
// int8 probe, medians of 4 alternating runs; against 5 rows, no better). (On
// the packed layout, the high bits' masks fill the registers such a tile
// needs.)
template <class Packed>
constexpr bool x8k_bytes_wide = QKV_X8_GROUPS == 2 && (std::is_same_v<Packed, BlockQ6_Kx8> || std::is_same_v<Packed, BlockQ2_Kx8>);
template <class Packed>
constexpr int x8k_bytes_vectors() { return x8k_bytes_wide<Packed> ? 2 : x8k_vectors<Packed>(); }
// Q2_K's scaled pairs (x8k_scaled_tile), as the 32-value types' pairs: two
// vectors against 5 tokens (of the int8 probe: 67-68%; against 4, 63-64%;
// 6 spill, 54%).
template <class Packed>
constexpr int x8k_bytes_tokens() {
  if constexpr (x8k_bytes_wide<Packed> && std::is_same_v<Packed, BlockQ2_Kx8>) return 5;
  return x8k_bytes_wide<Packed> ? 4 : x8k_tokens<Packed>();
}

// Q5_K / Q6_K batches on bytes (bytes_passes) (qmatmul M128, Zen 5: Q5_K +5%,
// Q6_K +8%; Zen 3 (AVX2, 4-row tiles of short sums): Q5_K +3-20%, Q6_K +24-48%;
// its earlier 2-row tiles of int32 sums had run 7% slower on bytes): passes of
// G vectors of groups in tiles of T rows; the groups after the last such pass
// in passes of one vector (a thread's share of a 768-row matrix on 2 threads is
// 6 groups: 4 + 2), then single groups as packed.
template <class Packed, int G, int T>
inline void x8k_matmul_bytes(const Packed* w, const BlockQ8_K* xb, float* y, size_t M, size_t nb, size_t ldy,
                             size_t g0, size_t g1) {
  using V = QKV_X8_VEC;
  using Bytes = x8_pass_bytes_t<Packed>;
  bytes_passes<Packed, G * V::kGroups, T, Bytes>(
      w, M, nb, g0, g1,
      [&](const Bytes* b, size_t g, SpreadPrefetch next) { x8k_groups<V, G, T>(b, xb, y + 8 * g, M, nb, ldy, 0, next); },
      [&](size_t g) {
        if constexpr (G > 1) {
          x8k_matmul_bytes<Packed, 1, x8k_tokens<Packed>()>(w, xb, y, M, nb, ldy, g, g1);
        } else {
          for (; g < g1; ++g) x8k_groups<X8Ymm, 1, T>(w, xb, y, M, nb, ldy, g);
        }
      });
}

template <class Packed>
inline void x8k_matmul(const void* packed, const void* xq, const Q8Sum*, float* y, size_t M, size_t n, size_t ldy,
                       size_t g0, size_t g1) {
  using V = QKV_X8_VEC;
  constexpr int kG = x8k_vectors<Packed>(), kT = x8k_tokens<Packed>();
  if constexpr (!std::is_void_v<x8_pass_bytes_t<Packed>>)
    if (M >= x8_pass_min_tokens<Packed> && M > size_t(kT))  // more than one tile (Q6_K's 8 tokens: pp8 -5%)
      return x8k_matmul_bytes<Packed, x8k_bytes_vectors<Packed>(), x8k_bytes_tokens<Packed>()>(
          static_cast<const Packed*>(packed), static_cast<const BlockQ8_K*>(xq), y, M, n / kQK_K, ldy, g0, g1);
  const size_t nb = n / kQK_K;
  const Packed* w = static_cast<const Packed*>(packed);
  const BlockQ8_K* xb = static_cast<const BlockQ8_K*>(xq);
  constexpr size_t kPass = kG * V::kGroups;
  size_t g = g0;
  for (; g + kPass <= g1; g += kPass) x8k_groups<V, kG, kT>(w, xb, y, M, nb, ldy, g, next_pass(w, nb, g, kPass, g1, M, kT));
  for (; g + V::kGroups <= g1; g += V::kGroups) x8k_groups<V, 1, kT>(w, xb, y, M, nb, ldy, g);
  for (; g < g1; ++g) x8k_groups<X8Ymm, 1, kT>(w, xb, y, M, nb, ldy, g);
}

}  // namespace qkv::ops::QKV_ISA_NS
