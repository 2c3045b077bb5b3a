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

  SamplerParams p_;
  int vocab_;
  uint64_t rng_;
  std::vector<float> work_;                 // (vocab) penalised logits
  std::vector<std::pair<float, int>> cand_; // (vocab) candidates
  std::vector<int> recent_;                 // ring of the last repeat_last_n tokens
  size_t recent_pos_ = 0, recent_n_ = 0;
};

}  // namespace qkv
