// Every architecture qkv ships, registered with the engine on first use.
#include "engine/architecture.h"

namespace qkv {

void register_llama();

void register_builtin_architectures() { register_llama(); }

}  // namespace qkv
