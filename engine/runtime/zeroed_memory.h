// Zero-filled memory from the operating system, committed page by page as it
// is first touched (an anonymous mapping): a KV cache sized for a long
// context costs only what the tokens written so far occupy.
#pragma once

#include <cstddef>

namespace qkv {

class ZeroedMemory {
 public:
  ZeroedMemory() = default;
  explicit ZeroedMemory(size_t bytes);  // throws std::bad_alloc when the mapping fails
  ~ZeroedMemory();
  ZeroedMemory(ZeroedMemory&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr, o.bytes_ = 0; }
  ZeroedMemory& operator=(ZeroedMemory&& o) noexcept;
  ZeroedMemory(const ZeroedMemory&) = delete;
  ZeroedMemory& operator=(const ZeroedMemory&) = delete;

  template <class T>
  T* as() const { return static_cast<T*>(p_); }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace qkv
