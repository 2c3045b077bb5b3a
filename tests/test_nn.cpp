// The engine's named ops (runtime/nn.h) and attention over the KV cache
// (runtime/attention.h), against plain double-precision computations from
// their definitions: odd widths, grouped-query heads, batches at an offset,
// sliding windows, soft-capping, and 1, 2 and 3 threads giving the same bits.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/runtime/attention.h"
#include "engine/runtime/cpu.h"
#include "engine/runtime/linear.h"
#include "engine/runtime/nn.h"
#include "engine/format/zeroed_memory.h"
#include "test_util.h"

namespace qkv {
namespace {

using test::randn;

Tensor f32_tensor(const std::string& name, const std::vector<float>& v, int64_t cols, int64_t rows = 1) {
  Tensor t;
  t.name = name;
  t.type = Type::F32;
  t.n_dims = rows > 1 ? 2 : 1;
  t.ne[0] = cols;
  t.ne[1] = rows;
  t.data = v.data();
  return t;
}

struct Ctx {
  explicit Ctx(int threads, const ops::Kernels& k = active_kernels()) : pool(threads), ctx{pool, k, threads, nullptr} {
    ctx.bscratch = bscratch.data();
    ctx.bscratch_bytes = bscratch.size() * sizeof(uint16_t);
    ctx.fscratch = fscratch.data();
    ctx.fscratch_bytes = fscratch.size() * sizeof(float);
  }
  ThreadPool pool;
  std::vector<uint16_t> bscratch = std::vector<uint16_t>(size_t(1) << 16);  // for BF16 weights' activations
  std::vector<float> fscratch = std::vector<float>(size_t(1) << 16);        // for F16 weights' activations
  ExecContext ctx;
};

TEST(Nn, RopeTableHoldsEveryPositionsAngles) {
  const int hd = 10, n_ctx = 37;
  const float base = 500000.0f;
  const std::vector<float> factors = {1, 1, 2, 4, 8};
  nn::RopeTable plain(hd, base, 8), scaled(hd, base, 8, nn::RopeStyle::Neox, factors.data());
  for (int p : {0, 1, 17, n_ctx - 1}) {
    plain.prepare(p, 1);
    scaled.prepare(p - p % 2, 2);  // a batch of two holding p
    for (int j = 0; j < hd / 2; ++j) {
      const double theta = std::pow(double(base), -2.0 * j / hd);
      EXPECT_NEAR(plain.cos(p)[j], std::cos(p * theta), 1e-5) << p << " " << j;
      EXPECT_NEAR(plain.sin(p)[j], std::sin(p * theta), 1e-5) << p << " " << j;
      EXPECT_NEAR(scaled.cos(p)[j], std::cos(p * theta / factors[size_t(j)]), 1e-5) << p << " " << j;
      EXPECT_NEAR(scaled.sin(p)[j], std::sin(p * theta / factors[size_t(j)]), 1e-5) << p << " " << j;
    }
  }
}

TEST(Nn, RopeRotatesQueriesAndKeysOfEachToken) {
  const int hd = 6, nq = 3, nk = 1, n = 4, pos = 5;
  for (nn::RopeStyle style : {nn::RopeStyle::Normal, nn::RopeStyle::Neox}) {
    nn::RopeTable table(hd, 10000.0f, n, style);
    auto q = randn(size_t(n * nq * hd), 1), k = randn(size_t(n * nk * hd), 2);
    const auto q0 = q, k0 = k;
    Ctx c(1);
    nn::rope(c.ctx, table, pos, n, 0, q.data(), nq, k.data(), nk);
    for (int i = 0; i < n; ++i)
      for (int h = 0; h < nq; ++h)
        for (int j = 0; j < hd / 2; ++j) {
          const size_t base = size_t((i * nq + h) * hd);
          const size_t a = base + (style == nn::RopeStyle::Neox ? size_t(j) : size_t(2 * j));
          const size_t b = base + (style == nn::RopeStyle::Neox ? size_t(j + hd / 2) : size_t(2 * j + 1));
          const double th = (pos + i) * std::pow(10000.0, -2.0 * j / hd);
          EXPECT_NEAR(q[a], q0[a] * std::cos(th) - q0[b] * std::sin(th), 1e-5);
          EXPECT_NEAR(q[b], q0[a] * std::sin(th) + q0[b] * std::cos(th), 1e-5);
        }
    EXPECT_NE(k, k0);
  }
}

TEST(Nn, NormsBiasAndGelu) {
  const int n = 3, dim = 19, heads = 2, hd = 7;
  const auto x = randn(size_t(n * dim), 3, 2.0f), w = randn(size_t(dim), 4), b = randn(size_t(dim), 5);
  const Tensor tw = f32_tensor("w", w, dim), tb = f32_tensor("b", b, dim);
  Ctx c(2);
  std::vector<float> y(x.size());
  nn::layernorm(c.ctx, tw, &tb, x.data(), y.data(), n, 1e-5f, 0);
  for (int i = 0; i < n; ++i) {
    double mean = 0, var = 0;
    for (int j = 0; j < dim; ++j) mean += x[size_t(i * dim + j)];
    mean /= dim;
    for (int j = 0; j < dim; ++j) var += std::pow(x[size_t(i * dim + j)] - mean, 2);
    var /= dim;
    for (int j = 0; j < dim; ++j)
      ASSERT_NEAR(y[size_t(i * dim + j)], (x[size_t(i * dim + j)] - mean) / std::sqrt(var + 1e-5) * w[size_t(j)] + b[size_t(j)], 1e-5);
  }
  std::vector<float> z = x;
  nn::add_bias(c.ctx, tb, z.data(), n, 0);
  for (size_t i = 0; i < z.size(); ++i) ASSERT_EQ(z[i], x[i] + b[i % size_t(dim)]);
  nn::gelu(c.ctx, z.data(), n, dim, 0);
  for (size_t i = 0; i < z.size(); ++i) {
    const double v = x[i] + b[i % size_t(dim)];
    // llama.cpp's GELU: its f16 table (ops.h), so within f16 rounding of the formula
    ASSERT_NEAR(z[i], 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))), 2e-3 * (1 + std::fabs(v)));
  }
  // q/k norms: each head of each token on its own.
  auto qk = randn(size_t(n * heads * hd), 6);
  const auto qk0 = qk, wh = randn(size_t(hd), 7);
  nn::rmsnorm_heads(c.ctx, f32_tensor("qn", wh, hd), qk.data(), n, heads, 1e-6f, 0);
  for (int r = 0; r < n * heads; ++r) {
    double ss = 0;
    for (int j = 0; j < hd; ++j) ss += std::pow(qk0[size_t(r * hd + j)], 2);
    const double s = 1.0 / std::sqrt(ss / hd + 1e-6);
    for (int j = 0; j < hd; ++j) ASSERT_NEAR(qk[size_t(r * hd + j)], qk0[size_t(r * hd + j)] * s * wh[size_t(j)], 1e-5);
  }
}

