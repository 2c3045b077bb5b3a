// llama.cpp's GELU table (ops.h, gelu_f16_table): its CPU backend looks the
// activation up by the f16 nearest to x, so models with GELU (GPT-2, Gemma's
// GeGLU) follow its logits closely only with the same table.
#include <cmath>
#include <vector>

#include "ops/ops.h"

namespace qkv::ops {

const uint16_t* gelu_f16_table() {
  static const std::vector<uint16_t> table = [] {
    std::vector<uint16_t> t(size_t(1) << 16);
    const float k = 0.79788456080286535587989211986876f, a = 0.044715f;  // sqrt(2 / pi), the cubic's coefficient
    for (size_t h = 0; h < t.size(); ++h) {
      const float x = f16_to_f32(uint16_t(h));
      t[h] = f32_to_f16(0.5f * x * (1.0f + std::tanh(k * x * (1.0f + a * x * x))));
    }
    return t;
  }();
  return table.data();
}

}  // namespace qkv::ops
