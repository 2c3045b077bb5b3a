// Every kernel of every instruction set this machine can run, against the
// scalar reference, at sizes that are and are not multiples of the vector
// width.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/runtime/cpu.h"
#include "engine/api/qkv.hpp"
#include "ops/ops.h"
#include "test_util.h"

namespace qkv {
namespace {

const ops::Kernels& ref() { return ops::reference_kernels(); }

using test::randn;

std::vector<uint16_t> to_f16(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = ops::f32_to_f16(v[i]);
  return h;
}

// |a - b| <= atol + rtol * |b| elementwise, reporting the first miss.
void expect_close(const float* a, const float* b, size_t n, float atol, float rtol, const std::string& what) {
  for (size_t i = 0; i < n; ++i) {
    ASSERT_LE(std::fabs(a[i] - b[i]), atol + rtol * std::fabs(b[i]))
        << what << " index " << i << ": got " << a[i] << " want " << b[i];
  }
}

const size_t kSizes[] = {1, 3, 4, 7, 8, 15, 16, 17, 31, 33, 64, 65, 172, 257, 1000};

class OpsTest : public ::testing::TestWithParam<const ops::Kernels*> {
 protected:
  const ops::Kernels& k() const { return *GetParam(); }
};

TEST_P(OpsTest, Dot) {
  for (size_t n : kSizes) {
    const auto a = randn(n, 1), b = randn(n, 2);
    const float want = ref().dot(a.data(), b.data(), n);
    const float got = k().dot(a.data(), b.data(), n);
    EXPECT_NEAR(got, want, 1e-5f * float(n)) << "n=" << n;
  }
}

TEST_P(OpsTest, MatvecF32) {
  for (size_t n : kSizes) {
    for (size_t rows : {size_t(1), size_t(5), size_t(17), size_t(64)}) {
      const auto w = randn(rows * n, 3), x = randn(n, 4);
      std::vector<float> want(rows, -1.0f), got(rows, -1.0f);
      ref().matvec_f32(w.data(), x.data(), want.data(), n, 0, rows);
      k().matvec_f32(w.data(), x.data(), got.data(), n, 0, rows);
      expect_close(got.data(), want.data(), rows, 1e-4f, 1e-5f, "matvec n=" + std::to_string(n));
      // A sub-range writes only its rows.
      std::vector<float> part(rows, -7.0f);
      k().matvec_f32(w.data(), x.data(), part.data(), n, rows / 3, rows);
      for (size_t r = 0; r < rows / 3; ++r) ASSERT_EQ(part[r], -7.0f);
      expect_close(part.data() + rows / 3, want.data() + rows / 3, rows - rows / 3, 1e-4f, 1e-5f, "matvec range");
    }
  }
}

TEST_P(OpsTest, MatvecF16) {
  for (size_t n : kSizes) {
    const size_t rows = 19;
    const auto w = to_f16(randn(rows * n, 5));
    const auto x = randn(n, 6);
    std::vector<float> want(rows), got(rows);
    ref().matvec_f16(w.data(), x.data(), want.data(), n, 0, rows);
    k().matvec_f16(w.data(), x.data(), got.data(), n, 0, rows);
    expect_close(got.data(), want.data(), rows, 1e-4f, 1e-5f, "matvec_f16 n=" + std::to_string(n));
  }
}

TEST_P(OpsTest, MatmulF32AndF16) {
  for (size_t n : {size_t(1), size_t(16), size_t(17), size_t(172), size_t(257)}) {
    for (size_t M : {size_t(1), size_t(2), size_t(4), size_t(5), size_t(9)}) {
      const size_t rows = 21, ldy = rows + 3;
      const auto w = randn(rows * n, 7), x = randn(M * n, 8);
      const auto wh = to_f16(w);
      std::vector<float> want(M * ldy, 0.0f), got(M * ldy, 0.0f);
      ref().matmul_f32(w.data(), x.data(), want.data(), M, n, ldy, 2, rows);
      k().matmul_f32(w.data(), x.data(), got.data(), M, n, ldy, 2, rows);
      expect_close(got.data(), want.data(), got.size(), 1e-4f, 1e-5f,
                   "matmul n=" + std::to_string(n) + " M=" + std::to_string(M));
      ref().matmul_f16(wh.data(), x.data(), want.data(), M, n, ldy, 0, rows);
      k().matmul_f16(wh.data(), x.data(), got.data(), M, n, ldy, 0, rows);
      expect_close(got.data(), want.data(), got.size(), 1e-4f, 1e-5f, "matmul_f16");
    }
  }
}

TEST_P(OpsTest, MatmulRowsEqualMatvec) {
  // The batched product of M rows is the M single-row products.
  const size_t n = 172, rows = 37, M = 6;
  const auto w = randn(rows * n, 9), x = randn(M * n, 10);
  std::vector<float> y(M * rows), yv(rows);
  k().matmul_f32(w.data(), x.data(), y.data(), M, n, rows, 0, rows);
  for (size_t m = 0; m < M; ++m) {
    k().matvec_f32(w.data(), x.data() + m * n, yv.data(), n, 0, rows);
    expect_close(y.data() + m * rows, yv.data(), rows, 1e-5f, 1e-5f, "row " + std::to_string(m));
  }
}

TEST_P(OpsTest, Rmsnorm) {
  for (size_t n : kSizes) {
    const auto x = randn(n, 11), w = randn(n, 12);
    std::vector<float> want(n), got(n);
    ref().rmsnorm(want.data(), x.data(), w.data(), n, 1e-5f);
    k().rmsnorm(got.data(), x.data(), w.data(), n, 1e-5f);
    expect_close(got.data(), want.data(), n, 1e-6f, 1e-5f, "rmsnorm n=" + std::to_string(n));
    // In place.
    std::vector<float> inplace = x;
    k().rmsnorm(inplace.data(), inplace.data(), w.data(), n, 1e-5f);
    expect_close(inplace.data(), want.data(), n, 1e-6f, 1e-5f, "rmsnorm in place");
  }
}

TEST_P(OpsTest, Softmax) {
  for (size_t n : kSizes) {
    auto want = randn(n, 13, 5.0f);
    want[n / 2] = 80.0f;  // large values must not overflow: the max is subtracted
    auto got = want;
    ref().softmax(want.data(), n);
    k().softmax(got.data(), n);
    expect_close(got.data(), want.data(), n, 1e-7f, 1e-5f, "softmax n=" + std::to_string(n));
    double sum = 0;
    for (float p : got) sum += p;
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
}

TEST_P(OpsTest, Swiglu) {
  for (size_t n : kSizes) {
    auto want = randn(n, 14, 4.0f);
    const auto up = randn(n, 15);
    auto got = want;
    ref().swiglu(want.data(), up.data(), n);
    k().swiglu(got.data(), up.data(), n);
    expect_close(got.data(), want.data(), n, 1e-6f, 1e-5f, "swiglu n=" + std::to_string(n));
  }
}

TEST_P(OpsTest, Add) {
  for (size_t n : kSizes) {
    auto want = randn(n, 16);
    const auto x = randn(n, 17);
    auto got = want;
    ref().add(want.data(), x.data(), n);
    k().add(got.data(), x.data(), n);
    expect_close(got.data(), want.data(), n, 0.0f, 0.0f, "add");
  }
}

TEST_P(OpsTest, Attention) {
  for (size_t hd : {size_t(4), size_t(8), size_t(16), size_t(20), size_t(64), size_t(128)}) {
    for (size_t n : {size_t(1), size_t(2), size_t(17), size_t(64), size_t(65), size_t(100), size_t(300)}) {
      const size_t stride = hd * 3 + 5;  // interleaved heads, odd stride
      const auto q = randn(hd, 18), kc = randn(n * stride, 19), vc = randn(n * stride, 20);
      const float scale = 1.0f / std::sqrt(float(hd));
      std::vector<float> att_want(n), att_got(n), want(hd), got(hd);
      ref().attention(q.data(), kc.data(), vc.data(), stride, hd, n, scale, 0.0f, att_want.data(), want.data());
      k().attention(q.data(), kc.data(), vc.data(), stride, hd, n, scale, 0.0f, att_got.data(), got.data());
      const std::string what = "attention hd=" + std::to_string(hd) + " n=" + std::to_string(n);
      expect_close(att_got.data(), att_want.data(), n, 1e-6f, 1e-4f, what + " probabilities");
      expect_close(got.data(), want.data(), hd, 1e-5f, 1e-4f, what + " output");
      // Without a probability buffer: the same output, bit for bit.
      std::vector<float> got2(hd);
      k().attention(q.data(), kc.data(), vc.data(), stride, hd, n, scale, 0.0f, nullptr, got2.data());
      ASSERT_EQ(std::memcmp(got2.data(), got.data(), hd * sizeof(float)), 0) << what;
    }
  }
}

TEST_P(OpsTest, AttentionOverAnF16Cache) {
  for (size_t hd : {size_t(4), size_t(8), size_t(20), size_t(64)}) {
    for (size_t n : {size_t(1), size_t(17), size_t(100)}) {
      const size_t stride = hd * 2 + 3;
      const auto q = randn(hd, 30);
      std::vector<uint16_t> kc(n * stride), vc(n * stride);
      const auto kf = randn(n * stride, 31), vf = randn(n * stride, 32);
      for (size_t i = 0; i < kc.size(); ++i) {
        kc[i] = ops::f32_to_f16(kf[i]);
        vc[i] = ops::f32_to_f16(vf[i]);
      }
      const float scale = 1.0f / std::sqrt(float(hd));
      std::vector<float> att_want(n), att_got(n), want(hd), got(hd);
      ref().attention_f16(q.data(), kc.data(), vc.data(), stride, hd, n, scale, 0.0f, att_want.data(), want.data());
      k().attention_f16(q.data(), kc.data(), vc.data(), stride, hd, n, scale, 0.0f, att_got.data(), got.data());
      const std::string what = "attention_f16 hd=" + std::to_string(hd) + " n=" + std::to_string(n);
      // The probabilities are rounded to f16: one f16 step apart at most.
      expect_close(att_got.data(), att_want.data(), n, 1e-6f, 1e-3f, what + " probabilities");
      expect_close(got.data(), want.data(), hd, 1e-4f, 1e-3f, what + " output");
      double sum = 0;
      for (float p : att_got) sum += p;
      EXPECT_NEAR(sum, 1.0, 2e-3) << what;
    }
  }
}

// Soft-capped scores (Gemma 2): against the scalar reference, and the
// reference against a direct computation from its definition.
TEST_P(OpsTest, AttentionWithSoftcap) {
  for (size_t hd : {size_t(8), size_t(20), size_t(64)}) {
    for (size_t n : {size_t(1), size_t(17), size_t(100)}) {
      const size_t stride = hd + 3;
      const auto q = randn(hd, 40, 3.0f), kc = randn(n * stride, 41, 3.0f), vc = randn(n * stride, 42);
      const float scale = 1.0f / std::sqrt(float(hd)), cap = 2.5f;
      std::vector<float> att_want(n), att_got(n), want(hd), got(hd);
      ref().attention(q.data(), kc.data(), vc.data(), stride, hd, n, scale, cap, att_want.data(), want.data());
      k().attention(q.data(), kc.data(), vc.data(), stride, hd, n, scale, cap, att_got.data(), got.data());
      const std::string what = "softcap attention hd=" + std::to_string(hd) + " n=" + std::to_string(n);
      expect_close(att_got.data(), att_want.data(), n, 1e-6f, 1e-4f, what + " probabilities");
      expect_close(got.data(), want.data(), hd, 1e-5f, 1e-4f, what + " output");
      // From the definition, in double.
      std::vector<double> sc(n);
      double mx = -1e300, sum = 0;
      for (size_t t = 0; t < n; ++t) {
        double d = 0;
        for (size_t i = 0; i < hd; ++i) d += double(q[i]) * kc[t * stride + i];
        sc[t] = cap * std::tanh(d * scale / cap);
        mx = std::max(mx, sc[t]);
      }
      for (size_t t = 0; t < n; ++t) sum += std::exp(sc[t] - mx);
      for (size_t t = 0; t < n; ++t) ASSERT_NEAR(att_want[t], std::exp(sc[t] - mx) / sum, 1e-5) << what << " t=" << t;
      // The f16 cache applies the same cap.
      std::vector<uint16_t> k16(kc.size()), v16(vc.size());
      for (size_t i = 0; i < kc.size(); ++i) k16[i] = ops::f32_to_f16(kc[i]), v16[i] = ops::f32_to_f16(vc[i]);
      std::vector<float> a16_want(n), a16_got(n), o16_want(hd), o16_got(hd);
      ref().attention_f16(q.data(), k16.data(), v16.data(), stride, hd, n, scale, cap, a16_want.data(), o16_want.data());
      k().attention_f16(q.data(), k16.data(), v16.data(), stride, hd, n, scale, cap, a16_got.data(), o16_got.data());
      expect_close(a16_got.data(), a16_want.data(), n, 1e-6f, 1e-3f, what + " f16 probabilities");
      expect_close(o16_got.data(), o16_want.data(), hd, 1e-4f, 1e-3f, what + " f16 output");
      for (size_t t = 0; t < n; ++t) ASSERT_NEAR(a16_want[t], std::exp(sc[t] - mx) / sum, 2e-3) << what << " f16 t=" << t;
    }
  }
}

TEST_P(OpsTest, Layernorm) {
  for (size_t n : kSizes) {
    const auto x = randn(n, 43, 2.0f), w = randn(n, 44), b = randn(n, 45);
    for (const float* bias : {b.data(), static_cast<const float*>(nullptr)}) {
      std::vector<float> want(n), got(n);
      ref().layernorm(want.data(), x.data(), w.data(), bias, n, 1e-5f);
      k().layernorm(got.data(), x.data(), w.data(), bias, n, 1e-5f);
      const std::string what = "layernorm n=" + std::to_string(n) + (bias ? " with bias" : "");
      expect_close(got.data(), want.data(), n, 1e-6f, 1e-5f, what);
      // The reference against its definition.
      double mean = 0, var = 0;
      for (float v : x) mean += v;
      mean /= double(n);
      for (float v : x) var += (v - mean) * (v - mean);
      var /= double(n);
      for (size_t i = 0; i < n; ++i) {
        const double y = (x[i] - mean) / std::sqrt(var + 1e-5) * w[i] + (bias ? bias[i] : 0.0);
        ASSERT_NEAR(want[i], y, 1e-5 * (1 + std::fabs(y))) << what << " i=" << i;
      }
      // In place.
      std::vector<float> inplace = x;
      k().layernorm(inplace.data(), inplace.data(), w.data(), bias, n, 1e-5f);
      expect_close(inplace.data(), got.data(), n, 0.0f, 0.0f, what + " in place");
    }
  }
}

TEST_P(OpsTest, GeluAndGeglu) {
  for (size_t n : kSizes) {
    const auto x = randn(n, 46, 3.0f), up = randn(n, 47);
    std::vector<float> want = x, got = x;
    ref().gelu(want.data(), n);
    k().gelu(got.data(), n);
    const std::string what = "gelu n=" + std::to_string(n);
    expect_close(got.data(), want.data(), n, 1e-6f, 1e-5f, what);
    for (size_t i = 0; i < n; ++i) {
      const double v = x[i], y = 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
      ASSERT_NEAR(want[i], y, 1e-6 * (1 + std::fabs(y))) << what << " x=" << v;
    }
    std::vector<float> gwant = x, ggot = x;
    ref().geglu(gwant.data(), up.data(), n);
    k().geglu(ggot.data(), up.data(), n);
    expect_close(ggot.data(), gwant.data(), n, 1e-6f, 1e-5f, "geglu n=" + std::to_string(n));
    for (size_t i = 0; i < n; ++i) ASSERT_NEAR(gwant[i], want[i] * up[i], 1e-6 * (1 + std::fabs(want[i] * up[i])));
  }
}

TEST_P(OpsTest, F16ToF32) {
  std::vector<uint16_t> h(70000 % 65536 + 3);
  for (size_t i = 0; i < h.size(); ++i) h[i] = uint16_t(i * 7919u);
  std::vector<float> want(h.size()), got(h.size());
  ref().f16_to_f32(h.data(), want.data(), h.size());
  k().f16_to_f32(h.data(), got.data(), h.size());
  for (size_t i = 0; i < h.size(); ++i) {
    if (std::isnan(want[i])) {
      ASSERT_TRUE(std::isnan(got[i]));
    } else {
      ASSERT_EQ(got[i], want[i]) << "half 0x" << std::hex << h[i];
    }
  }
}

std::string isa_name(const ::testing::TestParamInfo<const ops::Kernels*>& info) { return info.param->isa; }

INSTANTIATE_TEST_SUITE_P(AllIsas, OpsTest, ::testing::ValuesIn(available_kernels()), isa_name);

// ---------------------------------------------------------------- scalar helpers

TEST(Conversions, F16RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = ops::f16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(ops::f32_to_f16(f), h) << "half 0x" << std::hex << h;
  }
}

TEST(Conversions, F16KnownValues) {
  EXPECT_EQ(ops::f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(ops::f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(ops::f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(ops::f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(ops::f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie -> even
  EXPECT_EQ(ops::f32_to_f16(1e6f), 0x7c00);                          // overflow -> inf
  EXPECT_EQ(ops::bf16_to_f32(0x3f80), 1.0f);
}

TEST(Rope, RotatesAdjacentPairs) {
  // Two heads of size 4; angles 90 degrees for pair 0 and 0 for pair 1.
  float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const float c[2] = {0.0f, 1.0f}, s[2] = {1.0f, 0.0f};
  ops::rope(x, 2, 4, c, s);
  const float want[8] = {-2, 1, 3, 4, -6, 5, 7, 8};
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(x[i], want[i]) << i;
}

TEST(Rope, NeoxRotatesHalvesPairwise) {
  // head_dim 4: pairs (0, 2) and (1, 3); pair 0 by 90 degrees, pair 1 not at all.
  float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const float c[2] = {0.0f, 1.0f}, s[2] = {1.0f, 0.0f};
  ops::rope_neox(x, 2, 4, c, s);
  const float want[8] = {-3, 2, 1, 4, -7, 6, 5, 8};
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(x[i], want[i]) << i;
}

TEST(Cpu, ProbeIsConsistent) {
  const CpuFeatures& f = cpu_features();
  EXPECT_TRUE(f.sse2);  // every x86-64 CPU
  if (f.avx512) {
    EXPECT_TRUE(f.avx2);
  }
  const auto tables = available_kernels();
  EXPECT_STREQ(tables.front()->isa, "scalar");
  EXPECT_THROW(kernels_by_name("neon"), Error);
  EXPECT_STREQ(kernels_by_name("scalar").isa, "scalar");
}

}  // namespace
}  // namespace qkv
