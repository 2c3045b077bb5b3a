// The architectures qkv ships, one file each in models/. Adding one: its
// file (hyper-parameters, tensors, forward pass), its factory below, and
// its line in registry.cpp.
#pragma once

#include <memory>

#include "engine/runtime/architecture.h"

namespace qkv {

std::unique_ptr<Architecture> make_llama(const WeightFile& wf);  // "llama" (and llama2.c .bin)

// Registers every architecture above with the engine (once; the API calls it
// before its first load).
void register_builtin_architectures();

}  // namespace qkv
