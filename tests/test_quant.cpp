// Quantized formats and kernels: known blocks by hand, quantize/dequantize
// error bounds, and every ISA's integer products against the f32 product of
// the dequantized operands.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "engine/runtime/cpu.h"
#include "engine/runtime/linear.h"
#include "engine/runtime/thread_pool.h"
#include "engine/api/qkv.hpp"
#include "ops/ops.h"
#include "ops/quant.h"
#include "ops/types.h"
#include "test_util.h"

namespace qkv {
namespace {

using test::randn;

TEST(Quant, Q8_0KnownBlock) {
  ops::BlockQ8_0 b;
  b.d = 0x3800;  // 0.5
  for (int j = 0; j < 32; ++j) b.qs[j] = int8_t(j * 8 - 128);  // -128, -120, ..., 120
  float y[32];
  ops::dequantize_row_q8_0(&b, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], float(j * 8 - 128) * 0.5f) << j;
}

TEST(Quant, Q4_0KnownBlock) {
  ops::BlockQ4_0 b;
  b.d = 0x4000;  // 2.0
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | ((15 - j) << 4));
  float y[32];
  ops::dequantize_row_q4_0(&b, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], float(j - 8) * 2.0f) << j;           // low nibbles: the first 16 values
    EXPECT_EQ(y[j + 16], float(7 - j) * 2.0f) << j;      // high nibbles: the last 16
  }
}

// Known blocks of the other 32-value types: where each value's bits live.
TEST(Quant, Q4_1Q5_0Q5_1IQ4_NLKnownBlocks) {
  float y[32];
  ops::BlockQ4_1 a;
  a.d = 0x4000;  // 2.0
  a.m = 0xbc00;  // -1.0
  for (int j = 0; j < 16; ++j) a.qs[j] = uint8_t(j | ((15 - j) << 4));
  ops::dequantize_row_q4_1(&a, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], float(j) * 2.0f - 1.0f) << j;
    EXPECT_EQ(y[j + 16], float(15 - j) * 2.0f - 1.0f) << j;
  }
  // Q5_0: the fifth bit of value j is bit j of qh (little-endian); x = (q - 16) d.
  ops::BlockQ5_0 b{};
  b.d = 0x3800;  // 0.5
  b.qs[0] = 0x3f;          // value 0: nibble 15, value 16: nibble 3
  b.qh[0] = 0x01;          // value 0 has its fifth bit: 31
  b.qh[2] = 0x01;          // value 16 too: 19
  b.qs[5] = 0x02;          // value 5: 2, no fifth bit
  ops::dequantize_row_q5_0(&b, y, 32);
  EXPECT_EQ(y[0], (31 - 16) * 0.5f);
  EXPECT_EQ(y[16], (19 - 16) * 0.5f);
  EXPECT_EQ(y[5], (2 - 16) * 0.5f);
  EXPECT_EQ(y[31], -16 * 0.5f);
  // Q5_1: x = q d + m with the same bits.
  ops::BlockQ5_1 c{};
  c.d = 0x3c00;  // 1.0
  c.m = 0x4200;  // 3.0
  c.qs[15] = 0xf1;  // value 15: 1, value 31: 15
  c.qh[3] = 0x80;   // value 31's fifth bit: 31
  ops::dequantize_row_q5_1(&c, y, 32);
  EXPECT_EQ(y[15], 1.0f + 3.0f);
  EXPECT_EQ(y[31], 31.0f + 3.0f);
  EXPECT_EQ(y[0], 3.0f);
  // IQ4_NL: each nibble indexes the 16 non-uniform levels.
  ops::BlockIQ4_NL e{};
  e.d = 0x3c00;
  for (int j = 0; j < 16; ++j) e.qs[j] = uint8_t(j | ((15 - j) << 4));
  ops::dequantize_row_iq4_nl(&e, y, 32);
  const int levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], float(levels[j])) << j;
    EXPECT_EQ(y[j + 16], float(levels[15 - j])) << j;
  }
}

TEST(Quant, QuantizersMatchGgmlReferenceByHand) {
  // Q8_0: d = max|x| / 127 stored as f16, q = round(x / d) (half away from zero).
  float x[32] = {};
  x[0] = 127.0f;
  x[1] = 2.5f;
  x[2] = -2.5f;
  x[3] = 63.5f;
  ops::BlockQ8_0 q;
  ops::quantize_row_q8_0(x, &q, 32);
  EXPECT_EQ(q.d, 0x3c00);  // 1.0
  EXPECT_EQ(q.qs[0], 127);
  EXPECT_EQ(q.qs[1], 3);
  EXPECT_EQ(q.qs[2], -3);
  EXPECT_EQ(q.qs[3], 64);
  // Activations as llama.cpp quantizes them on x86: round half to even.
  ops::quantize_row_q8_0_act(x, &q, 32);
  EXPECT_EQ(q.qs[1], 2);
  EXPECT_EQ(q.qs[2], -2);
  EXPECT_EQ(q.qs[3], 64);
  // Q4_0: the value of largest magnitude maps to -8 (d = max / -8).
  float z[32] = {};
  z[0] = -16.0f;  // d = 2
  z[1] = 14.0f;   // 7
  z[17] = 3.0f;   // 1.5 + 8.5 = 10 -> 10 - 8 = 2 (rounds up), in the high nibble of byte 1
  ops::BlockQ4_0 q4;
  ops::quantize_row_q4_0(z, &q4, 32);
  EXPECT_EQ(q4.d, 0x4000);
  EXPECT_EQ(q4.qs[0] & 0x0f, 0);   // -16 / 2 + 8 = 0
  EXPECT_EQ(q4.qs[1] & 0x0f, 15);  // 14 / 2 + 8 = 15
  EXPECT_EQ(q4.qs[1] >> 4, 10);
}

TEST(Quant, RoundTripErrorBounds) {
  for (size_t n : {size_t(32), size_t(64), size_t(288), size_t(2048)}) {
    const auto x = randn(n, 3, 2.0f);
    std::vector<ops::BlockQ8_0> q8(n / 32);
    std::vector<ops::BlockQ4_0> q4(n / 32);
    std::vector<float> y8(n), y4(n);
    ops::quantize_row_q8_0(x.data(), q8.data(), n);
    ops::dequantize_row_q8_0(q8.data(), y8.data(), n);
    ops::quantize_row_q4_0(x.data(), q4.data(), n);
    ops::dequantize_row_q4_0(q4.data(), y4.data(), n);
    for (size_t b = 0; b < n / 32; ++b) {
      float amax = 0;
      for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
      for (size_t j = 0; j < 32; ++j) {
        const size_t i = b * 32 + j;
        // Half a step, plus the f16 rounding of the scale (2^-11 relative)
        // times the largest code (127 or 8).
        const float d8 = amax / 127.0f, d4 = amax / 8.0f;
        ASSERT_LE(std::fabs(y8[i] - x[i]), d8 * (0.5f + 127.0f / 2048.0f) + 1e-6f) << "q8_0 n=" << n << " i=" << i;
        ASSERT_LE(std::fabs(y4[i] - x[i]), d4 * (1.0f + 8.0f / 2048.0f) + 1e-6f) << "q4_0 n=" << n << " i=" << i;
      }
    }
  }
}

