// The attention inspector's output: captured probabilities of a run, with
// per-head statistics, as one self-contained HTML file or as JSON.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <qkv/qkv.hpp>

namespace qkv::cli {

struct AttentionRun {
  ModelInfo info;
  std::string model_path, prompt;
  std::vector<int> token_ids;
  std::vector<std::string> pieces;  // decoded text of each token
  int n_prompt = 0;                 // tokens of the prompt (the rest were generated)
  std::vector<int> layers, heads;   // captured
  // (layer, head) -> row per position p: probabilities over positions 0..p
  std::map<std::pair<int, int>, std::vector<std::vector<float>>> rows;
};

struct HeadStats {
  double entropy = 0;          // mean over rows, in nats
  double sink = 0;             // mean probability on the first token
  double previous = 0;         // mean probability on the token just before
  std::vector<int> top;        // most-attended positions: most probability received from later tokens
};

HeadStats head_stats(const std::vector<std::vector<float>>& rows);

std::string attention_json(const AttentionRun& run);
std::string attention_html(const AttentionRun& run);

}  // namespace qkv::cli
