// Float weights packed in panels (ops.h): a transposition, nothing computed.
#include "ops/ops.h"

namespace qkv::ops {
namespace {
template <class T>
void pack(const T* w, T* out, size_t rows, size_t n) {
  for (size_t p = 0; p < rows / kPanelRows; ++p)
    for (size_t j = 0; j < kPanelRows; ++j) {
      const T* row = w + (p * kPanelRows + j) * n;
      T* col = out + p * n * kPanelRows + j;
      for (size_t k = 0; k < n; ++k) col[k * kPanelRows] = row[k];
    }
}
}  // namespace

void pack_panels(const float* w, float* out, size_t rows, size_t n) { pack(w, out, rows, n); }
void pack_panels(const uint16_t* w, uint16_t* out, size_t rows, size_t n) { pack(w, out, rows, n); }

}  // namespace qkv::ops
