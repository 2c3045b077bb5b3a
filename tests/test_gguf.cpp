// GGUF files made here: every metadata value type, version 2, BF16 tensors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "engine/format/gguf.h"
#include "engine/format/weight_file.h"
#include "engine/runtime/cpu.h"
#include "engine/api/qkv.hpp"
#include "gguf_writer.h"
#include "ops/ops.h"
#include "test_util.h"

namespace qkv {
namespace {

using test::GgufWriter;
using test::model_path;
using test::TempFile;

TEST(Gguf, EveryMetadataValueTypeReadsBack) {
  GgufWriter w(3);
  w.kv("t.u8", GgufType::U8, uint8_t(200));
  w.kv("t.i8", GgufType::I8, int8_t(-100));
  w.kv("t.u16", GgufType::U16, uint16_t(60000));
  w.kv("t.i16", GgufType::I16, int16_t(-30000));
  w.kv("t.u32", GgufType::U32, uint32_t(4000000000u));
  w.kv("t.i32", GgufType::I32, int32_t(-2000000000));
  w.kv("t.f32", GgufType::F32, 1.5f);
  w.kv("t.bool", GgufType::BOOL, uint8_t(1));
  w.kv_string("t.string", "h\xc3\xa9llo");
  w.kv("t.u64", GgufType::U64, uint64_t(1) << 40);
  w.kv("t.i64", GgufType::I64, -(int64_t(1) << 40));
  w.kv("t.f64", GgufType::F64, 2.25);
  w.kv_array("t.arr_i32", GgufType::I32, std::vector<int32_t>{1, -2, 3});
  w.kv_array("t.arr_f32", GgufType::F32, std::vector<float>{0.5f, -1.0f});
  w.kv_string_array("t.arr_str", {"a", "", "ccc"});
  const float x[3] = {1, 2, 3};
  w.tensor("x", 0, {3}, x, sizeof x);
  TempFile f(w.bytes(), ".gguf");

  const GgufFile g(f.path());
  EXPECT_EQ(*g.get_uint("t.u8"), 200u);
  EXPECT_EQ(g.find("t.i8")->i, -100);
  EXPECT_EQ(*g.get_uint("t.u16"), 60000u);
  EXPECT_EQ(g.find("t.i16")->i, -30000);
  EXPECT_EQ(*g.get_uint("t.u32"), 4000000000u);
  EXPECT_EQ(g.find("t.i32")->i, -2000000000);
  EXPECT_EQ(*g.get_float("t.f32"), 1.5);
  EXPECT_EQ(g.find("t.bool")->type, GgufType::BOOL);
  EXPECT_EQ(g.find("t.bool")->u, 1u);
  EXPECT_EQ(g.get_string("t.string"), "h\xc3\xa9llo");
  EXPECT_EQ(*g.get_uint("t.u64"), uint64_t(1) << 40);
  EXPECT_EQ(g.find("t.i64")->i, -(int64_t(1) << 40));
  EXPECT_EQ(*g.get_float("t.f64"), 2.25);
  EXPECT_EQ(g.get_int_array("t.arr_i32"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(g.get_float_array("t.arr_f32"), (std::vector<float>{0.5f, -1.0f}));
  EXPECT_EQ(g.get_string_array("t.arr_str"), (std::vector<std::string>{"a", "", "ccc"}));
  // Asking for the wrong kind is an error naming the key.
  EXPECT_THROW(g.get_string("t.u8"), Error);
  EXPECT_THROW(g.get_uint("t.string"), Error);
  EXPECT_THROW(g.get_uint("t.i8"), Error);  // negative
  EXPECT_THROW(g.get_string_array("t.arr_i32"), Error);
  ASSERT_EQ(g.tensors().size(), 1u);
  EXPECT_EQ(static_cast<const float*>(g.tensor(g.tensors()[0]).data)[2], 3.0f);
}

TEST(Gguf, BadBoolAndValueTypesAreRefused) {
  GgufWriter w(3);
  w.kv("b", GgufType::BOOL, uint8_t(7));
  TempFile f(w.bytes(), ".gguf");
  EXPECT_THROW(GgufFile g(f.path()), Error);
  GgufWriter w2(3);
  w2.kv("t", GgufType(13), uint32_t(0));
  TempFile f2(w2.bytes(), ".gguf");
  EXPECT_THROW(GgufFile g(f2.path()), Error);
}

TEST(Gguf, DuplicateKeysAndTensorsAreRefused) {
  GgufWriter w(3);
  w.kv("k", GgufType::U32, uint32_t(1));
  w.kv("k", GgufType::U32, uint32_t(2));
  TempFile f(w.bytes(), ".gguf");
  EXPECT_THROW(GgufFile g(f.path()), Error);
  const float x[1] = {1};
  GgufWriter w2(3);
  w2.tensor("x", 0, {1}, x, 4);
  w2.tensor("x", 0, {1}, x, 4);
  TempFile f2(w2.bytes(), ".gguf");
  EXPECT_THROW(GgufFile g(f2.path()), Error);
}

TEST(Gguf, GeneralAlignmentIsHonoured) {
  GgufWriter w(3, 64);
  w.kv("general.alignment", GgufType::U32, uint32_t(64));
  const float a[3] = {1, 2, 3}, b[2] = {4, 5};
  w.tensor("a", 0, {3}, a, sizeof a);
  w.tensor("b", 0, {2}, b, sizeof b);  // starts at offset 64, not 12 or 32
  TempFile f(w.bytes(), ".gguf");
  const GgufFile g(f.path());
  EXPECT_EQ(g.find_tensor("b")->offset, 64u);
  EXPECT_EQ(static_cast<const float*>(g.tensor(*g.find_tensor("b")).data)[1], 5.0f);
  // An alignment that is not a power of two is refused.
  GgufWriter bad(3);
  bad.kv("general.alignment", GgufType::U32, uint32_t(48));
  TempFile fb(bad.bytes(), ".gguf");
  EXPECT_THROW(GgufFile gb(fb.path()), Error);
}

// An alignment of 1 or 2 is a power of two (llama.cpp takes it), but it can
// put a tensor's data off 4 bytes, and qkv reads tensors in place through
// typed pointers: such a file is refused with the tensor and its offset (a
// fuzzed file reached a misaligned load in the non-finite check).
TEST(Gguf, TensorDataOffFourBytesIsRefused) {
  GgufWriter w(3, 2);
  w.kv("general.alignment", GgufType::U32, uint32_t(2));
  const uint16_t h = 0x3c00;  // f16 1.0: 2 bytes, so the next tensor starts 2 bytes on
  const float x = 1.0f;
  w.tensor("h", 1, {1}, &h, sizeof h);
  w.tensor("x", 0, {1}, &x, sizeof x);
  TempFile f(w.bytes(), ".gguf");
  try {
    GgufFile g(f.path());
    ADD_FAILURE() << "loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is not 4-byte aligned (general.alignment 2)"), std::string::npos) << e.what();
  }
}

TEST(Gguf, UnknownArchitectureIsRefusedByName) {
  GgufWriter w(3);
  w.kv_string("general.architecture", "mamba");
  TempFile f(w.bytes(), ".gguf");
  try {
    Model::load(f.path());
    ADD_FAILURE() << "loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'mamba' is not supported"), std::string::npos) << e.what();
  }
}