// What each quantized type's tests need: its (de)quantizer and its products.
template <class Block> struct QType;
template <> struct QType<ops::BlockQ8_0> {
  static constexpr const char* name = "q8_0";
  static void quantize(const float* x, ops::BlockQ8_0* y, size_t n) { ops::quantize_row_q8_0(x, y, n); }
  static void dequantize(const ops::BlockQ8_0* x, float* y, size_t n) { ops::dequantize_row_q8_0(x, y, n); }
  static ops::QuantProducts products(const ops::Kernels& k) { return k.q8_0; }
  static void tame(ops::BlockQ8_0& b, float d) { b.d = ops::f32_to_f16(d); }
};
template <> struct QType<ops::BlockQ4_0> {
  static constexpr const char* name = "q4_0";
  static void quantize(const float* x, ops::BlockQ4_0* y, size_t n) { ops::quantize_row_q4_0(x, y, n); }
  static void dequantize(const ops::BlockQ4_0* x, float* y, size_t n) { ops::dequantize_row_q4_0(x, y, n); }
  static ops::QuantProducts products(const ops::Kernels& k) { return k.q4_0; }
  static void tame(ops::BlockQ4_0& b, float d) { b.d = ops::f32_to_f16(d); }
};
template <> struct QType<ops::BlockQ4_K> {
  static constexpr const char* name = "q4_K";
  static void quantize(const float* x, ops::BlockQ4_K* y, size_t n) { ops::quantize_row_q4_K(x, y, n); }
  static void dequantize(const ops::BlockQ4_K* x, float* y, size_t n) { ops::dequantize_row_q4_K(x, y, n); }
  static ops::QuantProducts products(const ops::Kernels& k) { return k.q4_K; }
  static void tame(ops::BlockQ4_K& b, float d) { b.d = b.dmin = ops::f32_to_f16(d / 16); }
};
template <> struct QType<ops::BlockQ5_K> {
  static constexpr const char* name = "q5_K";
  static void quantize(const float* x, ops::BlockQ5_K* y, size_t n) { ops::quantize_row_q5_K(x, y, n); }
  static void dequantize(const ops::BlockQ5_K* x, float* y, size_t n) { ops::dequantize_row_q5_K(x, y, n); }
  static ops::QuantProducts products(const ops::Kernels& k) { return k.q5_K; }
  static void tame(ops::BlockQ5_K& b, float d) { b.d = b.dmin = ops::f32_to_f16(d / 16); }
};
template <> struct QType<ops::BlockQ6_K> {
  static constexpr const char* name = "q6_K";
  static void quantize(const float* x, ops::BlockQ6_K* y, size_t n) { ops::quantize_row_q6_K(x, y, n); }
  static void dequantize(const ops::BlockQ6_K* x, float* y, size_t n) { ops::dequantize_row_q6_K(x, y, n); }
  static ops::QuantProducts products(const ops::Kernels& k) { return k.q6_K; }
  static void tame(ops::BlockQ6_K& b, float d) { b.d = ops::f32_to_f16(d / 64); }
};
template <> struct QType<ops::BlockQ4_1> {
  static constexpr const char* name = "q4_1";
  static void quantize(const float* x, ops::BlockQ4_1* y, size_t n) { ops::quantize_row_q4_1(x, y, n); }
  static void dequantize(const ops::BlockQ4_1* x, float* y, size_t n) { ops::dequantize_row_q4_1(x, y, n); }
  static ops::QuantProducts products(const ops::Kernels& k) { return k.q4_1; }
  static void tame(ops::BlockQ4_1& b, float d) { b.d = ops::f32_to_f16(d), b.m = ops::f32_to_f16(-7.5f * d); }
};
template <> struct QType<ops::BlockQ5_0> {
  static constexpr const char* name = "q5_0";
  static void quantize(const float* x, ops::BlockQ5_0* y, size_t n) { ops::quantize_row_q5_0(x, y, n); }
  static void dequantize(const ops::BlockQ5_0* x, float* y, size_t n) { ops::dequantize_row_q5_0(x, y, n); }
  static ops::QuantProducts products(const ops::Kernels& k) { return k.q5_0; }
  static void tame(ops::BlockQ5_0& b, float d) { b.d = ops::f32_to_f16(d / 2); }
};
template <> struct QType<ops::BlockQ5_1> {
  static constexpr const char* name = "q5_1";
  static void quantize(const float* x, ops::BlockQ5_1* y, size_t n) { ops::quantize_row_q5_1(x, y, n); }
  static void dequantize(const ops::BlockQ5_1* x, float* y, size_t n) { ops::dequantize_row_q5_1(x, y, n); }
  static ops::QuantProducts products(const ops::Kernels& k) { return k.q5_1; }
  static void tame(ops::BlockQ5_1& b, float d) { b.d = ops::f32_to_f16(d / 2), b.m = ops::f32_to_f16(-7.5f * d); }
};
template <> struct QType<ops::BlockIQ4_NL> {
  static constexpr const char* name = "iq4_nl";
  static void quantize(const float* x, ops::BlockIQ4_NL* y, size_t n) { ops::quantize_row_iq4_nl(x, y, n); }
  static void dequantize(const ops::BlockIQ4_NL* x, float* y, size_t n) { ops::dequantize_row_iq4_nl(x, y, n); }
  static ops::QuantProducts products(const ops::Kernels& k) { return k.iq4_nl; }
  static void tame(ops::BlockIQ4_NL& b, float d) { b.d = ops::f32_to_f16(d / 16); }
};
template <> struct QType<ops::BlockQ2_K> {
  static constexpr const char* name = "q2_K";
  static void quantize(const float* x, ops::BlockQ2_K* y, size_t n) { ops::quantize_row_q2_K(x, y, n); }
  static void dequantize(const ops::BlockQ2_K* x, float* y, size_t n) { ops::dequantize_row_q2_K(x, y, n); }
  static ops::QuantProducts products(const ops::Kernels& k) { return k.q2_K; }
  static void tame(ops::BlockQ2_K& b, float d) { b.d = b.dmin = ops::f32_to_f16(d / 8); }
};
template <> struct QType<ops::BlockQ3_K> {
  static constexpr const char* name = "q3_K";
  static void quantize(const float* x, ops::BlockQ3_K* y, size_t n) { ops::quantize_row_q3_K(x, y, n); }
  static void dequantize(const ops::BlockQ3_K* x, float* y, size_t n) { ops::dequantize_row_q3_K(x, y, n); }
  static ops::QuantProducts products(const ops::Kernels& k) { return k.q3_K; }
  static void tame(ops::BlockQ3_K& b, float d) { b.d = ops::f32_to_f16(d / 32); }
};
template <> struct QType<ops::BlockIQ4_XS> {
  static constexpr const char* name = "iq4_xs";
  static void quantize(const float* x, ops::BlockIQ4_XS* y, size_t n) { ops::quantize_row_iq4_xs(x, y, n); }
  static void dequantize(const ops::BlockIQ4_XS* x, float* y, size_t n) { ops::dequantize_row_iq4_xs(x, y, n); }
  static ops::QuantProducts products(const ops::Kernels& k) { return k.iq4_xs; }
  static void tame(ops::BlockIQ4_XS& b, float d) { b.d = ops::f32_to_f16(d / 512); }
};
template <> struct QType<ops::BlockQ8_1> {
  static void dequantize(const ops::BlockQ8_1* x, float* y, size_t n) { ops::dequantize_row_q8_1(x, y, n); }
};
template <> struct QType<ops::BlockQ8_K> {
  static void quantize(const float* x, ops::BlockQ8_K* y, size_t n) { ops::quantize_row_q8_K(x, y, n); }
  static void dequantize(const ops::BlockQ8_K* x, float* y, size_t n) { ops::dequantize_row_q8_K(x, y, n); }
};
template <class Block>
std::vector<float> dequant_rows(const std::vector<Block>& q, size_t n) {
  std::vector<float> out(q.size() * Block::kValues);
  const size_t per_row = n / Block::kValues;
  for (size_t r = 0; r < q.size() / per_row; ++r) QType<Block>::dequantize(q.data() + r * per_row, out.data() + r * n, n);
  return out;
}

template <class Act>
std::vector<Act> quantize_activations(const std::vector<float>& x, size_t n) {
  std::vector<Act> q(x.size() / Act::kValues);
  for (size_t m = 0; m < x.size() / n; ++m) {
    if constexpr (std::is_same<Act, ops::BlockQ8_0>::value) ops::quantize_row_q8_0_act(x.data() + m * n, q.data() + m * n / 32, n);
    else if constexpr (std::is_same<Act, ops::BlockQ8_1>::value) ops::quantize_row_q8_1_act(x.data() + m * n, q.data() + m * n / 32, n);
    else ops::quantize_row_q8_K(x.data() + m * n, q.data() + m * n / ops::kQK_K, n);
  }
  return q;
}

// Weights of `rows` rows of n: quantized from Gaussian values, or (raw)
// random bytes with tame f16 scales, which reach every bit pattern (signed
// Q6_K scales, 6-bit Q4_K scales and mins up to 63, every fifth bit).
template <class Block>
std::vector<Block> make_weights(size_t rows, size_t n, bool raw, uint32_t seed) {
  std::vector<Block> w(rows * n / Block::kValues);
  if (raw) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> scale(0.001f, 0.02f);
    auto* bytes = reinterpret_cast<uint8_t*>(w.data());
    for (size_t i = 0; i < w.size() * sizeof(Block); ++i) bytes[i] = uint8_t(rng());
    for (Block& b : w) QType<Block>::tame(b, scale(rng));
  } else {
    const auto wf = randn(rows * n, seed);
    for (size_t r = 0; r < rows; ++r) QType<Block>::quantize(wf.data() + r * n, w.data() + r * n / Block::kValues, n);
  }
  return w;
}

class QuantKernels : public ::testing::TestWithParam<const ops::Kernels*> {};

