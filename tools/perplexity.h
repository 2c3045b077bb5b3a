// Perplexity the way llama.cpp's llama-perplexity measures it: the text is
// tokenized once (with BOS at its start, as llama-perplexity does: the
// reference figures are reproduced only so), cut into chunks of n_ctx tokens (a last partial
// chunk is dropped), the first token of each chunk replaced by BOS, each chunk
// run from an empty cache, and only its second half scored:
//   for i = n_ctx/2 .. n_ctx-2: nll += -log softmax(logits_i)[token_{i+1}].
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/qkv.hpp"

namespace qkv::cli {

struct PerplexityResult {
  std::vector<double> running;  // the estimate after each chunk, as llama.cpp prints it
  double ppl = 0, error = 0;    // final estimate and its standard error
  int n_chunks = 0, n_tokens = 0;
};

// on_chunk(i, estimate) is called after each chunk.
PerplexityResult perplexity(const Model& model, const std::string& text, int n_ctx, int n_batch, int n_threads,
                            const std::function<void(int, double)>& on_chunk = nullptr);

}  // namespace qkv::cli