// stories260K.gguf rewritten: version 2, or every matrix in BF16.
std::string rewrite_stories(uint32_t version, bool bf16) {
  const GgufFile src(model_path("stories260K.gguf"));
  GgufWriter w(version);
  w.copy_metadata(src);
  for (const GgufTensorInfo& ti : src.tensors()) {
    const Tensor t = src.tensor(ti);
    std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
    if (bf16 && t.n_dims == 2) {
      std::vector<uint16_t> h(size_t(t.n_elements()));
      const float* p = static_cast<const float*>(t.data);
      for (size_t i = 0; i < h.size(); ++i) {
        uint32_t bits;
        std::memcpy(&bits, &p[i], 4);
        h[i] = uint16_t((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);  // round to nearest even
      }
      w.tensor(ti.name, 30, ne, h.data(), h.size() * 2);
    } else {
      w.tensor(ti.name, ti.ggml_type, ne, t.data, t.n_bytes());
    }
  }
  return w.bytes();
}

std::vector<int> greedy(const std::string& path, int n) {
  const auto model = Model::load(path);
  Session s(model, SessionOptions{});
  Sampler g(model->info().vocab_size, test::greedy_params());
  return generate(s, g, model->tokenize("Once upon a time", true), n, nullptr).tokens;
}

TEST(Gguf, Version2LoadsLikeVersion3) {
  TempFile f(rewrite_stories(2, false), ".gguf");
  const test::ReferenceCase c = test::load_case("stories260K-gguf-once.txt");
  const std::vector<int> ids = greedy(f.path(), 50);
  EXPECT_TRUE(std::equal(ids.begin(), ids.end(), c.generated_ids.begin()));
}

TEST(Gguf, Bf16WeightsLoadAndFollowF32) {
  TempFile f(rewrite_stories(3, true), ".gguf");
  const test::ReferenceCase c = test::load_case("stories260K-gguf-once.txt");
  const std::vector<int> ids = greedy(f.path(), 20);
  // bf16 keeps 8 bits of mantissa: the greedy story still starts the same.
  ASSERT_GE(c.generated_ids.size(), ids.size());
  EXPECT_TRUE(std::equal(ids.begin(), ids.end(), c.generated_ids.begin()));
}

// BF16 matrices stay BF16: packed at load in panels of column pairs (the
// file's rows through pack_panels_bf16), and qkv info says what multiplies them.
TEST(Gguf, Bf16MatricesArePackedInColumnPairs) {
  TempFile f(rewrite_stories(3, true), ".gguf");
  auto wf = WeightFile::open(f.path()), plain = WeightFile::open(f.path());
  std::vector<const Tensor*> matmul;
  for (const std::string& name : wf->tensor_names())
    if (wf->find(name)->n_dims == 2) matmul.push_back(wf->find(name));
  wf->pack_for_products(matmul, {}, active_kernels());
  int packed = 0;
  for (const Tensor* t : matmul) {
    ASSERT_EQ(t->type, Type::BF16) << t->name;
    const size_t n = size_t(t->row_len()), rows = size_t(t->n_rows()) / ops::kPanelRows * ops::kPanelRows;
    if (rows == 0) continue;
    ++packed;
    ASSERT_NE(t->packed, nullptr) << t->name;
    std::vector<uint16_t> want(rows * n);
    ops::pack_panels_bf16(static_cast<const uint16_t*>(plain->find(t->name)->data), want.data(), rows, n);
    EXPECT_EQ(0, std::memcmp(want.data(), t->packed, want.size() * 2)) << t->name;
  }
  EXPECT_GT(packed, 0);
  const FileDescription d = describe_model_file(f.path());
  bool seen = false;
  for (const TypeDescription& t : d.types) {
    if (t.type != "BF16") continue;
    seen = true;
    EXPECT_NE(t.runs_with.find("bf16 products on activations rounded to bf16"), std::string::npos) << t.runs_with;
    EXPECT_NE(t.runs_with.find(active_kernels().bf16.how), std::string::npos) << t.runs_with;
  }
  EXPECT_TRUE(seen);
}

}  // namespace
}  // namespace qkv
