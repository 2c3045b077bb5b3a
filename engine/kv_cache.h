// Keys and values of every past position, per layer, allocated once per
// session: k, v: (n_layers, n_ctx, kv_dim).
#pragma once

#include <cstddef>
#include <vector>

namespace qkv {

struct KVCache {
  int n_layers = 0, n_ctx = 0, kv_dim = 0;
  std::vector<float> k, v;

  KVCache(int layers, int ctx, int kvdim)
      : n_layers(layers), n_ctx(ctx), kv_dim(kvdim),
        k(size_t(layers) * size_t(ctx) * size_t(kvdim)), v(k.size()) {}

  float* key(int layer, int pos) { return k.data() + (size_t(layer) * size_t(n_ctx) + size_t(pos)) * size_t(kv_dim); }
  float* value(int layer, int pos) { return v.data() + (size_t(layer) * size_t(n_ctx) + size_t(pos)) * size_t(kv_dim); }
};

}  // namespace qkv
