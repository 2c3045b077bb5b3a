#include "engine/runtime/zeroed_memory.h"

#include <sys/mman.h>

#include <new>
#include <utility>

namespace qkv {

ZeroedMemory::ZeroedMemory(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  p_ = p;
}

ZeroedMemory::~ZeroedMemory() {
  if (p_) ::munmap(p_, bytes_);
}

ZeroedMemory& ZeroedMemory::operator=(ZeroedMemory&& o) noexcept {
  if (this != &o) {
    if (p_) ::munmap(p_, bytes_);
    p_ = std::exchange(o.p_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

}  // namespace qkv
