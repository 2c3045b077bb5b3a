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
#include "ops/platform.h"
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

TEST(Panels, LayoutIsColumnsOfSixteenRows) {
  const size_t rows = 2 * ops::kPanelRows, n = 3;
  std::vector<float> w(rows * n), packed(rows * n, -1.0f);
  for (size_t r = 0; r < rows; ++r)
    for (size_t k = 0; k < n; ++k) w[r * n + k] = float(r * 100 + k);
  ops::pack_panels(w.data(), packed.data(), rows, n);
  ASSERT_EQ(ops::kPanelRows, 16u);
  EXPECT_EQ(packed[0], 0.0f);     // panel 0, column 0, row 0
  EXPECT_EQ(packed[1], 100.0f);   // row 1
  EXPECT_EQ(packed[16], 1.0f);    // column 1, row 0
  EXPECT_EQ(packed[47], 1502.0f);  // column 2, row 15
  EXPECT_EQ(packed[48], 1600.0f);  // panel 1: row 16, column 0
  EXPECT_EQ(packed[95], 3102.0f);
}

TEST_P(OpsTest, PanelProductsEqualTheUnpackedReference) {
  // Panel counts odd and even (AVX-512 takes two at a time), token counts
  // around every ISA's tile (2, 6, 12 rows), widths not a multiple of any vector.
  const size_t P = 5, rows = P * ops::kPanelRows;
  for (size_t n : {size_t(1), size_t(3), size_t(16), size_t(17), size_t(172), size_t(257)}) {
    const auto w = randn(rows * n, 21), x = randn(25 * n, 22);
    const auto wh = to_f16(w);
    std::vector<float> pw(rows * n);
    std::vector<uint16_t> ph(rows * n);
    ops::pack_panels(w.data(), pw.data(), rows, n);
    ops::pack_panels(wh.data(), ph.data(), rows, n);
    for (size_t M : {size_t(1), size_t(2), size_t(3), size_t(5), size_t(6), size_t(7), size_t(11), size_t(12),
                     size_t(13), size_t(25)}) {
      for (auto [p0, p1] : {std::pair<size_t, size_t>{0, P}, {1, P}, {1, 4}, {2, 3}}) {
        const size_t ldy = rows + 5, r0 = p0 * ops::kPanelRows, r1 = p1 * ops::kPanelRows;
        const std::string what = "n=" + std::to_string(n) + " M=" + std::to_string(M) + " panels [" +
                                 std::to_string(p0) + ", " + std::to_string(p1) + ")";
        std::vector<float> want(M * ldy, 0.0f), want16(M * ldy, 0.0f), got(M * ldy, -7.0f);
        ref().matmul_f32(w.data(), x.data(), want.data(), M, n, ldy, r0, r1);
        ref().matmul_f16(wh.data(), x.data(), want16.data(), M, n, ldy, r0, r1);
        k().matmul_f32_panels(pw.data(), x.data(), got.data(), M, n, ldy, p0, p1);
        for (size_t m = 0; m < M; ++m) {
          for (size_t r = 0; r < ldy; ++r) {
            if (r < r0 || r >= r1) { ASSERT_EQ(got[m * ldy + r], -7.0f) << what << ": wrote outside its rows"; }
          }
          expect_close(got.data() + m * ldy + r0, want.data() + m * ldy + r0, r1 - r0, 1e-4f, 1e-5f, "f32 " + what);
        }
        k().matmul_f16_panels(ph.data(), x.data(), got.data(), M, n, ldy, p0, p1);
        for (size_t m = 0; m < M; ++m)
          expect_close(got.data() + m * ldy + r0, want16.data() + m * ldy + r0, r1 - r0, 1e-4f, 1e-5f, "f16 " + what);
        if (M != 1) continue;
        std::vector<float> v(rows, -7.0f);
        k().matvec_f32_panels(pw.data(), x.data(), v.data(), n, p0, p1);
        for (size_t r = 0; r < rows; ++r) {
          if (r < r0 || r >= r1) { ASSERT_EQ(v[r], -7.0f) << what << ": matvec wrote outside its rows"; }
        }
        expect_close(v.data() + r0, want.data() + r0, r1 - r0, 1e-4f, 1e-5f, "matvec f32 " + what);
        k().matvec_f16_panels(ph.data(), x.data(), v.data(), n, p0, p1);
        expect_close(v.data() + r0, want16.data() + r0, r1 - r0, 1e-4f, 1e-5f, "matvec f16 " + what);
      }
    }
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

}  // namespace
namespace test {  // tests/hooks_avx2.cpp, tests/hooks_avx512.cpp
size_t vexp_mismatches_avx2(uint32_t first, uint32_t stride, size_t count, uint32_t* first_bad);
size_t reduction_mismatches_avx2(size_t count, uint32_t seed);
size_t vexp_mismatches_avx512(uint32_t first, uint32_t stride, size_t count, uint32_t* first_bad);
size_t reduction_mismatches_avx512(size_t count, uint32_t seed);
}  // namespace test
namespace {

// Each ISA's e^x (vexp: on AVX-512 vscalefps does xsimd::exp's last step)
// gives xsimd::exp's bits below 88: on a spread of every float's bit
// patterns, on every float where exp leaves the normal range (x near -87.68,
// the last k before 0), and densely below -1. Its lane sums give
// xsimd::hadd's and its lane maxima the fold of simd_base.h, NaN, infinities
// and signed zeros included.
void check_hooks(size_t (*vexp_mismatches)(uint32_t, uint32_t, size_t, uint32_t*),
                 size_t (*reduction_mismatches)(size_t, uint32_t)) {
  uint32_t bad = 0;
  EXPECT_EQ(vexp_mismatches(0, 4099, size_t(1) << 20, &bad), 0u) << "first at bits 0x" << std::hex << bad;
  const float lo = -88.5f, one = -1.0f;
  uint32_t lo_bits, one_bits;
  std::memcpy(&lo_bits, &lo, 4);
  std::memcpy(&one_bits, &one, 4);
  // Every float in [-90.5, -86.5] (a negative float's bits grow as it falls).
  EXPECT_EQ(vexp_mismatches(lo_bits - (1u << 18), 1, size_t(1) << 19, &bad), 0u) << std::hex << bad;
  // One in 7 from -1 down to -1.88 (a softmax's typical arguments).
  EXPECT_EQ(vexp_mismatches(one_bits, 7, size_t(1) << 20, &bad), 0u) << std::hex << bad;
  EXPECT_EQ(reduction_mismatches(100000, 5), 0u);
}

TEST(Ops, Avx2HooksAreXsimdBitForBit) {
  if (!ops::cpu_features().avx2) GTEST_SKIP() << "this CPU has no AVX2";
  check_hooks(test::vexp_mismatches_avx2, test::reduction_mismatches_avx2);
}

TEST(Ops, Avx512HooksAreXsimdBitForBit) {
  if (!ops::cpu_features().avx512) GTEST_SKIP() << "this CPU has no AVX-512";
  check_hooks(test::vexp_mismatches_avx512, test::reduction_mismatches_avx512);
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

// One KV head's cache in the kernels' layout (ops.h): K in transposed panels
// of kAttnTile positions, V in rows padded to attention_ldv; the unused tail
// of the last panel holds NaN, which no visible score may touch.
template <class T>
struct PanelCache {
  size_t hd, n;
  std::vector<float> k, v;  // (n, hd) row-major, the values as stored (f16-rounded for T = f16)
  std::vector<T> kt, vr;
  PanelCache(size_t hd_, size_t n_, uint32_t seed, float kscale = 1.0f) : hd(hd_), n(n_) {
    const size_t T_ = ops::kAttnTile, tiles = (n + T_ - 1) / T_, ldv = ops::attention_ldv(hd);
    k = randn(n * hd, seed, kscale);
    v = randn(n * hd, seed + 1);
    kt.assign(tiles * hd * T_, store(NAN));
    vr.assign(tiles * T_ * ldv, store(0.0f));
    for (size_t t = 0; t < n; ++t)
      for (size_t i = 0; i < hd; ++i) {
        kt[(t / T_) * hd * T_ + i * T_ + t % T_] = store(k[t * hd + i]);
        vr[t * ldv + i] = store(v[t * hd + i]);
        k[t * hd + i] = load(kt[(t / T_) * hd * T_ + i * T_ + t % T_]);
        v[t * hd + i] = load(vr[t * ldv + i]);
      }
  }
  // Positions [t0, t1) (t0 a multiple of kAttnTile) copied alone, as a
  // chunk of the engine's cache, between guards of NaN keys and values: a
  // kernel given the piece that reads outside it gets NaN.
  struct Piece {
    std::vector<T> k, v;
    size_t guard_k, guard_v;
    const T* kt() const { return k.data() + guard_k; }
    const T* vr() const { return v.data() + guard_v; }
  };
  Piece piece(size_t t0, size_t t1) const {
    const size_t T_ = ops::kAttnTile, ldv = ops::attention_ldv(hd);
    const size_t panels = (t1 - t0 + T_ - 1) / T_;
    Piece p{std::vector<T>((panels + 2) * hd * T_, store(NAN)), std::vector<T>((panels + 2) * T_ * ldv, store(NAN)),
            hd * T_, T_ * ldv};
    std::copy_n(kt.begin() + std::ptrdiff_t(t0 / T_ * hd * T_), panels * hd * T_, p.k.begin() + std::ptrdiff_t(p.guard_k));
    std::copy_n(vr.begin() + std::ptrdiff_t(t0 * ldv), (t1 - t0) * ldv, p.v.begin() + std::ptrdiff_t(p.guard_v));
    return p;
  }
  static T store(float x) {
    if constexpr (sizeof(T) == 2) return ops::f32_to_f16(x);
    else return x;
  }
  static float load(T x) {
    if constexpr (sizeof(T) == 2) return ops::f16_to_f32(x);
    else return x;
  }
};

// Query rows with their visible ranges and online-softmax state.
struct QueryRows {
  size_t hd, ldv;
  std::vector<float> q;
  std::vector<const float*> qp;
  std::vector<int32_t> lo, hi;
  std::vector<float> m, l, o;
  QueryRows(size_t hd_, const std::vector<std::pair<int, int>>& ranges, uint32_t seed, float qscale = 1.0f)
      : hd(hd_), ldv(ops::attention_ldv(hd_)) {
    const size_t rows = ranges.size();
    q = randn(rows * hd, seed, qscale);
    for (size_t r = 0; r < rows; ++r) {
      qp.push_back(q.data() + r * hd);
      lo.push_back(ranges[r].first);
      hi.push_back(ranges[r].second);
    }
    reset();
  }
  void reset() {
    m.assign(qp.size(), -INFINITY);
    l.assign(qp.size(), 0.0f);
    o.assign(qp.size() * ldv, 0.0f);
  }
  ops::AttentionRows rows() { return {qp.size(), qp.data(), lo.data(), hi.data(), m.data(), l.data(), o.data(), ldv}; }
  // Row r's output, o / l.
  std::vector<float> out(size_t r) const {
    std::vector<float> y(hd);
    for (size_t i = 0; i < hd; ++i) y[i] = o[r * ldv + i] / l[r];
    return y;
  }
};

// softmax(q . k_t * scale, capped) v over [lo, hi), in double from the stored
// values (the query rounded to f16 first where the cache is f16).
std::vector<double> attention_definition(const float* q, const std::vector<float>& k, const std::vector<float>& v,
                                         size_t hd, int lo, int hi, float scale, float cap, bool f16) {
  std::vector<double> s(size_t(hi - lo)), y(hd, 0.0);
  double mx = -1e300, sum = 0;
  for (int t = lo; t < hi; ++t) {
    double d = 0;
    for (size_t i = 0; i < hd; ++i) {
      const float qi = f16 ? ops::f16_to_f32(ops::f32_to_f16(q[i])) : q[i];
      d += double(qi) * k[size_t(t) * hd + i];
    }
    d *= scale;
    if (cap > 0) d = cap * std::tanh(d / cap);
    s[size_t(t - lo)] = d;
    mx = std::max(mx, d);
  }
  for (double& x : s) sum += (x = std::exp(x - mx));
  for (int t = lo; t < hi; ++t)
    for (size_t i = 0; i < hd; ++i) y[i] += s[size_t(t - lo)] / sum * v[size_t(t) * hd + i];
  return y;
}

// Causal rows as a prefill block sees them: `rows` queries at the last
// positions of n keys (several heads per position with GQA), each seeing
// the last `window` keys (0: all).
std::vector<std::pair<int, int>> causal_rows(size_t n, size_t tokens, size_t group, int window) {
  std::vector<std::pair<int, int>> r;
  for (size_t i = 0; i < tokens; ++i) {
    const int p = int(n - tokens + i);
    for (size_t g = 0; g < group; ++g) r.push_back({window > 0 && p >= window ? p - window + 1 : 0, p + 1});
  }
  return r;
}

// Runs attention of `rows` over [t0, t1) of a cache holding positions t0..
// (kt, vr): f32 in one call; f16 in its three phases with a score buffer, m
// and l final in between (so o is normalised: l is set to 1 afterwards).
template <class T>
void attend(const ops::Kernels& k, QueryRows& rows, const T* kt, const T* vr, size_t t0, size_t t1, float scale,
            float cap) {
  std::vector<float> scratch(ops::attention_scratch(rows.qp.size(), rows.hd), NAN);
  if constexpr (sizeof(T) == 2) {
    const size_t lds = (t1 - t0 + ops::kAttnTile - 1) / ops::kAttnTile * ops::kAttnTile;
    std::vector<float> s(rows.qp.size() * lds, NAN);
    k.attention_scores_f16(rows.rows(), kt, rows.hd, t0, t1, scale, cap, s.data(), lds, scratch.data());
    k.attention_weights_f16(rows.rows(), t0, t1, s.data(), lds);
    k.attention_values_f16(rows.rows(), vr, rows.hd, t0, t1, s.data(), lds, scratch.data());
    for (float& l : rows.l) l = l > 0 ? 1.0f : 0.0f;
  } else {
    k.attention_f32(rows.rows(), kt, vr, rows.hd, t0, t1, scale, cap, scratch.data());
  }
}

template <class T>
void check_attention(const ops::Kernels& k, bool f16) {
  struct Shape {
    size_t tokens, group;
  };
  for (size_t hd : {size_t(4), size_t(20), size_t(64), size_t(80), size_t(128)}) {
    for (size_t n : {size_t(1), size_t(17), size_t(64), size_t(65), size_t(300)}) {
      for (Shape sh : {Shape{1, 1}, Shape{1, 4}, Shape{3, 1}, Shape{5, 4}, Shape{17, 2}}) {
        if (sh.tokens > n) continue;
        for (int window : {0, 7, 64}) {
          for (float cap : {0.0f, 2.5f}) {
            const std::string what = std::string(f16 ? "f16" : "f32") + " hd=" + std::to_string(hd) +
                                     " n=" + std::to_string(n) + " tokens=" + std::to_string(sh.tokens) + " group=" +
                                     std::to_string(sh.group) + " window=" + std::to_string(window) + " cap=" +
                                     std::to_string(cap);
            const float scale = 1.0f / std::sqrt(float(hd)), big = cap > 0 ? 3.0f : 1.0f;
            PanelCache<T> c(hd, n, uint32_t(hd * 7 + n), big);
            QueryRows got(hd, causal_rows(n, sh.tokens, sh.group, window), uint32_t(n + 3), big), want = got;
            attend(k, got, c.kt.data(), c.vr.data(), 0, n, scale, cap);
            attend(ref(), want, c.kt.data(), c.vr.data(), 0, n, scale, cap);
            // f16: the probabilities are rounded to f16, where a last-bit
            // difference of the f32 value may move one by an f16 step.
            const float atol = f16 ? 2e-4f : 2e-5f, rtol = f16 ? 1e-3f : 1e-4f;
            for (size_t r = 0; r < got.qp.size(); ++r) {
              ASSERT_NEAR(got.m[r], want.m[r], 1e-4f * (1 + std::fabs(want.m[r]))) << what << " row " << r;
              const auto y = got.out(r), yr = want.out(r);
              expect_close(y.data(), yr.data(), hd, atol, rtol, what + " row " + std::to_string(r) + " vs reference");
              const auto d = attention_definition(got.qp[r], c.k, c.v, hd, got.lo[r], got.hi[r], scale, cap, f16);
              for (size_t i = 0; i < hd; ++i)
                ASSERT_NEAR(y[i], d[i], (f16 ? 2e-3 : 2e-5) + 1e-4 * std::fabs(d[i]))
                    << what << " row " << r << " vs definition, i=" << i;
            }
            if (n <= ops::kAttnTile) continue;
            // The keys in two calls, split at a tile boundary, each given only
            // its own piece of the cache (as the engine's chunks): the same output.
            const size_t cut = ops::kAttnTile;
            const auto head = c.piece(0, cut), tail = c.piece(cut, n);
            QueryRows two = want;
            two.reset();
            if constexpr (sizeof(T) == 2) {
              // Each phase per range: the scores (m carried over), the weights with the final m
              // (l carried over), the values with the final l.
              const size_t lds = (n + ops::kAttnTile - 1) / ops::kAttnTile * ops::kAttnTile;
              std::vector<float> sc(two.qp.size() * lds), scratch(ops::attention_scratch(two.qp.size(), hd));
              k.attention_scores_f16(two.rows(), head.kt(), hd, 0, cut, scale, cap, sc.data(), lds, scratch.data());
              k.attention_scores_f16(two.rows(), tail.kt(), hd, cut, n, scale, cap, sc.data() + cut, lds, scratch.data());
              k.attention_weights_f16(two.rows(), 0, cut, sc.data(), lds);
              k.attention_weights_f16(two.rows(), cut, n, sc.data() + cut, lds);
              k.attention_values_f16(two.rows(), head.vr(), hd, 0, cut, sc.data(), lds, scratch.data());
              k.attention_values_f16(two.rows(), tail.vr(), hd, cut, n, sc.data() + cut, lds, scratch.data());
              for (float& l : two.l) l = l > 0 ? 1.0f : 0.0f;
            } else {
              std::vector<float> scratch(ops::attention_scratch(two.qp.size(), hd));
              k.attention_f32(two.rows(), head.kt(), head.vr(), hd, 0, cut, scale, cap, scratch.data());
              k.attention_f32(two.rows(), tail.kt(), tail.vr(), hd, cut, n, scale, cap, scratch.data());
            }
            for (size_t r = 0; r < got.qp.size(); ++r) {
              const auto y = got.out(r), y2 = two.out(r);
              // (the SIMD kernels give the same bits; the scalar reference's sums
              // differ in the last bit, which an f16 rounding may widen)
              expect_close(y2.data(), y.data(), hd, f16 ? atol : 1e-6f, f16 ? rtol : 1e-5f,
                           what + " two calls, row " + std::to_string(r));
            }
            if constexpr (sizeof(T) == 4) {
              // Two partial states, merged as split-K merges them.
              QueryRows a = want, b = want;
              a.reset(), b.reset();
              attend(k, a, head.kt(), head.vr(), 0, cut, scale, cap);
              attend(k, b, tail.kt(), tail.vr(), cut, n, scale, cap);
              for (size_t r = 0; r < got.qp.size(); ++r) {
                const auto y = got.out(r);
                const float mx = std::max(a.m[r], b.m[r]);
                const float wa = a.l[r] > 0 ? std::exp(a.m[r] - mx) : 0.0f, wb = b.l[r] > 0 ? std::exp(b.m[r] - mx) : 0.0f;
                const float l = a.l[r] * wa + b.l[r] * wb;
                for (size_t i = 0; i < hd; ++i) {
                  const float merged = (a.o[r * a.ldv + i] * wa + b.o[r * b.ldv + i] * wb) / l;
                  ASSERT_NEAR(merged, y[i], 1e-6f + 1e-5f * std::fabs(y[i])) << what << " merged, row " << r;
                }
              }
            }
          }
        }
      }
    }
  }
}

TEST_P(OpsTest, AttentionF32) { check_attention<float>(k(), false); }
TEST_P(OpsTest, AttentionF16) { check_attention<uint16_t>(k(), true); }

// Rows that see nothing of the keys given keep their state; the keys past
// every row's range (NaN in the test cache) are never read into a result.
TEST_P(OpsTest, AttentionLeavesRowsWithoutVisibleKeysAlone) {
  const size_t hd = 16, n = 200;
  PanelCache<float> c(hd, n, 5);
  QueryRows rows(hd, {{0, 10}, {150, 200}, {0, 1}, {64, 128}}, 6);
  std::vector<float> scratch(ops::attention_scratch(4, hd));
  const auto piece = c.piece(128, 192);  // keys past 192 and before 128 are NaN guards
  k().attention_f32(rows.rows(), piece.kt(), piece.vr(), hd, 128, 192, 0.25f, 0.0f, scratch.data());
  for (size_t r : {size_t(0), size_t(2), size_t(3)}) {
    EXPECT_EQ(rows.m[r], -INFINITY) << r;
    EXPECT_EQ(rows.l[r], 0.0f) << r;
    for (size_t i = 0; i < hd; ++i) ASSERT_EQ(rows.o[r * rows.ldv + i], 0.0f) << r;
  }
  const auto d = attention_definition(rows.qp[1], c.k, c.v, hd, 150, 192, 0.25f, 0.0f, false);
  const auto y = rows.out(1);
  for (size_t i = 0; i < hd; ++i) ASSERT_NEAR(y[i], d[i], 1e-5) << i;
  // One key, the cache's last: a full row of its value.
  QueryRows last(hd, {{199, 200}}, 7);
  k().attention_f32(last.rows(), c.kt.data(), c.vr.data(), hd, 0, n, 0.25f, 0.0f, scratch.data());
  const auto y1 = last.out(0);
  for (size_t i = 0; i < hd; ++i) ASSERT_NEAR(y1[i], c.v[199 * hd + i], 1e-6) << i;
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
    auto x = randn(n, 46, 3.0f);
    const auto up = randn(n, 47);
    if (n > 4) x[0] = -10.5f, x[1] = 10.0f, x[2] = 11.0f, x[3] = -10.0f;  // outside the table's range
    std::vector<float> want = x, got = x;
    ref().gelu(want.data(), n);
    k().gelu(got.data(), n);
    const std::string what = "gelu n=" + std::to_string(n);
    expect_close(got.data(), want.data(), n, 0.0f, 0.0f, what);  // one table, one rounding: the same bits
    for (size_t i = 0; i < n; ++i) {
      // llama.cpp's definition: the tanh approximation at x rounded to f16,
      // rounded to f16 (the table's float tanh may round the other way from
      // this double one: within an f16 step), 0 below -10, x above 10.
      const double v = x[i], h = ops::f16_to_f32(ops::f32_to_f16(x[i]));
      const double y = v <= -10 ? 0.0 : v >= 10 ? v : 0.5 * h * (1 + std::tanh(std::sqrt(2 / M_PI) * (h + 0.044715 * h * h * h)));
      ASSERT_NEAR(want[i], y, std::ldexp(1.0, -11) * std::fabs(y) + 1e-7) << what << " x=" << v;
    }
    std::vector<float> gwant = x, ggot = x;
    ref().geglu(gwant.data(), up.data(), n);
    k().geglu(ggot.data(), up.data(), n);
    expect_close(ggot.data(), gwant.data(), n, 0.0f, 0.0f, "geglu n=" + std::to_string(n));
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(gwant[i], want[i] * up[i]);
  }
}

// Every rounding case: halfway values (ties to even), subnormal halves,
// overflow to infinity, NaN, and both signs; the scalar conversion is exact.
TEST_P(OpsTest, F32ToF16) {
  std::vector<float> x;
  for (uint32_t h = 0; h < 0x7c00; h += 3) {
    const float a = ops::f16_to_f32(uint16_t(h)), b = ops::f16_to_f32(uint16_t(h + 1));
    for (float f : {a, (a + b) / 2, a + (b - a) / 4, -((a + b) / 2)}) x.push_back(f);
  }
  for (float f : {65504.0f, 65520.0f, 65519.0f, 1e9f, -1e9f, INFINITY, -INFINITY, NAN, 1e-9f, -0.0f}) x.push_back(f);
  x.push_back(1.0f);  // a count not a multiple of the vector width
  std::vector<uint16_t> want(x.size()), got(x.size());
  ref().f32_to_f16(x.data(), want.data(), x.size());
  k().f32_to_f16(x.data(), got.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) {
      ASSERT_TRUE(std::isnan(ops::f16_to_f32(got[i])));
    } else {
      ASSERT_EQ(got[i], want[i]) << x[i];
      ASSERT_EQ(want[i], ops::f32_to_f16(x[i]));
    }
  }
  EXPECT_EQ(ops::f32_to_f16(65520.0f), 0x7c00);  // rounds up to infinity
  EXPECT_EQ(ops::f32_to_f16(1.0f + 1.0f / 2048), 0x3c00);  // halfway: to even
  // The same values rounded to f16 and kept as floats (F16 weights'
  // activations), into another array and in place.
  std::vector<float> r(x.size(), -7.0f), inplace = x;
  k().round_f16(x.data(), r.data(), x.size());
  k().round_f16(inplace.data(), inplace.data(), inplace.size());
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) {
      ASSERT_TRUE(std::isnan(r[i]) && std::isnan(inplace[i]));
    } else {
      ASSERT_EQ(r[i], ops::f16_to_f32(want[i])) << x[i];
      ASSERT_EQ(inplace[i], r[i]) << x[i];
    }
  }
}

