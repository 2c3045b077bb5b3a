#include "engine/quantize.h"

#include <cstring>

#include "engine/error.h"
#include "engine/tensor.h"
#include "ops/ops.h"
#include "ops/quant.h"

namespace qkv {

int quant_block_size(uint32_t t) {
  switch (t) {
    case 2: case 8: return 32;  // Q4_0, Q8_0
    case 12: case 13: case 14: return 256;  // Q4_K, Q5_K, Q6_K
    default: return 1;
  }
}

uint64_t quant_row_bytes(uint32_t t, int64_t n) {
  switch (t) {
    case 0: return uint64_t(n) * 4;
    case 1: case 30: return uint64_t(n) * 2;
    case 8: return uint64_t(n) / ops::kQK8_0 * sizeof(ops::BlockQ8_0);
    case 2: return uint64_t(n) / ops::kQK4_0 * sizeof(ops::BlockQ4_0);
    case 12: return uint64_t(n) / ops::kQK_K * sizeof(ops::BlockQ4_K);
    case 13: return uint64_t(n) / ops::kQK_K * sizeof(ops::BlockQ5_K);
    case 14: return uint64_t(n) / ops::kQK_K * sizeof(ops::BlockQ6_K);
    default: throw Error(cat("type ", dtype_name(t), " has no known row size here"));
  }
}

void quantize_rows(uint32_t t, const float* src, void* dst, int64_t rows, int64_t cols) {
  if (cols % quant_block_size(t) != 0)
    throw Error(cat("rows of ", cols, " values cannot be stored as ", dtype_name(t), " (block size ", quant_block_size(t), ")"));
  uint8_t* out = static_cast<uint8_t*>(dst);
  const uint64_t rb = quant_row_bytes(t, cols);
  for (int64_t r = 0; r < rows; ++r, src += cols, out += rb) {
    switch (t) {
      case 0: std::memcpy(out, src, rb); break;
      case 1: {
        uint16_t* h = reinterpret_cast<uint16_t*>(out);
        for (int64_t i = 0; i < cols; ++i) h[i] = ops::f32_to_f16(src[i]);
        break;
      }
      case 8: ops::quantize_row_q8_0(src, reinterpret_cast<ops::BlockQ8_0*>(out), size_t(cols)); break;
      case 2: ops::quantize_row_q4_0(src, reinterpret_cast<ops::BlockQ4_0*>(out), size_t(cols)); break;
      case 12: ops::quantize_row_q4_K(src, reinterpret_cast<ops::BlockQ4_K*>(out), size_t(cols)); break;
      case 13: ops::quantize_row_q5_K(src, reinterpret_cast<ops::BlockQ5_K*>(out), size_t(cols)); break;
      case 14: ops::quantize_row_q6_K(src, reinterpret_cast<ops::BlockQ6_K*>(out), size_t(cols)); break;
      default: throw Error(cat("cannot write tensors of type ", dtype_name(t)));
    }
  }
}

void dequantize_row(uint32_t t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case 0: std::memcpy(dst, src, size_t(n) * 4); break;
    case 1: for (int64_t i = 0; i < n; ++i) dst[i] = ops::f16_to_f32(static_cast<const uint16_t*>(src)[i]); break;
    case 30: for (int64_t i = 0; i < n; ++i) dst[i] = ops::bf16_to_f32(static_cast<const uint16_t*>(src)[i]); break;
    case 8: ops::dequantize_row_q8_0(static_cast<const ops::BlockQ8_0*>(src), dst, size_t(n)); break;
    case 2: ops::dequantize_row_q4_0(static_cast<const ops::BlockQ4_0*>(src), dst, size_t(n)); break;
    case 12: ops::dequantize_row_q4_K(static_cast<const ops::BlockQ4_K*>(src), dst, size_t(n)); break;
    case 13: ops::dequantize_row_q5_K(static_cast<const ops::BlockQ5_K*>(src), dst, size_t(n)); break;
    case 14: ops::dequantize_row_q6_K(static_cast<const ops::BlockQ6_K*>(src), dst, size_t(n)); break;
    default: throw Error(cat("cannot read tensors of type ", dtype_name(t)));
  }
}

}  // namespace qkv
