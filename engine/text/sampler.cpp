#include "engine/text/sampler.h"

#include "engine/error.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace qkv {

namespace {

// The logits are read in chunks of kChunk; a chunk's largest logit, as an
// order key, tells top-k and greedy whether it holds anything they want.
constexpr size_t kChunk = 64;

// A logit's bits as an int32 that orders as the float does (finite or -inf;
// -0 as +0), so that the scans compare integers, which vectorize, and no
// float comparison with its NaN rules. NaN and +inf are caught before.
inline int32_t order_key(uint32_t u) {
  const int32_t mag = int32_t(u & 0x7fffffffu);
  return (u >> 31) ? -mag : mag;
}

// The candidates' order: by logit, descending, ties to the lower id.
inline bool by_logit(const std::pair<float, int>& a, const std::pair<float, int>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

inline uint32_t bits_of(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}

}  // namespace

SamplerImpl::SamplerImpl(const SamplerParams& p, int vocab_size)
    : p_(p),
      vocab_(vocab_size),
      work_(size_t(vocab_size)),
      cand_(size_t(vocab_size)),
      chunk_max_((size_t(std::max(vocab_size, 0)) + kChunk - 1) / kChunk) {
  if (vocab_size <= 0) throw Error("sampler: vocabulary size must be positive", Errc::InvalidArgument);
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    throw Error(cat("sampler: temperature ", p.temperature, " must be >= 0"), Errc::InvalidArgument);
  if (p.top_k < 0) throw Error(cat("sampler: top-k ", p.top_k, " must be >= 0 (0 = off)"), Errc::InvalidArgument);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) throw Error(cat("sampler: top-p ", p.top_p, " must be in (0, 1]"), Errc::InvalidArgument);
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) throw Error(cat("sampler: min-p ", p.min_p, " must be in [0, 1]"), Errc::InvalidArgument);
  if (!(p.repeat_penalty > 0.0f) || !std::isfinite(p.repeat_penalty))
    throw Error(cat("sampler: repeat penalty ", p.repeat_penalty, " must be > 0"), Errc::InvalidArgument);
  if (p.repeat_last_n < 0 || p.repeat_last_n > kMaxRepeatLastN)
    throw Error(cat("sampler: repeat-last-n ", p.repeat_last_n, " must be in 0..", kMaxRepeatLastN, " (the tokens it keeps: ",
                    kMaxRepeatLastN, " would take ", kMaxRepeatLastN * 4 / (1 << 20), " MiB)"), Errc::InvalidArgument);
  recent_.assign(size_t(p.repeat_last_n), -1);
  reset();
}

void SamplerImpl::reset() {
  rng_ = p_.seed ? p_.seed : 0x9E3779B97F4A7C15ull;
  recent_pos_ = recent_n_ = 0;
}

uint32_t SamplerImpl::next_u32() {  // xorshift64*
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return uint32_t((rng_ * 0x2545F4914F6CDD1Dull) >> 32);
}

float SamplerImpl::next_f32() { return float(next_u32() >> 8) / 16777216.0f; }

void SamplerImpl::accept(int token) {
  if (recent_.empty()) return;
  recent_[recent_pos_] = token;
  recent_pos_ = (recent_pos_ + 1) % recent_.size();
  recent_n_ = std::min(recent_n_ + 1, recent_.size());
}

void SamplerImpl::scan(const float* l, bool check) {
  // Non-finite logits come from non-finite weights (or activations that
  // overflowed): an error, never a token picked from garbage. -inf alone is a
  // masked token.
  uint32_t bad = 0, any = 0;
  const size_t n = size_t(vocab_);
  for (size_t c = 0; c * kChunk < n; ++c) {
    const size_t end = std::min(n, (c + 1) * kChunk);
    int32_t mx = INT32_MIN;
    for (size_t i = c * kChunk; i < end; ++i) {
      const uint32_t u = bits_of(l[i]);
      bad |= uint32_t((u & 0x7fffffffu) > 0x7f800000u) | uint32_t(u == 0x7f800000u);  // NaN, +inf
      any |= uint32_t(u != 0xff800000u);                                                  // not -inf
      const int32_t k = order_key(u);
      mx = k > mx ? k : mx;
    }
    chunk_max_[c] = mx;
  }
  if (!check) return;
  if (bad)
    for (size_t i = 0; i < n; ++i)
      if (std::isnan(l[i]) || l[i] == INFINITY)
        throw Error(cat("sampler: logit ", i, " is ", l[i], ": the model's output is not finite (NaN or infinite weights?)"),
                    Errc::BadFile);
  if (!any) throw Error("sampler: every logit is -inf: no token can be sampled", Errc::InvalidArgument);
}