TEST(Nn, GatedFeedForwardUpProjections) {
  const int n = 2, dim = 13, hidden = 21;
  const auto x = randn(size_t(n * dim), 8), wg = randn(size_t(hidden * dim), 9), wu = randn(size_t(hidden * dim), 10);
  const Tensor tg = f32_tensor("gate", wg, dim, hidden), tu = f32_tensor("up", wu, dim, hidden);
  for (bool geglu : {false, true}) {
    Ctx c(3);
    std::vector<float> gate(size_t(n * hidden)), up(gate.size());
    (geglu ? nn::geglu_up : nn::swiglu_up)(c.ctx, tg, tu, x.data(), gate.data(), up.data(), n, 0);
    for (int i = 0; i < n; ++i)
      for (int r = 0; r < hidden; ++r) {
        double g = 0, u = 0;
        for (int j = 0; j < dim; ++j) {
          g += double(wg[size_t(r * dim + j)]) * x[size_t(i * dim + j)];
          u += double(wu[size_t(r * dim + j)]) * x[size_t(i * dim + j)];
        }
        // GELU as llama.cpp's f16 table (ops.h): at g rounded to f16, within an f16 step.
        const double h = geglu ? double(ops::f16_to_f32(ops::f32_to_f16(float(g)))) : g;
        const double act = geglu ? 0.5 * h * (1 + std::tanh(std::sqrt(2 / M_PI) * (h + 0.044715 * h * h * h)))
                                 : g / (1 + std::exp(-g));
        const double tol = geglu ? std::ldexp(1.0, -10) * std::fabs(act * u) + 1e-4 : 1e-4 * (1 + std::fabs(act * u));
        ASSERT_NEAR(gate[size_t(i * hidden + r)], act * u, tol) << (geglu ? "geglu" : "swiglu");
      }
  }
}