// Every product equals the f64 product of the dequantized operands up to f32
// rounding: the integer sums are exact, only the scaling and summing of
// blocks rounds.
template <class Block>
void check_products(const ops::Kernels& k, std::initializer_list<size_t> widths) {
  using Act = typename Block::Act;
  const ops::QuantProducts p = QType<Block>::products(k);
  ASSERT_NE(p.matvec, nullptr);
  ASSERT_NE(p.matmul, nullptr);
  for (bool raw : {false, true}) {
    for (size_t n : widths) {
      for (size_t rows : {size_t(1), size_t(5), size_t(17)}) {
        const auto w = make_weights<Block>(rows, n, raw, uint32_t(7 + n + rows));
        const auto xq = quantize_activations<Act>(randn(13 * n, 8), n);
        const auto wd = dequant_rows(w, n);
        const auto xd = dequant_rows(xq, n);
        // (the batch product takes 8 rows, then 4, then one at a time)
        for (size_t M : {size_t(1), size_t(3), size_t(4), size_t(9), size_t(13)}) {
          std::vector<float> y(M * rows, -1.0f);
          if (M == 1) p.matvec(w.data(), xq.data(), y.data(), n, 0, rows);
          else p.matmul(w.data(), xq.data(), y.data(), M, n, rows, 0, rows);
          for (size_t m = 0; m < M; ++m) {
            for (size_t r = 0; r < rows; ++r) {
              double want = 0, mag = 0;
              for (size_t i = 0; i < n; ++i) {
                want += double(wd[r * n + i]) * double(xd[m * n + i]);
                mag += std::fabs(double(wd[r * n + i]) * double(xd[m * n + i]));
              }
              if constexpr (std::is_same<Act, ops::BlockQ8_1>::value) {
                // The offset term takes the activation block's stored sum
                // s = f16(d * sum(q)), as llama.cpp's Q8_1 does, not the exact sum.
                const size_t nb = n / 32;
                for (size_t b = 0; b < nb; ++b) {
                  const ops::BlockQ8_1& xb = xq[m * nb + b];
                  double exact = 0;
                  for (int j = 0; j < 32; ++j) exact += double(xd[m * n + 32 * b + size_t(j)]);
                  want += double(ops::f16_to_f32(w[r * nb + b].m)) * (double(ops::f16_to_f32(xb.s)) - exact);
                }
              }
              ASSERT_NEAR(y[m * rows + r], want, 2e-6 * mag + 1e-6)
                  << k.isa << " " << QType<Block>::name << (raw ? " raw" : "") << " n=" << n << " rows=" << rows
                  << " M=" << M << " m=" << m << " r=" << r;
            }
          }
        }
      }
    }
  }
}

TEST_P(QuantKernels, Q8_0ProductsEqualTheDequantizedF32Product) { check_products<ops::BlockQ8_0>(*GetParam(), {32, 96, 288, 768}); }
TEST_P(QuantKernels, Q4_0ProductsEqualTheDequantizedF32Product) { check_products<ops::BlockQ4_0>(*GetParam(), {32, 96, 288, 768}); }
// The row-interleaved products equal the plain ones up to f32 rounding, for
// every M (tiles of 4, 5 or 8 activation rows and each remainder) and row groups from
// the middle of the matrix and all of it: 3 and 7 groups (AVX-512 takes 4
// groups, then 2, then 1 at a time).
// The row-interleaved copy products p read: Packed, or the layout of their
// own where they have one (Q3_K's 3-bit levels with AVX-512 VBMI).
template <class Packed, class Block>
std::vector<uint8_t> pack_for(const ops::QuantProducts& p, const std::vector<Block>& w, size_t rows, size_t n) {
  const size_t group_bytes = p.x8_repack ? p.x8_group_bytes : sizeof(Packed);
  std::vector<uint8_t> out(rows / 8 * (n / Block::kValues) * group_bytes);
  if (p.x8_repack) p.x8_repack(w.data(), out.data(), rows, n);
  else ops::repack_x8(w.data(), reinterpret_cast<Packed*>(out.data()), rows, n);
  return out;
}

template <class Block, class Packed>
void check_x8_products(const ops::Kernels& k, std::initializer_list<size_t> widths) {
  using Act = typename Block::Act;
  const ops::QuantProducts p = QType<Block>::products(k), ref = QType<Block>::products(ops::reference_kernels());
  ASSERT_NE(p.matvec_x8, nullptr);
  for (bool raw : {false, true}) {
    for (size_t n : widths) {
      const size_t rows = 56;
      const auto w = make_weights<Block>(rows, n, raw, uint32_t(3 + n));
      const std::vector<uint8_t> packed = pack_for<Packed>(p, w, rows, n);
      const auto xq = quantize_activations<Act>(randn(13 * n, 4), n);
      std::vector<ops::Q8Sum> xs(13 * n / 32);
      if constexpr (std::is_same<Act, ops::BlockQ8_0>::value) ops::q8_0_sums(xq.data(), xs.data(), xq.size());
      if constexpr (std::is_same<Act, ops::BlockQ8_1>::value) ops::q8_1_sums(xq.data(), xs.data(), xq.size());
      for (const auto& [g0, g1] : {std::pair<size_t, size_t>{1, 4}, {0, 7}})
        for (size_t M : {size_t(1), size_t(2), size_t(3), size_t(4), size_t(5), size_t(9), size_t(13)}) {
          std::vector<float> want(M * rows, 0.0f), got(M * rows, 0.0f);
          ref.matmul(w.data(), xq.data(), want.data(), M, n, rows, 8 * g0, 8 * g1);
          if (M == 1) p.matvec_x8(packed.data(), xq.data(), xs.data(), got.data(), n, g0, g1);
          else p.matmul_x8(packed.data(), xq.data(), xs.data(), got.data(), M, n, rows, g0, g1);
          double mag = 0;  // a bound on the sum of |terms|: the largest product
          for (size_t j = 0; j < M * rows; ++j) mag = std::max(mag, std::fabs(double(want[j])));
          for (size_t i = 0; i < M * rows; ++i)
            ASSERT_NEAR(got[i], want[i], 1e-5 * mag + 1e-5) << k.isa << " " << QType<Block>::name << (raw ? " raw" : "")
                                                             << " n=" << n << " M=" << M << " groups " << g0 << ".." << g1
                                                             << " i=" << i;
        }
    }
  }
}

TEST_P(QuantKernels, Q8_0RowInterleavedProductsEqualThePlainOnes) {
  check_x8_products<ops::BlockQ8_0, ops::BlockQ8_0x8>(*GetParam(), {32, 96, 768});
}
TEST_P(QuantKernels, Q4_0RowInterleavedProductsEqualThePlainOnes) {
  check_x8_products<ops::BlockQ4_0, ops::BlockQ4_0x8>(*GetParam(), {32, 96, 768});
}
TEST_P(QuantKernels, Q5_0RowInterleavedProductsEqualThePlainOnes) {
  check_x8_products<ops::BlockQ5_0, ops::BlockQ5_0x8>(*GetParam(), {32, 96, 768});
}
TEST_P(QuantKernels, Q4_1RowInterleavedProductsEqualThePlainOnes) {
  check_x8_products<ops::BlockQ4_1, ops::BlockQ4_1x8>(*GetParam(), {32, 96, 768});
}
TEST_P(QuantKernels, Q5_1RowInterleavedProductsEqualThePlainOnes) {
  check_x8_products<ops::BlockQ5_1, ops::BlockQ5_1x8>(*GetParam(), {32, 96, 768});
}
// A batch of 8 tokens or more unpacks each pass of Q5_0 / Q5_1 (and, with
// AVX-512, Q5_K and Q6_K) groups to bytes once (x86), and with AVX-512 most
// types' passes go into pairs of groups side by side (Q8_0's levels + 128);
// fewer tokens take the packed layout in every tile. The integer sums are the
// same, so each token's outputs are the same bits whichever way its batch went.
template <class Block, class Packed>
void check_batch_sizes_same_bits(const ops::Kernels& k, size_t n) {
  using Act = typename Block::Act;
  const ops::QuantProducts p = QType<Block>::products(k);
  // 11 groups, with AVX-512: two passes of 4, then the 256-value types' one
  // of 2 (the 32-value types' those 2 packed), then one packed.
  const size_t rows = 88, M = 34;  // (Q8_0 copies its passes from 32 tokens, Q2_K and Q3_K from 24)
  const auto w = make_weights<Block>(rows, n, false, 77);
  const std::vector<uint8_t> packed = pack_for<Packed>(p, w, rows, n);
  const auto xq = quantize_activations<Act>(randn(M * n, 78), n);
  std::vector<ops::Q8Sum> xs(M * n / 32);
  if constexpr (std::is_same<Act, ops::BlockQ8_0>::value) ops::q8_0_sums(xq.data(), xs.data(), xq.size());
  if constexpr (std::is_same<Act, ops::BlockQ8_1>::value) ops::q8_1_sums(xq.data(), xs.data(), xq.size());
  std::vector<float> all(M * rows, -1.0f), parts(M * rows, -2.0f);
  p.matmul_x8(packed.data(), xq.data(), xs.data(), all.data(), M, n, rows, 0, rows / 8);
  const size_t nb = n / size_t(Block::kValues), nsum = n / 32;  // activation blocks and sums per token
  for (size_t m0 = 0; m0 < M; m0 += 3) {  // batches of 3 (and the last 1)
    const size_t m = std::min<size_t>(3, M - m0);
    if (m == 1) p.matvec_x8(packed.data(), xq.data() + m0 * nb, xs.data() + m0 * nsum, parts.data() + m0 * rows, n, 0, rows / 8);
    else p.matmul_x8(packed.data(), xq.data() + m0 * nb, xs.data() + m0 * nsum, parts.data() + m0 * rows, m, n, rows, 0, rows / 8);
  }
  for (size_t i = 0; i < M * rows; ++i)
    ASSERT_EQ(all[i], parts[i]) << k.isa << " " << QType<Block>::name << " token " << i / rows << " row " << i % rows;
}

