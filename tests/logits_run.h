// A fixed greedy run (prompt batch, then 16 tokens one at a time) that keeps
// every logit it computes: shared by the test binary and qkv_noprof_logits.
#pragma once

#include <string>
#include <vector>

#include "engine/api/qkv.hpp"

namespace qkv::test {

inline std::vector<float> greedy_logits(const std::string& model_path, const std::string& tokenizer, int threads) {
  const auto model = Model::load(model_path, LoadOptions{tokenizer});
  SessionOptions so;
  so.n_threads = threads;
  Session s(model, so);
  Sampler greedy(model->info().vocab_size, SamplerParams{0.0f, 0, 1.0f, 0.0f, 1.0f, 0, 0});
  const int V = model->info().vocab_size;
  const std::vector<int> prompt = model->tokenize("Once upon a time", true);
  s.eval(prompt, true);
  std::vector<float> out(s.logits_at(0), s.logits_at(0) + size_t(V) * prompt.size());
  for (int i = 0; i < 16; ++i) {
    const int t = greedy.sample(s.logits());
    s.eval(&t, 1);
    out.insert(out.end(), s.logits(), s.logits() + V);
  }
  return out;
}

}  // namespace qkv::test
