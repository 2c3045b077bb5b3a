// x86-64: cpuid and xgetbv decide which of the per-ISA tables may run.
#include <cpuid.h>
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "ops/platform.h"

namespace qkv::ops {
namespace {

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

CpuFeatures probe() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  const unsigned max_leaf = a;
  __cpuid(1, a, b, c, d);
  f.sse2 = d & (1u << 26);
  const bool osxsave = c & (1u << 27);
  const bool fma = c & (1u << 12);
  const bool f16c = c & (1u << 29);
  const bool avx = c & (1u << 28);
  if (!osxsave || max_leaf < 7) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;     // SSE + AVX state
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;   // + opmask, ZMM_Hi256, Hi16_ZMM
  __cpuid_count(7, 0, a, b, c, d);
  const unsigned max_subleaf7 = a;
  const bool avx2 = b & (1u << 5);
  const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17);
  const bool avx512bw = b & (1u << 30), avx512vl = b & (1u << 31);
  f.avx2 = avx && avx2 && fma && f16c && os_ymm;
  f.avx512_vnni = avx512f && (c & (1u << 11));
  // Our AVX-512 unit uses VNNI for int8 products: CPUs with AVX-512 but no
  // VNNI (Skylake-X) run the AVX2 kernels.
  f.avx512 = f.avx2 && avx512f && avx512dq && avx512bw && avx512vl && f.avx512_vnni && os_zmm;
  f.avx512_vbmi = f.avx512 && (c & (1u << 1));
  if (max_subleaf7 >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    f.avx_vnni = f.avx2 && (a & (1u << 4));
    f.avx512_bf16 = f.avx512 && (a & (1u << 5));
  }
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = probe();
  return f;
}

std::vector<const Kernels*> runnable_kernels() {
  const CpuFeatures& f = cpu_features();
  std::vector<const Kernels*> v = {&reference_kernels()};
  if (f.sse2) v.push_back(&sse2_kernels());
  if (f.avx2) v.push_back(&avx2_kernels());
  if (f.avx_vnni) v.push_back(&avxvnni_kernels());
  if (f.avx512) v.push_back(&avx512_kernels());
  return v;
}

void cpu_relax() { _mm_pause(); }

std::string cpu_name() {
  unsigned a, b, c, d;
  if (!__get_cpuid(0x80000000u, &a, &b, &c, &d) || a < 0x80000004u) return "";
  char brand[49] = {};
  for (unsigned leaf = 0; leaf < 3; ++leaf) {
    __cpuid(0x80000002u + leaf, a, b, c, d);
    const unsigned regs[4] = {a, b, c, d};
    std::memcpy(brand + 16 * leaf, regs, 16);
  }
  std::string s(brand);
  const size_t first = s.find_first_not_of(' '), last = s.find_last_not_of(' ');
  return first == std::string::npos ? "" : s.substr(first, last - first + 1);
}

}  // namespace qkv::ops
