// Float weights packed in panels (ops.h): a transposition, nothing computed.
#include "ops/ops.h"

namespace qkv::ops {
namespace {
template <class T>
void pack(const T* w, T* out, size_t rows, size_t n) {
  // Written in order (the panel's 16 rows read side by side): whole cache
  // lines of the copy at a time.
  for (size_t p = 0; p < rows / kPanelRows; ++p) {
    const T* src = w + p * kPanelRows * n;
    T* dst = out + p * n * kPanelRows;
    for (size_t k = 0; k < n; ++k)
      for (size_t j = 0; j < kPanelRows; ++j) dst[k * kPanelRows + j] = src[j * n + k];
  }
}
}  // namespace

void pack_panels(const float* w, float* out, size_t rows, size_t n) { pack(w, out, rows, n); }
void pack_panels(const uint16_t* w, uint16_t* out, size_t rows, size_t n) { pack(w, out, rows, n); }

void pack_panels_bf16(const uint16_t* w, uint16_t* out, size_t rows, size_t n) {
  const size_t pairs = n / 2;
  for (size_t p = 0; p < rows / kPanelRows; ++p) {
    const uint16_t* src = w + p * kPanelRows * n;
    uint16_t* dst = out + p * n * kPanelRows;
    for (size_t q = 0; q < pairs; ++q)
      for (size_t j = 0; j < kPanelRows; ++j) {
        dst[q * 2 * kPanelRows + 2 * j] = src[j * n + 2 * q];
        dst[q * 2 * kPanelRows + 2 * j + 1] = src[j * n + 2 * q + 1];
      }
    if (n % 2)
      for (size_t j = 0; j < kPanelRows; ++j) dst[(n - 1) * kPanelRows + j] = src[j * n + n - 1];
  }
}

}  // namespace qkv::ops
