// What the processor offers, and the little of it the rest of qkv needs
// beyond the kernels: the instruction sets this CPU (and its OS) can run, the
// kernel tables they allow, and a spin-wait hint. One file per platform
// implements it (platform_x86.cpp); nothing outside ops/ touches cpuid or
// intrinsics.
#pragma once

#include <string>
#include <vector>

#include "ops/ops.h"

namespace qkv::ops {

// From our own cpuid + xgetbv probe (xsimd 8.1's detection misreads some
// bits and ignores OS support).
struct CpuFeatures {
  bool sse2 = false;
  bool avx2 = false;     // AVX2 + FMA + F16C, with the OS saving YMM state
  bool avx_vnni = false;  // VEX-encoded vpdpbusd on ymm (with avx2)
  bool avx512 = false;   // AVX-512 F/BW/VL/DQ + VNNI, with the OS saving ZMM state
  bool avx512_vnni = false;
  bool avx512_bf16 = false;  // vdpbf16ps (with avx512)
  bool avx512_vbmi = false;  // vpermb, vpmultishiftqb (with avx512)
};
const CpuFeatures& cpu_features();

// Every kernel table this machine can run, lowest first (the scalar
// reference first, the best last).
std::vector<const Kernels*> runnable_kernels();

// Tells the core that this thread is spinning on a flag (x86: pause).
void cpu_relax();

// The processor's name as it gives it (x86: cpuid's brand string), or "".
std::string cpu_name();

}  // namespace qkv::ops
