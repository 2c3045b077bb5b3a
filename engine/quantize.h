// Converting f32 rows to the storage types qkv writes (F32, F16, Q8_0, Q4_0,
// Q4_K, Q5_K, Q6_K)
// and back, by GGML type id.
#pragma once

#include <cstdint>

namespace qkv {

int quant_block_size(uint32_t ggml_type);                 // elements per block (1 for F32/F16)
uint64_t quant_row_bytes(uint32_t ggml_type, int64_t n);  // bytes of a row of n values
// rows x cols values in, rows x quant_row_bytes(type, cols) bytes out.
// Throws qkv::Error for a type it cannot write or cols not a block multiple.
void quantize_rows(uint32_t ggml_type, const float* src, void* dst, int64_t rows, int64_t cols);
void dequantize_row(uint32_t ggml_type, const void* src, float* dst, int64_t n);

}  // namespace qkv