// The largest levels against the largest activations: every weight byte
// 0xff (each type's largest unsigned level: 15, 31 or 63 with the extra bits,
// 3 for Q2_K, 7 for Q3_K; scales aside, tamed) and every activation +-127, so
// each byte product is as large as a type's can be. AVX2 sums small levels'
// products in int16 lanes before widening them (quant_x86_x8.h's short
// runs): one product too many in a run would wrap, and this would fail.
template <class Block, class Packed>
void check_x8_extremes(const ops::Kernels& k, size_t n) {
  using Act = typename Block::Act;
  const ops::QuantProducts p = QType<Block>::products(k), ref = QType<Block>::products(ops::reference_kernels());
  // 5 groups: with AVX-512 a batch's pass of 4 (pairs), then one packed; 34
  // tokens: Q8_0 copies its passes from 32, Q2_K and Q3_K (AVX512_VBMI) from 24
  const size_t rows = 40, M = 34;
  for (int fill : {0xff, 0x00}) {  // and every byte 0: the smallest levels (Q3_K: -4 times its scale -32)
    std::vector<Block> w(rows * n / Block::kValues);
    std::memset(w.data(), fill, w.size() * sizeof(Block));
    for (Block& b : w) QType<Block>::tame(b, 0.01f);
    const std::vector<uint8_t> packed = pack_for<Packed>(p, w, rows, n);
    for (float sign : {1.0f, -1.0f}) {
      const auto xq = quantize_activations<Act>(std::vector<float>(M * n, sign), n);
      std::vector<ops::Q8Sum> xs(M * n / 32);
      if constexpr (std::is_same<Act, ops::BlockQ8_0>::value) ops::q8_0_sums(xq.data(), xs.data(), xq.size());
      if constexpr (std::is_same<Act, ops::BlockQ8_1>::value) ops::q8_1_sums(xq.data(), xs.data(), xq.size());
      for (size_t m : {size_t(1), size_t(4), M}) {  // one token, a tile, a batch on bytes
        std::vector<float> want(m * rows, 0.0f), got(m * rows, 1.0f);
        ref.matmul(w.data(), xq.data(), want.data(), m, n, rows, 0, rows);
        if (m == 1) p.matvec_x8(packed.data(), xq.data(), xs.data(), got.data(), n, 0, rows / 8);
        else p.matmul_x8(packed.data(), xq.data(), xs.data(), got.data(), m, n, rows, 0, rows / 8);
        for (size_t i = 0; i < m * rows; ++i)
          ASSERT_NEAR(got[i], want[i], 1e-5 * std::fabs(want[i]) + 1e-5)
              << k.isa << " " << QType<Block>::name << " fill=" << fill << " x=" << sign << " M=" << m << " i=" << i;
      }
    }
  }
}

TEST_P(QuantKernels, RowInterleavedProductsOfTheLargestLevelsAreExact) {
  check_x8_extremes<ops::BlockQ8_0, ops::BlockQ8_0x8>(*GetParam(), 256);
  check_x8_extremes<ops::BlockQ4_0, ops::BlockQ4_0x8>(*GetParam(), 256);
  check_x8_extremes<ops::BlockQ4_1, ops::BlockQ4_1x8>(*GetParam(), 256);
  check_x8_extremes<ops::BlockQ5_0, ops::BlockQ5_0x8>(*GetParam(), 256);
  check_x8_extremes<ops::BlockQ5_1, ops::BlockQ5_1x8>(*GetParam(), 256);
  check_x8_extremes<ops::BlockIQ4_NL, ops::BlockIQ4_NLx8>(*GetParam(), 256);
  check_x8_extremes<ops::BlockQ2_K, ops::BlockQ2_Kx8>(*GetParam(), 512);
  check_x8_extremes<ops::BlockQ3_K, ops::BlockQ3_Kx8>(*GetParam(), 512);
  check_x8_extremes<ops::BlockQ4_K, ops::BlockQ4_Kx8>(*GetParam(), 512);
  check_x8_extremes<ops::BlockQ5_K, ops::BlockQ5_Kx8>(*GetParam(), 512);
  check_x8_extremes<ops::BlockQ6_K, ops::BlockQ6_Kx8>(*GetParam(), 512);
  check_x8_extremes<ops::BlockIQ4_XS, ops::BlockIQ4_XSx8>(*GetParam(), 512);
}

TEST_P(QuantKernels, RowInterleavedBatchesGiveTheSameBitsWhateverTheirSize) {
  check_batch_sizes_same_bits<ops::BlockQ8_0, ops::BlockQ8_0x8>(*GetParam(), 768);
  check_batch_sizes_same_bits<ops::BlockQ4_0, ops::BlockQ4_0x8>(*GetParam(), 768);
  check_batch_sizes_same_bits<ops::BlockQ4_1, ops::BlockQ4_1x8>(*GetParam(), 768);
  check_batch_sizes_same_bits<ops::BlockQ5_0, ops::BlockQ5_0x8>(*GetParam(), 768);
  check_batch_sizes_same_bits<ops::BlockQ5_1, ops::BlockQ5_1x8>(*GetParam(), 768);
  check_batch_sizes_same_bits<ops::BlockIQ4_NL, ops::BlockIQ4_NLx8>(*GetParam(), 768);
  check_batch_sizes_same_bits<ops::BlockQ2_K, ops::BlockQ2_Kx8>(*GetParam(), 512);
  check_batch_sizes_same_bits<ops::BlockQ3_K, ops::BlockQ3_Kx8>(*GetParam(), 512);
  check_batch_sizes_same_bits<ops::BlockQ4_K, ops::BlockQ4_Kx8>(*GetParam(), 512);
  check_batch_sizes_same_bits<ops::BlockQ5_K, ops::BlockQ5_Kx8>(*GetParam(), 512);
  check_batch_sizes_same_bits<ops::BlockQ6_K, ops::BlockQ6_Kx8>(*GetParam(), 512);
  check_batch_sizes_same_bits<ops::BlockIQ4_XS, ops::BlockIQ4_XSx8>(*GetParam(), 512);
}

