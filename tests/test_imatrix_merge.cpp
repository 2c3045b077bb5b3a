// Importance matrices added together, as llama-imatrix adds them: earlier
// files (--in-file) combined alone or continued with more text (--chunk),
// a .dat among them, and the periodic saves (--output-frequency,
// --save-frequency). The truth: one run over all the chunks at once.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "engine/api/qkv.hpp"
#include "engine/format/gguf.h"
#include "engine/format/gguf_writer.h"
#include "engine/format/imatrix.h"
#include "test_util.h"

namespace qkv {
namespace {

using test::error_of;

std::string temp_name(const std::string& what) {
  return "/tmp/qkv-imatrix-merge-" + std::to_string(::getpid()) + "-" + what;
}

const std::string& story_text() {
  static const std::string text = test::read_file(test::reference_path("perplexity-text.txt"));
  return text;
}

ImatrixOptions options(int first_chunk, int chunks) {
  ImatrixOptions o;
  o.n_ctx = 64, o.n_batch = 64, o.n_threads = 2;
  o.skip_chunks = first_chunk, o.max_chunks = chunks;
  o.dataset = "perplexity-text.txt";
  return o;
}

std::vector<float> f32_tensor(const GgufFile& g, const std::string& name) {
  const GgufTensorInfo* t = g.find_tensor(name);
  if (!t) return {};
  std::vector<float> v(size_t(t->n_bytes / 4));
  std::memcpy(v.data(), g.tensor(*t).data, t->n_bytes);
  return v;
}

// Every entry of `got` against `want`: the same names, the same counts, and
// sums within float rounding (the files hold float sums; adding two of them
// rounds once more than one run does). `with_in_sum`: got has NAME.in_sum.
void expect_same_sums(const std::string& got, const std::string& want, bool with_in_sum) {
  const GgufFile g(got), w(want);
  size_t entries = 0;
  for (const GgufTensorInfo& t : w.tensors()) {
    const std::string& name = t.name;
    if (name.size() < 8 || name.compare(name.size() - 8, 8, ".in_sum2") != 0) continue;
    const std::string base = name.substr(0, name.size() - 8);
    ++entries;
    const std::vector<float> a = f32_tensor(g, name), b = f32_tensor(w, name);
    ASSERT_EQ(a.size(), b.size()) << name;
    ASSERT_FALSE(b.empty()) << name;
    for (size_t j = 0; j < a.size(); ++j) EXPECT_NEAR(a[j], b[j], 2e-6f * b[j] + 1e-6f) << name << " " << j;
    EXPECT_EQ(f32_tensor(g, base + ".counts"), f32_tensor(w, base + ".counts")) << base;
    const std::vector<float> s = f32_tensor(g, base + ".in_sum"), sw = f32_tensor(w, base + ".in_sum");
    if (!with_in_sum) {
      EXPECT_TRUE(s.empty()) << base << ": sums of inputs from a file that had none";
      continue;
    }
    ASSERT_EQ(s.size(), sw.size()) << base;
    for (size_t j = 0; j < s.size(); ++j) EXPECT_NEAR(s[j], sw[j], 1e-5f * std::fabs(sw[j]) + 1e-4f) << base << " " << j;
  }
  EXPECT_EQ(entries, 35u);  // stories260K: 5 layers x 7 matrices
  EXPECT_EQ(g.get_uint("imatrix.chunk_count").value_or(0), w.get_uint("imatrix.chunk_count").value_or(1));
  EXPECT_EQ(g.get_uint("imatrix.chunk_size").value_or(0), 64u);
}

TEST(ImatrixMerge, EarlierFilesAddUpToOneRunOverAllTheChunks) {
  const auto model = Model::load(test::model_path("stories260K.gguf"));
  const std::string a = temp_name("a.gguf"), b = temp_name("b.gguf"), all = temp_name("all.gguf");
  const std::string ad = temp_name("a.dat"), joined = temp_name("joined.gguf"), went_on = temp_name("went-on.gguf");
  const std::string mixed = temp_name("mixed.gguf");
  compute_imatrix(*model, story_text(), a, options(0, 3));
  compute_imatrix(*model, story_text(), b, options(3, 2));  // --chunk 3 --chunks 2
  const ImatrixResult whole = compute_imatrix(*model, story_text(), all, options(0, 5));
  EXPECT_EQ(whole.n_chunks, 5);

  // Combined alone, the chunk size taken from the files.
  ImatrixOptions c = options(0, 0);
  c.n_ctx = 0;
  c.in_files = {a, b};
  const ImatrixResult r = combine_imatrix(joined, c);
  EXPECT_EQ(r.n_ctx, 64);
  EXPECT_EQ(r.n_chunks, 5);
  EXPECT_EQ(r.n_entries, 35);
  expect_same_sums(joined, all, true);
  EXPECT_EQ(GgufFile(joined).get_string_array("imatrix.datasets"),
            (std::vector<std::string>{"perplexity-text.txt", "perplexity-text.txt"}));

  // Gone on from the first file with the rest of the text.
  ImatrixOptions on = options(3, 2);
  on.in_files = {a};
  const ImatrixResult r2 = compute_imatrix(*model, story_text(), went_on, on);
  EXPECT_EQ(r2.n_chunks, 2);
  expect_same_sums(went_on, all, true);

  // A legacy .dat among them: its means times calls, each call a chunk of
  // n_ctx tokens; no sums of inputs, so the result has none for its entries.
  ImatrixOptions legacy = options(0, 3);
  legacy.legacy_format = true;
  compute_imatrix(*model, story_text(), ad, legacy);
  c.in_files = {ad, b};
  c.n_ctx = 64;
  combine_imatrix(mixed, c);
  expect_same_sums(mixed, all, false);

  for (const std::string& f : {a, b, all, ad, joined, went_on, mixed}) ::unlink(f.c_str());
}

// --output-frequency and --save-frequency: after every that many chunks,
// the file as a run of that many chunks would have written it, bit for bit.
TEST(ImatrixMerge, PeriodicSavesAreTheFilesOfShorterRuns) {
  const auto model = Model::load(test::model_path("stories260K.gguf"));
  const std::string out = temp_name("periodic.gguf"), two = temp_name("two.gguf"), four = temp_name("four.gguf");
  ImatrixOptions o = options(0, 5);
  o.output_frequency = 2, o.save_frequency = 2;
  compute_imatrix(*model, story_text(), out, o);
  compute_imatrix(*model, story_text(), two, options(0, 2));
  compute_imatrix(*model, story_text(), four, options(0, 4));
  EXPECT_EQ(test::read_file(out + ".at_2"), test::read_file(two));
  EXPECT_EQ(test::read_file(out + ".at_4"), test::read_file(four));
  EXPECT_NE(::access((out + ".at_5").c_str(), F_OK), 0) << "a copy at a chunk count that is no multiple of 2";
  EXPECT_EQ(GgufFile(out).get_uint("imatrix.chunk_count").value_or(0), 5u);
  for (const std::string& f : {out, out + ".at_2", out + ".at_4", two, four}) ::unlink(f.c_str());
}

TEST(ImatrixMerge, RefusesWhatCannotBeAdded) {
  const auto model = Model::load(test::model_path("stories260K.gguf"));
  const std::string out = temp_name("refused.gguf"), other = temp_name("other-model.gguf");
  // Another model's matrix: its entries do not fit this model's inputs.
  const auto tiny = Model::load(test::model_path("tinyllama-v0-q8_0.gguf"));
  compute_imatrix(*tiny, story_text(), other, options(0, 2));
  ImatrixOptions o = options(0, 2);
  o.in_files = {other};
  std::string e = error_of([&] { compute_imatrix(*model, story_text(), out, o); });
  EXPECT_NE(e.find("values from --in-file"), std::string::npos) << e;
  // A matrix of experts (two counts), and a .dat entry with negative calls.
  const std::string experts = temp_name("experts.gguf"), negative = temp_name("negative.dat");
  {
    GgufWriter w;
    w.add_string_array("imatrix.datasets", {});
    w.add_u32("imatrix.chunk_count", 1);
    w.add_u32("imatrix.chunk_size", 64);
    const std::vector<float> sums(2 * 64, 1.0f), counts = {64, 64};
    w.add_tensor("blk.0.attn_q.weight.in_sum2", 0, {64, 2}, 4 * sums.size());
    w.add_tensor("blk.0.attn_q.weight.counts", 0, {1, 2}, 8);
    w.write(experts, [&](size_t i, std::vector<uint8_t>& bytes) {
      const std::vector<float>& v = i == 0 ? sums : counts;
      bytes.resize(4 * v.size());
      std::memcpy(bytes.data(), v.data(), bytes.size());
    });
    std::string dat;
    const auto put_i32 = [&](int32_t v) { dat.append(reinterpret_cast<const char*>(&v), 4); };
    const std::string name = "blk.0.attn_q.weight";
    put_i32(1), put_i32(int32_t(name.size())), dat += name, put_i32(-1), put_i32(1);
    const float one = 1;
    dat.append(reinterpret_cast<const char*>(&one), 4);
    std::ofstream(negative, std::ios::binary) << dat;
  }
  o.in_files = {experts};
  e = error_of([&] { compute_imatrix(*model, story_text(), out, o); });
  EXPECT_NE(e.find("blk.0.attn_q.weight holds 2 matrices (experts)"), std::string::npos) << e;
  o.in_files = {negative};
  e = error_of([&] { compute_imatrix(*model, story_text(), out, o); });
  EXPECT_NE(e.find("blk.0.attn_q.weight: -1 calls"), std::string::npos) << e;
  ::unlink(experts.c_str());
  ::unlink(negative.c_str());
  // A matrix that met no input (count 0) combined into a .dat: no NaN, as llama-imatrix.
  {
    const std::string zero = temp_name("zero-count.gguf");
    GgufWriter w;
    w.add_string_array("imatrix.datasets", {"d"});
    w.add_u32("imatrix.chunk_count", 0);
    w.add_u32("imatrix.chunk_size", 64);
    const std::vector<float> sums(64, 0.0f), count = {0};
    w.add_tensor("blk.0.attn_q.weight.in_sum2", 0, {64}, 4 * sums.size());
    w.add_tensor("blk.0.attn_q.weight.counts", 0, {1}, 4);
    w.write(zero, [&](size_t i, std::vector<uint8_t>& bytes) {
      const std::vector<float>& v = i == 0 ? sums : count;
      bytes.resize(4 * v.size());
      std::memcpy(bytes.data(), v.data(), bytes.size());
    });
    ImatrixOptions c = options(0, 0);
    c.in_files = {zero};
    c.legacy_format = true;
    combine_imatrix(out, c);
    const ImportanceMatrix back = load_imatrix(out);
    ASSERT_EQ(back.sums.count("blk.0.attn_q.weight"), 1u);
    EXPECT_EQ(back.sums.at("blk.0.attn_q.weight").calls, 0);
    EXPECT_EQ(back.sums.at("blk.0.attn_q.weight").sum2, std::vector<float>(64, 0.0f));
    ::unlink(out.c_str());
    ::unlink(zero.c_str());
  }
  // Two files of different models (tinyllama-v0: ffn 256 wide, stories260K: 172): the second's entries
  // do not fit the first's.
  ImatrixOptions both = options(0, 0);
  both.in_files = {other, out + ".mine"};
  compute_imatrix(*model, story_text(), out + ".mine", options(0, 2));
  e = error_of([&] { combine_imatrix(out, both); });
  EXPECT_NE(e.find(out + ".mine: importance matrix entry blk.0.ffn_down.weight has 172 values, an earlier one 256"),
            std::string::npos) << e;
  ::unlink((out + ".mine").c_str());
  o.in_files = {"/nonexistent/imatrix.gguf"};
  e = error_of([&] { compute_imatrix(*model, story_text(), out, o); });
  EXPECT_NE(e.find("/nonexistent/imatrix.gguf"), std::string::npos) << e;
  o.in_files.clear();
  e = error_of([&] { combine_imatrix(out, o); });
  EXPECT_NE(e.find("nothing to compute or combine"), std::string::npos) << e;
  // --chunk that leaves no more than two chunks' tokens (llama-imatrix's
  // rule: (N + 2) n_ctx >= tokens), or none at all.
  const int n_tokens = int(model->tokenize(story_text(), true).size()), n_chunks = n_tokens / 64;
  ASSERT_GT(n_tokens % 64, 0) << "the case below needs a partial last chunk";
  o = options(n_chunks - 1, 0);
  e = error_of([&] { compute_imatrix(*model, story_text(), out, o); });
  EXPECT_NE(e.find("skipping " + std::to_string(n_chunks - 1) + " chunks"), std::string::npos) << e;
  o = options(n_chunks + 5, 0);
  e = error_of([&] { compute_imatrix(*model, story_text(), out, o); });
  EXPECT_NE(e.find("leaves none"), std::string::npos) << e;
  o = options(0, 2);
  o.output_frequency = 0;
  e = error_of([&] { compute_imatrix(*model, story_text(), out, o); });
  EXPECT_NE(e.find("--output-frequency 0"), std::string::npos) << e;
  EXPECT_NE(::access(out.c_str(), F_OK), 0) << "a refused run left a file";
  ::unlink(other.c_str());
}

// The command: combining without a text, and the flags' errors.
TEST(CliImatrix, CombinesEarlierFiles) {
  const std::string model = test::model_path("stories260K.gguf"), text = test::reference_path("perplexity-text.txt");
  const std::string a = temp_name("cli-a.gguf"), b = temp_name("cli-b.gguf"), ab = temp_name("cli-ab.gguf");
  ASSERT_EQ(test::run_cli("imatrix -m '" + model + "' -f '" + text + "' -o " + a + " -c 64 --chunks 3 --no-ppl --parse-special").code, 0);  // no control tokens in it: the same file
  ASSERT_EQ(test::run_cli("imatrix -m '" + model + "' -f '" + text + "' -o " + b + " -c 64 --chunk 3 --chunks 2 --no-ppl").code, 0);
  const test::CliResult r = test::run_cli("imatrix --in-file " + a + " --in-file " + b + " -o " + ab);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("combined 2 files: 35 entries, 5 chunks of 64 tokens"), std::string::npos) << r.err;
  EXPECT_EQ(GgufFile(ab).get_uint("imatrix.chunk_count").value_or(0), 5u);
  for (const char* bad : {"imatrix --in-file x.gguf --chunk -1", "imatrix --in-file x.gguf --output-frequency 0",
                          "imatrix --in-file ''", "imatrix -o y.gguf"}) {
    const test::CliResult e = test::run_cli(bad);
    EXPECT_EQ(e.code, 2) << bad << ": " << e.err;
    EXPECT_NE(e.err.find("qkv imatrix: "), std::string::npos) << bad << ": " << e.err;
  }
  const test::CliResult missing = test::run_cli("imatrix --in-file /nonexistent.gguf -o " + ab);
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("/nonexistent.gguf"), std::string::npos) << missing.err;
  for (const std::string& f : {a, b, ab}) ::unlink(f.c_str());
}

}  // namespace
}  // namespace qkv
