// Weights read once from memory by a batch product: the next pass's bytes
// brought into L2 while the current pass computes, so that its first tile
// does not wait on memory (the hardware prefetcher starts late, and a tile
// wants the lines faster than memory gives them).
#pragma once

#include <algorithm>
#include <cstddef>

namespace qkv::ops {

constexpr size_t kLine = 64;  // bytes in a cache line, the unit of a prefetch

// [begin, end) into L2 in `calls` equal shares, one per next().
class SpreadPrefetch {
 public:
  SpreadPrefetch() = default;
  SpreadPrefetch(const void* begin, const void* end, size_t calls)
      : at_(static_cast<const char*>(begin)), end_(static_cast<const char*>(end)) {
    const size_t bytes = end_ > at_ ? size_t(end_ - at_) : 0;
    share_ = (bytes / std::max<size_t>(calls, 1) + kLine) / kLine * kLine;
  }
  void next() {
    const char* stop = std::min(at_ + share_, end_);
    for (; at_ < stop; at_ += kLine) __builtin_prefetch(at_, 0, 2);
  }

 private:
  const char* at_ = nullptr;
  const char* end_ = nullptr;
  size_t share_ = 0;
};

}  // namespace qkv::ops