TEST_P(QuantKernels, IQ4_NLRowInterleavedProductsEqualThePlainOnes) {
  check_x8_products<ops::BlockIQ4_NL, ops::BlockIQ4_NLx8>(*GetParam(), {32, 96, 768});
}
TEST_P(QuantKernels, Q4_KRowInterleavedProductsEqualThePlainOnes) {
  check_x8_products<ops::BlockQ4_K, ops::BlockQ4_Kx8>(*GetParam(), {256, 768});
}
TEST_P(QuantKernels, Q5_KRowInterleavedProductsEqualThePlainOnes) {
  check_x8_products<ops::BlockQ5_K, ops::BlockQ5_Kx8>(*GetParam(), {256, 768});
}
TEST_P(QuantKernels, Q2_KRowInterleavedProductsEqualThePlainOnes) {
  check_x8_products<ops::BlockQ2_K, ops::BlockQ2_Kx8>(*GetParam(), {256, 768});
}
TEST_P(QuantKernels, Q3_KRowInterleavedProductsEqualThePlainOnes) {
  check_x8_products<ops::BlockQ3_K, ops::BlockQ3_Kx8>(*GetParam(), {256, 768});
}
TEST_P(QuantKernels, IQ4_XSRowInterleavedProductsEqualThePlainOnes) {
  check_x8_products<ops::BlockIQ4_XS, ops::BlockIQ4_XSx8>(*GetParam(), {256, 768});
}
TEST_P(QuantKernels, Q6_KRowInterleavedProductsEqualThePlainOnes) {
  check_x8_products<ops::BlockQ6_K, ops::BlockQ6_Kx8>(*GetParam(), {256, 768});
}
// The same packed weights through two tables' products, bit for bit: one
// token (matvec_x8) and, with `batch`, 21 tokens (matmul_x8). AVX-512's one
// token takes two pieces of a block per zmm and adds the halves' integer
// sums before the float epilogue (X8Pieces); AVX-VNNI sums each piece in
// int32 where AVX2 sums small levels in int16 and Q8_0 and the IQ4 types take
// the sign trick. The integer sums are the same, so are the bits: for every
// x8 type and an odd number of blocks.
template <class Block, class Packed>
void check_bits_across_isas(const ops::Kernels& a, const ops::Kernels& b, bool batch) {
  using Act = typename Block::Act;
  const size_t M = batch ? 21 : 1;
  for (size_t n : {size_t(256), size_t(768), size_t(1280)}) {
    const size_t rows = 24;
    const auto w = make_weights<Block>(rows, n, false, uint32_t(11 + n));
    const ops::QuantProducts pa = QType<Block>::products(a), pb = QType<Block>::products(b);
    const std::vector<uint8_t> packed_a = pack_for<Packed>(pa, w, rows, n), packed_b = pack_for<Packed>(pb, w, rows, n);
    const auto xq = quantize_activations<Act>(randn(M * n, 9), n);
    std::vector<ops::Q8Sum> xs(M * n / 32);
    if constexpr (std::is_same<Act, ops::BlockQ8_0>::value) ops::q8_0_sums(xq.data(), xs.data(), xq.size());
    if constexpr (std::is_same<Act, ops::BlockQ8_1>::value) ops::q8_1_sums(xq.data(), xs.data(), xq.size());
    std::vector<float> ya(M * rows, -1.0f), yb(M * rows, -2.0f);
    if (M == 1) {
      pa.matvec_x8(packed_a.data(), xq.data(), xs.data(), ya.data(), n, 0, rows / 8);
      pb.matvec_x8(packed_b.data(), xq.data(), xs.data(), yb.data(), n, 0, rows / 8);
    } else {
      pa.matmul_x8(packed_a.data(), xq.data(), xs.data(), ya.data(), M, n, rows, 0, rows / 8);
      pb.matmul_x8(packed_b.data(), xq.data(), xs.data(), yb.data(), M, n, rows, 0, rows / 8);
    }
    for (size_t i = 0; i < M * rows; ++i)
      ASSERT_EQ(std::memcmp(&ya[i], &yb[i], sizeof(float)), 0)
          << a.isa << " vs " << b.isa << " " << QType<Block>::name << " n=" << n << " token " << i / rows << " row "
          << i % rows << ": " << ya[i] << " vs " << yb[i];
  }
}

void check_every_type_across_isas(const ops::Kernels& a, const ops::Kernels& b, bool batch) {
  check_bits_across_isas<ops::BlockQ8_0, ops::BlockQ8_0x8>(a, b, batch);
  check_bits_across_isas<ops::BlockQ4_0, ops::BlockQ4_0x8>(a, b, batch);
  check_bits_across_isas<ops::BlockQ4_1, ops::BlockQ4_1x8>(a, b, batch);
  check_bits_across_isas<ops::BlockQ5_0, ops::BlockQ5_0x8>(a, b, batch);
  check_bits_across_isas<ops::BlockQ5_1, ops::BlockQ5_1x8>(a, b, batch);
  check_bits_across_isas<ops::BlockIQ4_NL, ops::BlockIQ4_NLx8>(a, b, batch);
  check_bits_across_isas<ops::BlockQ2_K, ops::BlockQ2_Kx8>(a, b, batch);
  check_bits_across_isas<ops::BlockQ3_K, ops::BlockQ3_Kx8>(a, b, batch);
  check_bits_across_isas<ops::BlockQ4_K, ops::BlockQ4_Kx8>(a, b, batch);
  check_bits_across_isas<ops::BlockQ5_K, ops::BlockQ5_Kx8>(a, b, batch);
  check_bits_across_isas<ops::BlockQ6_K, ops::BlockQ6_Kx8>(a, b, batch);
  check_bits_across_isas<ops::BlockIQ4_XS, ops::BlockIQ4_XSx8>(a, b, batch);
}

const ops::Kernels* table_named(const char* isa) {
  for (const ops::Kernels* k : available_kernels())
    if (std::string(k->isa) == isa) return k;
  return nullptr;
}

// Q3_K's 3-bit x8 layout (BlockQ3_Kx8Bits): every level where
// q3_K_x8_bits_level finds it, as GGML's Q3_K block holds it (value l: 2 bits
// in qs[32 (l / 128) + l % 32] at 2 ((l % 128) / 32), the high bit in
// hmask[l % 32] at l / 32; level = those 3 bits), d and the scales copied.
TEST(QuantLayouts, Q3_KThreeBitLayoutHoldsEveryLevel) {
  const size_t rows = 16, n = 512, nb = n / 256;
  const auto w = make_weights<ops::BlockQ3_K>(rows, n, true, 5);
  std::vector<ops::BlockQ3_Kx8Bits> packed(rows / 8 * nb);
  ops::repack_x8(w.data(), packed.data(), rows, n);
  for (size_t g = 0; g < rows / 8; ++g)
    for (size_t b = 0; b < nb; ++b) {
      const ops::BlockQ3_Kx8Bits& p = packed[g * nb + b];
      for (int r = 0; r < 8; ++r) {
        const ops::BlockQ3_K& src = w[(8 * g + size_t(r)) * nb + b];
        EXPECT_EQ(p.d[r], src.d);
        float deq[256];
        ops::dequantize_row_q3_K(&src, deq, 256);
        for (int l = 0; l < 256; ++l) {
          const int low = (src.qs[32 * (l / 128) + l % 32] >> (2 * ((l % 128) / 32))) & 3;
          const int high = (src.hmask[l % 32] >> (l / 32)) & 1;
          ASSERT_EQ(ops::q3_K_x8_bits_level(p, r, l), low | high << 2) << "group " << g << " block " << b << " row " << r
                                                                        << " value " << l;
          // The scale: deq = d * sc_j * (level - 4).
          const float want = ops::f16_to_f32(src.d) * float(p.sc2[l / 32][r][(l / 16) % 2]) * float((low | high << 2) - 4);
          ASSERT_EQ(deq[l], want) << "row " << r << " value " << l;
        }
      }
    }
}

// The AVX-512 table reads that layout exactly where the CPU has AVX512_VBMI
// (and packs for it: ops::packing_for); every other table the nibble one.
TEST(QuantLayouts, Q3_KThreeBitLayoutWhereTheCpuHasVbmi) {
  for (const ops::Kernels* k : available_kernels()) {
    const ops::Packing how = ops::packing_for(ops::type_info(ops::Type::Q3_K), *k);
    const bool bits = std::string(k->isa) == "avx512" && ops::cpu_features().avx512_vbmi;
    EXPECT_EQ(how.group_bytes, bits ? sizeof(ops::BlockQ3_Kx8Bits) : sizeof(ops::BlockQ3_Kx8)) << k->isa;
    EXPECT_EQ(k->q3_K.x8_repack != nullptr, bits) << k->isa;
  }
}

// The AVX-512 table's Q3_K products over the nibble layout, which CPUs
// without AVX512_VBMI run, checked on CPUs with it too.
TEST(QuantLayouts, Q3_KNibbleLayoutOnAvx512EqualsThePlainProducts) {
  for (const ops::Kernels* k : available_kernels()) {
    if (std::string(k->isa) != "avx512") continue;
    ops::Kernels nibbles = *k;
    nibbles.q3_K = ops::avx512_nibble_q3_K_products();
    ASSERT_EQ(nibbles.q3_K.x8_repack, nullptr);
    check_x8_products<ops::BlockQ3_K, ops::BlockQ3_Kx8>(nibbles, {256, 768});
    check_batch_sizes_same_bits<ops::BlockQ3_K, ops::BlockQ3_Kx8>(nibbles, 512);
    check_x8_extremes<ops::BlockQ3_K, ops::BlockQ3_Kx8>(nibbles, 512);
  }
}

TEST(QuantGemv, OneTokenProductsHaveTheSameBitsOnAvx2AndAvx512) {
  const ops::Kernels *avx2 = table_named("avx2"), *avx512 = table_named("avx512");
  if (!avx2 || !avx512) GTEST_SKIP() << "needs AVX2 and AVX-512";
  check_every_type_across_isas(*avx2, *avx512, false);
}

