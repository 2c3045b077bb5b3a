// Keys and values of every past position, per layer, allocated once per
// session: k, v: (n_layers, n_ctx, kv_dim), in f32, or in f16 (half the
// memory; llama.cpp's default cache type) when f16 is set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace qkv {

struct KVCache {
  int n_layers = 0, n_ctx = 0, kv_dim = 0;
  bool f16 = false;
  std::vector<float> k, v;         // f32 cache
  std::vector<uint16_t> k16, v16;  // f16 cache

  KVCache(int layers, int ctx, int kvdim, bool half)
      : n_layers(layers), n_ctx(ctx), kv_dim(kvdim), f16(half),
        k(half ? 0 : size_t(layers) * size_t(ctx) * size_t(kvdim)), v(k.size()),
        k16(half ? size_t(layers) * size_t(ctx) * size_t(kvdim) : 0), v16(k16.size()) {}

  size_t at(int layer, int pos) const { return (size_t(layer) * size_t(n_ctx) + size_t(pos)) * size_t(kv_dim); }
  float* key(int layer, int pos) { return k.data() + at(layer, pos); }
  float* value(int layer, int pos) { return v.data() + at(layer, pos); }
  uint16_t* key16(int layer, int pos) { return k16.data() + at(layer, pos); }
  uint16_t* value16(int layer, int pos) { return v16.data() + at(layer, pos); }
};

}  // namespace qkv
