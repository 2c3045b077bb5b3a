// Built with the AVX-512 flags of isa_avx512.cpp (tests/CMakeLists.txt) and
// called by test_ops.cpp only where the CPU has AVX-512: no static
// initializers here, so nothing runs at start-up on a CPU without it.
#define QKV_ISA_NS isa_vexp_test
#define QKV_ARCH xsimd::avx512bw
#include <immintrin.h>

#include <cstring>

#include "ops/simd_base.h"
#include "ops/isa_avx512_hooks.h"

namespace qkv::test {

// The inputs (as bit patterns) where the AVX-512 vexp and xsimd::exp differ,
// among x = bits(first + i * stride) for i < count; the first mismatch's
// pattern into *first_bad. Only x below 88 (vexp's domain) and NaN count.
size_t vexp_mismatches_avx512(uint32_t first, uint32_t stride, size_t count, uint32_t* first_bad) {
  using namespace qkv::ops::isa_vexp_test;
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
      const bool same = std::memcmp(&got[j], &want[j], sizeof(float)) == 0 || (got[j] != got[j] && want[j] != want[j]);
      if (!same && bad++ == 0) *first_bad = bits[j];
    }
  }
  return bad;
}

}  // namespace qkv::test
