// End-to-end against the reference engines: every F32 case in
// ../shared/reference must give the same greedy ids, and the logits llama2.c
// printed must match within 1e-4.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "engine/runtime/cpu.h"
#include "engine/api/qkv.hpp"
#include "test_util.h"

namespace qkv {
namespace {

using test::model_path;

bool forced_isa_missing() {
  const char* isa = std::getenv("QKV_ISA");
  if (!isa || !*isa) return false;
  for (const ops::Kernels* k : available_kernels())
    if (std::string(k->isa) == isa) return false;
  return true;
}

std::shared_ptr<const Model> load_for(const test::ReferenceCase& c, const std::string& model_file = "") {
  LoadOptions lo;
  if (c.tokenizer.find("(in the model file)") == std::string::npos) lo.tokenizer_path = model_path(c.tokenizer);
  return Model::load(model_path(model_file.empty() ? c.model : model_file), lo);
}

float max_abs_diff(const float* a, const std::vector<float>& b) {
  float m = 0.0f;
  for (size_t i = 0; i < b.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Greedy decoding the way the reference engine ran it: llama2.c feeds every
// token (EOS too) and stops after emitting BOS; llama.cpp ran a fixed count.
std::vector<int> greedy_ids(Session& s, const test::ReferenceCase& c, size_t count, bool llama2c,
                            std::map<int, float>* logit_diffs) {
  Sampler greedy(s.model().info().vocab_size, test::greedy_params());
  s.eval(c.prompt_ids);
  std::vector<int> ids;
  while (ids.size() < count) {
    const int pos = s.n_past() - 1;  // the logits are those after the token at pos
    if (logit_diffs && c.logits_at.count(pos)) (*logit_diffs)[pos] = max_abs_diff(s.logits(), c.logits_at.at(pos));
    const int tok = greedy.sample(s.logits());
    ids.push_back(tok);
    if (llama2c && tok == 1) break;
    if (ids.size() == count || s.n_past() == s.n_ctx()) break;
    s.eval(&tok, 1);
  }
  return ids;
}

class Reference : public ::testing::TestWithParam<std::string> {};

TEST_P(Reference, GreedyIdsAndLogits) {
  if (forced_isa_missing()) GTEST_SKIP() << "QKV_ISA names an instruction set this CPU lacks";
  const test::ReferenceCase c = test::load_case(GetParam());
  ASSERT_FALSE(c.generated_ids.empty()) << c.file;
  const bool llama2c = c.engine.rfind("llama2.c", 0) == 0;
  const auto model = load_for(c);
  // llama2.c computes in f32 throughout: its cases run on the f32 cache.
  SessionOptions so;
  so.kv_f16 = !llama2c;
  Session s(model, so);

  std::map<int, float> diffs;
  const std::vector<int> ids = greedy_ids(s, c, c.generated_ids.size(), llama2c, &diffs);
  EXPECT_EQ(ids, c.generated_ids) << c.file;

  // Logits at every position the reference printed: from the decoding loop
  // above where it passed them, and all from one batched pass.
  std::vector<int> seq = c.prompt_ids;
  seq.insert(seq.end(), c.generated_ids.begin(), c.generated_ids.end());
  int max_pos = -1;
  for (const auto& [pos, logits] : c.logits_at) {
    ASSERT_EQ(int(logits.size()), model->info().vocab_size) << c.file << " logits_at_" << pos;
    max_pos = std::max(max_pos, pos);
  }
  for (const auto& [pos, d] : diffs) EXPECT_LE(d, 1e-4f) << c.file << " decode loop, logits_at_" << pos;
  if (max_pos >= 0) {
    Session batch(model, so);
    batch.eval(seq.data(), max_pos + 1, true);
    for (const auto& [pos, logits] : c.logits_at)
      EXPECT_LE(max_abs_diff(batch.logits_at(pos), logits), 1e-4f) << c.file << " batched, logits_at_" << pos;
  }
}

INSTANTIATE_TEST_SUITE_P(F32Cases, Reference,
                         ::testing::Values("stories260K-once.txt", "stories260K-lily.txt", "stories260K-bos.txt",
                                           "aidreams260K-bos.txt", "tinyllama-v0-once.txt",
                                           "stories260K-gguf-once.txt", "tinyllama-v0-f32-once.txt"),
                         [](const auto& info) { return test::case_test_name(info.param); });

TEST(ReferenceF16, FollowsF32ForAtLeast100Tokens) {
  if (forced_isa_missing()) GTEST_SKIP() << "QKV_ISA names an instruction set this CPU lacks";
  const test::ReferenceCase c = test::load_case("stories260K-gguf-once.txt");
  const auto model = load_for(c, "stories260K-f16.gguf");
  EXPECT_EQ(model->info().weight_type, "F16");
  Session s(model, SessionOptions{});
  const std::vector<int> ids = greedy_ids(s, c, 100, false, nullptr);
  ASSERT_EQ(ids.size(), 100u);
  EXPECT_TRUE(std::equal(ids.begin(), ids.end(), c.generated_ids.begin()));
}

TEST(ReferenceF16, TinyllamaF16FollowsF32) {
  if (forced_isa_missing()) GTEST_SKIP() << "QKV_ISA names an instruction set this CPU lacks";
  const test::ReferenceCase c = test::load_case("tinyllama-v0-f32-once.txt");
  const auto model = load_for(c, "tinyllama-v0-f16.gguf");
  Session s(model, SessionOptions{});
  const std::vector<int> ids = greedy_ids(s, c, 32, false, nullptr);
  EXPECT_TRUE(std::equal(ids.begin(), ids.end(), c.generated_ids.begin()));
}

}  // namespace
}  // namespace qkv
