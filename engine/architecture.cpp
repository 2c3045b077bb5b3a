#include "engine/architecture.h"

#include <map>
#include <mutex>

#include "engine/error.h"

namespace qkv {
namespace {

std::map<std::string, ArchitectureFactory>& registry() {
  static std::map<std::string, ArchitectureFactory> r;
  return r;
}
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

void register_architecture(const std::string& name, ArchitectureFactory factory) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry()[name] = factory;
}

ArchitectureFactory find_architecture(const std::string& name) {
  static std::once_flag once;
  std::call_once(once, register_builtin_architectures);
  std::lock_guard<std::mutex> lock(registry_mutex());
  auto it = registry().find(name);
  if (it == registry().end()) {
    std::string known;
    for (const auto& [n, f] : registry()) known += (known.empty() ? "" : ", ") + n;
    throw Error(cat("architecture '", name, "' is not supported (supported: ", known, ")"));
  }
  return it->second;
}

}  // namespace qkv