TEST(QuantGemv, AvxVnniProductsHaveAvx2sBits) {
  const ops::Kernels *avx2 = table_named("avx2"), *vnni = table_named("avxvnni");
  if (!avx2 || !vnni) GTEST_SKIP() << "needs AVX-VNNI";
  check_every_type_across_isas(*avx2, *vnni, false);
  check_every_type_across_isas(*avx2, *vnni, true);
}

TEST_P(QuantKernels, Q4_KProductsEqualTheDequantizedF32Product) { check_products<ops::BlockQ4_K>(*GetParam(), {256, 768}); }
TEST_P(QuantKernels, Q5_KProductsEqualTheDequantizedF32Product) { check_products<ops::BlockQ5_K>(*GetParam(), {256, 768}); }
TEST_P(QuantKernels, Q6_KProductsEqualTheDequantizedF32Product) { check_products<ops::BlockQ6_K>(*GetParam(), {256, 768}); }
TEST_P(QuantKernels, Q4_1ProductsEqualTheDequantizedF32Product) { check_products<ops::BlockQ4_1>(*GetParam(), {32, 96, 288, 768}); }
TEST_P(QuantKernels, Q5_0ProductsEqualTheDequantizedF32Product) { check_products<ops::BlockQ5_0>(*GetParam(), {32, 96, 288, 768}); }
TEST_P(QuantKernels, Q5_1ProductsEqualTheDequantizedF32Product) { check_products<ops::BlockQ5_1>(*GetParam(), {32, 96, 288, 768}); }
TEST_P(QuantKernels, IQ4_NLProductsEqualTheDequantizedF32Product) { check_products<ops::BlockIQ4_NL>(*GetParam(), {32, 96, 288, 768}); }
TEST_P(QuantKernels, Q2_KProductsEqualTheDequantizedF32Product) { check_products<ops::BlockQ2_K>(*GetParam(), {256, 768}); }
TEST_P(QuantKernels, Q3_KProductsEqualTheDequantizedF32Product) { check_products<ops::BlockQ3_K>(*GetParam(), {256, 768}); }
TEST_P(QuantKernels, IQ4_XSProductsEqualTheDequantizedF32Product) { check_products<ops::BlockIQ4_XS>(*GetParam(), {256, 768}); }

// Rows that reach the quantizers' corners: Gaussian at several scales, a
// block of zeros, exact halves after scaling (ties, rounded to even), the
// largest magnitude negative or repeated, tiny and huge values.
std::vector<float> activation_corners(size_t n) {
  std::vector<float> x = randn(8 * n, 77);
  const float scales[8] = {1.0f, 1e-3f, 30.0f, 1e-20f, 1e20f, 1.0f, 1.0f, 1.0f};
  for (size_t r = 0; r < 8; ++r)
    for (size_t j = 0; j < n; ++j) x[r * n + j] *= scales[r];
  std::fill(x.begin() + 5 * n, x.begin() + 5 * n + 32, 0.0f);  // a block of zeros, first and last
  std::fill(x.begin() + 6 * n - 32, x.begin() + 6 * n, 0.0f);
  for (size_t j = 0; j < n; ++j) x[6 * n + j] = float(int(j % 255) - 127) * 0.5f;  // amax 63.5: q = 2 x, halves
  x[7 * n + 3] = -50.0f;  // a negative largest value, then the same magnitude positive
  x[7 * n + 9] = 50.0f;
  return x;
}

TEST_P(QuantKernels, ActivationQuantizationGivesTheReferenceBytes) {
  const ops::Kernels& k = *GetParam();
  const ops::Kernels& ref = ops::reference_kernels();
  // One block; 8; 24 and 43 (sixteen at a time where a kernel does so, then the rest).
  for (size_t n : {size_t(32), size_t(256), size_t(768), size_t(1376)}) {
    const std::vector<float> x = activation_corners(n);
    for (size_t r = 0; r < 8; ++r) {
      const float* row = x.data() + r * n;
      {  // Q8_0 and its sums
        std::vector<ops::BlockQ8_0> got(n / 32), want(n / 32);
        std::vector<ops::Q8Sum> gs(n / 32), ws(n / 32);
        k.quantize_q8_0(row, got.data(), gs.data(), n);
        ref.quantize_q8_0(row, want.data(), ws.data(), n);
        ASSERT_EQ(std::memcmp(got.data(), want.data(), n / 32 * sizeof(ops::BlockQ8_0)), 0) << k.isa << " q8_0 row " << r;
        for (size_t b = 0; b < n / 32; ++b) {
          ASSERT_EQ(gs[b].d, ws[b].d) << k.isa << " row " << r << " block " << b;
          ASSERT_EQ(gs[b].s, ws[b].s) << k.isa << " row " << r << " block " << b;
        }
      }
      {  // Q8_1: the same quants, with d * sum
        std::vector<ops::BlockQ8_1> got(n / 32), want(n / 32);
        k.quantize_q8_1(row, got.data(), n);
        ref.quantize_q8_1(row, want.data(), n);
        for (size_t b = 0; b < n / 32; ++b) {
          ASSERT_EQ(got[b].d, want[b].d) << k.isa << " q8_1 row " << r << " block " << b;
          ASSERT_EQ(got[b].s, want[b].s) << k.isa << " q8_1 row " << r << " block " << b;
          ASSERT_EQ(std::memcmp(got[b].qs, want[b].qs, 32), 0) << k.isa << " q8_1 row " << r << " block " << b;
        }
      }
      {  // Q8_K
        std::vector<ops::BlockQ8_K> got(n / 256), want(n / 256);
        k.quantize_q8_K(row, got.data(), n);
        ref.quantize_q8_K(row, want.data(), n);
        for (size_t b = 0; b < n / 256; ++b) {
          ASSERT_EQ(got[b].d, want[b].d) << k.isa << " q8_K row " << r << " block " << b;
          ASSERT_EQ(std::memcmp(got[b].qs, want[b].qs, 256), 0) << k.isa << " q8_K row " << r << " block " << b;
          ASSERT_EQ(std::memcmp(got[b].bsums, want[b].bsums, sizeof got[b].bsums), 0) << k.isa << " q8_K row " << r;
        }
      }
    }
  }
  // The Q8_1 sums are not trivial: a row of positive values has s > 0.
  std::vector<float> pos(32, 1.0f);
  ops::BlockQ8_1 q;
  k.quantize_q8_1(pos.data(), &q, 32);
  EXPECT_EQ(ops::f16_to_f32(q.s), 32.0f) << k.isa;  // d = 1/127, every q = 127
  // Their Q8Sum, what the row-interleaved _1 products read: d and s in f32.
  ops::Q8Sum qs;
  ops::q8_1_sums(&q, &qs, 1);
  EXPECT_EQ(qs.d, ops::f16_to_f32(q.d)) << k.isa;
  EXPECT_EQ(qs.sf, 32.0f) << k.isa;
}

INSTANTIATE_TEST_SUITE_P(AllIsas, QuantKernels, ::testing::ValuesIn(available_kernels()),
                         [](const auto& info) { return std::string(info.param->isa); });

// ---------------------------------------------------------------- end to end

// Against llama.cpp's run of the same quantized file. llama.cpp keeps its KV
// cache in f16 and computes attention on it with f16 queries and
// probabilities; with the same cache (kv_f16) our greedy ids follow its ids
// well past 32 tokens. With our default f32 cache, near-ties break the other
// way sooner: then every one of its tokens must still be our top token or
// within a small logit margin of it (teacher-forced along its ids).
TEST(QuantReference, FollowsLlamaCpp) {
  for (const char* file : {"tinyllama-v0-q8_0-once.txt", "tinyllama-v0-q4_0-once.txt"}) {
    const test::ReferenceCase c = test::load_case(file);
    const auto model = Model::load(test::model_path(c.model));
    const int V = model->info().vocab_size;
    float margin = 0.0f;
    const size_t with_f16 = test::common_prefix(test::greedy_run(model, c, true, &margin), c.generated_ids);
    const size_t with_f32 = test::common_prefix(test::greedy_run(model, c, false), c.generated_ids);
    std::printf("%s: greedy ids identical for %zu of %zu tokens with an f16 KV cache, %zu with f32\n", file, with_f16,
                c.generated_ids.size(), with_f32);
    if (with_f16 < c.generated_ids.size())
      std::printf("%s: with the f16 cache, token %zu is ours by a logit margin of %.4f over llama.cpp's\n", file,
                  with_f16, margin);
    EXPECT_GE(with_f16, 32u) << file;

    Session forced(model, SessionOptions{});
    forced.eval(c.prompt_ids);
    int disagree = 0;
    float worst = 0;
    for (size_t i = 0; i < c.generated_ids.size(); ++i) {
      const float* l = forced.logits();
      const int want = c.generated_ids[i];
      const float best = *std::max_element(l, l + V);
      if (l[want] < best) {
        ++disagree;
        worst = std::max(worst, best - l[want]);
      }
      forced.eval(&want, 1);
    }
    std::printf("%s: f32 cache, teacher-forced, %d of %zu tokens not our top one, by at most %.4f\n", file, disagree,
                c.generated_ids.size(), worst);
    EXPECT_LE(worst, 0.15f) << file;
    EXPECT_LE(disagree, 5) << file;
  }
}

}  // namespace
}  // namespace qkv