// Float weights as loaded: whole panels from the packed copy, the last rows
// (not a panel's worth) as stored, on 1-3 threads with the same bits, one
// token and a batch, against the double-precision product (for F16 and BF16,
// of the activations rounded to the weights' type, as llama.cpp multiplies them).
TEST(Linear, FloatWeightsFromPanelsAndTheirLastRows) {
  const int n = 37, rows = 3 * int(ops::kPanelRows) + 5;  // 48 rows in panels, 5 read as stored
  const auto w = randn(size_t(rows * n), 31), x = randn(size_t(13 * n), 32);
  std::vector<uint16_t> wh(w.size());
  for (size_t i = 0; i < w.size(); ++i) wh[i] = ops::f32_to_f16(w[i]);
  const size_t packed_rows = 3 * ops::kPanelRows;
  std::vector<float> pw(packed_rows * size_t(n));
  std::vector<uint16_t> ph(pw.size());
  ops::pack_panels(w.data(), pw.data(), packed_rows, size_t(n));
  ops::pack_panels(wh.data(), ph.data(), packed_rows, size_t(n));
  Tensor t32 = f32_tensor("w32", w, n, rows), t16 = t32;
  t32.packed = pw.data();
  t32.packed_rows = int64_t(packed_rows);
  t16.name = "w16";
  t16.type = Type::F16;
  t16.data = wh.data();
  t16.packed = ph.data();
  t16.packed_rows = int64_t(packed_rows);
  std::vector<uint16_t> wb(w.size()), pb(pw.size());
  for (size_t i = 0; i < w.size(); ++i) wb[i] = ops::f32_to_bf16(w[i]);
  ops::pack_panels_bf16(wb.data(), pb.data(), packed_rows, size_t(n));
  Tensor tb = t16;
  tb.name = "wbf16";
  tb.type = Type::BF16;
  tb.data = wb.data();
  tb.packed = pb.data();
  for (const Tensor* t : {&t32, &t16, &tb}) {
    for (int M : {1, 13}) {
      std::vector<float> first;
      for (int threads : {1, 2, 3}) {
        Ctx c(threads);
        c.pool.set_leave_out_helpers(false);  // every thread takes its part
        std::vector<float> y(size_t(M * rows), -1.0f);
        linear(c.ctx, *t, x.data(), y.data(), M, -1);
        for (int m = 0; m < M; ++m)
          for (int r = 0; r < rows; ++r) {
            double want = 0;
            for (int j = 0; j < n; ++j) {
              const size_t at = size_t(r * n + j);
              const float wv = t == &t32 ? w[at] : t == &t16 ? ops::f16_to_f32(wh[at]) : ops::bf16_to_f32(wb[at]);
              const float xv = x[size_t(m * n + j)];
              want += double(wv) * (t == &tb   ? ops::bf16_to_f32(ops::f32_to_bf16(xv))
                                    : t == &t16 ? ops::f16_to_f32(ops::f32_to_f16(xv))
                                                : xv);
            }
            ASSERT_NEAR(y[size_t(m * rows + r)], want, 1e-4 * (1 + std::fabs(want)))
                << t->name << " M=" << M << " row " << r << " threads " << threads;
          }
        if (first.empty()) first = y;
        ASSERT_EQ(0, std::memcmp(first.data(), y.data(), y.size() * sizeof(float))) << t->name << " threads " << threads;
      }
    }
  }
}

TEST(ZeroedMemory, HugePageBuffersAreAlignedZeroedAndWritable) {
  const size_t bytes = (size_t(3) << 20) + 100;
  ZeroedMemory m(bytes, true);
  ASSERT_EQ(m.bytes(), bytes);
  auto* p = m.as<uint8_t>();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (size_t(2) << 20), 0u);
  EXPECT_EQ(p[0], 0);
  EXPECT_EQ(p[bytes - 1], 0);
  p[0] = 1;
  p[bytes - 1] = 2;
  ZeroedMemory moved = std::move(m);
  EXPECT_EQ(m.bytes(), 0u);
  EXPECT_EQ(moved.as<uint8_t>()[bytes - 1], 2);
  moved = ZeroedMemory(64);
  EXPECT_EQ(moved.as<uint8_t>()[63], 0);
}

