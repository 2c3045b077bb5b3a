// The kernel table the engine runs with, chosen once at start-up from what
// this CPU offers (ops/platform.h), or forced by QKV_ISA.
#pragma once

#include <string>
#include <vector>

#include "ops/ops.h"
#include "ops/platform.h"

namespace qkv {

using ops::CpuFeatures;
using ops::cpu_features;

// Every kernel table this machine can run, lowest first ("scalar" first).
inline std::vector<const ops::Kernels*> available_kernels() { return ops::runnable_kernels(); }

// The best table, or the one QKV_ISA=scalar|sse2|avx2|avxvnni|avx512 forces. Asking
// for an ISA the CPU lacks is an error (thrown on first call).
const ops::Kernels& active_kernels();

// Look up a table by name; throws qkv::Error if unknown or unsupported here.
const ops::Kernels& kernels_by_name(const std::string& isa);

}  // namespace qkv
