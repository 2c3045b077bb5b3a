// Quantized formats and kernels: known blocks by hand, quantize/dequantize
// error bounds, and every ISA's integer products against the f32 product of
// the dequantized operands.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "engine/cpu.h"
#include "engine/linear.h"
#include "engine/quantize.h"
#include "engine/thread_pool.h"
#include "engine/qkv.hpp"
#include "ops/ops.h"
#include "ops/quant.h"
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

// The f32 product of the dequantized weights and dequantized activations:
// what an exact integer product must reproduce up to float rounding.
template <class Block>
void dequant(const std::vector<Block>& q, std::vector<float>& out, size_t n) {
  out.resize(q.size() * 32);
  for (size_t r = 0; r < q.size() * 32 / n; ++r) {
    if constexpr (std::is_same<Block, ops::BlockQ8_0>::value) ops::dequantize_row_q8_0(q.data() + r * n / 32, out.data() + r * n, n);
    else ops::dequantize_row_q4_0(q.data() + r * n / 32, out.data() + r * n, n);
  }
}

class QuantKernels : public ::testing::TestWithParam<const ops::Kernels*> {};

template <class Block>
void check_products(const ops::Kernels& k, bool q4) {
  for (size_t n : {size_t(32), size_t(96), size_t(288), size_t(768)}) {
    for (size_t rows : {size_t(1), size_t(5), size_t(17)}) {
      const auto wf = randn(rows * n, 7), xf = randn(9 * n, 8);
      std::vector<Block> w(rows * n / 32);
      for (size_t r = 0; r < rows; ++r) {
        if (q4) ops::quantize_row_q4_0(wf.data() + r * n, reinterpret_cast<ops::BlockQ4_0*>(w.data()) + r * n / 32, n);
        else ops::quantize_row_q8_0(wf.data() + r * n, reinterpret_cast<ops::BlockQ8_0*>(w.data()) + r * n / 32, n);
      }
      std::vector<ops::BlockQ8_0> xq(9 * n / 32);
      for (size_t m = 0; m < 9; ++m) ops::quantize_row_q8_0_act(xf.data() + m * n, xq.data() + m * n / 32, n);
      std::vector<float> wd, xd;
      dequant(w, wd, n);
      dequant(xq, xd, n);
      for (size_t M : {size_t(1), size_t(3), size_t(4), size_t(9)}) {
        std::vector<float> y(M * rows, -1.0f);
        if (M == 1) (q4 ? k.matvec_q4_0 : k.matvec_q8_0)(w.data(), xq.data(), y.data(), n, 0, rows);
        else (q4 ? k.matmul_q4_0 : k.matmul_q8_0)(w.data(), xq.data(), y.data(), M, n, rows, 0, rows);
        for (size_t m = 0; m < M; ++m) {
          for (size_t r = 0; r < rows; ++r) {
            double want = 0, mag = 0;
            for (size_t i = 0; i < n; ++i) {
              want += double(wd[r * n + i]) * double(xd[m * n + i]);
              mag += std::fabs(double(wd[r * n + i]) * double(xd[m * n + i]));
            }
            ASSERT_NEAR(y[m * rows + r], want, 1e-5 * mag + 1e-6)
                << k.isa << (q4 ? " q4_0" : " q8_0") << " n=" << n << " rows=" << rows << " M=" << M << " m=" << m
                << " r=" << r;
          }
        }
      }
    }
  }
}

TEST_P(QuantKernels, Q8_0ProductsEqualTheDequantizedF32Product) { check_products<ops::BlockQ8_0>(*GetParam(), false); }
TEST_P(QuantKernels, Q4_0ProductsEqualTheDequantizedF32Product) { check_products<ops::BlockQ4_0>(*GetParam(), true); }

INSTANTIATE_TEST_SUITE_P(AllIsas, QuantKernels, ::testing::ValuesIn(available_kernels()),
                         [](const auto& info) { return std::string(info.param->isa); });

// ---------------------------------------------------------------- end to end