// populate commits the pages asked for (page-rounded) and no others, and
// they read as zeros; a range past the end is clipped.
TEST(ZeroedMemory, PopulateCommitsTheRangeAskedFor) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE)), pages = 64;
  ZeroedMemory m(pages * page);
  auto resident = [&] {
    std::vector<unsigned char> v(pages);
    EXPECT_EQ(mincore(m.as<void>(), pages * page, v.data()), 0);
    size_t n = 0;
    for (unsigned char c : v) n += c & 1;
    return n;
  };
  ASSERT_EQ(resident(), 0u);  // an anonymous mapping commits nothing until touched
  // A kernel before 5.14 lacks MADV_POPULATE_WRITE: then populate does nothing.
  ZeroedMemory probe(page);
  const bool kernel_has_it = madvise(probe.as<void>(), page, 23 /* MADV_POPULATE_WRITE */) == 0;
  m.populate(3 * page + 10, 2 * page);  // pages 3..5
  EXPECT_EQ(resident(), kernel_has_it ? 3u : 0u);
  m.populate(60 * page, 100 * page);  // pages 60..63, clipped
  EXPECT_EQ(resident(), kernel_has_it ? 7u : 0u);
  EXPECT_EQ(m.as<uint8_t>()[5 * page + 1], 0);
}

// A run state's batch buffer: n zeros, writable, its size; empty when n is 0.
TEST(ZeroedMemory, ZeroedArrayHoldsNZeros) {
  ZeroedArray<float> a(1000);
  ASSERT_EQ(a.size(), 1000u);
  ASSERT_NE(a.data(), nullptr);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], 0.0f) << i;
  a[999] = 2.5f;
  EXPECT_EQ(a.data()[999], 2.5f);
  EXPECT_EQ(ZeroedArray<float>(0).size(), 0u);
}

// The ops Gemma, GPT-2 and Phi-3 add: scaling, soft-capping, splitting a
// fused q/k/v row, and SwiGLU over a fused gate/up row (odd widths).
TEST(Nn, ScaleSoftcapAndFusedSplits) {
  const int n = 3, dim = 11, q_dim = 10, kv_dim = 5, hidden = 9;
  Ctx c(2);
  const auto x = randn(size_t(n * dim), 11, 20.0f);
  std::vector<float> y = x;
  nn::scale(c.ctx, y.data(), n, dim, 4.0f, 0);
  for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], x[i] * 4.0f);
  y = x;
  nn::softcap(c.ctx, y.data(), n, dim, 30.0f, -1);
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_NEAR(y[i], 30.0 * std::tanh(x[i] / 30.0), 1e-5);
    ASSERT_LT(std::fabs(y[i]), 30.0f);
  }
  const auto fused = randn(size_t(n * (q_dim + 2 * kv_dim)), 12);
  std::vector<float> q(size_t(n * q_dim)), k(size_t(n * kv_dim)), v(k.size());
  nn::split_qkv(c.ctx, fused.data(), n, q_dim, kv_dim, q.data(), k.data(), v.data(), 0);
  const size_t row = size_t(q_dim + 2 * kv_dim);
  for (size_t i = 0; i < size_t(n); ++i) {
    for (size_t j = 0; j < size_t(q_dim); ++j) ASSERT_EQ(q[i * size_t(q_dim) + j], fused[i * row + j]);
    for (size_t j = 0; j < size_t(kv_dim); ++j) {
      ASSERT_EQ(k[i * size_t(kv_dim) + j], fused[i * row + size_t(q_dim) + j]);
      ASSERT_EQ(v[i * size_t(kv_dim) + j], fused[i * row + size_t(q_dim + kv_dim) + j]);
    }
  }
  const auto gate_up = randn(size_t(n * 2 * hidden), 13, 3.0f);
  std::vector<float> out(size_t(n * hidden));
  nn::swiglu_split(c.ctx, gate_up.data(), out.data(), n, hidden, 0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < hidden; ++j) {
      const double g = gate_up[size_t(i * 2 * hidden + j)], u = gate_up[size_t(i * 2 * hidden + hidden + j)];
      ASSERT_NEAR(out[size_t(i * hidden + j)], g / (1 + std::exp(-g)) * u, 1e-5 * (1 + std::fabs(g * u)));
    }
}

