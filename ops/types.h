// The weight types: one row per GGML type, the only place that knows their
// ids, names, block layouts and which code reads, writes and multiplies them.
// Loaders, the matrix products, the quantizer, the tools and the tests all
// ask this table; nothing else spells a type id.
//
// Adding a type: its block struct and scalar code in quant*.{h,cpp}, its
// products in the kernel tables (ops.h), and its row in types.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "ops/ops.h"

namespace qkv::ops {

// GGML's type ids, as GGUF files store them.
enum class Type : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
};

// How the matrix products read a weight of this type.
enum class Compute : uint8_t {
  None,     // qkv does not compute with it (files of it can be sized and skipped)
  F32,      // float kernels (Kernels::matvec_f32 / matmul_f32)
  F16,      // float kernels over halves (matvec_f16 / matmul_f16) on activations rounded to f16
  BF16,     // Kernels::bf16 on activations rounded to bf16
  Integer,  // integer products (a QuantProducts of the kernel table) on quantized activations
};

// The form the activations take for a product: quantized blocks for an
// integer product, bf16 values for BF16 weights, floats rounded to f16 for
// F16 ones (llama.cpp multiplies both operands of those in the weight's type).
enum class Activation : uint8_t { None, Q8_0, Q8_1, Q8_K, BF16, F16 };

struct TypeInfo {
  Type type;
  const char* name;          // "Q4_K", as GGML and llama.cpp print it
  int block;                 // values per block (1 for plain types)
  size_t block_bytes;        // bytes per block
  Compute compute;
  Activation activation;     // Compute::Integer, F16 and BF16: what x is converted to
  QuantProducts Kernels::*products;  // Compute::Integer: the entry of a kernel table
  // A row of n values (a multiple of block) to floats, and back with GGML's
  // reference quantizer (the bytes llama-quantize writes); null: none here.
  void (*to_float)(const void* src, float* dst, size_t n);
  void (*from_float)(const float* src, void* dst, size_t n);
  // The packed copy made at load for the products, where there is one:
  // integer types with QuantProducts::matvec_x8 interleave rows by groups of
  // 8 (ops/quant.h), the float types store them in panels of kPanelRows
  // (ops.h). group_bytes: bytes of one group's block column; repack: the
  // packer of rows (a multiple of group_rows()) x n values; 0/null: none.
  size_t group_bytes;
  void (*repack)(const void* w, void* out, size_t rows, size_t n);
  // llama.cpp's general.file_type for a file whose matrices are all of this
  // type (-1: none).
  int file_type;
  // The first of n values (a multiple of block) that is not finite, as the
  // index of that value (plain types) or of its block (its scales: NaN or
  // infinite); -1 when all are finite. Null for types qkv does not compute with.
  int64_t (*find_nonfinite)(const void* data, size_t n);
  // from_float with an importance per value (qw: n of them, the importance
  // matrix's column means for this row's tensor), as llama-quantize
  // quantizes with --imatrix; null where it ignores them (float types, Q8_0).
  void (*from_float_weighted)(const float* src, void* dst, size_t n, const float* qw) = nullptr;

  size_t row_bytes(int64_t n) const { return size_t(n) / size_t(block) * block_bytes; }
  // Rows per group of the packed copy.
  size_t group_rows() const { return compute == Compute::Integer ? 8 : kPanelRows; }
  bool computable() const { return compute != Compute::None; }
};

// The packed copy kernel table k's products read for type t: its own layout
// where the table has one (QuantProducts::x8_repack), else the type's
// (TypeInfo::repack); repack null where t has no packed form.
struct Packing {
  void (*repack)(const void* w, void* out, size_t rows, size_t n);
  size_t group_bytes;
};
Packing packing_for(const TypeInfo& t, const Kernels& k);

// The row of a GGML type id, or null when the id is unknown.
const TypeInfo* find_type(uint32_t ggml_id);
// The row of a known type.
const TypeInfo& type_info(Type t);
// The row whose name is `name` (any case: "q4_k", "Q4_K"), or null.
const TypeInfo* find_type(const std::string& name);
// "Q4_K", or "unknown" for an id no row has.
const char* type_name(uint32_t ggml_id);
inline const char* type_name(Type t) { return type_name(uint32_t(t)); }
// "F32, F16, BF16, Q8_0, ...": the types qkv computes with, for messages.
std::string computable_type_names();
// The types qkv can write (a from_float), lowercase and comma-separated.
std::string writable_type_names();

}  // namespace qkv::ops
