// The AVX2 hooks against xsimd (tests/hooks_check.h), built with the flags
// of isa_avx2.cpp (tests/CMakeLists.txt).
#define QKV_ISA_NS isa_hooks_avx2
#define QKV_ARCH xsimd::fma3<xsimd::avx2>
#include <immintrin.h>

#include "ops/simd_base.h"
#include "ops/isa_avx2_hooks.h"
#include "tests/hooks_check.h"

namespace qkv::test {

size_t vexp_mismatches_avx2(uint32_t first, uint32_t stride, size_t count, uint32_t* first_bad) {
  return ops::isa_hooks_avx2::vexp_mismatches(first, stride, count, first_bad);
}

size_t reduction_mismatches_avx2(size_t count, uint32_t seed) {
  return ops::isa_hooks_avx2::reduction_mismatches(count, seed);
}

}  // namespace qkv::test