// Causal grouped-query attention from its definition, in double.
std::vector<double> naive_attention(const AttentionDims& d, const std::vector<float>& q, const std::vector<float>& k,
                                    const std::vector<float>& v, int pos, int n, const AttentionOptions& o) {
  const int hd = d.head_dim, group = d.n_heads / d.n_kv_heads;
  std::vector<double> out(size_t(n * d.q_dim()));
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < d.n_heads; ++h) {
      const int p = pos + i, first = o.window > 0 ? std::max(0, p - o.window + 1) : 0;
      std::vector<double> s;
      double mx = -1e300;
      for (int t = first; t <= p; ++t) {
        double dot = 0;
        for (int j = 0; j < hd; ++j)
          dot += double(q[size_t(i * d.q_dim() + h * hd + j)]) * k[size_t(t * d.kv_dim() + (h / group) * hd + j)];
        dot /= std::sqrt(double(hd));
        if (o.softcap > 0) dot = o.softcap * std::tanh(dot / o.softcap);
        s.push_back(dot);
        mx = std::max(mx, dot);
      }
      double sum = 0;
      for (double& e : s) sum += (e = std::exp(e - mx));
      for (int j = 0; j < hd; ++j) {
        double acc = 0;
        for (int t = first; t <= p; ++t) acc += s[size_t(t - first)] / sum * v[size_t(t * d.kv_dim() + (h / group) * hd + j)];
        out[size_t(i * d.q_dim() + h * hd + j)] = acc;
      }
    }
  return out;
}

// A prompt batch and then single tokens, stored and attended layer 1 of 2.
// (With `later`, a second batch of `later_n` tokens at position `later`.)
std::vector<float> run_cache(const AttentionDims& d, bool f16, int threads, const AttentionOptions& o,
                             const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                             int total, int batch, int later = -1, int later_n = 0) {
  Ctx c(threads);
  KVCache cache(d, total + 3, threads, f16);
  std::vector<float> out(size_t(total * d.q_dim()));
  for (int pos = 0; pos < total;) {
    const int n = pos == 0 ? batch : pos == later ? later_n : 1;
    cache.store(c.ctx, 1, pos, n, k.data() + size_t(pos * d.kv_dim()), v.data() + size_t(pos * d.kv_dim()));
    cache.attend(c.ctx, 1, pos, n, q.data() + size_t(pos * d.q_dim()), out.data() + size_t(pos * d.q_dim()), o);
    pos += n;
  }
  return out;
}