int SamplerImpl::first_max(const float* l) const {
  size_t best = 0;  // the first chunk holding the largest key
  for (size_t c = 1; c < chunk_max_.size(); ++c)
    if (chunk_max_[c] > chunk_max_[best]) best = c;
  const int32_t want = chunk_max_[best];
  for (size_t i = best * kChunk;; ++i)
    if (order_key(bits_of(l[i])) == want) return int(i);
}

// The k best (value, index), as std::partial_sort by (value descending, index
// ascending) would leave them: a heap of the best seen, its top the worst of
// them; once it holds k, a chunk whose largest value does not beat that
// worst one is skipped whole (a later index never wins a tie).
size_t SamplerImpl::top_k(const float* l, size_t k) {
  auto* heap = cand_.data();
  size_t size = 0;
  for (size_t c = 0; c < chunk_max_.size(); ++c) {
    if (size == k && chunk_max_[c] <= order_key(bits_of(heap[0].first))) continue;
    const size_t end = std::min(size_t(vocab_), (c + 1) * kChunk);
    for (size_t i = c * kChunk; i < end; ++i) {
      const std::pair<float, int> e{l[i], int(i)};
      if (size < k) {
        heap[size++] = e;
        std::push_heap(heap, heap + size, by_logit);
      } else if (by_logit(e, heap[0])) {
        std::pop_heap(heap, heap + size, by_logit);
        heap[size - 1] = e;
        std::push_heap(heap, heap + size, by_logit);
      }
    }
  }
  std::sort_heap(heap, heap + size, by_logit);
  return size;
}

int SamplerImpl::sample(const float* logits) {
  scan(logits, true);  // the model's own logits must be finite
  const float* l = logits;
  if (p_.repeat_penalty != 1.0f && recent_n_ > 0) {
    std::memcpy(work_.data(), logits, sizeof(float) * size_t(vocab_));
    // Each distinct recent token is penalised once.
    for (size_t i = 0; i < recent_n_; ++i) {
      const int t = recent_[i];
      if (t < 0 || t >= vocab_) continue;
      bool seen = false;
      for (size_t j = 0; j < i && !seen; ++j) seen = recent_[j] == t;
      if (seen) continue;
      float& x = work_[size_t(t)];
      x = x > 0.0f ? x / p_.repeat_penalty : x * p_.repeat_penalty;
    }
    l = work_.data();
    scan(l, false);  // (a tiny penalty may take a large logit to +inf: the largest then)
  }

  if (p_.temperature == 0.0f) return first_max(l);  // greedy

  // Candidates, sorted by logit (only the top k when top-k is on).
  size_t n = size_t(vocab_);
  if (p_.top_k > 0 && size_t(p_.top_k) < n) {
    n = top_k(l, size_t(p_.top_k));
  } else {
    for (size_t i = 0; i < n; ++i) cand_[i] = {l[i], int(i)};
    std::sort(cand_.begin(), cand_.begin() + long(n), by_logit);
  }

  // Probabilities at temperature 1 for the top-p and min-p filters.
  const float mx = cand_[0].first;
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += std::exp(double(cand_[i].first - mx));
  if (p_.top_p < 1.0f) {
    double cum = 0.0;
    size_t keep = n;
    for (size_t i = 0; i < n; ++i) {
      cum += std::exp(double(cand_[i].first - mx)) / sum;
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }
  if (p_.min_p > 0.0f) {
    // Keep tokens whose probability is at least min_p times the best one's.
    const float cut = mx + std::log(p_.min_p);
    size_t keep = 1;
    while (keep < n && cand_[keep].first >= cut) ++keep;
    n = keep;
  }

  // Sample from the survivors at the requested temperature.
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) total += std::exp(double(cand_[i].first - mx) / p_.temperature);
  const double r = double(next_f32()) * total;
  double acc = 0.0;
  for (size_t i = 0; i < n; ++i) {
    acc += std::exp(double(cand_[i].first - mx) / p_.temperature);
    if (r < acc) return cand_[i].second;
  }
  return cand_[n - 1].second;
}

}  // namespace qkv
