// The scalar reference's accumulator for the quantized products
// (quant_dot.h): one float; each block's integer sum is exact, so only the
// scaling and the sum over blocks round.
#pragma once

namespace qkv::ops::quant_ref {

struct QAcc {
  float s;
};
inline QAcc qacc_zero() { return QAcc{0.0f}; }
inline float qacc_sum(const QAcc& a) { return a.s; }

}  // namespace qkv::ops::quant_ref