// Against llama.cpp's run of the same quantized file. llama.cpp keeps its KV
// cache in f16 and computes attention on it with f16 queries and
// probabilities; with the same cache (kv_f16) our greedy ids follow its ids
// well past 32 tokens. With our default f32 cache, near-ties break the other
// way sooner: then every one of its tokens must still be our top token or
// within a small logit margin of it (teacher-forced along its ids).
std::vector<int> greedy_run(const std::shared_ptr<const Model>& model, const test::ReferenceCase& c, bool kv_f16) {
  SessionOptions so;
  so.kv_f16 = kv_f16;
  Session s(model, so);
  Sampler greedy(model->info().vocab_size, test::greedy_params());
  std::vector<int> ids;
  s.eval(c.prompt_ids);
  for (size_t i = 0; i < c.generated_ids.size(); ++i) {
    const int t = greedy.sample(s.logits());
    ids.push_back(t);
    s.eval(&t, 1);
  }
  return ids;
}

size_t common_prefix(const std::vector<int>& a, const std::vector<int>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

TEST(QuantReference, FollowsLlamaCpp) {
  for (const char* file : {"tinyllama-v0-q8_0-once.txt", "tinyllama-v0-q4_0-once.txt"}) {
    const test::ReferenceCase c = test::load_case(file);
    const auto model = Model::load(test::model_path(c.model));
    const int V = model->info().vocab_size;
    const size_t with_f16 = common_prefix(greedy_run(model, c, true), c.generated_ids);
    const size_t with_f32 = common_prefix(greedy_run(model, c, false), c.generated_ids);
    std::printf("%s: greedy ids identical for %zu of %zu tokens with an f16 KV cache, %zu with f32\n", file, with_f16,
                c.generated_ids.size(), with_f32);
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

// K-quant matrices in linear(): each block of rows dequantized and multiplied
// in f32, on every ISA, against a double-precision product of the dequantized rows.
TEST(QuantK, LinearMatchesTheDequantizedProduct) {
  std::mt19937 rng(5);
  for (const ops::Kernels* k : available_kernels()) {
    for (DType type : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
      for (size_t n : {size_t(256), size_t(512)}) {
        const size_t rows = 37, rb = dtype_row_bytes(type, int64_t(n));
        std::vector<uint8_t> w(rows * rb);
        for (uint8_t& byte : w) byte = uint8_t(rng());
        // Keep the f16 scales small and finite.
        for (size_t b = 0; b < w.size() / (rb / (n / 256)); ++b) {
          uint8_t* blk = w.data() + b * (rb / (n / 256));
          const uint16_t small = 0x1000;  // ~6e-5
          if (type == DType::Q6_K) std::memcpy(blk + 208, &small, 2);
          else {
            std::memcpy(blk, &small, 2);
            std::memcpy(blk + 2, &small, 2);
          }
        }
        Tensor t;
        t.name = "test";
        t.type = type;
        t.n_dims = 2;
        t.ne[0] = int64_t(n);
        t.ne[1] = int64_t(rows);
        t.data = w.data();
        std::vector<float> wd(rows * n);
        for (size_t r = 0; r < rows; ++r) dequantize_row(uint32_t(type), w.data() + r * rb, wd.data() + r * n, int64_t(n));
        for (int M : {1, 5}) {
          const auto x = test::randn(size_t(M) * n, 9);
          std::vector<float> y(size_t(M) * rows);
          ThreadPool pool(2);
          std::vector<float> scratch(2 * kKQuantRows * n);
          const ExecContext ctx{pool, *k, 2, nullptr, nullptr, nullptr, 0, scratch.data(), kKQuantRows * n};
          linear(ctx, t, x.data(), y.data(), M, -1);
          for (int m = 0; m < M; ++m)
            for (size_t r = 0; r < rows; ++r) {
              double want = 0, mag = 0;
              for (size_t i = 0; i < n; ++i) {
                want += double(wd[r * n + i]) * x[size_t(m) * n + i];
                mag += std::fabs(double(wd[r * n + i]) * x[size_t(m) * n + i]);
              }
              ASSERT_NEAR(y[size_t(m) * rows + r], want, 1e-5 * mag + 1e-9) << k->isa << " " << dtype_name(uint32_t(type));
            }
        }
      }
    }
  }
}

}  // namespace
}  // namespace qkv
