// The BF16 products with AVX512_BF16's vdpbf16ps (Cooper Lake, Sapphire
// Rapids, Zen 4 and later): the kernels of simd_kernels.h over pairs, built
// with -mavx512bf16 in a unit of their own, taken by avx512_kernels() only
// where the CPU has the instruction.
#define QKV_ISA_NS isa_avx512bf16
#define QKV_ARCH xsimd::avx512bw
#define QKV_BF16_NATIVE 1
#include <immintrin.h>

#include "ops/simd_kernels.h"
#include "ops/isa_avx512_hooks.h"

namespace qkv::ops::isa_avx512bf16 {

// Per lane: acc + w.hi x.hi + w.lo x.lo, the odd products first, each sum
// rounded to nearest even (subnormals flushed to zero).
inline vf dot_pairs(vf acc, vu w, vu x) {
  return _mm512_dpbf16_ps(acc, (__m512bh)(__m512i)w, (__m512bh)(__m512i)x);
}

}  // namespace qkv::ops::isa_avx512bf16

qkv::ops::Bf16Products qkv::ops::avx512bf16_products() { return isa_avx512bf16::bf16_products("vdpbf16ps"); }
