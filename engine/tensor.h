// A view of a weight tensor inside a mapped file (or an owned buffer).
// Shapes follow GGUF: ne[0] is the length of a row (the innermost,
// contiguous dimension), ne[1] the number of rows, and so on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace qkv {

// Values are GGML's type ids, as stored in GGUF files.
enum class DType : uint32_t { F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8, Q4_K = 12, Q5_K = 13, Q6_K = 14, BF16 = 30 };

const char* dtype_name(uint32_t ggml_type);  // "F32", "Q4_K", ... or "unknown"
size_t dtype_size(DType t);                   // bytes per element (0 for block types)
bool dtype_is_quantized(DType t);  // Q8_0 / Q4_0: integer products against Q8_0 activations
bool dtype_is_kquant(DType t);     // Q4_K / Q5_K / Q6_K: integer products against Q8_K activations
size_t dtype_row_bytes(DType t, int64_t n);   // bytes of a row of n values

struct Tensor {
  std::string name;
  DType type = DType::F32;
  int n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};
  const void* data = nullptr;
  // Q8_0 / Q4_0 / Q4_K matrices: the first packed_rows rows (a multiple of 8) again,
  // interleaved by groups of 8 rows for the products (ops/quant.h,
  // repack_x8); null when there is no such copy.
  const void* packed = nullptr;
  int64_t packed_rows = 0;

  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t row_len() const { return ne[0]; }
  int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
  size_t n_bytes() const { return dtype_row_bytes(type, ne[0]) * size_t(n_rows()); }
  std::string shape_str() const;
};

}  // namespace qkv
