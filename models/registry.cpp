#include "models/registry.h"

#include <mutex>

namespace qkv {

void register_builtin_architectures() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_architecture("llama", make_llama);
  });
}

}  // namespace qkv
