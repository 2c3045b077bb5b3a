// The architectures qkv ships, one file each in models/. Adding one: its
// file (hyper-parameters, tensors, forward pass), its factory below, and
// its line in registry.cpp.
#pragma once

#include <memory>

#include "engine/runtime/architecture.h"

namespace qkv {

std::unique_ptr<Architecture> make_llama(const WeightFile& wf);   // "llama" (and llama2.c .bin), llama.cpp
std::unique_ptr<Architecture> make_qwen2(const WeightFile& wf);   // "qwen2", qwen2.cpp
std::unique_ptr<Architecture> make_qwen3(const WeightFile& wf);   // "qwen3", qwen3.cpp
std::unique_ptr<Architecture> make_phi3(const WeightFile& wf);    // "phi3", phi3.cpp
std::unique_ptr<Architecture> make_gemma2(const WeightFile& wf);  // "gemma2", gemma.cpp
std::unique_ptr<Architecture> make_gemma3(const WeightFile& wf);  // "gemma3", gemma.cpp
std::unique_ptr<Architecture> make_gpt2(const WeightFile& wf);    // "gpt2", gpt2.cpp

// Registers every architecture above with the engine (once; the API calls it
// before its first load).
void register_builtin_architectures();

}  // namespace qkv
