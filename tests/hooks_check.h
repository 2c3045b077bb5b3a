// Checks of one ISA's hooks (ops/isa_*_hooks.h) against what they stand for,
// compiled into tests/hooks_avx2.cpp and tests/hooks_avx512.cpp with that
// ISA's flags, which define QKV_ISA_NS and QKV_ARCH and include the hooks
// first. test_ops.cpp calls them only where the CPU has the ISA; no static
// initializers here, so nothing runs at start-up on a CPU without it.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>

namespace qkv::ops::QKV_ISA_NS {

// Bit for bit, NaN for NaN.
inline bool same_float(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0 || (a != a && b != b); }

// The inputs (as bit patterns) where vexp and xsimd::exp differ, among x =
// bits(first + i * stride) for i < count, the first one into *first_bad.
// Only x below 88 (vexp's domain) and NaN count.
inline size_t vexp_mismatches(uint32_t first, uint32_t stride, size_t count, uint32_t* first_bad) {
  size_t bad = 0;
  alignas(64) uint32_t bits[W];
  alignas(64) float x[W], got[W], want[W];
  for (size_t i = 0; i < count; i += W) {
    for (size_t j = 0; j < W; ++j) bits[j] = first + uint32_t(i + j) * stride;
    std::memcpy(x, bits, sizeof(x));
    const vf v = vf::load_aligned(x);
    vexp(v).store_aligned(got);
    xsimd::exp(v).store_aligned(want);
    for (size_t j = 0; j < W && i + j < count; ++j) {
      if (x[j] >= 88.0f) continue;
      if (!same_float(got[j], want[j]) && bad++ == 0) *first_bad = bits[j];
    }
  }
  return bad;
}

// Vectors (random values, with repeats, signed zeros, infinities and NaN in
// some lanes) where reduce_add differs from xsimd::hadd or reduce_max from
// the fold its comment gives (lane i of the low half becomes high > low ?
// high : low, log2(W) times).
inline size_t reduction_mismatches(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 100.0f);
  const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-40f, 3.0f};
  size_t bad = 0;
  alignas(64) float x[W], fold[W];
  for (size_t i = 0; i < count; ++i) {
    for (size_t j = 0; j < W; ++j) {
      const uint32_t pick = rng() % 16;
      x[j] = pick < 7 ? special[pick] : pick < 9 && j > 0 ? x[j - 1] : normal(rng);
    }
    const vf v = vf::load_aligned(x);
    std::memcpy(fold, x, sizeof(x));
    for (size_t w = W / 2; w > 0; w /= 2)
      for (size_t j = 0; j < w; ++j) fold[j] = fold[j + w] > fold[j] ? fold[j + w] : fold[j];
    if (!same_float(reduce_add(v), xsimd::hadd(v)) || !same_float(reduce_max(v), fold[0])) ++bad;
  }
  return bad;
}

}  // namespace qkv::ops::QKV_ISA_NS
