#include "engine/format/zeroed_memory.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <new>
#include <utility>

namespace qkv {

ZeroedMemory::ZeroedMemory(size_t bytes, bool huge_pages) : bytes_(bytes) {
  if (bytes == 0) return;
  constexpr size_t kHuge = size_t(2) << 20;
  mapped_ = huge_pages ? bytes + kHuge : bytes;
  void* p = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  base_ = p_ = p;
  if (huge_pages) {
    p_ = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(p) + kHuge - 1) / kHuge * kHuge);
#ifdef MADV_HUGEPAGE
    ::madvise(p_, bytes, MADV_HUGEPAGE);  // advice: failure is harmless
#endif
  }
}

void ZeroedMemory::populate(size_t offset, size_t bytes) const {
#ifdef MADV_POPULATE_WRITE
  if (offset >= bytes_) return;
  bytes = std::min(bytes, bytes_ - offset);
  constexpr uintptr_t kPage = 4096;  // madvise wants a page-aligned start
  const uintptr_t start = (reinterpret_cast<uintptr_t>(p_) + offset) / kPage * kPage;
  const uintptr_t end = reinterpret_cast<uintptr_t>(p_) + offset + bytes;
  ::madvise(reinterpret_cast<void*>(start), end - start, MADV_POPULATE_WRITE);  // advice: failure is harmless
#else
  (void)offset, (void)bytes;
#endif
}

void ZeroedMemory::release() {
  if (base_) ::munmap(base_, mapped_);
  p_ = base_ = nullptr;
  bytes_ = mapped_ = 0;
}

ZeroedMemory::~ZeroedMemory() { release(); }

ZeroedMemory& ZeroedMemory::operator=(ZeroedMemory&& o) noexcept {
  if (this != &o) {
    release();
    p_ = std::exchange(o.p_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
    base_ = std::exchange(o.base_, nullptr);
    mapped_ = std::exchange(o.mapped_, 0);
  }
  return *this;
}

}  // namespace qkv
