#include "engine/tensor.h"

namespace qkv {

const char* dtype_name(uint32_t t) {
  static const char* names[] = {"F32",  "F16",  "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0",
                                "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
                                "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
                                "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32",
                                "I64", "F64", "IQ1_M", "BF16"};
  if (t < sizeof(names) / sizeof(names[0])) return names[t];
  return "unknown";
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::Q4_0: case DType::Q8_0: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: return 0;
  }
  return 0;
}

bool dtype_is_quantized(DType t) { return t == DType::Q4_0 || t == DType::Q8_0; }
bool dtype_is_kquant(DType t) { return t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K; }

size_t dtype_row_bytes(DType t, int64_t n) {
  switch (t) {
    case DType::Q8_0: return size_t(n) / 32 * 34;
    case DType::Q4_0: return size_t(n) / 32 * 18;
    case DType::Q4_K: return size_t(n) / 256 * 144;
    case DType::Q5_K: return size_t(n) / 256 * 176;
    case DType::Q6_K: return size_t(n) / 256 * 210;
    default: return size_t(n) * dtype_size(t);
  }
}

std::string Tensor::shape_str() const {
  std::string s = "[";
  for (int i = 0; i < n_dims; ++i) {
    if (i) s += ", ";
    s += std::to_string(ne[i]);
  }
  return s + "]";
}

}  // namespace qkv
