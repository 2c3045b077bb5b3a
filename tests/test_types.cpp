// The weight-type table (ops/types.h) and the kernel tables: every row is
// consistent with its block struct and its code, every kernel table entry is
// filled, and what the engine asks of the table it answers.
#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>

#include "engine/runtime/cpu.h"
#include "ops/quant.h"
#include "ops/types.h"
#include "test_util.h"

namespace qkv {
namespace {

using ops::Type;

TEST(TypeTable, KnownRowsMatchTheirBlocks) {
  struct Want {
    Type type;
    const char* name;
    int block;
    size_t bytes;
  };
  const Want wants[] = {
      {Type::F32, "F32", 1, 4},
      {Type::F16, "F16", 1, 2},
      {Type::BF16, "BF16", 1, 2},
      {Type::Q8_0, "Q8_0", 32, sizeof(ops::BlockQ8_0)},
      {Type::Q4_0, "Q4_0", 32, sizeof(ops::BlockQ4_0)},
      {Type::Q4_K, "Q4_K", 256, sizeof(ops::BlockQ4_K)},
      {Type::Q5_K, "Q5_K", 256, sizeof(ops::BlockQ5_K)},
      {Type::Q6_K, "Q6_K", 256, sizeof(ops::BlockQ6_K)},
      {Type::Q4_1, "Q4_1", 32, 20},
      {Type::Q5_0, "Q5_0", 32, 22},
      {Type::Q5_1, "Q5_1", 32, 24},
      {Type::Q2_K, "Q2_K", 256, 84},
      {Type::Q3_K, "Q3_K", 256, 110},
      {Type::Q8_K, "Q8_K", 256, sizeof(ops::BlockQ8_K)},
  };
  for (const Want& w : wants) {
    const ops::TypeInfo* t = ops::find_type(uint32_t(w.type));
    ASSERT_NE(t, nullptr) << w.name;
    EXPECT_EQ(t->type, w.type);
    EXPECT_STREQ(t->name, w.name);
    EXPECT_EQ(t->block, w.block) << w.name;
    EXPECT_EQ(t->block_bytes, w.bytes) << w.name;
    EXPECT_EQ(&ops::type_info(w.type), t) << w.name;
    EXPECT_EQ(ops::find_type(std::string(w.name)), t) << w.name;
  }
  EXPECT_EQ(ops::find_type(uint32_t(99)), nullptr);
  EXPECT_EQ(ops::find_type(std::string("q9_9")), nullptr);
  EXPECT_STREQ(ops::type_name(uint32_t(99)), "unknown");
  EXPECT_STREQ(ops::type_name(Type::IQ4_XS), "IQ4_XS");  // named, though not sized yet
  EXPECT_EQ(ops::find_type(std::string("q4_k")), &ops::type_info(Type::Q4_K));  // any case
  EXPECT_EQ(ops::type_info(Type::Q4_K).row_bytes(512), 2 * sizeof(ops::BlockQ4_K));
}

TEST(TypeTable, ComputableRowsHaveTheirCode) {
  std::set<uint32_t> seen;
  int computable = 0;
  for (uint32_t id = 0; id < 64; ++id) {
    const ops::TypeInfo* t = ops::find_type(id);
    if (!t) continue;
    EXPECT_TRUE(seen.insert(uint32_t(t->type)).second) << t->name;
    EXPECT_EQ(uint32_t(t->type), id) << t->name;
    if (!t->computable()) {
      EXPECT_EQ(t->products, nullptr) << t->name;
      continue;
    }
    ++computable;
    EXPECT_NE(t->to_float, nullptr) << t->name;
    if (t->compute == ops::Compute::Integer) {
      EXPECT_NE(t->products, nullptr) << t->name;
      EXPECT_NE(t->activation, ops::Activation::None) << t->name;
      EXPECT_NE(t->from_float, nullptr) << t->name;
      for (const ops::Kernels* k : available_kernels()) {
        const ops::QuantProducts& p = k->*(t->products);
        EXPECT_NE(p.matvec, nullptr) << k->isa << " " << t->name;
        EXPECT_NE(p.matmul, nullptr) << k->isa << " " << t->name;
        // A row-interleaved copy is made only where the products read one.
        EXPECT_EQ(p.matvec_x8 != nullptr, t->repack != nullptr) << k->isa << " " << t->name;
        EXPECT_EQ(p.matmul_x8 != nullptr, t->repack != nullptr) << k->isa << " " << t->name;
        // A layout of the table's own is a whole one: packer, size, name.
        if (p.x8_repack) {
          EXPECT_NE(t->repack, nullptr) << k->isa << " " << t->name;
          EXPECT_GE(p.x8_group_bytes, t->group_rows() * t->block_bytes) << k->isa << " " << t->name;
          EXPECT_NE(p.x8_layout, nullptr) << k->isa << " " << t->name;
        } else {
          EXPECT_EQ(p.x8_group_bytes, 0u) << k->isa << " " << t->name;
        }
        const ops::Packing how = ops::packing_for(*t, *k);
        EXPECT_EQ(how.repack, p.x8_repack ? p.x8_repack : t->repack) << k->isa << " " << t->name;
        EXPECT_EQ(how.group_bytes, p.x8_repack ? p.x8_group_bytes : t->group_bytes) << k->isa << " " << t->name;
      }
    } else if (t->compute == ops::Compute::BF16) {
      EXPECT_EQ(t->activation, ops::Activation::BF16) << t->name;  // rounded to bf16 for the products
    } else if (t->compute == ops::Compute::F16) {
      EXPECT_EQ(t->activation, ops::Activation::F16) << t->name;  // rounded to f16 for the products
    } else {
      EXPECT_EQ(t->activation, ops::Activation::None) << t->name;
    }
    if (t->repack) {
      EXPECT_GE(t->group_bytes, t->group_rows() * t->block_bytes) << t->name;
    }
  }
  EXPECT_EQ(computable, 15);
  EXPECT_EQ(ops::computable_type_names(), "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, IQ4_XS");
}

// A row through from_float and to_float comes back within the type's step.
TEST(TypeTable, RowsRoundTrip) {
  const size_t n = 512;
  const auto x = test::randn(n, 11);
  for (uint32_t id = 0; id < 64; ++id) {
    const ops::TypeInfo* t = ops::find_type(id);
    if (!t || !t->from_float) continue;
    std::vector<uint8_t> bytes(t->row_bytes(int64_t(n)));
    std::vector<float> y(n);
    t->from_float(x.data(), bytes.data(), n);
    t->to_float(bytes.data(), y.data(), n);
    float amax = 0, err = 0;
    for (size_t i = 0; i < n; ++i) {
      amax = std::max(amax, std::fabs(x[i]));
      err = std::max(err, std::fabs(x[i] - y[i]));
    }
    // About one step of the type's levels: 10 mantissa bits (F16), 7 (BF16),
    // 4-bit types about amax / 8, Q3_K amax / 4, Q2_K amax / 2.
    const float step = t->type == Type::BF16 ? amax / 128.0f : t->block == 1 ? amax / 1024.0f
                       : t->type == Type::Q2_K ? amax / 1.5f : t->type == Type::Q3_K ? amax / 3.0f : amax / 7.0f;
    EXPECT_LE(err, step) << t->name;
    if (t->type == Type::F32) {
      EXPECT_EQ(err, 0.0f);
    }
  }
}

// The float types' load-time check finds the first value whose exponent bits
// are all set (NaN, +-Inf), wherever it is: inside and at the edges of the
// 4096-value blocks it scans, and not a finite neighbour (the largest finite
// value, a subnormal).
TEST(TypeTable, FloatRowsFindTheFirstNonFiniteValue) {
  struct Case {
    Type type;
    uint32_t bad, big;  // a NaN or infinity's bits; the largest finite value's
  };
  const Case cases[] = {{Type::F32, 0xff800000u, 0x7f7fffffu},
                        {Type::F16, 0x7e00u, 0x7bffu},
                        {Type::BF16, 0x7f80u, 0x7f7fu}};
  const size_t n = 3 * 4096 + 5;
  for (const Case& c : cases) {
    const ops::TypeInfo& t = ops::type_info(c.type);
    ASSERT_NE(t.find_nonfinite, nullptr) << t.name;
    const size_t size = t.type == Type::F32 ? 4 : 2;
    std::vector<uint8_t> v(n * size);
    const auto put = [&](size_t i, uint32_t bits) { std::memcpy(v.data() + i * size, &bits, size); };
    for (size_t i = 0; i < n; ++i) put(i, i % 3 == 0 ? c.big : i % 3 == 1 ? 1u : (c.big & ~1u));
    EXPECT_EQ(t.find_nonfinite(v.data(), n), -1) << t.name;
    EXPECT_EQ(t.find_nonfinite(v.data(), 0), -1) << t.name;
    for (size_t at : {size_t(0), size_t(1), size_t(4095), size_t(4096), size_t(8191), size_t(9000), n - 1}) {
      std::vector<uint8_t> saved = v;
      put(at, c.bad);
      EXPECT_EQ(t.find_nonfinite(v.data(), n), int64_t(at)) << t.name << " at " << at;
      EXPECT_EQ(t.find_nonfinite(v.data(), at), -1) << t.name << " before " << at;
      if (at + 7 < n) put(at + 7, c.bad);  // a second one later: still the first
      EXPECT_EQ(t.find_nonfinite(v.data(), n), int64_t(at)) << t.name << " at " << at << " and later";
      v = saved;
    }
  }
}

// Every entry of every kernel table is filled (tables are filled by name).
TEST(KernelTables, NoEntryIsNull) {
  for (const ops::Kernels* k : available_kernels()) {
    const ops::Kernels& t = *k;
    const void* entries[] = {
        reinterpret_cast<const void*>(t.dot),           reinterpret_cast<const void*>(t.matvec_f32),
        reinterpret_cast<const void*>(t.matvec_f16),    reinterpret_cast<const void*>(t.matmul_f32),
        reinterpret_cast<const void*>(t.matmul_f16),    reinterpret_cast<const void*>(t.rmsnorm),
        reinterpret_cast<const void*>(t.softmax),       reinterpret_cast<const void*>(t.swiglu),
        reinterpret_cast<const void*>(t.add),           reinterpret_cast<const void*>(t.attention_f32),
        reinterpret_cast<const void*>(t.f16_to_f32),    reinterpret_cast<const void*>(t.attention_scores_f16),
        reinterpret_cast<const void*>(t.attention_values_f16), reinterpret_cast<const void*>(t.attention_weights_f16),
        reinterpret_cast<const void*>(t.f32_to_f16),
        reinterpret_cast<const void*>(t.transpose_f32), reinterpret_cast<const void*>(t.transpose_f32_to_f16),
        reinterpret_cast<const void*>(t.quantize_q8_0), reinterpret_cast<const void*>(t.quantize_q8_K),
        reinterpret_cast<const void*>(t.fma_peak),      reinterpret_cast<const void*>(t.layernorm),
        reinterpret_cast<const void*>(t.gelu),          reinterpret_cast<const void*>(t.geglu),
        reinterpret_cast<const void*>(t.matvec_f32_panels), reinterpret_cast<const void*>(t.matvec_f16_panels),
        reinterpret_cast<const void*>(t.matmul_f32_panels), reinterpret_cast<const void*>(t.matmul_f16_panels),
        reinterpret_cast<const void*>(t.int8_peak),     reinterpret_cast<const void*>(t.quantize_q8_1),
        reinterpret_cast<const void*>(t.f32_to_bf16),   reinterpret_cast<const void*>(t.bf16.matvec),
        reinterpret_cast<const void*>(t.bf16.matmul),   reinterpret_cast<const void*>(t.bf16.matvec_panels),
        reinterpret_cast<const void*>(t.bf16.matmul_panels), reinterpret_cast<const void*>(t.bf16.peak),
        reinterpret_cast<const void*>(t.bf16.how),      reinterpret_cast<const void*>(t.round_f16),
    };
    ASSERT_NE(t.isa, nullptr);
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); ++i) EXPECT_NE(entries[i], nullptr) << t.isa << " entry " << i;
  }
}

}  // namespace
}  // namespace qkv
