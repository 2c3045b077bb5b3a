// Picks the next token from the logits: greedy, or temperature sampling after
// repetition penalty, top-k, top-p and min-p filters. Kept apart from the
// model; its own RNG makes the same seed give the same text anywhere.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/api/qkv.hpp"

namespace qkv {

class SamplerImpl {
 public:
  static constexpr int kMaxRepeatLastN = 1 << 20;  // a window longer than any context

  SamplerImpl(const SamplerParams& p, int vocab_size);

  // Does not modify the logits; throws qkv::Error on a NaN or +inf logit.
  int sample(const float* logits);
  void accept(int token);           // remember for the repetition penalty
  void reset();

 private:
  uint32_t next_u32();
  float next_f32();  // in [0, 1)
  // One pass over l: each chunk's largest order key into chunk_max_; with
  // check, throws on a NaN or +inf logit, or when every one is -inf.
  void scan(const float* l, bool check);
  int first_max(const float* l) const;  // greedy: the first maximum (after scan)
  size_t top_k(const float* l, size_t k);  // cand_[0, k): the k best, best first (after scan)

  SamplerParams p_;
  int vocab_;
  uint64_t rng_;
  std::vector<float> work_;                 // (vocab) penalised logits
  std::vector<std::pair<float, int>> cand_; // (vocab) candidates
  std::vector<int32_t> chunk_max_;          // (vocab / kChunk rounded up) the chunks' largest order keys
  std::vector<int> recent_;                 // ring of the last repeat_last_n tokens
  size_t recent_pos_ = 0, recent_n_ = 0;
};

}  // namespace qkv
