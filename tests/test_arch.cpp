// Every architecture test model (../shared/models/arch: random weights, real
// vocabularies, laid out as llama.cpp's converter writes the real models)
// against llama.cpp's own output on it (../shared/reference/arch): prompt ids,
// 64 greedy ids, the top-5 logits at two positions, and perplexity.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <sstream>

#include "engine/api/qkv.h"
#include "engine/api/qkv.hpp"
#include "test_util.h"

namespace qkv {
namespace {

using test::model_path;

struct Top5 {
  int position = -1;
  std::vector<std::pair<int, float>> entries;  // id, logit; best first
};

struct ArchCase {
  test::ReferenceCase c;
  std::vector<float> margins;
  std::vector<Top5> top5;
};

ArchCase load_arch_case(const std::string& name) {
  ArchCase a;
  a.c = test::load_case("arch/" + name);
  a.margins = test::parse_list<float>(a.c.kv.at("margins"));
  for (const auto& [key, value] : a.c.kv) {
    if (key.rfind("top5_at_", 0) != 0) continue;
    Top5 t;
    t.position = std::atoi(key.c_str() + 8);
    std::istringstream in(value);
    std::string item;
    while (in >> item) {
      const size_t colon = item.find(':');
      t.entries.push_back({std::atoi(item.substr(0, colon).c_str()), std::strtof(item.c_str() + colon + 1, nullptr)});
    }
    a.top5.push_back(t);
  }
  std::sort(a.top5.begin(), a.top5.end(), [](const Top5& x, const Top5& y) { return x.position < y.position; });
  return a;
}

std::shared_ptr<const Model> load_arch_model(const std::string& file) {
  static std::map<std::string, std::shared_ptr<const Model>> cache;
  auto& m = cache[file];
  if (!m) m = Model::load(model_path("arch/" + file));
  return m;
}

class ArchReference : public ::testing::TestWithParam<std::string> {};

// Prompt ids exactly; the 64 greedy ids exactly, up to a step where
// llama.cpp's own top-2 margin is under 0.02 (a last-bit difference may pick
// the other token there); the top-5 ids at both recorded positions and their
// logits within 0.05 (with F16 products on activations rounded to f16 and
// GELU from llama.cpp's f16 table, as llama.cpp computes them, the largest
// difference over the cases is 0.018 on Zen 5; it was 0.051 before).
TEST_P(ArchReference, MatchesLlamaCpp) {
  const ArchCase a = load_arch_case(GetParam());
  const auto model = load_arch_model(a.c.model);
  EXPECT_EQ(model->tokenize(a.c.prompt, true, true), a.c.prompt_ids);
  ASSERT_EQ(a.margins.size(), a.c.generated_ids.size());
  ASSERT_EQ(a.top5.size(), 2u);

  SessionOptions so;
  so.kv_f16 = true;  // llama.cpp's default cache, as the references were made
  Session s(model, so);
  const int V = model->info().vocab_size;
  s.eval(a.c.prompt_ids);
  const int n_prompt = int(a.c.prompt_ids.size());
  size_t agree = 0;
  bool parted = false;
  for (size_t i = 0; i < a.c.generated_ids.size(); ++i) {
    const int pos = n_prompt - 1 + int(i);
    const float* logits = s.logits();
    for (const Top5& t : a.top5) {
      if (t.position != pos || parted) continue;
      std::vector<int> order(static_cast<size_t>(V));
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + 5, order.end(),
                        [&](int x, int y) { return logits[x] > logits[y] || (logits[x] == logits[y] && x < y); });
      // Same five ids, each logit within 0.05; the order may differ only
      // between ids whose reference logits are within 0.02 (a near-tie).
      auto ref_logit = [&](int id) {
        for (const auto& e : t.entries)
          if (e.first == id) return e.second;
        return -INFINITY;
      };
      for (size_t j = 0; j < t.entries.size(); ++j) {
        EXPECT_NEAR(logits[t.entries[j].first], t.entries[j].second, 0.05) << "id " << t.entries[j].first << " at " << pos;
        EXPECT_LT(std::fabs(ref_logit(order[j]) - t.entries[j].second), 0.02f)
            << "top-5 rank " << j << " at position " << pos << ": ours " << order[j] << ", llama.cpp's "
            << t.entries[j].first;
      }
    }
    const int best = int(std::max_element(logits, logits + V) - logits);
    const int want = a.c.generated_ids[i];
    if (best != want) {
      EXPECT_LT(a.margins[i], 0.02f) << "step " << i << ": ours " << best << " (" << logits[best] << "), llama.cpp's "
                                     << want << " (" << logits[want] << "), reference margin " << a.margins[i];
      parted = true;
      break;
    }
    ++agree;
    s.eval(&best, 1);
  }
  if (!parted) {
    EXPECT_EQ(agree, a.c.generated_ids.size());
  }
}

std::vector<std::string> arch_cases() {
  std::vector<std::string> v;
  for (const char* m : {"smollm2", "llama32", "qwen25", "qwen3", "phi3", "gemma3", "gemma2", "gpt2"})
    for (int k = 1; k <= 3; ++k) v.push_back(std::string(m) + "-like-" + std::to_string(k) + ".txt");
  return v;
}

INSTANTIATE_TEST_SUITE_P(AllModels, ArchReference, ::testing::ValuesIn(arch_cases()),
                         [](const auto& info) { return test::case_test_name(info.param); });

// The tools work on every architecture: the profiler sees every layer's
// matrix products and attention; the attention inspector's rows are
// probabilities that respect the layer's window; the C API generates
// llama.cpp's greedy ids.
class ArchTools : public ::testing::TestWithParam<std::string> {};

TEST_P(ArchTools, ProfilerInspectorAndCApi) {
  const ArchCase a = load_arch_case(GetParam() + "-like-3.txt");  // the longest prompt: past the 32-token windows
  const auto model = load_arch_model(a.c.model);
  const int n_layers = model->info().n_layers;
  {
    Session s(model, SessionOptions{});
    s.profile_start();
    s.eval(a.c.prompt_ids);
    s.profile_stop();
    const ProfileReport rep = s.profile_report();
    std::set<std::string> ops;
    for (const ProfileOpStats& o : rep.ops) ops.insert(o.op);
    for (const char* op : {"embedding", "matmul", "attention", "kv_store", "add"}) EXPECT_TRUE(ops.count(op)) << op;
    EXPECT_TRUE(ops.count(GetParam() == "gpt2" ? "layernorm" : "rmsnorm"));
    std::set<int> layers;
    for (const ProfileLayerStats& l : rep.layers) layers.insert(l.layer);
    for (int l = 0; l < n_layers; ++l) EXPECT_TRUE(layers.count(l)) << "layer " << l;
  }
  {
    Session s(model, SessionOptions{});
    int rows = 0, last_position = -1;
    std::vector<int> outside_window(size_t(n_layers), 0);
    s.set_attention_capture([&](const AttentionRow& r) {
      ++rows;
      last_position = std::max(last_position, r.position);
      double sum = 0;
      for (int t = 0; t <= r.position; ++t) {
        sum += r.probs[t];
        if (t <= r.position - 32 && r.probs[t] != 0.0f) ++outside_window[size_t(r.layer)];
      }
      EXPECT_NEAR(sum, 1.0, 1e-4) << "layer " << r.layer << " head " << r.head << " position " << r.position;
    });
    s.eval(a.c.prompt_ids);
    const int n = int(a.c.prompt_ids.size());
    EXPECT_EQ(rows, n * n_layers * model->info().n_heads);
    EXPECT_EQ(last_position, n - 1);
    // Gemma's local layers (32-token windows) give no weight beyond them; others do.
    for (int l = 0; l < n_layers; ++l) {
      const bool local = (GetParam() == "gemma3" && l % 6 < 5) || (GetParam() == "gemma2" && l % 2 == 0);
      if (local) EXPECT_EQ(outside_window[size_t(l)], 0) << "layer " << l;
      else EXPECT_GT(outside_window[size_t(l)], 0) << "layer " << l;
    }
  }
  {
    qkv_model* m = nullptr;
    const std::string path = model_path("arch/" + a.c.model);
    ASSERT_EQ(qkv_model_load(path.c_str(), nullptr, &m), QKV_OK);
    std::vector<int32_t> ids(4096);
    size_t n = 0;
    ASSERT_EQ(qkv_tokenize_special(m, a.c.prompt.data(), a.c.prompt.size(), 1, 1, ids.data(), ids.size(), &n), QKV_OK);
    ids.resize(n);
    EXPECT_EQ(std::vector<int>(ids.begin(), ids.end()), a.c.prompt_ids);
    qkv_session_params sp = qkv_session_default_params();
    sp.kv_f16 = 1;
    qkv_session* s = nullptr;
    ASSERT_EQ(qkv_session_new(m, &sp, &s), QKV_OK);
    ASSERT_EQ(qkv_eval(s, ids.data(), ids.size()), QKV_OK);
    const int32_t V = qkv_model_n_vocab(m);
    for (size_t i = 0; i < 8; ++i) {
      const float* logits = qkv_logits(s);
      const int32_t best = int32_t(std::max_element(logits, logits + V) - logits);
      EXPECT_EQ(best, a.c.generated_ids[i]) << "step " << i;
      ASSERT_EQ(qkv_eval(s, &best, 1), QKV_OK);
    }
    qkv_session_free(s);
    qkv_model_free(m);
  }
}

INSTANTIATE_TEST_SUITE_P(AllModels, ArchTools,
                         ::testing::Values("smollm2", "llama32", "qwen25", "qwen3", "phi3", "gemma3", "gemma2", "gpt2"));

// llama-perplexity -c 128 -b 128 on perplexity-text.txt, f16 cache: within 0.5%.
class ArchPerplexity : public ::testing::TestWithParam<std::string> {};

TEST_P(ArchPerplexity, WithinHalfAPercentOfLlamaCpp) {
  const std::string file = GetParam() + "-like.gguf";
  const auto refs = test::load_perplexity_refs("perplexity-arch.txt");
  const auto ref = std::find_if(refs.begin(), refs.end(), [&](const test::PplRef& r) { return r.model == file; });
  ASSERT_NE(ref, refs.end()) << file;
  const auto model = load_arch_model(file);
  PerplexityOptions o;
  o.n_ctx = 128;
  o.n_batch = 128;
  o.kv_f16 = true;
#ifdef QKV_UNDER_ASAN
  o.max_chunks = 3;  // the running estimates of the first chunks still check every step
#endif
  const PerplexityResult r = perplexity(*model, test::read_file(test::reference_path("perplexity-text.txt")), o);
  // The reference lists the running estimates from the second chunk on (its
  // first line of output is not there); they line up with our last ones.
  const size_t all_chunks = size_t(r.n_tokens / o.n_ctx);
  ASSERT_GE(all_chunks, ref->chunks.size());
  ASSERT_LE(all_chunks, ref->chunks.size() + 1);
  const size_t skip = all_chunks - ref->chunks.size();
  ASSERT_GT(r.running.size(), skip);
  for (size_t i = skip; i < r.running.size(); ++i)
    EXPECT_NEAR(std::log(r.running[i]), std::log(ref->chunks[i - skip]), 0.005) << "chunk " << i + 1;
  if (r.running.size() == all_chunks) {
    EXPECT_NEAR(std::log(r.ppl), std::log(ref->ppl), 0.005) << "ours " << r.ppl << ", llama.cpp " << ref->ppl;
  }
}

// Quantized, each architecture's matrices (fused q/k/v and gate/up, biased
// projections, q/k norms) go through the integer products: Q8_0 of the F16
// file scores within 5% of it, Q4_K_M (mixed types) within 10% (random
// weights: two chunks of these models move a few percent with Q8_0 rounding).
TEST_P(ArchPerplexity, QuantizedFilesStayClose) {
  const std::string text = test::read_file(test::reference_path("perplexity-text.txt"));
  PerplexityOptions o;
  o.max_chunks = 2;
  o.kv_f16 = true;
  std::vector<std::pair<std::string, double>> types = {{"q8_0", 0.05}, {"q4_k_m", 0.10}};
#ifdef QKV_UNDER_ASAN
  o.max_chunks = 1;  // ten times slower there: one chunk, one type
  types.pop_back();
#endif
  const double f16 = perplexity(*load_arch_model(GetParam() + "-like.gguf"), text, o).ppl;
  for (const auto& [type, tolerance] : types) {
    const test::TempFile out("", ".gguf");
    quantize_model(model_path("arch/" + GetParam() + "-like.gguf"), out.path(), QuantizeParams(type));
    const auto q = Model::load(out.path());
    const double ppl = perplexity(*q, text, o).ppl;
    EXPECT_NEAR(std::log(ppl), std::log(f16), tolerance) << GetParam() << " " << type << ": " << ppl << " vs F16 " << f16;
  }
}

INSTANTIATE_TEST_SUITE_P(AllModels, ArchPerplexity,
                         ::testing::Values("smollm2", "llama32", "qwen25", "qwen3", "phi3", "gemma3", "gemma2", "gpt2"));

}  // namespace
}  // namespace qkv