namespace qkv {
namespace {

TEST(QuantK, Q4_KKnownBlock) {
  ops::BlockQ4_K b{};
  b.d = 0x3c00;     // 1.0
  b.dmin = 0x3800;  // 0.5
  // Sub-block 0: scale 2, min 4 (low 6 bits of bytes 0 and 4).
  b.scales[0] = 2;
  b.scales[4] = 4;
  // Sub-block 1: scale 3 (byte 1), min 7 (byte 5); their top bits (0x40, 0x80)
  // are the high bits of sub-block 5's scale and min.
  b.scales[1] = 0x40 | 3;
  b.scales[5] = 0x80 | 7;
  // Sub-block 5: scale = low nibble of byte 9 | (byte 1 >> 6) << 4 = 1 | 16 = 17,
  //              min = high nibble of byte 9 | (byte 5 >> 6) << 4 = 2 | 32 = 34.
  b.scales[9] = 0x21;
  b.qs[0] = 0x5a;   // value 0: low nibble 10 (sub-block 0); value 32: high nibble 5 (sub-block 1)
  b.qs[64] = 0xc3;  // bytes 64..95: values 128..159 (low nibbles, sub-block 4), 160..191 (high, sub-block 5)
  float y[256];
  ops::dequantize_row_q4_K(&b, y, 256);
  EXPECT_EQ(y[0], 1.0f * 2 * 10 - 0.5f * 4);   // 18
  EXPECT_EQ(y[1], -0.5f * 4);                  // nibble 0
  EXPECT_EQ(y[32], 1.0f * 3 * 5 - 0.5f * 7);   // 11.5
  // Bytes 64..95 are the third 64-value group: sub-blocks 4 (low) and 5 (high).
  EXPECT_EQ(y[128], 0.0f);  // sub-block 4: scale (byte 8 & 15) | (byte 0 >> 6) << 4 = 0, min 0
  EXPECT_EQ(y[160], 1.0f * 17 * 12 - 0.5f * 34);  // high nibble 0xc = 12 in sub-block 5
}

TEST(QuantK, Q2_KQ3_KIQ4_XSKnownBlocks) {
  float y[256];
  // Q2_K: value 32 j + l of each 128 in bits 2 j of byte l; sub-block k = value / 16.
  ops::BlockQ2_K a{};
  a.d = 0x3c00;              // 1.0
  a.dmin = 0x3800;           // 0.5
  a.scales[0] = 0x32;        // sub-block 0: scale 2, min 3
  a.scales[2] = 0x05;        // sub-block 2 (values 32..47): scale 5, min 0
  a.scales[9] = 0x17;        // sub-block 9 (values 144..159): scale 7, min 1
  a.qs[0] = 0x03 | (2 << 2); // value 0: 3; value 32: 2
  a.qs[32 + 16] = 1 << 0;    // second half, byte 16: value 128 + 16 = 144: 1
  ops::dequantize_row_q2_K(&a, y, 256);
  EXPECT_EQ(y[0], 1.0f * 2 * 3 - 0.5f * 3);
  EXPECT_EQ(y[1], -0.5f * 3);
  EXPECT_EQ(y[32], 1.0f * 5 * 2);
  EXPECT_EQ(y[144], 1.0f * 7 * 1 - 0.5f * 1);
  // Q3_K: q = 2 low bits (as Q2_K) + a high bit (value i: bit i / 32 of
  // hmask[i % 32]); x = d (sc - 32) (q - 4); 6-bit scales in 12 bytes.
  ops::BlockQ3_K b{};
  b.d = 0x3800;                // 0.5
  // scale j: low 4 bits from byte j (j < 8) or the high nibble of byte j - 8,
  // high 2 bits from byte 8 + j % 4 at bit 2 (j / 4). Scale 0 = 40, scale 13 = 1.
  b.scales[0] = 8;             // 40 = 0b101000: low 8, high 2
  b.scales[8] = 2;             // j = 0: bits 0..1 of byte 8
  b.scales[5] = 1 << 4;        // j = 13: high nibble of byte 5 = 1, high bits 0
  b.qs[0] = 3;                 // value 0: low bits 3
  b.hmask[0] = 1;              // value 0 has its high bit: q = 7
  b.qs[32 + 16] = 2 << 4;      // value 128 + 64 + 16 = 208 (sub-block 13): low bits 2, no high bit
  ops::dequantize_row_q3_K(&b, y, 256);
  EXPECT_EQ(y[0], 0.5f * (40 - 32) * (7 - 4));
  EXPECT_EQ(y[1], 0.5f * (40 - 32) * (0 - 4));
  EXPECT_EQ(y[208], 0.5f * (1 - 32) * (2 - 4));
  // IQ4_XS: sub-block ib's 6-bit scale = nibble ib of scales_l | 2 bits of scales_h.
  ops::BlockIQ4_XS c{};
  c.d = 0x3c00;
  c.scales_l[0] = 0x21;        // sub-block 0: low 1, sub-block 1: low 2
  c.scales_h = 2 | (3 << 14);  // sub-block 0: high 2 -> 33; sub-block 7: high 3 -> 48
  c.scales_l[3] = 0x00;        // sub-block 7: low 0
  c.qs[0] = 0x8f;              // sub-block 0 value 0: level 15; value 16: level 8
  c.qs[16 * 7 + 15] = 0x10;    // sub-block 7 value 15: level 0; value 31: level 1
  ops::dequantize_row_iq4_xs(&c, y, 256);
  EXPECT_EQ(y[0], 1.0f * (33 - 32) * 113);
  EXPECT_EQ(y[16], 1.0f * (33 - 32) * 1);
  EXPECT_EQ(y[32], 1.0f * (2 - 32) * -127);     // sub-block 1, level 0
  EXPECT_EQ(y[7 * 32 + 15], 1.0f * (48 - 32) * -127);
  EXPECT_EQ(y[7 * 32 + 31], 1.0f * (48 - 32) * -104);
}

TEST(QuantK, Q5_KKnownBlock) {
  ops::BlockQ5_K b{};
  b.d = 0x3c00;  // 1.0
  b.dmin = 0x0000;
  b.scales[0] = 1;  // sub-block 0 scale 1, min 0
  b.scales[1] = 2;  // sub-block 1 scale 2
  b.scales[2] = 3;  // sub-block 2 scale 3
  b.qs[0] = 0x37;   // value 0: 7; value 32: 3
  b.qh[0] = 0x01 | 0x02 | 0x04;  // fifth bits of value 0 (bit 0), value 32 (bit 1), value 64 (bit 2)
  b.qs[32] = 0x09;  // value 64: 9
  float y[256];
  ops::dequantize_row_q5_K(&b, y, 256);
  EXPECT_EQ(y[0], 1.0f * (7 + 16));
  EXPECT_EQ(y[32], 2.0f * (3 + 16));
  EXPECT_EQ(y[64], 3.0f * (9 + 16));
  EXPECT_EQ(y[1], 0.0f);
}

TEST(QuantK, Q6_KKnownBlock) {
  ops::BlockQ6_K b{};
  b.d = 0x3800;  // 0.5
  for (int i = 0; i < 16; ++i) b.scales[i] = int8_t(i - 4);
  // Value 0: low 4 bits from ql[0] & 15, high 2 bits from qh[0] bits 0-1: 0x3f -> 63 - 32 = 31.
  b.ql[0] = 0x0f;
  b.qh[0] = 0x03;
  // Value 96: ql[32] >> 4 and qh[0] bits 6-7: 0x0 | (1 << 4) = 16 -> -16, scale index 6.
  b.qh[0] |= 0x40;
  float y[256];
  ops::dequantize_row_q6_K(&b, y, 256);
  EXPECT_EQ(y[0], 0.5f * float(0 - 4) * 31);
  EXPECT_EQ(y[96], 0.5f * float(6 - 4) * -16);
  EXPECT_EQ(y[1], 0.5f * float(0 - 4) * -32);  // all-zero bits: -32
  // Second half (values 128..255): scales 8..15; value 200 = 128 + 64 + 8 takes scale 8 + 4 = 12 (= 8).
  EXPECT_EQ(y[200], 0.5f * 8.0f * -32.0f);
}

// Quantize then dequantize Gaussian rows (and rows offset from zero, which
// the Q4_K/Q5_K mins serve): the error stays within what each type's bits
// give (measured: relative RMS 0.072, 0.036, 0.018; the largest error 7.7%,
// 3.6%, 1.6% of its super-block's largest value), for any overall scale.
// All-zero blocks come back as zeros.
template <class Block>
void check_round_trip(double max_rel_rms, double max_err_of_amax) {
  const size_t n = 256 * 32;
  for (float scale : {1.0f, 0.02f}) {
    for (float offset : {0.0f, 0.5f}) {
      auto x = randn(n, 11, scale);
      for (float& v : x) v += offset * scale;
      std::fill(x.begin() + 256, x.begin() + 512, 0.0f);  // one all-zero super-block
      std::vector<Block> q(n / Block::kValues);
      QType<Block>::quantize(x.data(), q.data(), n);
      const auto y = dequant_rows(q, n);
      double se = 0, sx = 0;
      for (size_t b = 0; b < n / 256; ++b) {
        float amax = 0;
        for (size_t i = 0; i < 256; ++i) amax = std::max(amax, std::fabs(x[b * 256 + i]));
        for (size_t i = b * 256; i < b * 256 + 256; ++i) {
          const double e = double(y[i]) - double(x[i]);
          se += e * e;
          sx += double(x[i]) * double(x[i]);
          ASSERT_LE(std::fabs(e), max_err_of_amax * amax) << QType<Block>::name << " i=" << i << " scale=" << scale;
        }
      }
      EXPECT_LE(std::sqrt(se / sx), max_rel_rms) << QType<Block>::name << " scale=" << scale << " offset=" << offset;
    }
  }
}

TEST(QuantK, RoundTripErrorBounds) {
  check_round_trip<ops::BlockQ4_K>(0.08, 0.09);
  check_round_trip<ops::BlockQ5_K>(0.04, 0.045);
  check_round_trip<ops::BlockQ6_K>(0.02, 0.02);
  check_round_trip<ops::BlockQ2_K>(0.40, 0.40);
  check_round_trip<ops::BlockQ3_K>(0.20, 0.20);
  check_round_trip<ops::BlockQ4_1>(0.08, 0.09);
  check_round_trip<ops::BlockQ5_0>(0.045, 0.065);  // the side opposite the largest value reaches 15 of 16 steps
  check_round_trip<ops::BlockQ5_1>(0.04, 0.045);
  check_round_trip<ops::BlockIQ4_NL>(0.08, 0.1);  // half the widest level gap (24 of 127), and the scale search
  check_round_trip<ops::BlockIQ4_XS>(0.08, 0.1);
}

// Q8_K activations by hand: d = max / -127 carries the sign of the value of
// largest magnitude, which becomes -127; bsums are the sums of 16 quants.
TEST(QuantK, Q8_KActivationsByHand) {
  float x[256] = {};
  x[0] = 2.0f;
  x[5] = -254.0f;  // the largest magnitude: d = -254 / -127 = 2
  x[17] = 3.0f;    // x / d = 1.5: ties round to even -> 2
  x[18] = 5.0f;    // 2.5 -> 2 (to even)
  ops::BlockQ8_K q;
  ops::quantize_row_q8_K(x, &q, 256);
  EXPECT_EQ(q.d, 2.0f);
  EXPECT_EQ(q.qs[5], -127);
  EXPECT_EQ(q.qs[0], 1);
  EXPECT_EQ(q.qs[17], 2);
  EXPECT_EQ(q.qs[18], 2);
  EXPECT_EQ(q.bsums[0], 1 - 127);
  EXPECT_EQ(q.bsums[1], 4);
  for (int k = 2; k < 16; ++k) EXPECT_EQ(q.bsums[k], 0);
}

// linear() over quantized matrices on every ISA and 2 threads: each weight
// type takes x quantized to its own activation blocks, and one
// quantize_input() serves a group that mixes types (as a Q4_K_M file mixes
// Q4_K and Q6_K, or a fallback Q8_0 sits beside K-quants).
TEST(QuantK, LinearMatchesTheDequantizedProduct) {
  const size_t n = 512, rows = 37;
  std::mt19937 rng(5);
  struct Case {
    Type type;
    std::vector<uint8_t> bytes;
    Tensor t;
    std::vector<float> wd;  // dequantized
  };
  std::vector<Case> cases;
  for (Type type : {Type::Q8_0, Type::Q4_0, Type::Q4_K, Type::Q5_K, Type::Q6_K}) {
    Case c;
    c.type = type;
    const ops::TypeInfo& info = ops::type_info(type);
    const size_t rb = info.row_bytes(int64_t(n));
    const auto wf = randn(rows * n, uint32_t(rng()));
    c.bytes.resize(rows * rb);
    for (size_t r = 0; r < rows; ++r) info.from_float(wf.data() + r * n, c.bytes.data() + r * rb, n);
    c.t.name = std::string("w.") + info.name;
    c.t.type = type;
    c.t.n_dims = 2;
    c.t.ne[0] = int64_t(n);
    c.t.ne[1] = int64_t(rows);
    c.t.data = c.bytes.data();
    c.wd.resize(rows * n);
    for (size_t r = 0; r < rows; ++r) info.to_float(c.bytes.data() + r * rb, c.wd.data() + r * n, n);
    cases.push_back(std::move(c));
  }
  // Q8_0 / Q4_0 / Q4_K once more with their row-interleaved copies: 32 rows
  // from those, the last 5 as stored.
  std::vector<std::vector<uint8_t>> packed;
  for (size_t i : {0, 1, 2}) {
    Case c = cases[i];
    packed.emplace_back(rows / 8 * (n / 256) * sizeof(ops::BlockQ4_Kx8) + c.bytes.size());  // room for any layout
    if (c.type == Type::Q8_0)
      ops::repack_x8(static_cast<const ops::BlockQ8_0*>(c.t.data), reinterpret_cast<ops::BlockQ8_0x8*>(packed.back().data()), rows, n);
    else if (c.type == Type::Q4_0)
      ops::repack_x8(static_cast<const ops::BlockQ4_0*>(c.t.data), reinterpret_cast<ops::BlockQ4_0x8*>(packed.back().data()), rows, n);
    else
      ops::repack_x8(static_cast<const ops::BlockQ4_K*>(c.t.data), reinterpret_cast<ops::BlockQ4_Kx8*>(packed.back().data()), rows, n);
    c.t.data = c.bytes.data();
    c.t.packed = packed.back().data();
    c.t.packed_rows = 32;
    c.t.name += ".x8";
    cases.push_back(std::move(c));
  }
  ThreadPool pool(2);
  for (const ops::Kernels* k : available_kernels()) {
    for (int M : {1, 5}) {
      const auto x = randn(size_t(M) * n, 9);
      const auto x8 = dequant_rows(quantize_activations<ops::BlockQ8_0>(x, n), n);
      const auto xk = dequant_rows(quantize_activations<ops::BlockQ8_K>(x, n), n);
      std::vector<uint8_t> qs(size_t(M) * (n / 32) * (sizeof(ops::BlockQ8_0) + sizeof(ops::Q8Sum)) + 8),
          ks(size_t(M) * (n / 256) * sizeof(ops::BlockQ8_K));
      const ExecContext ctx{pool, *k, 2, nullptr, nullptr, qs.data(), qs.size(), ks.data(), ks.size()};
      const QuantizedInput xq = quantize_input(ctx, {&cases[0].t, &cases[2].t, &cases[4].t}, x.data(), M, -1);
      ASSERT_NE(xq.q8_0, nullptr);
      ASSERT_NE(xq.q8_K, nullptr);
      for (const Case& c : cases) {
        const std::vector<float>& xd = ops::type_info(c.type).activation == ops::Activation::Q8_K ? xk : x8;
        std::vector<float> y(size_t(M) * rows, -1.0f);
        linear(ctx, c.t, x.data(), y.data(), M, -1, &xq);
        for (int m = 0; m < M; ++m)
          for (size_t r = 0; r < rows; ++r) {
            double want = 0, mag = 0;
            for (size_t i = 0; i < n; ++i) {
              want += double(c.wd[r * n + i]) * xd[size_t(m) * n + i];
              mag += std::fabs(double(c.wd[r * n + i]) * xd[size_t(m) * n + i]);
            }
            ASSERT_NEAR(y[size_t(m) * rows + r], want, 2e-6 * mag + 1e-9) << k->isa << " " << c.t.name << " M=" << M;
          }
      }
    }
  }
}

}  // namespace
}  // namespace qkv