TEST(KVCacheAttention, EqualsTheDefinitionOnAnyThreadCount) {
  const AttentionDims d{2, 6, 2, 12};  // GQA 3:1, head_dim 12 (not a multiple of the vector width)
  const int total = 45, batch = 38;
  const auto q = randn(size_t(total * d.q_dim()), 11, 2.0f), k = randn(size_t(total * d.kv_dim()), 12, 2.0f),
             v = randn(size_t(total * d.kv_dim()), 13);
  const AttentionOptions cases[] = {{}, {7, 0.0f}, {0, 3.0f}, {1, 0.0f}, {200, 0.0f}};
  for (const AttentionOptions& o : cases) {
    for (bool f16 : {false, true}) {
      std::vector<float> q16 = q, k16 = k, v16 = v;  // what an f16 cache holds (q rounded as llama.cpp does)
      if (f16)
        for (auto* a : {&q16, &k16, &v16})
          for (float& x : *a) x = ops::f16_to_f32(ops::f32_to_f16(x));
      const auto want = naive_attention(d, q16, k16, v16, 0, total, o);
      const auto one = run_cache(d, f16, 1, o, q, k, v, total, batch);
      const std::string what = "window " + std::to_string(o.window) + " softcap " + std::to_string(o.softcap) +
                               (f16 ? " f16" : " f32");
      ASSERT_EQ(one.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(one[i], want[i], f16 ? 2e-3 : 1e-5) << what << " i=" << i;
      for (int threads : {2, 3}) {
        const auto more = run_cache(d, f16, threads, o, q, k, v, total, batch);
        ASSERT_EQ(std::memcmp(more.data(), one.data(), one.size() * sizeof(float)), 0) << what << " threads " << threads;
      }
    }
  }
}

// At depth: prefill blocks of several tasks per KV head, a batch on top of
// a filled cache, and single tokens whose split-K chunks (256 positions)
// number up to three, with windows that start inside a chunk; head_dim 64,
// GQA 4:1 and 1:1.
TEST(KVCacheAttention, AtDepthEqualsTheDefinitionOnAnyThreadCount) {
  for (const AttentionDims d : {AttentionDims{2, 8, 2, 64}, AttentionDims{2, 3, 3, 40}}) {
    const int total = 640, batch = 300, later = 420, later_n = 90;
    const auto q = randn(size_t(total * d.q_dim()), 21), k = randn(size_t(total * d.kv_dim()), 22),
               v = randn(size_t(total * d.kv_dim()), 23);
    for (const AttentionOptions& o : {AttentionOptions{}, AttentionOptions{300, 0.0f}, AttentionOptions{0, 2.0f}}) {
      for (bool f16 : {false, true}) {
        std::vector<float> q16 = q, k16 = k, v16 = v;
        if (f16)
          for (auto* a : {&q16, &k16, &v16})
            for (float& x : *a) x = ops::f16_to_f32(ops::f32_to_f16(x));
        const auto want = naive_attention(d, q16, k16, v16, 0, total, o);
        const auto one = run_cache(d, f16, 1, o, q, k, v, total, batch, later, later_n);
        const std::string what = "heads " + std::to_string(d.n_heads) + "/" + std::to_string(d.n_kv_heads) + " window " +
                                 std::to_string(o.window) + " softcap " + std::to_string(o.softcap) + (f16 ? " f16" : " f32");
        ASSERT_EQ(one.size(), want.size());
        for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(one[i], want[i], f16 ? 2e-3 : 1e-5) << what << " i=" << i;
        for (int threads : {2, 3}) {
          const auto more = run_cache(d, f16, threads, o, q, k, v, total, batch, later, later_n);
          ASSERT_EQ(std::memcmp(more.data(), one.data(), one.size() * sizeof(float)), 0) << what << " threads " << threads;
        }
      }
    }
  }
}

// The cache lies in chunks of positions (every layer's heads in each); its
// saved state is still each head's K panels and V rows in one piece, the
// same bytes whatever the chunk size (a context over 64k takes chunks of 320
// positions here, 256 below), and a state loaded into another context
// attends as the original on every layer.
TEST(KVCacheAttention, ChunkedCacheSavesEachHeadInOnePiece) {
  const AttentionDims d{3, 4, 2, 24};
  const int n = 600, T = int(ops::kAttnTile), ldv = int(ops::attention_ldv(24));
  std::vector<std::vector<float>> k, v;  // per layer, (n + 1, kv_dim)
  for (int l = 0; l < d.n_layers; ++l) {
    k.push_back(randn(size_t((n + 1) * d.kv_dim()), uint32_t(30 + l)));
    v.push_back(randn(size_t((n + 1) * d.kv_dim()), uint32_t(40 + l)));
  }
  for (bool f16 : {false, true}) {
    SCOPED_TRACE(f16 ? "f16" : "f32");
    Ctx c(2);
    KVCache small(d, 700, 2, f16), large(d, 70000, 2, f16), other(d, 1000, 2, f16);
    for (KVCache* cache : {&small, &large})
      for (int l = 0; l < d.n_layers; ++l)
        for (int pos = 0; pos < n; pos += 150)  // in batches that cross chunks
          cache->store(c.ctx, l, pos, 150, k[size_t(l)].data() + size_t(pos * d.kv_dim()),
                       v[size_t(l)].data() + size_t(pos * d.kv_dim()));
    ASSERT_EQ(small.state_bytes(n), large.state_bytes(n));
    const size_t elem = f16 ? 2 : 4, panels = size_t((n + T - 1) / T);
    const size_t per_head = panels * size_t(T * d.head_dim) + size_t(n * ldv);
    ASSERT_EQ(small.state_bytes(n), size_t(d.n_layers * d.n_kv_heads) * per_head * elem);
    std::string a(small.state_bytes(n), '\0'), b(a.size(), '\0');
    small.save_state(n, a.data());
    large.save_state(n, b.data());
    ASSERT_TRUE(a == b) << "the state depends on the chunk size";
    // Every stored value where the one-piece layout puts it.
    auto at = [&](size_t i) {
      if (!f16) {
        float x;
        std::memcpy(&x, a.data() + i * 4, 4);
        return x;
      }
      uint16_t h;
      std::memcpy(&h, a.data() + i * 2, 2);
      return ops::f16_to_f32(h);
    };
    auto stored = [&](float x) { return f16 ? ops::f16_to_f32(ops::f32_to_f16(x)) : x; };
    for (int l = 0; l < d.n_layers; ++l)
      for (int h = 0; h < d.n_kv_heads; ++h) {
        const size_t base = size_t(l * d.n_kv_heads + h) * per_head, vbase = base + panels * size_t(T * d.head_dim);
        for (int t = 0; t < n; ++t)
          for (int i = 0; i < d.head_dim; ++i) {
            const float kw = stored(k[size_t(l)][size_t(t * d.kv_dim() + h * d.head_dim + i)]);
            const float vw = stored(v[size_t(l)][size_t(t * d.kv_dim() + h * d.head_dim + i)]);
            ASSERT_EQ(at(base + size_t((t / T) * T * d.head_dim + i * T + t % T)), kw) << l << " " << h << " " << t;
            ASSERT_EQ(at(vbase + size_t(t * ldv + i)), vw) << l << " " << h << " " << t;
          }
      }
    // Loaded into a third context: one more token on each layer attends
    // exactly as in the original cache, and as the definition says.
    other.load_state(n, a.data());
    const auto q = randn(size_t(d.q_dim()), 50, 2.0f);
    for (int l = 0; l < d.n_layers; ++l) {
      std::vector<float> y1(size_t(d.q_dim())), y2(y1.size());
      for (KVCache* cache : {&small, &other}) {
        cache->store(c.ctx, l, n, 1, k[size_t(l)].data() + size_t(n * d.kv_dim()),
                     v[size_t(l)].data() + size_t(n * d.kv_dim()));
        cache->attend(c.ctx, l, n, 1, q.data(), (cache == &small ? y1 : y2).data());
      }
      ASSERT_EQ(std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)), 0) << "layer " << l;
      std::vector<float> q16 = q, k16 = k[size_t(l)], v16 = v[size_t(l)];
      if (f16)
        for (auto* x : {&q16, &k16, &v16})
          for (float& e : *x) e = stored(e);
      const auto want = naive_attention(d, q16, k16, v16, n, 1, {});
      ASSERT_EQ(want.size(), y1.size());
      for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(y1[i], want[i], f16 ? 2e-3 : 1e-5) << "layer " << l << " i=" << i;
    }
  }
}

