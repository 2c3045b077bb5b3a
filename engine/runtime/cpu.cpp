#include "engine/runtime/cpu.h"

#include <cstdlib>

#include "engine/error.h"

namespace qkv {
namespace {

const ops::Kernels& pick() {
  const char* env = std::getenv("QKV_ISA");
  if (env && *env) return kernels_by_name(env);
  return *available_kernels().back();
}

}  // namespace

const ops::Kernels& kernels_by_name(const std::string& isa) {
  for (const ops::Kernels* k : available_kernels())
    if (isa == k->isa) return *k;
  if (isa == "scalar" || isa == "sse2" || isa == "avx2" || isa == "avxvnni" || isa == "avx512")
    throw Error(cat("QKV_ISA=", isa, ": this CPU (or its OS) does not support that instruction set"));
  throw Error(cat("QKV_ISA=", isa, ": unknown instruction set (expected scalar, sse2, avx2, avxvnni or avx512)"), Errc::InvalidArgument);
}

const ops::Kernels& active_kernels() {
  static const ops::Kernels& k = pick();
  return k;
}

}  // namespace qkv
