// A view of a weight tensor inside a mapped file (or an owned buffer).
// Shapes follow GGUF: ne[0] is the length of a row (the innermost,
// contiguous dimension), ne[1] the number of rows, and so on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace qkv {

// Values are GGML's type ids, as stored in GGUF files.
enum class DType : uint32_t { F32 = 0, F16 = 1, BF16 = 30 };

const char* dtype_name(uint32_t ggml_type);  // "F32", "Q4_K", ... or "unknown"
size_t dtype_size(DType t);                   // bytes per element

struct Tensor {
  std::string name;
  DType type = DType::F32;
  int n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};
  const void* data = nullptr;

  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t row_len() const { return ne[0]; }
  int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
  size_t n_bytes() const { return size_t(n_elements()) * dtype_size(type); }
  std::string shape_str() const;
};

}  // namespace qkv