// Blocks of keys into the cache's panels: whole 16 x 16 tiles, edges in both
// directions, one row, one column, rows and columns far apart (the source a
// slice of wider rows, the destination panels of 64), every other value left
// alone; the f16 form rounds as f32_to_f16 does.
TEST_P(OpsTest, TransposeIntoKeyPanels) {
  const size_t lds = 70, ldd = 64;
  const std::vector<float> src = randn(64 * lds, 31);
  for (auto [rows, cols] : std::vector<std::pair<size_t, size_t>>{
           {64, 64}, {1, 64}, {64, 1}, {1, 1}, {17, 33}, {15, 70}, {48, 16}, {3, 7}, {2, 70}}) {
    std::vector<float> want(cols * ldd, -3.0f), got(cols * ldd, -3.0f);
    std::vector<uint16_t> want16(cols * ldd, 0x7777), got16(cols * ldd, 0x7777);
    ref().transpose_f32(src.data(), lds, want.data(), ldd, rows, cols);
    k().transpose_f32(src.data(), lds, got.data(), ldd, rows, cols);
    ref().transpose_f32_to_f16(src.data(), lds, want16.data(), ldd, rows, cols);
    k().transpose_f32_to_f16(src.data(), lds, got16.data(), ldd, rows, cols);
    for (size_t c = 0; c < cols; ++c)
      for (size_t r = 0; r < ldd; ++r) {
        const float expect = r < rows ? src[r * lds + c] : -3.0f;
        ASSERT_EQ(want[c * ldd + r], expect) << rows << "x" << cols << " r " << r << " c " << c;
        ASSERT_EQ(got[c * ldd + r], expect) << k().isa << " " << rows << "x" << cols << " r " << r << " c " << c;
        const uint16_t expect16 = r < rows ? ops::f32_to_f16(src[r * lds + c]) : uint16_t(0x7777);
        ASSERT_EQ(want16[c * ldd + r], expect16) << rows << "x" << cols << " r " << r << " c " << c;
        ASSERT_EQ(got16[c * ldd + r], expect16) << k().isa << " " << rows << "x" << cols << " r " << r << " c " << c;
      }
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
  if (f.avx512 || f.avx_vnni) {
    EXPECT_TRUE(f.avx2);
  }
  const auto tables = available_kernels();
  EXPECT_STREQ(tables.front()->isa, "scalar");
  // avxvnni runs where the CPU has AVX-VNNI, after avx2 and before avx512;
  // its float kernels are avx2's.
  std::vector<std::string> names;
  for (const ops::Kernels* k : tables) names.push_back(k->isa);
  const auto at = [&](const char* isa) { return std::find(names.begin(), names.end(), isa) - names.begin(); };
  EXPECT_EQ(at("avxvnni") < ptrdiff_t(names.size()), f.avx_vnni);
  if (f.avx_vnni) {
    EXPECT_LT(at("avx2"), at("avxvnni"));
    EXPECT_EQ(kernels_by_name("avxvnni").matmul_f32, kernels_by_name("avx2").matmul_f32);
    EXPECT_NE(kernels_by_name("avxvnni").q4_K.matmul_x8, kernels_by_name("avx2").q4_K.matmul_x8);
  } else {
    EXPECT_THROW(kernels_by_name("avxvnni"), Error);
  }
  if (f.avx512) {
    EXPECT_EQ(tables.back(), &kernels_by_name("avx512"));
  }
  EXPECT_THROW(kernels_by_name("neon"), Error);
  EXPECT_STREQ(kernels_by_name("scalar").isa, "scalar");
}

}  // namespace
}  // namespace qkv
