// Importance matrices (qkv quantize --imatrix): both file formats read with
// their values and refused when malformed; the importance-weighted
// quantizers of every type against the plain ones (the error they weigh is
// lower, exact blocks stay exact); and quantize_model with one.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/api/qkv.hpp"
#include "engine/error.h"
#include "engine/format/gguf.h"
#include "engine/format/gguf_writer.h"
#include "engine/format/imatrix.h"
#include "ops/types.h"
#include "test_util.h"

namespace qkv {
namespace {

// llama-imatrix's legacy .dat: entries (name, calls, values), then the chunk
// count and the dataset's name (left off when dataset is null).
struct LegacyEntry {
  std::string name;
  int32_t calls;
  std::vector<float> values;
};
std::string legacy_imatrix(const std::vector<LegacyEntry>& entries, int32_t chunks = 0, const char* dataset = nullptr) {
  std::string out;
  auto put = [&](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
  auto put_i32 = [&](int32_t v) { put(&v, 4); };
  put_i32(int32_t(entries.size()));
  for (const LegacyEntry& e : entries) {
    put_i32(int32_t(e.name.size()));
    put(e.name.data(), e.name.size());
    put_i32(e.calls);
    put_i32(int32_t(e.values.size()));
    put(e.values.data(), e.values.size() * 4);
  }
  if (dataset) {
    put_i32(chunks);
    put_i32(int32_t(std::strlen(dataset)));
    put(dataset, std::strlen(dataset));
  }
  return out;
}

std::string temp_name(const std::string& what) { return "/tmp/qkv-imatrix-" + std::to_string(::getpid()) + "-" + what; }

using test::error_of;

TEST(Imatrix, ReadsTheLegacyFormat) {
  const test::TempFile f(legacy_imatrix({{"blk.0.attn_q.weight", 4, {4, 8, 0, 2}}, {"blk.0.ffn_down.weight", 0, {3, 5}}},
                                        10, "wiki.train.raw"),
                         ".dat");
  const ImportanceMatrix m = load_imatrix(f.path());
  ASSERT_EQ(m.entries.size(), 2u);
  const std::vector<float>* q = m.find("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(*q, (std::vector<float>{1, 2, 0, 0.5f}));  // divided by the calls
  ASSERT_NE(m.find("blk.0.ffn_down.weight"), nullptr);
  EXPECT_EQ(*m.find("blk.0.ffn_down.weight"), (std::vector<float>{3, 5}));  // no calls: as stored
  EXPECT_EQ(m.find("blk.1.attn_q.weight"), nullptr);
  EXPECT_EQ(m.chunks, 10);
  ASSERT_EQ(m.datasets.size(), 1u);
  EXPECT_EQ(m.datasets[0], "wiki.train.raw");

  // The older form, without the trailer.
  const test::TempFile old(legacy_imatrix({{"output.weight", 2, {2, 2}}}), ".dat");
  const ImportanceMatrix o = load_imatrix(old.path());
  ASSERT_NE(o.find("output.weight"), nullptr);
  EXPECT_EQ(*o.find("output.weight"), (std::vector<float>{1, 1}));
  EXPECT_EQ(o.chunks, 0);
  EXPECT_TRUE(o.datasets.empty());
  // The values as stored (means times calls), with the calls, for qkv imatrix --in-file.
  ASSERT_EQ(m.sums.count("blk.0.attn_q.weight"), 1u);
  EXPECT_EQ(m.sums.at("blk.0.attn_q.weight").sum2, (std::vector<float>{4, 8, 0, 2}));
  EXPECT_EQ(m.sums.at("blk.0.attn_q.weight").calls, 4);
  EXPECT_TRUE(m.sums.at("blk.0.attn_q.weight").counts.empty());
}

// llama-imatrix's GGUF: NAME.in_sum2 (ne0, n_mat) and NAME.counts (1, n_mat).
void write_gguf_imatrix(const std::string& path, bool with_counts = true, bool with_keys = true, uint32_t sum_type = 0) {
  GgufWriter w;
  if (with_keys) {
    w.add_string("general.type", "imatrix");
    w.add_string_array("imatrix.datasets", {"calibration.txt"});
    w.add_u32("imatrix.chunk_count", 7);
    w.add_u32("imatrix.chunk_size", 512);
  }
  const std::vector<float> sums = {2, 4, 6, 8, 1, 1, 1, 1}, counts = {2, 0};
  w.add_tensor("blk.0.ffn_up.weight.in_sum2", sum_type, {4, 2}, sum_type == 0 ? 32 : 16);
  if (with_counts) w.add_tensor("blk.0.ffn_up.weight.counts", 0, {1, 2}, 8);
  ::unlink(path.c_str());
  w.write(path, [&](size_t i, std::vector<uint8_t>& bytes) {
    const std::vector<float>& v = i == 0 ? sums : counts;
    bytes.resize(i == 0 && sum_type != 0 ? 16 : v.size() * 4);
    std::memcpy(bytes.data(), v.data(), bytes.size());
  });
}

TEST(Imatrix, ReadsTheGgufFormat) {
  const std::string path = temp_name("ok.gguf");
  write_gguf_imatrix(path);
  const ImportanceMatrix m = load_imatrix(path);
  ASSERT_EQ(m.entries.size(), 1u);
  const std::vector<float>* e = m.find("blk.0.ffn_up.weight");
  ASSERT_NE(e, nullptr);
  // Matrix 0: the sums over a count of 2; matrix 1 met no input: all 1.
  EXPECT_EQ(*e, (std::vector<float>{1, 2, 3, 4, 1, 1, 1, 1}));
  EXPECT_EQ(m.chunks, 7);
  ASSERT_EQ(m.datasets.size(), 1u);
  EXPECT_EQ(m.datasets[0], "calibration.txt");
  ::unlink(path.c_str());
}

TEST(Imatrix, RefusesMalformedFiles) {
  const auto message = [](const std::string& bytes) {
    const test::TempFile f(bytes, ".dat");
    return error_of([&] { load_imatrix(f.path()); });
  };
  const std::string good = legacy_imatrix({{"blk.0.attn_q.weight", 1, {1, 2, 3, 4}}});
  EXPECT_NE(message(good.substr(0, good.size() - 3)).find("values"), std::string::npos);  // truncated values
  EXPECT_NE(message(good.substr(0, 10)).find("name"), std::string::npos);                 // truncated name
  EXPECT_NE(message(legacy_imatrix({})).find("0 entries"), std::string::npos);
  EXPECT_NE(message(std::string("\x01\0\0\0\xff\xff\xff\x7f", 8)).find("a name of 2147483647 bytes"), std::string::npos);
  std::string huge = good;
  const int32_t many = 1 << 30;
  std::memcpy(&huge[4 + 4 + 19 + 4], &many, 4);  // the value count
  EXPECT_NE(message(huge).find("1073741824 values"), std::string::npos);
  EXPECT_NE(message(legacy_imatrix({{"a.weight", 1, {1, -2}}})).find("a.weight: value 1 is -2"), std::string::npos);
  EXPECT_NE(message(legacy_imatrix({{"a.weight", 1, {NAN}}})).find("a.weight: value 0"), std::string::npos);
  EXPECT_NE(message(legacy_imatrix({{"a.weight", 1, {1}}, {"a.weight", 1, {1}}})).find("twice"), std::string::npos);
  EXPECT_NE(message("").find(".dat"), std::string::npos);  // empty: named

  const std::string path = temp_name("bad.gguf");
  write_gguf_imatrix(path, false);
  EXPECT_NE(error_of([&] { load_imatrix(path); }).find("blk.0.ffn_up.weight has sums (.in_sum2) but no counts"),
            std::string::npos);
  write_gguf_imatrix(path, true, false);
  EXPECT_NE(error_of([&] { load_imatrix(path); }).find("not an importance matrix: no key imatrix.datasets"),
            std::string::npos);
  write_gguf_imatrix(path, true, true, 1);  // F16 sums
  EXPECT_NE(error_of([&] { load_imatrix(path); }).find("has type F16 (expected F32)"), std::string::npos);
  ::unlink(path.c_str());
  EXPECT_NE(error_of([&] { load_imatrix("/nonexistent/imatrix.dat"); }).find("/nonexistent/imatrix.dat"),
            std::string::npos);
  // A FIFO (nothing will ever write it) and a directory: refused at once, not waited on.
  const std::string fifo = temp_name("fifo");
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(error_of([&] { load_imatrix(fifo); }).find(fifo), std::string::npos);
  ::unlink(fifo.c_str());
  EXPECT_NE(error_of([&] { load_imatrix("/tmp"); }).find("/tmp"), std::string::npos);
}

// An imatrix GGUF of the given F32 tensors (name, shape, values), with the
// keys llama-imatrix writes (imatrix.chunk_count = chunks).
struct F32Tensor {
  std::string name;
  std::vector<int64_t> ne;
  std::vector<float> values;
};
void write_gguf_tensors(const std::string& path, const std::vector<F32Tensor>& tensors, uint64_t chunks = 7) {
  GgufWriter w;
  w.add_string_array("imatrix.datasets", {"calibration.txt"});
  w.add_value("imatrix.chunk_count", [&] {
    GgufValue v;
    v.type = GgufType::U64;
    v.u = chunks;
    v.i = int64_t(chunks);
    return v;
  }());
  w.add_u32("imatrix.chunk_size", 512);
  for (const F32Tensor& t : tensors) w.add_tensor(t.name, 0, t.ne, t.values.size() * 4);
  ::unlink(path.c_str());
  w.write(path, [&](size_t i, std::vector<uint8_t>& bytes) {
    bytes.resize(tensors[i].values.size() * 4);
    std::memcpy(bytes.data(), tensors[i].values.data(), bytes.size());
  });
}

// The GGUF form's other ways to be wrong, and the legacy trailer's.
TEST(Imatrix, RefusesMalformedGgufEntriesAndTrailers) {
  const std::string path = temp_name("entries.gguf");
  const auto error = [&](const std::vector<F32Tensor>& tensors, uint64_t chunks = 7) {
    write_gguf_tensors(path, tensors, chunks);
    return error_of([&] { load_imatrix(path); });
  };
  const F32Tensor sums{"a.weight.in_sum2", {2, 2}, {1, 2, 3, 4}}, counts{"a.weight.counts", {1, 2}, {1, 1}};
  write_gguf_tensors(path, {sums, counts});
  ASSERT_NE(load_imatrix(path).find("a.weight"), nullptr);  // the good one, for contrast
  EXPECT_NE(error({counts}).find("a.weight has counts (.counts) but no sums (.in_sum2)"), std::string::npos);
  EXPECT_NE(error({sums, {"a.weight.counts", {1, 3}, {1, 1, 1}}}).find("a.weight: 2 matrices of sums but 3 counts"),
            std::string::npos);
  EXPECT_NE(error({sums, {"a.weight.counts", {1, 2}, {1, -1}}}).find("a.weight: count 1 is -1"), std::string::npos);
  EXPECT_NE(error({{"a.weight.other", {2}, {1, 2}}}).find("no entries"), std::string::npos);
  EXPECT_NE(error({sums, counts, {"a.weight.in_sum", {3}, {1, 2, 3}}}).find("a.weight: 3 sums of inputs (.in_sum) but 4"),
            std::string::npos);
  // The sums as stored, for adding files together (qkv imatrix --in-file).
  write_gguf_tensors(path, {sums, counts, {"a.weight.in_sum", {2, 2}, {-1, 0, 1, 2}}});
  const ImportanceMatrix raw = load_imatrix(path);
  ASSERT_EQ(raw.sums.count("a.weight"), 1u);
  EXPECT_EQ(raw.sums.at("a.weight").sum2, sums.values);
  EXPECT_EQ(raw.sums.at("a.weight").counts, counts.values);
  EXPECT_EQ(raw.sums.at("a.weight").sum, (std::vector<float>{-1, 0, 1, 2}));
  EXPECT_EQ(raw.sums.at("a.weight").calls, -1);
  EXPECT_EQ(raw.chunk_size, 512);
  EXPECT_NE(error({sums, counts}, uint64_t(1) << 40).find("imatrix.chunk_count is 1099511627776"), std::string::npos);
  ::unlink(path.c_str());

  // Legacy: a dataset name longer than what is left.
  std::string dat = legacy_imatrix({{"a.weight", 1, {1}}}, 3, "data");
  dat.resize(dat.size() - 2);
  const test::TempFile f(dat, ".dat");
  EXPECT_NE(error_of([&] { load_imatrix(f.path()); }).find("a dataset name of 4 bytes, 2 left"), std::string::npos);
}

// sum qw (x - dequantized)^2 over a row.
double weighted_error(const ops::TypeInfo& t, const std::vector<uint8_t>& q, const float* x, const float* qw, size_t n) {
  std::vector<float> back(n);
  t.to_float(q.data(), back.data(), n);
  double e = 0;
  for (size_t i = 0; i < n; ++i) e += double(qw[i]) * (double(x[i]) - back[i]) * (double(x[i]) - back[i]);
  return e;
}

const ops::Type kWeighted[] = {ops::Type::Q4_0, ops::Type::Q4_1, ops::Type::Q5_0,   ops::Type::Q5_1,
                               ops::Type::IQ4_NL, ops::Type::Q2_K, ops::Type::Q3_K, ops::Type::Q4_K,
                               ops::Type::Q5_K, ops::Type::Q6_K, ops::Type::IQ4_XS};

// Every type llama-quantize quantizes with importances has a weighted
// quantizer; the float types and Q8_0 (which ignore them) have none.
TEST(WeightedQuantizers, ExistForTheTypesThatUseImportances) {
  for (ops::Type t : kWeighted) EXPECT_NE(ops::type_info(t).from_float_weighted, nullptr) << ops::type_name(t);
  for (ops::Type t : {ops::Type::F32, ops::Type::F16, ops::Type::BF16, ops::Type::Q8_0})
    EXPECT_EQ(ops::type_info(t).from_float_weighted, nullptr) << ops::type_name(t);
}

// Rows with heavy tails and importances spread over three orders of
// magnitude (as real activations' are): the error the importances weigh is
// lower when the quantizer is given them than when it is given uniform ones,
// and than the plain quantizer's, on the whole (per row it may not be: these
// are heuristic searches); and its plain error stays of the same size (it
// trades precision between values, it does not lose it).
TEST(WeightedQuantizers, LowerTheErrorTheImportancesWeigh) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const size_t n = 512, rows = 48;
  std::vector<float> x(n * rows), qw(n);
  for (float& v : x) v = normal(rng) * (normal(rng) > 2.0f ? 6.0f : 1.0f);
  for (float& v : qw) v = std::exp(2.0f * normal(rng));
  std::vector<float> ones(n, 1.0f);
  for (ops::Type type : kWeighted) {
    const ops::TypeInfo& t = ops::type_info(type);
    std::vector<uint8_t> plain(t.row_bytes(int64_t(n))), weighted(plain.size()), again(plain.size()), uniform(plain.size());
    double plain_w = 0, uniform_w = 0, weighted_w = 0, plain_1 = 0, weighted_1 = 0;
    for (size_t r = 0; r < rows; ++r) {
      const float* row = x.data() + r * n;
      t.from_float(row, plain.data(), n);
      t.from_float_weighted(row, uniform.data(), n, ones.data());
      t.from_float_weighted(row, weighted.data(), n, qw.data());
      t.from_float_weighted(row, again.data(), n, qw.data());
      ASSERT_EQ(weighted, again) << t.name << ": not deterministic";
      plain_w += weighted_error(t, plain, row, qw.data(), n);
      uniform_w += weighted_error(t, uniform, row, qw.data(), n);
      weighted_w += weighted_error(t, weighted, row, qw.data(), n);
      plain_1 += weighted_error(t, plain, row, ones.data(), n);
      weighted_1 += weighted_error(t, weighted, row, ones.data(), n);
    }
    EXPECT_LT(weighted_w, 0.9 * uniform_w) << t.name;
    EXPECT_LT(weighted_w, 0.9 * plain_w) << t.name;
    EXPECT_LT(weighted_1, 2.0 * plain_1) << t.name;
    EXPECT_GT(weighted_1, 0.0) << t.name;
    std::printf("%-7s error weighed by the importances: plain %.4g, uniform importances %.4g, the importances %.4g "
                "(%.1f%%); plain error %.4g -> %.4g\n",
                t.name, plain_w, uniform_w, weighted_w, 100.0 * (weighted_w / plain_w - 1.0), plain_1, weighted_1);
  }
}

// A row that a scale represents exactly comes back exactly, whatever the
// importances; a row of zeros comes back as zeros (no NaN from 0/0).
TEST(WeightedQuantizers, ExactRowsStayExactAndZerosStayZero) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> importance(0.01f, 100.0f);
  const size_t n = 256;
  std::vector<float> qw(n), back(n);
  for (float& v : qw) v = importance(rng);
  // Levels -8..7 (Q4_0) and -16..15 (Q5_0) times 0.25, the extreme level in every block.
  for (auto [type, lo, hi] : {std::tuple{ops::Type::Q4_0, -8, 7}, std::tuple{ops::Type::Q5_0, -16, 15}}) {
    const ops::TypeInfo& t = ops::type_info(type);
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = 0.25f * float(i % 32 == 0 ? lo : lo + int(rng() % unsigned(hi - lo + 1)));
    std::vector<uint8_t> q(t.row_bytes(int64_t(n)));
    t.from_float_weighted(x.data(), q.data(), n, qw.data());
    t.to_float(q.data(), back.data(), n);
    EXPECT_EQ(back, x) << t.name;
  }
  const std::vector<float> zeros(n, 0.0f);
  for (ops::Type type : kWeighted) {
    const ops::TypeInfo& t = ops::type_info(type);
    std::vector<uint8_t> q(t.row_bytes(int64_t(n)));
    t.from_float_weighted(zeros.data(), q.data(), n, qw.data());
    t.to_float(q.data(), back.data(), n);
    EXPECT_EQ(back, zeros) << t.name;
  }
}

// The legacy entries for the given tensors of a model: ne0 (+ extra) values
// each, 0.5 + (column % 7).
std::string imatrix_for(const std::string& model, const std::vector<std::string>& names, int64_t extra = 0) {
  const GgufFile g(model);
  std::vector<LegacyEntry> entries;
  for (const std::string& name : names) {
    const GgufTensorInfo* t = g.find_tensor(name);
    EXPECT_NE(t, nullptr) << name;
    if (!t) continue;
    std::vector<float> v(size_t(t->ne[0] + extra));
    for (size_t i = 0; i < v.size(); ++i) v[i] = 0.5f + float(i % 7);
    entries.push_back({name, 1, v});
  }
  return legacy_imatrix(entries, 3, "calibration.txt");
}

// src quantized to Q4_K_M without and with the importance matrix `im`
// (on_message of the second gets `messages`): the two files (the caller
// removes them).
std::pair<std::string, std::string> quantize_plain_and_weighted(const std::string& src, const std::string& im,
                                                                const std::string& tag,
                                                                std::vector<std::string>* messages = nullptr) {
  const std::string plain = temp_name(tag + "-plain.gguf"), weighted = temp_name(tag + "-weighted.gguf");
  ::unlink(plain.c_str());
  ::unlink(weighted.c_str());
  quantize_model(src, plain, QuantizeParams("q4_k_m"));
  QuantizeParams qp("q4_k_m");
  qp.imatrix_path = im;
  quantize_model(src, weighted, qp, [&](const std::string& m) {
    if (messages) messages->push_back(m);
  });
  return {plain, weighted};
}

// With an importance matrix, quantize_model quantizes the tensors it covers
// with the weighted quantizers and the rest as without one, and records it
// in llama-quantize's quantize.imatrix.* keys.
TEST(Imatrix, QuantizeModelWeighsTheTensorsItCovers) {
  const std::string src = test::model_path("quant/kq256-f32.gguf");
  const std::vector<std::string> covered = {"blk.0.attn_q.weight", "blk.1.ffn_down.weight", "blk.3.ffn_gate.weight",
                                            "output.weight"};
  const test::TempFile im(imatrix_for(src, covered), ".dat");
  std::vector<std::string> messages;
  const auto [plain, weighted] = quantize_plain_and_weighted(src, im.path(), "kq256", &messages);
  const GgufFile a(plain), b(weighted);
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  int differ = 0;
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    const GgufTensorInfo &ta = a.tensors()[i], &tb = b.tensors()[i];
    ASSERT_EQ(ta.name, tb.name);
    ASSERT_EQ(ta.ggml_type, tb.ggml_type) << ta.name;  // the same types: the importances change bytes, not choices
    ASSERT_EQ(ta.n_bytes, tb.n_bytes);
    const bool same = std::memcmp(a.tensor(ta).data, b.tensor(tb).data, ta.n_bytes) == 0;
    const bool is_covered = std::find(covered.begin(), covered.end(), ta.name) != covered.end();
    EXPECT_EQ(same, !is_covered) << ta.name << " (" << ops::type_name(ta.ggml_type) << ")";
    differ += !same;
  }
  EXPECT_EQ(differ, int(covered.size()));
  EXPECT_EQ(b.get_string("quantize.imatrix.file"), im.path());
  EXPECT_EQ(b.get_string("quantize.imatrix.dataset"), "calibration.txt");
  EXPECT_EQ(b.get_uint("quantize.imatrix.entries_count").value_or(0), covered.size());
  EXPECT_EQ(b.get_uint("quantize.imatrix.chunks_count").value_or(0), 3u);
  EXPECT_FALSE(a.has("quantize.imatrix.file"));
  // Its keys follow general.file_type, as llama-quantize's overrides do.
  const std::vector<std::string>& order = b.key_order();
  const auto at = std::find(order.begin(), order.end(), "general.file_type");
  ASSERT_NE(at, order.end());
  ASSERT_GE(order.end() - at, 5);
  EXPECT_EQ(*(at + 1), "quantize.imatrix.file");
  bool said = false;
  for (const std::string& m : messages) said = said || m.find("importance matrix: 4 entries") != std::string::npos;
  EXPECT_TRUE(said);

