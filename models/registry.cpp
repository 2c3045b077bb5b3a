#include "models/registry.h"

#include <mutex>

namespace qkv {

void register_builtin_architectures() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_architecture("llama", make_llama);
    register_architecture("qwen2", make_qwen2);
    register_architecture("qwen3", make_qwen3);
    register_architecture("phi3", make_phi3);
    register_architecture("gemma2", make_gemma2);
    register_architecture("gemma3", make_gemma3);
    register_architecture("gpt2", make_gpt2);
  });
}

}  // namespace qkv
