// Which instruction sets this CPU and OS can run, from our own cpuid + xgetbv
// probe (xsimd 8.1's detection misreads some bits and ignores OS support), and
// the kernel table chosen from them once at start-up.
#pragma once

#include <string>
#include <vector>

#include "ops/ops.h"

namespace qkv {

struct CpuFeatures {
  bool sse2 = false;
  bool avx2 = false;     // AVX2 + FMA + F16C, with the OS saving YMM state
  bool avx512 = false;   // AVX-512 F/BW/VL/DQ + VNNI, with the OS saving ZMM state
  bool avx512_vnni = false;
};

const CpuFeatures& cpu_features();

// Every kernel table this machine can run, lowest first ("scalar" first).
std::vector<const ops::Kernels*> available_kernels();

// The best table, or the one QKV_ISA=scalar|sse2|avx2|avx512 forces. Asking
// for an ISA the CPU lacks is an error (thrown on first call).
const ops::Kernels& active_kernels();

// Look up a table by name; throws qkv::Error if unknown or unsupported here.
const ops::Kernels& kernels_by_name(const std::string& isa);

}  // namespace qkv
