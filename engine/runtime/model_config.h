// Hyper-parameters of a decoder-only Transformer, as read from a weights file.
#pragma once

#include <string>

namespace qkv {

struct ModelConfig {
  std::string arch = "llama";
  int dim = 0;             // model (embedding) width
  int hidden_dim = 0;      // feed-forward width
  int n_layers = 0;
  int n_heads = 0;         // query heads
  int n_kv_heads = 0;      // key/value heads (GQA: divides n_heads)
  int head_dim = 0;
  int vocab_size = 0;
  int context_length = 0;  // what the model was built for
  float rope_base = 10000.0f;
  float rms_eps = 1e-5f;
  // The llama2.c story models use BOS as the separator between stories.
  bool stop_on_bos = true;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
};

}  // namespace qkv
