// Zero-filled memory from the operating system, committed page by page as it
// is first touched (an anonymous mapping): a KV cache sized for a long
// context costs only what the tokens written so far occupy.
//
// Memory that is streamed whole again and again (packed weights, the KV
// cache) asks for huge pages: aligned to 2 MiB and advised so, it is then read with one TLB
// entry per 2 MiB instead of per 4 KiB (the kernel decides; the advice is
// harmless where it has none to give).
#pragma once

#include <cstddef>

namespace qkv {

class ZeroedMemory {
 public:
  ZeroedMemory() = default;
  // Throws std::bad_alloc when the mapping fails.
  explicit ZeroedMemory(size_t bytes, bool huge_pages = false);
  ~ZeroedMemory();
  ZeroedMemory(ZeroedMemory&& o) noexcept : p_(o.p_), bytes_(o.bytes_), base_(o.base_), mapped_(o.mapped_) {
    o.p_ = o.base_ = nullptr, o.bytes_ = o.mapped_ = 0;
  }
  ZeroedMemory& operator=(ZeroedMemory&& o) noexcept;
  ZeroedMemory(const ZeroedMemory&) = delete;
  ZeroedMemory& operator=(const ZeroedMemory&) = delete;

  template <class T>
  T* as() const { return static_cast<T*>(p_); }
  // Commits [offset, offset + bytes) now, in one call (MADV_POPULATE_WRITE,
  // Linux 5.14 on) rather than a page fault per page as it is first written;
  // where the kernel lacks it, nothing: the pages come as they are touched.
  void populate(size_t offset, size_t bytes) const;
  size_t bytes() const { return bytes_; }

 private:
  void release();
  void* p_ = nullptr;
  size_t bytes_ = 0;
  void* base_ = nullptr;  // the mapping behind p_ (larger when aligned for huge pages)
  size_t mapped_ = 0;
};

}  // namespace qkv