TEST(KVCacheAttention, CaptureSeesTheWindowAndChangesNothing) {
  const AttentionDims d{1, 4, 4, 8};
  const int total = 20;
  const auto q = randn(size_t(total * d.q_dim()), 14), k = randn(size_t(total * d.kv_dim()), 15),
             v = randn(size_t(total * d.kv_dim()), 16);
  const AttentionOptions o{5, 0.0f};
  Ctx plain(2), captured(2);
  AttentionCapture cap;
  int rows = 0;
  cap.callback = [&](const AttentionRow& r) {
    ++rows;
    double sum = 0;
    for (int t = 0; t <= r.position; ++t) {
      if (t <= r.position - o.window) {
        EXPECT_EQ(r.probs[t], 0.0f) << "position " << r.position << " t " << t;
      }
      sum += r.probs[t];
    }
    EXPECT_NEAR(sum, 1.0, 1e-5);
  };
  captured.ctx.capture = &cap;
  KVCache a(d, total, 2, false), b(d, total, 2, false);
  std::vector<float> out_a(size_t(total * d.q_dim())), out_b(out_a.size());
  for (KVCache* cache : {&a, &b}) {
    const ExecContext& ctx = cache == &a ? plain.ctx : captured.ctx;
    cache->store(ctx, 0, 0, total, k.data(), v.data());
    cache->attend(ctx, 0, 0, total, q.data(), (cache == &a ? out_a : out_b).data(), o);
  }
  EXPECT_EQ(rows, total * d.n_heads);
  ASSERT_EQ(std::memcmp(out_a.data(), out_b.data(), out_a.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace qkv
