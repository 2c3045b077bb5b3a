// BF16 weights: products on activations rounded to bf16, llama.cpp's numerics
// for the type. Every instruction set's kernels against the scalar reference
// bit for bit (vdpbf16ps where the CPU has it, widened pairs elsewhere), the
// reference against a double-precision sum of the rounded values, and the
// rounding itself against GGML's rule on the values where it matters.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "engine/runtime/cpu.h"
#include "ops/ops.h"
#include "ops/platform.h"
#include "test_util.h"

namespace qkv {
namespace {

const ops::Kernels& ref() { return ops::reference_kernels(); }
using test::randn;

float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The nearest bf16 (ties to the even one), found from the two candidates'
// distances in double, not from the bit trick the kernels use. Finite values
// below the largest bf16 only.
uint16_t nearest_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t down = uint16_t(u >> 16), up = uint16_t(down + 1);  // toward zero, away from zero
  const double a = std::fabs(double(f) - double(ops::bf16_to_f32(down)));
  const double b = std::fabs(double(ops::bf16_to_f32(up)) - double(f));
  if (a != b) return a < b ? down : up;
  return down % 2 == 0 ? down : up;
}

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = nearest_bf16(v[i]);
  return h;
}

TEST(Bf16, RoundingFollowsGgmlOnEdgeValues) {
  const std::pair<uint32_t, uint16_t> cases[] = {
      {0x3f800000u, 0x3f80},  // 1
      {0x3f808000u, 0x3f80},  // halfway, to the even neighbour below
      {0x3f818000u, 0x3f82},  // halfway, to the even neighbour above
      {0x3f808001u, 0x3f81},  // just above halfway
      {0x3f807fffu, 0x3f80},  // just below
      {0x80000000u, 0x8000},  // -0
      {0xbf818000u, 0xbf82},  // negative, halfway
      {0x7f800000u, 0x7f80},  // inf
      {0xff800000u, 0xff80},  // -inf
      {0x7f7fffffu, 0x7f80},  // the largest float rounds up to inf
      {0x7fc00000u, 0x7fc0},  // quiet NaN
      {0x7f800001u, 0x7fc0},  // signalling NaN: kept a NaN, made quiet
      {0xff800001u, 0xffc0},
      {0x00000001u, 0x0000},  // subnormals round like any value
      {0x00018000u, 0x0002},
  };
  const size_t n = 37;  // whole vectors and a tail on every ISA
  for (const ops::Kernels* k : available_kernels()) {
    for (size_t at : {size_t(0), size_t(n - 1)}) {
      for (const auto& [in, want] : cases) {
        std::vector<float> x(n, 1.0f);
        x[at] = bits_to_float(in);
        std::vector<uint16_t> got(n, 0xdead);
        k->f32_to_bf16(x.data(), got.data(), n);
        EXPECT_EQ(got[at], want) << k->isa << " input 0x" << std::hex << in << " at " << std::dec << at;
        EXPECT_EQ(got[at ? 0 : 1], 0x3f80) << k->isa;
      }
    }
  }
  for (const auto& [in, want] : cases) EXPECT_EQ(ops::f32_to_bf16(bits_to_float(in)), want);
}

TEST(Bf16, RoundingIsTheNearestValue) {
  const auto x = randn(1000, 41, 30.0f);
  for (const ops::Kernels* k : available_kernels()) {
    std::vector<uint16_t> got(x.size());
    k->f32_to_bf16(x.data(), got.data(), x.size());
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(got[i], nearest_bf16(x[i])) << k->isa << " " << x[i];
  }
}

TEST(Bf16, PanelsHoldColumnPairsThenTheOddColumn) {
  const size_t rows = 2 * ops::kPanelRows;
  for (size_t n : {size_t(3), size_t(4)}) {
    std::vector<uint16_t> w(rows * n), packed(rows * n, 0xffff);
    for (size_t r = 0; r < rows; ++r)
      for (size_t k = 0; k < n; ++k) w[r * n + k] = uint16_t(r * 100 + k);
    ops::pack_panels_bf16(w.data(), packed.data(), rows, n);
    ASSERT_EQ(ops::kPanelRows, 16u);
    EXPECT_EQ(packed[0], 0);     // panel 0, pair 0: row 0 column 0
    EXPECT_EQ(packed[1], 1);     // row 0 column 1
    EXPECT_EQ(packed[2], 100);   // row 1 column 0
    EXPECT_EQ(packed[31], 1501);  // row 15 column 1
    EXPECT_EQ(packed[32], 2);    // pair 1 (n = 4) or the odd column (n = 3): row 0 column 2
    if (n == 4) {
      EXPECT_EQ(packed[33], 3);
      EXPECT_EQ(packed[34], 102);
    } else {
      EXPECT_EQ(packed[33], 102);  // row 1 column 2
      EXPECT_EQ(packed[47], 1502);
    }
    EXPECT_EQ(packed[16 * n], 1600);  // panel 1: row 16, column 0
    EXPECT_EQ(packed[rows * n - 1], n == 4 ? 3103 : 3102);
  }
}

