// A view of a weight tensor inside a mapped file (or an owned buffer).
// Shapes follow GGUF: ne[0] is the length of a row (the innermost,
// contiguous dimension), ne[1] the number of rows, and so on. Its type's
// layout and kernels are a row of the type table (ops/types.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "ops/types.h"

namespace qkv {

using ops::Type;
using ops::TypeInfo;

struct Tensor {
  std::string name;
  Type type = Type::F32;
  int n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};
  const void* data = nullptr;
  // Types with a packed form (TypeInfo::repack): the first packed_rows rows
  // (a multiple of TypeInfo::group_rows()) again, as the products read them:
  // interleaved by groups of 8 rows (integer types) or in panels (float
  // types); null when there is no such copy.
  const void* packed = nullptr;
  int64_t packed_rows = 0;

  const TypeInfo& info() const { return ops::type_info(type); }
  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t row_len() const { return ne[0]; }
  int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
  size_t row_bytes() const { return info().row_bytes(ne[0]); }
  size_t n_bytes() const { return row_bytes() * size_t(n_rows()); }
  std::string shape_str() const;
};

}  // namespace qkv
