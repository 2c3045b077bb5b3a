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
#include <vector>

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

// Built with AddressSanitizer (GCC says so one way, clang another).
#if defined(__SANITIZE_ADDRESS__)
#define QKV_ZEROED_ARRAY_ON_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QKV_ZEROED_ARRAY_ON_HEAP 1
#endif
#endif

// n zero-filled T in a ZeroedMemory, committed page by page as touched: a
// run state's batch buffers (sized for n_batch tokens, of which generating
// one token touches the first row) cost no zero-filling up front. Under
// AddressSanitizer, a heap vector instead, so that it sees an access past
// the end (in a mapping, one lands in the last page's slack unseen).
template <class T>
class ZeroedArray {
 public:
  ZeroedArray() = default;
#ifdef QKV_ZEROED_ARRAY_ON_HEAP
  explicit ZeroedArray(size_t n) : heap_(n) {}
  T* data() { return heap_.data(); }
  const T* data() const { return heap_.data(); }
  size_t size() const { return heap_.size(); }
#else
  explicit ZeroedArray(size_t n) : mem_(n * sizeof(T)), n_(n) {}
  T* data() { return mem_.as<T>(); }
  const T* data() const { return mem_.as<T>(); }
  size_t size() const { return n_; }
#endif
  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }

 private:
#ifdef QKV_ZEROED_ARRAY_ON_HEAP
  std::vector<T> heap_;
#else
  ZeroedMemory mem_;
  size_t n_ = 0;
#endif
};

}  // namespace qkv