class Bf16Kernels : public ::testing::TestWithParam<const ops::Kernels*> {
 protected:
  const ops::Kernels& k() const { return *GetParam(); }
};

// The reference's order (ops.h) on values where another order gives another
// float. Each output is 1 after its first pair; its second pair's products
// are, in the first 8 rows, 2^-24 and 2^-24: each sum rounded, 1 + 2^-24 is
// a tie back to 1 (even), twice, where the pair summed first would give
// 1 + 2^-23; in the last 8, -2^-24 (odd column) and 2^-25: 1 - 2^-24, then
// the tie back to 1, where the even column first ends at 1 - 2^-24.
TEST_P(Bf16Kernels, PairsAreSummedOddColumnFirstRoundingEachStep) {
  const size_t n = 4, rows = ops::kPanelRows;
  const float tiny = std::ldexp(1.0f, -24);
  std::vector<uint16_t> w(rows * n), packed(rows * n), x(2 * n, ops::f32_to_bf16(1.0f));
  for (size_t r = 0; r < rows; ++r) {
    const float row[n] = {0.0f, 1.0f, r < 8 ? tiny : tiny / 2, r < 8 ? tiny : -tiny};
    for (size_t c = 0; c < n; ++c) w[r * n + c] = ops::f32_to_bf16(row[c]);
  }
  ops::pack_panels_bf16(w.data(), packed.data(), rows, n);
  std::vector<float> y(2 * rows, -7.0f), xv(x.size());
  ops::widen_bf16(x.data(), xv.data(), x.size());
  k().bf16.matmul_panels(packed.data(), ops::Bf16Batch{x.data(), xv.data()}, y.data(), 2, n, rows, 0, 1);
  for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], 1.0f) << k().isa << " (" << k().bf16.how << ") output " << i;
  ref().bf16.matvec(w.data(), x.data(), y.data(), n, 0, rows);
  for (size_t r = 0; r < rows; ++r) ASSERT_EQ(y[r], 1.0f) << "reference row " << r;
}

// Panel counts odd and even, token counts around every ISA's tile (2, 6,
// 12), widths odd and even and not a multiple of any vector, and wider than
// the 128 pairs the widening tile takes at a time (300: 150 pairs, 517: 258).
// p's panel products against the reference, with k's rounding of x (isa:
// which they are, for the messages).
void expect_reference_panel_bits(const ops::Kernels& k, const ops::Bf16Products& p, const std::string& isa) {
  const size_t P = 5, rows = P * ops::kPanelRows;
  for (size_t n : {size_t(1), size_t(2), size_t(3), size_t(16), size_t(17), size_t(64), size_t(172), size_t(257),
                   size_t(300), size_t(517)}) {
    const auto w = to_bf16(randn(rows * n, 42));
    const auto xf = randn(25 * n, 43);
    std::vector<uint16_t> x(xf.size()), x_ref(xf.size()), pw(rows * n);
    k.f32_to_bf16(xf.data(), x.data(), xf.size());
    ref().f32_to_bf16(xf.data(), x_ref.data(), xf.size());
    ASSERT_EQ(x, x_ref) << isa << " n=" << n;
    std::vector<float> xv(x.size());
    ops::widen_bf16(x.data(), xv.data(), x.size());
    const ops::Bf16Batch xb{x.data(), xv.data()};
    ops::pack_panels_bf16(w.data(), pw.data(), rows, n);
    for (size_t M : {size_t(1), size_t(2), size_t(3), size_t(5), size_t(6), size_t(7), size_t(11), size_t(12),
                     size_t(13), size_t(25)}) {
      for (auto [p0, p1] : {std::pair<size_t, size_t>{0, P}, {1, P}, {1, 4}, {2, 3}}) {
        const size_t ldy = rows + 5, r0 = p0 * ops::kPanelRows, r1 = p1 * ops::kPanelRows;
        const std::string what = isa + " (" + p.how + ") n=" + std::to_string(n) +
                                 " M=" + std::to_string(M) + " panels [" + std::to_string(p0) + ", " +
                                 std::to_string(p1) + ")";
        std::vector<float> want(M * ldy, -7.0f), got(M * ldy, -7.0f), rows_ref(M * ldy, -7.0f);
        ref().bf16.matmul_panels(pw.data(), xb, want.data(), M, n, ldy, p0, p1);
        ref().bf16.matmul(w.data(), x.data(), rows_ref.data(), M, n, ldy, r0, r1);
        p.matmul_panels(pw.data(), xb, got.data(), M, n, ldy, p0, p1);
        ASSERT_EQ(0, std::memcmp(want.data(), rows_ref.data(), want.size() * 4)) << what << ": panels vs rows";
        ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * 4)) << what;  // -7 outside [r0, r1) too
        if (M != 1) continue;
        // One token: interleaved partial sums, so close rather than equal.
        std::vector<float> v(rows, -7.0f);
        p.matvec_panels(pw.data(), x.data(), v.data(), n, p0, p1);
        for (size_t r = 0; r < rows; ++r) {
          if (r < r0 || r >= r1) {
            ASSERT_EQ(v[r], -7.0f) << what << ": matvec wrote outside its rows";
            continue;
          }
          double mag = 0;
          for (size_t c = 0; c < n; ++c) mag += std::fabs(double(ops::bf16_to_f32(w[r * n + c])) * ops::bf16_to_f32(x[c]));
          ASSERT_NEAR(v[r], want[r], 1e-6 * mag + 1e-30) << what << " matvec row " << r;
        }
      }
    }
  }
}