  // An entry that does not fit its tensor: an error naming both sizes.
  const test::TempFile wrong(imatrix_for(src, {"blk.2.attn_v.weight"}, 1), ".dat");
  QuantizeParams qp("q4_k_m");
  qp.imatrix_path = wrong.path();
  const std::string bad = temp_name("bad.gguf");
  const std::string e = error_of([&] { quantize_model(src, bad, qp); });
  EXPECT_NE(e.find("blk.2.attn_v.weight has 257 values"), std::string::npos) << e;
  EXPECT_NE(e.find("need 256"), std::string::npos) << e;
  EXPECT_NE(::access(bad.c_str(), F_OK), 0) << "a refused quantization left a file";
  ::unlink(plain.c_str());
  ::unlink(weighted.c_str());
}

// Every matrix of tinyllama-v0 quantized with made-up importances (0.5 to
// 6.5, by column; Q4_K_M: most matrices fall back to Q5_0/Q5_1 there): the
// model still predicts text about as well as the plain file (a packing or
// scale bug would not).
TEST(Imatrix, WeightedModelPredictsAsWellAsThePlainOne) {
  const std::string src = test::model_path("tinyllama-v0-f32.gguf");
  std::vector<std::string> matrices;
  {
    const GgufFile g(src);
    for (const GgufTensorInfo& t : g.tensors())
      if (t.n_dims == 2 && t.name != "token_embd.weight") matrices.push_back(t.name);
  }
  ASSERT_GT(matrices.size(), 20u);
  const test::TempFile im(imatrix_for(src, matrices), ".dat");
  const auto [plain, weighted] = quantize_plain_and_weighted(src, im.path(), "tinyllama");
  const std::string text = test::read_file(test::reference_path("perplexity-text.txt"));
  const double p_plain = perplexity(*Model::load(plain), text, 128, 128, 2, nullptr, 4, true).ppl;
  const double p_weighted = perplexity(*Model::load(weighted), text, 128, 128, 2, nullptr, 4, true).ppl;
  std::printf("tinyllama-v0 Q4_K_M, 4 chunks: PPL %.4f plain, %.4f with importances\n", p_plain, p_weighted);
  EXPECT_TRUE(std::isfinite(p_weighted));
  EXPECT_LT(std::fabs(p_weighted / p_plain - 1.0), 0.03);
  ::unlink(plain.c_str());
  ::unlink(weighted.c_str());
}

}  // namespace
}  // namespace qkv
