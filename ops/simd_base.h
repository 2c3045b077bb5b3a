// The vector type every SIMD kernel of simd_kernels.h works in, and the
// hooks each isa_*.cpp provides (fused multiply-add, f16 loads and stores):
// included, through simd_kernels.h, only by an isa_*.cpp file that defines
// QKV_ISA_NS (a namespace unique to that translation unit) and QKV_ARCH.
#pragma once

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "ops/ops.h"
#include "ops/prefetch.h"

namespace qkv::ops::QKV_ISA_NS {

using Arch = QKV_ARCH;
using vf = xsimd::batch<float, Arch>;
constexpr size_t W = vf::size;  // floats per vector

// Provided by the including TU: fused a*b+c, load of W halves as floats,
// store of W floats as halves (nearest, ties to even), and each lane
// rounded to the nearest f16 and back.
inline vf fmadd(vf a, vf b, vf c);
inline vf load_f16(const uint16_t* p);
inline void store_f16(uint16_t* p, vf x);
inline vf round_to_f16(vf x);
// e^x for x below 88, bit for bit as xsimd::exp computes it (AVX-512 does its
// last step, the scaling by 2^k, in one vscalefps).
inline vf vexp(vf x);
// The sum of the lanes, bit for bit as xsimd::hadd adds them.
inline float reduce_add(vf v);
// The largest lane: halves folded onto each other, log2(W) steps, each lane
// of the low half becoming (high > low ? high : low) (what maxps gives with
// the high half first), so NaN and signed zeros come out the same on every ISA.
inline float reduce_max(vf v);

inline vf load(const float* p) { return vf::load_unaligned(p); }
inline vf load(const uint16_t* p) { return load_f16(p); }
inline float widen(float x) { return x; }
inline float widen(uint16_t h) { return f16_to_f32(h); }


}  // namespace qkv::ops::QKV_ISA_NS