TEST_P(Bf16Kernels, PanelProductsAreTheReferenceBits) { expect_reference_panel_bits(k(), k().bf16, k().isa); }

// Where the CPU has AVX512_BF16 the avx512 table takes vdpbf16ps instead of
// its widening products; those are checked here all the same.
TEST(Bf16, Avx512WidenedPanelProductsAreTheReferenceBits) {
  if (!ops::cpu_features().avx512) GTEST_SKIP() << "this CPU has no AVX-512";
  expect_reference_panel_bits(ops::avx512_kernels(), ops::avx512_widened_bf16_products(), "avx512");
}

INSTANTIATE_TEST_SUITE_P(AllIsas, Bf16Kernels, ::testing::ValuesIn(available_kernels()),
                         [](const ::testing::TestParamInfo<const ops::Kernels*>& p) { return std::string(p.param->isa); });

// Where the CPU has AVX512_BF16 the avx512 table multiplies with vdpbf16ps
// (its bits the widened kernels', checked above against the reference).
TEST(Bf16, EachTableSaysHowItMultiplies) {
  for (const ops::Kernels* k : available_kernels()) {
    const std::string isa = k->isa;
    const char* want = isa == "scalar"                                      ? "scalar"
                       : isa == "avx512" && ops::cpu_features().avx512_bf16 ? "vdpbf16ps"
                                                                            : "widened in registers";
    EXPECT_STREQ(k->bf16.how, want) << isa;
  }
}

// The reference is the sum of the rounded values: within the rounding of n
// sums of the exact (double) sum of bf16(w) bf16(x), and far from the sum
// over x as given, which a product forgetting to round x would compute.
TEST(Bf16, ReferenceSumsTheRoundedActivations) {
  const size_t n = 1000, rows = 64;
  const auto w = to_bf16(randn(rows * n, 44));
  const auto xf = randn(n, 45);
  const auto x = to_bf16(xf);
  std::vector<float> y(rows);
  ref().bf16.matvec(w.data(), x.data(), y.data(), n, 0, rows);
  size_t far_from_unrounded = 0;
  for (size_t r = 0; r < rows; ++r) {
    double exact = 0, unrounded = 0, mag = 0;
    for (size_t c = 0; c < n; ++c) {
      const double wv = ops::bf16_to_f32(w[r * n + c]);
      exact += wv * ops::bf16_to_f32(x[c]);
      unrounded += wv * xf[c];
      mag += std::fabs(wv * xf[c]);
    }
    const double bound = double(n) * std::ldexp(1.0, -24) * mag;
    ASSERT_NEAR(y[r], exact, bound) << "row " << r;
    far_from_unrounded += std::fabs(double(y[r]) - unrounded) > bound;
  }
  EXPECT_GT(far_from_unrounded, rows / 2);
}

TEST(Bf16, ProbeCountsFourFlopsAPairPerLane) {
  for (const ops::Kernels* k : available_kernels()) {
    const double flops = k->bf16.peak(10);
    EXPECT_GT(flops, 0.0) << k->isa;
    EXPECT_EQ(std::fmod(flops, 480.0), 0.0) << k->isa;  // 12 or 24 chains x 4 flops x lanes x 10 rounds
  }
}

}  // namespace
}  // namespace qkv
