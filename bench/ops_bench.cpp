// Kernel microbenchmarks on every instruction set this machine runs, at the
// shapes of real models (stories15M/42M/110M: dim 288/512/768).
//   build/bin/qkv_ops_bench --benchmark_filter=matvec/f32
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/runtime/attention.h"
#include "engine/runtime/cpu.h"
#include "engine/runtime/thread_pool.h"
#include "engine/format/zeroed_memory.h"
#include "ops/types.h"
#include "ops/ops.h"
#include "ops/quant.h"

namespace {

using qkv::ops::Kernels;

std::vector<float> randn(size_t n) {
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

void set_rates(benchmark::State& st, double flops, double bytes) {
  st.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Float weights as the engine reads them: packed in panels at load
// (ops.h); f16: halves widened in registers; bf16: column pairs, multiplied
// with activations rounded to bf16. rows: a multiple of kPanelRows.
enum class Float { F32, F16, BF16 };
const char* float_name(Float t) { return t == Float::F32 ? "f32" : t == Float::F16 ? "f16" : "bf16"; }

struct FloatWeights {
  qkv::ZeroedMemory mem;  // on huge pages, as the engine's packed copies
  Float type;
  FloatWeights(size_t rows, size_t n, Float t) : mem(rows * n * (t == Float::F32 ? 4 : 2), true), type(t) {
    const auto w = randn(rows * n);
    if (t == Float::F32) {
      qkv::ops::pack_panels(w.data(), mem.as<float>(), rows, n);
      return;
    }
    std::vector<uint16_t> h(rows * n);
    for (size_t i = 0; i < h.size(); ++i) h[i] = t == Float::F16 ? qkv::ops::f32_to_f16(w[i]) : qkv::ops::f32_to_bf16(w[i]);
    if (t == Float::F16) qkv::ops::pack_panels(h.data(), mem.as<uint16_t>(), rows, n);
    else qkv::ops::pack_panels_bf16(h.data(), mem.as<uint16_t>(), rows, n);
  }
  double bytes() const { return double(mem.bytes()); }
  double x_bytes() const { return type == Float::BF16 ? 2.0 : 4.0; }  // per activation value
};

// M random activation rows of n, in the forms the float products take: f32
// (F32, F16), rounded to bf16, and those widened as the engine gives a
// batch's (BF16).
struct FloatActivations {
  std::vector<float> x;
  std::vector<uint16_t> bits;
  std::vector<float> values;
  FloatActivations(const Kernels* k, size_t M, size_t n) : x(randn(M * n)), bits(M * n), values(M * n) {
    k->f32_to_bf16(x.data(), bits.data(), bits.size());
    qkv::ops::widen_bf16(bits.data(), values.data(), values.size());
  }
};

// Y = X W^T over the packed weights at w (M = 1: the matvec kernels).
void float_panels(const Kernels* k, Float t, const void* w, const FloatActivations& a, float* y, size_t M, size_t n,
                  size_t rows) {
  const size_t panels = rows / qkv::ops::kPanelRows;
  const auto* w16 = static_cast<const uint16_t*>(w);
  const auto* w32 = static_cast<const float*>(w);
  if (M == 1) {
    if (t == Float::F32) k->matvec_f32_panels(w32, a.x.data(), y, n, 0, panels);
    else if (t == Float::F16) k->matvec_f16_panels(w16, a.x.data(), y, n, 0, panels);
    else k->bf16.matvec_panels(w16, a.bits.data(), y, n, 0, panels);
  } else {
    if (t == Float::F32) k->matmul_f32_panels(w32, a.x.data(), y, M, n, rows, 0, panels);
    else if (t == Float::F16) k->matmul_f16_panels(w16, a.x.data(), y, M, n, rows, 0, panels);
    else k->bf16.matmul_panels(w16, qkv::ops::Bf16Batch{a.bits.data(), a.values.data()}, y, M, n, rows, 0, panels);
  }
}

// Y = X W^T for M tokens (M = 1: the matvec kernels), W: (rows, n).
void float_product(benchmark::State& st, const Kernels* k, size_t rows, size_t n, size_t M, Float t) {
  const FloatWeights w(rows, n, t);
  const FloatActivations a(k, M, n);
  std::vector<float> y(M * rows);
  for (auto _ : st) {
    float_panels(k, t, w.mem.as<uint8_t>(), a, y.data(), M, n, rows);
    benchmark::DoNotOptimize(y.data());
  }
  set_rates(st, 2.0 * rows * n * M, w.bytes() + w.x_bytes() * M * n + 4.0 * M * rows);
}

// Y = X W^T for M tokens through a stories110M-sized FFN matrix (2048 x 768)
// after another, cycling through packed copies that fill `total` bytes (far
// more than any L3), as a model's layers stream in: the batch product with
// its weights coming from memory, where `float_product`'s stay in L3.
void float_product_dram(benchmark::State& st, const Kernels* k, size_t total, size_t M, Float t) {
  const size_t rows = 2048, n = 768;
  const FloatWeights one(rows, n, t);
  const size_t bytes = size_t(one.bytes()), copies = std::max<size_t>(1, total / bytes);
  const qkv::ZeroedMemory mem(copies * bytes, true);
  for (size_t c = 0; c < copies; ++c) std::memcpy(mem.as<uint8_t>() + c * bytes, one.mem.as<uint8_t>(), bytes);
  const FloatActivations a(k, M, n);
  std::vector<float> y(M * rows);
  size_t c = 0;
  for (auto _ : st) {
    float_panels(k, t, mem.as<uint8_t>() + c * bytes, a, y.data(), M, n, rows);
    benchmark::DoNotOptimize(y.data());
    c = c + 1 == copies ? 0 : c + 1;
  }
  set_rates(st, 2.0 * rows * n * M, one.bytes());
}

// Quantized weights: a GGML type id, its products in a kernel table, and
// the activation blocks it takes (Q8_0, Q8_1 for the _1 types, Q8_K for the
// 256-value types).
struct QuantBench {
  const char* name;
  const qkv::ops::TypeInfo* type;
  qkv::ops::QuantProducts Kernels::*products;
  bool kquant;
  qkv::ops::Activation act;
};
// Every type the table multiplies with integer products.
std::vector<QuantBench> quant_types() {
  using qkv::ops::Type;
  std::vector<QuantBench> v;
  for (const char* name : {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "iq4_xs"}) {
    const qkv::ops::TypeInfo* t = qkv::ops::find_type(std::string(name));
    v.push_back({name, t, t->products, t->activation == qkv::ops::Activation::Q8_K, t->activation});
  }
  return v;
}

// M activation rows of n, quantized to the blocks `q` takes.
std::vector<uint8_t> quantized_activations(const QuantBench& q, size_t M, size_t n) {
  const auto x = randn(M * n);
  std::vector<uint8_t> out;
  if (q.act == qkv::ops::Activation::Q8_1) {
    out.resize(M * n / 32 * sizeof(qkv::ops::BlockQ8_1));
    for (size_t m = 0; m < M; ++m)
      qkv::ops::quantize_row_q8_1_act(x.data() + m * n, reinterpret_cast<qkv::ops::BlockQ8_1*>(out.data()) + m * n / 32, n);
  } else if (q.kquant) {
    out.resize(M * n / 256 * sizeof(qkv::ops::BlockQ8_K));
    for (size_t m = 0; m < M; ++m)
      qkv::ops::quantize_row_q8_K(x.data() + m * n, reinterpret_cast<qkv::ops::BlockQ8_K*>(out.data()) + m * n / 256, n);
  } else {
    out.resize(M * n / 32 * sizeof(qkv::ops::BlockQ8_0));
    for (size_t m = 0; m < M; ++m)
      qkv::ops::quantize_row_q8_0_act(x.data() + m * n, reinterpret_cast<qkv::ops::BlockQ8_0*>(out.data()) + m * n / 32, n);
  }
  return out;
}

// rows x n random weights quantized to q's blocks, and their row-interleaved
// copy (empty for types without one).
std::vector<uint8_t> quantized_weights(const QuantBench& q, size_t rows, size_t n) {
  const auto wf = randn(rows * n);
  const size_t rb = q.type->row_bytes(int64_t(n));
  std::vector<uint8_t> w(rb * rows);
  for (size_t r = 0; r < rows; ++r) q.type->from_float(wf.data() + r * n, w.data() + r * rb, n);
  return w;
}
// The copy k's products read (ops::packing_for: Q3_K's layout differs by table).
std::vector<uint8_t> packed_weights(const Kernels* k, const QuantBench& q, const std::vector<uint8_t>& w, size_t rows,
                                    size_t n) {
  const qkv::ops::Packing pk = qkv::ops::packing_for(*q.type, *k);
  if (!pk.repack) return {};
  std::vector<uint8_t> packed(rows / 8 * (n / size_t(q.type->block)) * pk.group_bytes);
  pk.repack(w.data(), packed.data(), rows, n);
  return packed;
}

// y = W x (M == 1) or Y = X W^T with quantized W and x: "GOP/s" counts a
// multiply and an add per weight and activation row, GB/s the bytes read.
void qmatmul(benchmark::State& st, const Kernels* k, QuantBench q, size_t rows, size_t n, size_t M) {
  const std::vector<uint8_t> w = quantized_weights(q, rows, n), packed = packed_weights(k, q, w, rows, n);
  const auto xq = quantized_activations(q, M, n);
  std::vector<float> y(M * rows);
  const qkv::ops::QuantProducts& p = k->*q.products;
  std::vector<qkv::ops::Q8Sum> sums(q.kquant ? 0 : M * n / 32);
  const bool x8 = p.matvec_x8 != nullptr;  // the engine runs these from row-interleaved copies
  if (q.act == qkv::ops::Activation::Q8_0) qkv::ops::q8_0_sums(reinterpret_cast<const qkv::ops::BlockQ8_0*>(xq.data()), sums.data(), sums.size());
  if (q.act == qkv::ops::Activation::Q8_1) qkv::ops::q8_1_sums(reinterpret_cast<const qkv::ops::BlockQ8_1*>(xq.data()), sums.data(), sums.size());
  for (auto _ : st) {
    if (x8 && M == 1) p.matvec_x8(packed.data(), xq.data(), sums.data(), y.data(), n, 0, rows / 8);
    else if (x8) p.matmul_x8(packed.data(), xq.data(), sums.data(), y.data(), M, n, rows, 0, rows / 8);
    else if (M == 1) p.matvec(w.data(), xq.data(), y.data(), n, 0, rows);
    else p.matmul(w.data(), xq.data(), y.data(), M, n, rows, 0, rows);
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["GOP/s"] = benchmark::Counter(2e-9 * double(rows * n * M), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GB/s"] =
      benchmark::Counter(1e-9 * double(w.size() + xq.size() + 4 * M * rows), benchmark::Counter::kIsIterationInvariantRate);
}

// y = W x from memory: one token (M = 1) or a batch of M through a
// stories110M-sized FFN matrix (2048 x 768) after another, cycling through
// copies that fill `total` bytes (far more than any L3), as a model's layers
// stream in. GB/s: the weight bytes read, against probe/read/1GiB in the
// same run; GOP/s as qmatmul's.
void qmatmul_dram(benchmark::State& st, const Kernels* k, QuantBench q, size_t total, size_t M) {
  const size_t rows = 2048, n = 768;
  const qkv::ops::QuantProducts& p = k->*q.products;
  const bool x8 = p.matvec_x8 != nullptr;  // the engine runs these from row-interleaved copies
  const std::vector<uint8_t> w = quantized_weights(q, rows, n), one = x8 ? packed_weights(k, q, w, rows, n) : w;
  const size_t copies = std::max<size_t>(1, total / one.size());
  const qkv::ZeroedMemory mem(copies * one.size(), true);
  for (size_t c = 0; c < copies; ++c) std::copy(one.begin(), one.end(), mem.as<uint8_t>() + c * one.size());
  const auto xq = quantized_activations(q, M, n);
  std::vector<qkv::ops::Q8Sum> sums(M * n / 32);
  if (q.act == qkv::ops::Activation::Q8_0)
    qkv::ops::q8_0_sums(reinterpret_cast<const qkv::ops::BlockQ8_0*>(xq.data()), sums.data(), sums.size());
  if (q.act == qkv::ops::Activation::Q8_1)
    qkv::ops::q8_1_sums(reinterpret_cast<const qkv::ops::BlockQ8_1*>(xq.data()), sums.data(), sums.size());
  std::vector<float> y(M * rows);
  size_t c = 0;
  for (auto _ : st) {
    const uint8_t* wc = mem.as<uint8_t>() + c * one.size();
    if (x8 && M == 1) p.matvec_x8(wc, xq.data(), sums.data(), y.data(), n, 0, rows / 8);
    else if (x8) p.matmul_x8(wc, xq.data(), sums.data(), y.data(), M, n, rows, 0, rows / 8);
    else if (M == 1) p.matvec(wc, xq.data(), y.data(), n, 0, rows);
    else p.matmul(wc, xq.data(), y.data(), M, n, rows, 0, rows);
    benchmark::DoNotOptimize(y.data());
    c = c + 1 == copies ? 0 : c + 1;
  }
  st.counters["GOP/s"] = benchmark::Counter(2e-9 * double(rows * n * M), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GB/s"] = benchmark::Counter(1e-9 * double(one.size()), benchmark::Counter::kIsIterationInvariantRate);
}

// Activations quantized before the integer products: one row of n.
void quantize_act(benchmark::State& st, const Kernels* k, bool kquant, size_t n) {
  const auto x = randn(n);
  std::vector<uint8_t> out(n / 32 * sizeof(qkv::ops::BlockQ8_0) + n / 256 * sizeof(qkv::ops::BlockQ8_K));
  std::vector<qkv::ops::Q8Sum> sums(n / 32);
  for (auto _ : st) {
    if (kquant) k->quantize_q8_K(x.data(), out.data(), n);
    else k->quantize_q8_0(x.data(), out.data(), sums.data(), n);
    benchmark::DoNotOptimize(out.data());
  }
  set_rates(st, 0, 4.0 * double(n));
}

// A span of 64 tokens' keys (one KV head of width hd, rows kv_dim = 8 hd
// apart) into a K panel, as the KV cache's store writes them.
void key_panel(benchmark::State& st, const Kernels* k, bool f16, size_t hd) {
  const size_t T = qkv::ops::kAttnTile, lds = 8 * hd;
  const auto src = randn(T * lds);
  std::vector<float> out(hd * T);
  std::vector<uint16_t> out16(hd * T);
  for (auto _ : st) {
    if (f16) k->transpose_f32_to_f16(src.data(), lds, out16.data(), T, T, hd);
    else k->transpose_f32(src.data(), lds, out.data(), T, T, hd);
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(out16.data());
  }
  set_rates(st, 0, double(T * hd) * (4.0 + (f16 ? 2.0 : 4.0)));
}

void softmax(benchmark::State& st, const Kernels* k, size_t n) {
  const auto src = randn(n);
  std::vector<float> x(n);
  for (auto _ : st) {
    x = src;
    k->softmax(x.data(), n);
    benchmark::DoNotOptimize(x.data());
  }
  set_rates(st, 4.0 * n, 8.0 * n);
}

void rmsnorm(benchmark::State& st, const Kernels* k, size_t n) {
  const auto x = randn(n), w = randn(n);
  std::vector<float> out(n);
  for (auto _ : st) {
    k->rmsnorm(out.data(), x.data(), w.data(), n, 1e-5f);
    benchmark::DoNotOptimize(out.data());
  }
  set_rates(st, 4.0 * n, 12.0 * n);
}

// The rows R over positions [0, depth) of one KV head's cache: the f32
// kernel, or the f16 kernels' three phases (scores kept in s, row stride lds).
void attend(const Kernels* k, const qkv::ops::AttentionRows& R, const float* kt, const float* v, size_t hd, size_t depth,
            float*, size_t, float* scratch) {
  k->attention_f32(R, kt, v, hd, 0, depth, 0.125f, 0.0f, scratch);
}
void attend(const Kernels* k, const qkv::ops::AttentionRows& R, const uint16_t* kt, const uint16_t* v, size_t hd,
            size_t depth, float* s, size_t lds, float* scratch) {
  k->attention_scores_f16(R, kt, hd, 0, depth, 0.125f, 0.0f, s, lds, scratch);
  k->attention_weights_f16(R, 0, depth, s, lds);
  k->attention_values_f16(R, v, hd, 0, depth, s, lds, scratch);
}

// Attention over one KV head's cache of `depth` positions (the panel layout
// of ops.h), in f32 or f16: `tokens` query tokens times `group` query heads
// that share the KV head. Prefill: a block of 32 rows, causal at the cache's
// end; decode: one token. Bytes: the K and V read once per call.
void attention(benchmark::State& st, const Kernels* k, size_t hd, size_t depth, size_t tokens, size_t group, bool f16) {
  const size_t T = qkv::ops::kAttnTile, ldv = qkv::ops::attention_ldv(hd), tiles = (depth + T - 1) / T;
  const size_t rows = tokens * group, elem = f16 ? 2 : 4;
  const auto kf = randn(tiles * T * hd), vf = randn(tiles * T * ldv), q = randn(rows * hd);
  std::vector<uint16_t> k16(kf.size()), v16(vf.size());
  for (size_t i = 0; i < kf.size(); ++i) k16[i] = qkv::ops::f32_to_f16(kf[i]);
  for (size_t i = 0; i < vf.size(); ++i) v16[i] = qkv::ops::f32_to_f16(vf[i]);
  std::vector<const float*> qp(rows);
  std::vector<int32_t> lo(rows, 0), hi(rows);
  std::vector<float> m(rows), l(rows), o(rows * ldv), scratch(qkv::ops::attention_scratch(rows, hd));
  std::vector<float> s(f16 ? rows * tiles * T : 0);  // the f16 kernels' scores between their phases
  double seen = 0;
  for (size_t r = 0; r < rows; ++r) {
    qp[r] = q.data() + r * hd;
    hi[r] = int32_t(depth - tokens + r / group + 1);
    seen += double(hi[r]);
  }
  for (auto _ : st) {
    std::fill(m.begin(), m.end(), -INFINITY);
    std::fill(l.begin(), l.end(), 0.0f);
    std::fill(o.begin(), o.end(), 0.0f);
    const qkv::ops::AttentionRows R{rows, qp.data(), lo.data(), hi.data(), m.data(), l.data(), o.data(), ldv};
    if (f16) attend(k, R, k16.data(), v16.data(), hd, depth, s.data(), tiles * T, scratch.data());
    else attend(k, R, kf.data(), vf.data(), hd, depth, nullptr, 0, scratch.data());
    benchmark::DoNotOptimize(o.data());
  }
  set_rates(st, 4.0 * seen * double(hd), double(depth) * double(hd + ldv) * double(elem));
}

// Decoding from L3 or memory: one token's attention over one KV head per
// call, the call cycling through heads of `total` bytes, so that each comes
// from L3 (8 MiB) or DRAM (64 MiB), as a layer's heads do in a model (every
// other layer's cache passes through L2 between two reads of one head). Read
// against probe/read in the same run.
void attention_stream(benchmark::State& st, const Kernels* k, size_t hd, size_t depth, bool f16, size_t total) {
  const size_t T = qkv::ops::kAttnTile, ldv = qkv::ops::attention_ldv(hd), tiles = (depth + T - 1) / T;
  const size_t elem = f16 ? 2 : 4, head_bytes = tiles * T * (hd + ldv) * elem;
  const size_t heads = std::max(size_t(2), total / head_bytes);
  const size_t k_elems = tiles * T * hd, v_elems = tiles * T * ldv;
  // On huge pages, as the engine's cache is.
  const qkv::ZeroedMemory kmem(heads * k_elems * elem, true), vmem(heads * v_elems * elem, true);
  float* kf = kmem.as<float>();
  float* vf = vmem.as<float>();
  uint16_t* k16 = kmem.as<uint16_t>();
  uint16_t* v16 = vmem.as<uint16_t>();
  if (f16) {
    std::fill(k16, k16 + heads * k_elems, qkv::ops::f32_to_f16(0.01f));
    std::fill(v16, v16 + heads * v_elems, qkv::ops::f32_to_f16(0.02f));
  } else {
    std::fill(kf, kf + heads * k_elems, 0.01f);
    std::fill(vf, vf + heads * v_elems, 0.02f);
  }
  const auto q = randn(hd);
  const float* qp = q.data();
  int32_t lo = 0, hi = int32_t(depth);
  float m, l;
  std::vector<float> o(ldv), scratch(qkv::ops::attention_scratch(1, hd)), s(tiles * T);
  size_t h = 0;
  for (auto _ : st) {
    m = -INFINITY, l = 0.0f;
    std::fill(o.begin(), o.end(), 0.0f);
    const qkv::ops::AttentionRows R{1, &qp, &lo, &hi, &m, &l, o.data(), ldv};
    if (f16) attend(k, R, k16 + h * k_elems, v16 + h * v_elems, hd, depth, s.data(), tiles * T, scratch.data());
    else attend(k, R, kf + h * k_elems, vf + h * v_elems, hd, depth, nullptr, 0, scratch.data());
    benchmark::DoNotOptimize(o.data());
    h = (h + 1) % heads;
  }
  set_rates(st, 4.0 * double(depth) * double(hd), double(depth) * double(hd + ldv) * double(elem));
}

// One token's attention over every layer of a model's cache, through the
// engine's KVCache as a forward pass runs it (chunks, split-K tasks on the
// pool, merges): stories42M's shape (8 layers x 8 heads of 64) with `depth`
// positions cached, on `threads` threads. Bytes: K and V of every layer.
void cache_decode(benchmark::State& st, const Kernels* k, bool f16, int depth, int threads) {
  const qkv::AttentionDims d{8, 8, 8, 64};
  qkv::ThreadPool pool(threads);
  qkv::ExecContext ctx{pool, *k, threads, nullptr};
  qkv::KVCache cache(d, 4096, threads, f16);
  const auto kv = randn(size_t(512) * size_t(d.kv_dim())), q = randn(size_t(d.q_dim()));
  for (int l = 0; l < d.n_layers; ++l)
    for (int pos = 0; pos <= depth; pos += 512) {
      const int n = std::min(512, depth + 1 - pos);
      cache.store(ctx, l, pos, n, kv.data(), kv.data());
    }
  std::vector<float> out(size_t(d.q_dim()));
  for (auto _ : st)
    for (int l = 0; l < d.n_layers; ++l) cache.attend(ctx, l, depth, 1, q.data(), out.data());
  const double positions = double(depth + 1) * d.n_layers * d.n_kv_heads;
  set_rates(st, 4.0 * positions * d.head_dim, positions * 2.0 * d.head_dim * (f16 ? 2.0 : 4.0));
}

void rope(benchmark::State& st, size_t heads, size_t head_dim) {
  auto x = randn(heads * head_dim);
  const auto c = randn(head_dim / 2), s = randn(head_dim / 2);
  for (auto _ : st) {
    qkv::ops::rope(x.data(), heads, head_dim, c.data(), s.data());
    benchmark::DoNotOptimize(x.data());
  }
  set_rates(st, 6.0 * heads * head_dim / 2, 8.0 * heads * head_dim);
}

// The machine's limits, to read every other figure against. On N threads
// Google Benchmark adds the threads' counters and counts every thread's
// iterations, so the work per iteration is divided by N (kAvgThreads).
void probe_fma(benchmark::State& st, const Kernels* k) {
  double flops = 0;
  for (auto _ : st) flops = k->fma_peak(1 << 16);
  st.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate |
                                                                  benchmark::Counter::kAvgThreads);
}

void probe_bf16(benchmark::State& st, const Kernels* k) {
  double flops = 0;
  for (auto _ : st) flops = k->bf16.peak(1 << 16);
  set_rates(st, flops, 0);
  st.SetLabel(k->bf16.how);
}

void probe_int8(benchmark::State& st, const Kernels* k) {
  double ops = 0;
  for (auto _ : st) ops = k->int8_peak(1 << 16);
  st.counters["GOP/s"] = benchmark::Counter(ops * 1e-9, benchmark::Counter::kIsIterationInvariantRate |
                                                            benchmark::Counter::kAvgThreads);
}

// On huge pages, as the engine's packed weights are.
void probe_read(benchmark::State& st, const Kernels* k, size_t bytes) {
  const qkv::ZeroedMemory mem(bytes, true);
  float* buf = mem.as<float>();
  const size_t n = bytes / 4;
  std::fill(buf, buf + n, 1.0f);
  for (auto _ : st) benchmark::DoNotOptimize(k->dot(buf, buf, n));
  set_rates(st, 2.0 * double(n), double(bytes));
}

std::string shape(size_t rows, size_t cols) { return std::to_string(rows) + "x" + std::to_string(cols); }

int register_all() {
  // (dim, hidden) of stories15M, 42M and 110M; the classifier has 32000 rows.
  const std::pair<size_t, size_t> shapes[] = {{288, 768}, {512, 1376}, {768, 2048}};
  for (const Kernels* k : qkv::available_kernels()) {
    const std::string isa = k->isa;
    benchmark::RegisterBenchmark(("probe/fma/" + isa).c_str(), probe_fma, k);
    benchmark::RegisterBenchmark(("probe/int8/" + isa).c_str(), probe_int8, k);
    benchmark::RegisterBenchmark(("probe/bf16/" + isa).c_str(), probe_bf16, k);
    for (const auto& [dim, hidden] : shapes) {
      for (const auto& [rows, cols] : {std::pair{dim, dim}, std::pair{hidden, dim}, std::pair{dim, hidden},
                                       std::pair{size_t(32000), dim}}) {
        for (const Float t : {Float::F32, Float::F16, Float::BF16}) {
          const std::string type = std::string(float_name(t)) + "/";
          benchmark::RegisterBenchmark(("matvec/" + type + isa + "/" + shape(rows, cols)).c_str(), float_product, k, rows,
                                       cols, size_t(1), t);
          if (rows < 32000)
            benchmark::RegisterBenchmark(("matmul/" + type + isa + "/" + shape(rows, cols) + "/M128").c_str(),
                                         float_product, k, rows, cols, size_t(128), t);
        }
      }
    }
    for (const Float t : {Float::F32, Float::F16, Float::BF16})
      benchmark::RegisterBenchmark(("matmul/" + std::string(float_name(t)) + "/" + isa + "/dram/M128").c_str(),
                                   float_product_dram, k, size_t(256) << 20, size_t(128), t);
    for (size_t n : {256, 1024, 32000}) {
      benchmark::RegisterBenchmark(("softmax/" + isa + "/" + std::to_string(n)).c_str(), softmax, k, n);
    }
    for (size_t n : {288, 768}) benchmark::RegisterBenchmark(("rmsnorm/" + isa + "/" + std::to_string(n)).c_str(), rmsnorm, k, n);
    for (bool f16 : {false, true})
      for (size_t hd : {size_t(64), size_t(128)})
        for (size_t group : {size_t(1), size_t(4)})
          for (size_t depth : {512, 1024, 2048, 4096, 8192}) {
            const std::string name = std::string(f16 ? "f16" : "f32") + "/" + isa + "/hd" + std::to_string(hd) + "/gqa" +
                                     std::to_string(group) + "/depth" + std::to_string(depth);
            benchmark::RegisterBenchmark(("attention/prefill/" + name).c_str(), attention, k, hd, depth, 32 / group,
                                         group, f16);
            benchmark::RegisterBenchmark(("attention/decode/" + name).c_str(), attention, k, hd, depth, size_t(1), group,
                                         f16);
          }
    for (const auto& [where, total] : {std::pair{"l3", size_t(8) << 20}, std::pair{"dram", size_t(64) << 20}})
      for (bool f16 : {false, true})
        for (size_t hd : {size_t(64), size_t(128)})
          benchmark::RegisterBenchmark((std::string("attention/decode_") + where + "/" + (f16 ? "f16/" : "f32/") + isa +
                                        "/hd" + std::to_string(hd) + "/depth4096")
                                           .c_str(),
                                       attention_stream, k, hd, size_t(4096), f16, total);
    for (bool f16 : {false, true})
      for (size_t hd : {size_t(64), size_t(128)})
        benchmark::RegisterBenchmark(
            ("key_panel/" + std::string(f16 ? "f16/" : "f32/") + isa + "/hd" + std::to_string(hd)).c_str(), key_panel, k,
            f16, hd);
    for (size_t n : {768, 2048}) {
      benchmark::RegisterBenchmark(("quantize_act/q8_0/" + isa + "/" + std::to_string(n)).c_str(), quantize_act, k, false, n);
      benchmark::RegisterBenchmark(("quantize_act/q8_K/" + isa + "/" + std::to_string(n)).c_str(), quantize_act, k, true, n);
    }
    // Quantized products at stories110M's shapes (rows a multiple of 256 for the K-quants).
    for (const QuantBench& q : quant_types()) {
      for (const auto& [rows, cols] : {std::pair{size_t(768), size_t(768)}, std::pair{size_t(2048), size_t(768)},
                                       std::pair{size_t(768), size_t(2048)}, std::pair{size_t(32000), size_t(768)}}) {
        const std::string name = std::string(q.name) + "/" + isa + "/" + shape(rows, cols);
        benchmark::RegisterBenchmark(("qmatvec/" + name).c_str(), qmatmul, k, q, rows, cols, size_t(1));
        if (rows < 32000)
          benchmark::RegisterBenchmark(("qmatmul/" + name + "/M128").c_str(), qmatmul, k, q, rows, cols, size_t(128));
      }
      benchmark::RegisterBenchmark(("qmatvec/" + std::string(q.name) + "/" + isa + "/dram").c_str(), qmatmul_dram, k, q,
                                   size_t(256) << 20, size_t(1));
      benchmark::RegisterBenchmark(("qmatmul/" + std::string(q.name) + "/" + isa + "/dram/M128").c_str(), qmatmul_dram, k,
                                   q, size_t(256) << 20, size_t(128));
    }
  }

  const Kernels* best = qkv::available_kernels().back();
  for (bool f16 : {false, true})
    for (int threads : {1, 2})
      benchmark::RegisterBenchmark((std::string("attention/cache_decode/") + (f16 ? "f16/" : "f32/") + best->isa +
                                    "/depth3584/t" + std::to_string(threads))
                                       .c_str(),
                                   cache_decode, best, f16, 3584, threads);
  // Both cores at once (Google Benchmark runs the probe on 2 threads and sums
  // their work over the wall time): a shared host's cores rarely run at the
  // same speed, so 2-thread figures are read against these, not twice the above.
  benchmark::RegisterBenchmark((std::string("probe/fma/") + best->isa).c_str(), probe_fma, best)->Threads(2)->UseRealTime();
  benchmark::RegisterBenchmark((std::string("probe/int8/") + best->isa).c_str(), probe_int8, best)->Threads(2)->UseRealTime();
  benchmark::RegisterBenchmark("probe/read/1MiB", probe_read, best, size_t(1) << 20);
  benchmark::RegisterBenchmark("probe/read/64MiB", probe_read, best, size_t(64) << 20);
  benchmark::RegisterBenchmark("probe/read/1GiB", probe_read, best, size_t(1) << 30)->Iterations(5);
  for (size_t hd : {64, 128}) benchmark::RegisterBenchmark(("rope/12heads/hd" + std::to_string(hd)).c_str(), rope, size_t(12), hd);
  return 0;
}

const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
