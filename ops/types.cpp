// The weight-type table (types.h): one row per type.
#include "ops/types.h"

#include <algorithm>
#include <cctype>
#include <type_traits>
#include <cstring>

#include "ops/quant.h"

namespace qkv::ops {
namespace {

// Typed row functions as the table's untyped entries.
template <class Block, void (*F)(const Block*, float*, size_t)>
void to_float(const void* src, float* dst, size_t n) {
  F(static_cast<const Block*>(src), dst, n);
}
template <class Block, void (*F)(const float*, Block*, size_t)>
void from_float(const float* src, void* dst, size_t n) {
  F(src, static_cast<Block*>(dst), n);
}

template <class Block, void (*Fn)(const float*, Block*, size_t, const float*)>
void from_float_weighted(const float* src, void* dst, size_t n, const float* qw) {
  Fn(src, static_cast<Block*>(dst), n, qw);
}
template <class Block, class Packed>
void repack(const void* w, void* out, size_t rows, size_t n) {
  repack_x8(static_cast<const Block*>(w), static_cast<Packed*>(out), rows, n);
}
template <class T>
void panels(const void* w, void* out, size_t rows, size_t n) {
  pack_panels(static_cast<const T*>(w), static_cast<T*>(out), rows, n);
}
void bf16_panels(const void* w, void* out, size_t rows, size_t n) {
  pack_panels_bf16(static_cast<const uint16_t*>(w), static_cast<uint16_t*>(out), rows, n);
}

void f32_to_float(const void* src, float* dst, size_t n) { std::memcpy(dst, src, n * sizeof(float)); }
void f32_from_float(const float* src, void* dst, size_t n) { std::memcpy(dst, src, n * sizeof(float)); }
void f16_to_float(const void* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(static_cast<const uint16_t*>(src)[i]);
}
void f16_from_float(const float* src, void* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_f16(src[i]);
}
void bf16_to_float(const void* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
}
// As GGML's fp32 -> bf16 (ops::f32_to_bf16).
void bf16_from_float(const float* src, void* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(src[i]);
}

// f16 NaN and infinities have every exponent bit set.
inline bool f16_nonfinite(uint16_t h) { return (h & 0x7c00) == 0x7c00; }

// The first of v[0, n) whose exponent bits (mask) are all set, or -1. A
// block at a time without a branch per value, so that the compiler
// vectorizes it: a file's floats are all read at load (F32 110M: 100 -> 30 ms).
template <class T, T kExponent>
int64_t first_with_exponent_set(const T* v, size_t n) {
  constexpr size_t kBlock = 4096;
  for (size_t i0 = 0; i0 < n; i0 += kBlock) {
    const size_t i1 = std::min(n, i0 + kBlock);
    T any = 0;
    for (size_t i = i0; i < i1; ++i) any |= T((v[i] & kExponent) == kExponent);
    if (!any) continue;
    for (size_t i = i0; i < i1; ++i)
      if ((v[i] & kExponent) == kExponent) return int64_t(i);
  }
  return -1;
}
int64_t f32_nonfinite(const void* data, size_t n) {
  return first_with_exponent_set<uint32_t, 0x7f800000u>(static_cast<const uint32_t*>(data), n);
}
int64_t f16_nonfinite_n(const void* data, size_t n) {
  return first_with_exponent_set<uint16_t, 0x7c00>(static_cast<const uint16_t*>(data), n);
}
int64_t bf16_nonfinite(const void* data, size_t n) {
  return first_with_exponent_set<uint16_t, 0x7f80>(static_cast<const uint16_t*>(data), n);
}
// The scales of each block (d, and dmin where the type has one).
template <class Block>
int64_t scales_nonfinite(const void* data, size_t n) {
  const Block* b = static_cast<const Block*>(data);
  for (size_t i = 0; i < n / size_t(Block::kValues); ++i) {
    if (f16_nonfinite(b[i].d)) return int64_t(i);
    if constexpr (std::is_same_v<Block, BlockQ4_K> || std::is_same_v<Block, BlockQ5_K> || std::is_same_v<Block, BlockQ2_K>)
      if (f16_nonfinite(b[i].dmin)) return int64_t(i);
    if constexpr (std::is_same_v<Block, BlockQ4_1> || std::is_same_v<Block, BlockQ5_1>)
      if (f16_nonfinite(b[i].m)) return int64_t(i);
  }
  return -1;
}

// A type qkv only sizes (a file holding it can be read past, not computed with).
constexpr TypeInfo sized(Type t, const char* name, int block, size_t bytes) {
  return TypeInfo{t, name, block, bytes, Compute::None, Activation::None, nullptr, nullptr, nullptr, 0, nullptr, -1, nullptr};
}

const TypeInfo kTypes[] = {
    // type, name, block, bytes, compute, activation, products, to_float, from_float, group bytes, repack, file_type,
    // find_nonfinite
    {Type::F32, "F32", 1, 4, Compute::F32, Activation::None, nullptr, f32_to_float, f32_from_float, kPanelRows * 4,
     panels<float>, 0, f32_nonfinite},
    {Type::F16, "F16", 1, 2, Compute::F16, Activation::F16, nullptr, f16_to_float, f16_from_float, kPanelRows * 2,
     panels<uint16_t>, 1,
     f16_nonfinite_n},
    {Type::BF16, "BF16", 1, 2, Compute::BF16, Activation::BF16, nullptr, bf16_to_float, bf16_from_float, kPanelRows * 2,
     bf16_panels, 32,
     bf16_nonfinite},
    {Type::Q8_0, "Q8_0", kQK8_0, sizeof(BlockQ8_0), Compute::Integer, Activation::Q8_0, &Kernels::q8_0,
     to_float<BlockQ8_0, dequantize_row_q8_0>, from_float<BlockQ8_0, quantize_row_q8_0>, sizeof(BlockQ8_0x8),
     repack<BlockQ8_0, BlockQ8_0x8>, 7, scales_nonfinite<BlockQ8_0>},
    {Type::Q4_0, "Q4_0", kQK4_0, sizeof(BlockQ4_0), Compute::Integer, Activation::Q8_0, &Kernels::q4_0,
     to_float<BlockQ4_0, dequantize_row_q4_0>, from_float<BlockQ4_0, quantize_row_q4_0>, sizeof(BlockQ4_0x8),
     repack<BlockQ4_0, BlockQ4_0x8>, 2, scales_nonfinite<BlockQ4_0>,
     from_float_weighted<BlockQ4_0, quantize_row_q4_0_weighted>},
    {Type::Q4_K, "Q4_K", kQK_K, sizeof(BlockQ4_K), Compute::Integer, Activation::Q8_K, &Kernels::q4_K,
     to_float<BlockQ4_K, dequantize_row_q4_K>, from_float<BlockQ4_K, quantize_row_q4_K>, sizeof(BlockQ4_Kx8),
     repack<BlockQ4_K, BlockQ4_Kx8>, 14, scales_nonfinite<BlockQ4_K>,
     from_float_weighted<BlockQ4_K, quantize_row_q4_K_weighted>},
    {Type::Q5_K, "Q5_K", kQK_K, sizeof(BlockQ5_K), Compute::Integer, Activation::Q8_K, &Kernels::q5_K,
     to_float<BlockQ5_K, dequantize_row_q5_K>, from_float<BlockQ5_K, quantize_row_q5_K>, sizeof(BlockQ5_Kx8),
     repack<BlockQ5_K, BlockQ5_Kx8>, 16,
     scales_nonfinite<BlockQ5_K>,
     from_float_weighted<BlockQ5_K, quantize_row_q5_K_weighted>},
    {Type::Q6_K, "Q6_K", kQK_K, sizeof(BlockQ6_K), Compute::Integer, Activation::Q8_K, &Kernels::q6_K,
     to_float<BlockQ6_K, dequantize_row_q6_K>, from_float<BlockQ6_K, quantize_row_q6_K>, sizeof(BlockQ6_Kx8),
     repack<BlockQ6_K, BlockQ6_Kx8>, 18,
     scales_nonfinite<BlockQ6_K>,
     from_float_weighted<BlockQ6_K, quantize_row_q6_K_weighted>},
    {Type::Q4_1, "Q4_1", 32, sizeof(BlockQ4_1), Compute::Integer, Activation::Q8_1, &Kernels::q4_1,
     to_float<BlockQ4_1, dequantize_row_q4_1>, from_float<BlockQ4_1, quantize_row_q4_1>, sizeof(BlockQ4_1x8),
     repack<BlockQ4_1, BlockQ4_1x8>, 3,
     scales_nonfinite<BlockQ4_1>,
     from_float_weighted<BlockQ4_1, quantize_row_q4_1_weighted>},
    {Type::Q5_0, "Q5_0", 32, sizeof(BlockQ5_0), Compute::Integer, Activation::Q8_0, &Kernels::q5_0,
     to_float<BlockQ5_0, dequantize_row_q5_0>, from_float<BlockQ5_0, quantize_row_q5_0>, sizeof(BlockQ5_0x8),
     repack<BlockQ5_0, BlockQ5_0x8>, 8,
     scales_nonfinite<BlockQ5_0>,
     from_float_weighted<BlockQ5_0, quantize_row_q5_0_weighted>},
    {Type::Q5_1, "Q5_1", 32, sizeof(BlockQ5_1), Compute::Integer, Activation::Q8_1, &Kernels::q5_1,
     to_float<BlockQ5_1, dequantize_row_q5_1>, from_float<BlockQ5_1, quantize_row_q5_1>, sizeof(BlockQ5_1x8),
     repack<BlockQ5_1, BlockQ5_1x8>, 9,
     scales_nonfinite<BlockQ5_1>,
     from_float_weighted<BlockQ5_1, quantize_row_q5_1_weighted>},
    {Type::IQ4_NL, "IQ4_NL", 32, sizeof(BlockIQ4_NL), Compute::Integer, Activation::Q8_0, &Kernels::iq4_nl,
     to_float<BlockIQ4_NL, dequantize_row_iq4_nl>, from_float<BlockIQ4_NL, quantize_row_iq4_nl>, sizeof(BlockIQ4_NLx8),
     repack<BlockIQ4_NL, BlockIQ4_NLx8>, 25,
     scales_nonfinite<BlockIQ4_NL>,
     from_float_weighted<BlockIQ4_NL, quantize_row_iq4_nl_weighted>},
    {Type::Q2_K, "Q2_K", kQK_K, sizeof(BlockQ2_K), Compute::Integer, Activation::Q8_K, &Kernels::q2_K,
     to_float<BlockQ2_K, dequantize_row_q2_K>, from_float<BlockQ2_K, quantize_row_q2_K>, sizeof(BlockQ2_Kx8),
     repack<BlockQ2_K, BlockQ2_Kx8>, 10,
     scales_nonfinite<BlockQ2_K>,
     from_float_weighted<BlockQ2_K, quantize_row_q2_K_weighted>},
    {Type::Q3_K, "Q3_K", kQK_K, sizeof(BlockQ3_K), Compute::Integer, Activation::Q8_K, &Kernels::q3_K,
     to_float<BlockQ3_K, dequantize_row_q3_K>, from_float<BlockQ3_K, quantize_row_q3_K>, sizeof(BlockQ3_Kx8),
     repack<BlockQ3_K, BlockQ3_Kx8>, 11,
     scales_nonfinite<BlockQ3_K>,
     from_float_weighted<BlockQ3_K, quantize_row_q3_K_weighted>},
    {Type::IQ4_XS, "IQ4_XS", kQK_K, sizeof(BlockIQ4_XS), Compute::Integer, Activation::Q8_K, &Kernels::iq4_xs,
     to_float<BlockIQ4_XS, dequantize_row_iq4_xs>, from_float<BlockIQ4_XS, quantize_row_iq4_xs>, sizeof(BlockIQ4_XSx8),
     repack<BlockIQ4_XS, BlockIQ4_XSx8>, 30,
     scales_nonfinite<BlockIQ4_XS>,
     from_float_weighted<BlockIQ4_XS, quantize_row_iq4_xs_weighted>},
    // Sized only: GGUF files holding them are read, their tensors not computed with.
    sized(Type::Q8_1, "Q8_1", 32, 36),
    sized(Type::Q8_K, "Q8_K", 256, 292),
    sized(Type::I8, "I8", 1, 1),
    sized(Type::I16, "I16", 1, 2),
    sized(Type::I32, "I32", 1, 4),
    sized(Type::I64, "I64", 1, 8),
    sized(Type::F64, "F64", 1, 8),
};

// Names of the ids no row sizes (yet), for messages.
const char* other_name(uint32_t id) {
  switch (Type(id)) {
    case Type::IQ2_XXS: return "IQ2_XXS";
    case Type::IQ2_XS: return "IQ2_XS";
    case Type::IQ3_XXS: return "IQ3_XXS";
    case Type::IQ1_S: return "IQ1_S";
    case Type::IQ3_S: return "IQ3_S";
    case Type::IQ2_S: return "IQ2_S";
    case Type::IQ1_M: return "IQ1_M";
    default: return id == 4 ? "Q4_2" : id == 5 ? "Q4_3" : "unknown";
  }
}

bool same_name(const char* a, const std::string& b) {
  if (std::strlen(a) != b.size()) return false;
  for (size_t i = 0; i < b.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

}  // namespace

const TypeInfo* find_type(uint32_t ggml_id) {
  for (const TypeInfo& t : kTypes)
    if (uint32_t(t.type) == ggml_id) return &t;
  return nullptr;
}

const TypeInfo& type_info(Type t) {
  // By id, built once: the products look their weight's row up on every call.
  static const struct ById {
    const TypeInfo* row[64] = {};
    ById() {
      for (const TypeInfo& t : kTypes) row[uint32_t(t.type)] = &t;
    }
  } by_id;
  const uint32_t id = uint32_t(t);
  return id < 64 && by_id.row[id] ? *by_id.row[id] : kTypes[0];  // every type the engine names has a row (tested)
}

const TypeInfo* find_type(const std::string& name) {
  for (const TypeInfo& t : kTypes)
    if (same_name(t.name, name)) return &t;
  return nullptr;
}

const char* type_name(uint32_t ggml_id) {
  const TypeInfo* t = find_type(ggml_id);
  return t ? t->name : other_name(ggml_id);
}

std::string computable_type_names() {
  std::string s;
  for (const TypeInfo& t : kTypes)
    if (t.computable()) s += (s.empty() ? "" : ", ") + std::string(t.name);
  return s;
}

std::string writable_type_names() {
  std::string s;
  for (const TypeInfo& t : kTypes) {
    if (!t.from_float) continue;
    std::string lower = t.name;
    for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
    s += (s.empty() ? "" : ", ") + lower;
  }
  return s;
}

Packing packing_for(const TypeInfo& t, const Kernels& k) {
  if (t.products && t.repack) {
    const QuantProducts& p = k.*t.products;
    if (p.x8_repack) return {p.x8_repack, p.x8_group_bytes};
  }
  return {t.repack, t.group_bytes};
}

}  // namespace qkv::ops
