// The AVX-512 hooks against xsimd (tests/hooks_check.h), built with the
// flags of isa_avx512.cpp (tests/CMakeLists.txt).
#define QKV_ISA_NS isa_hooks_avx512
#define QKV_ARCH xsimd::avx512bw
#include <immintrin.h>

#include "ops/simd_base.h"
#include "ops/isa_avx512_hooks.h"
#include "tests/hooks_check.h"

namespace qkv::test {

size_t vexp_mismatches_avx512(uint32_t first, uint32_t stride, size_t count, uint32_t* first_bad) {
  return ops::isa_hooks_avx512::vexp_mismatches(first, stride, count, first_bad);
}

size_t reduction_mismatches_avx512(size_t count, uint32_t seed) {
  return ops::isa_hooks_avx512::reduction_mismatches(count, seed);
}

}  // namespace qkv::test
