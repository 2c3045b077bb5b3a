#include "engine/text/sampler.h"

#include "engine/error.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace qkv {

SamplerImpl::SamplerImpl(const SamplerParams& p, int vocab_size)
    : p_(p), vocab_(vocab_size), work_(size_t(vocab_size)), cand_(size_t(vocab_size)) {
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

int SamplerImpl::sample(const float* logits) {
  // Non-finite logits come from non-finite weights (or activations that
  // overflowed): an error, never a token picked from garbage. -inf alone is a
  // masked token.
  bool any = false;
  for (int i = 0; i < vocab_; ++i) {
    const float x = logits[i];
    if (std::isnan(x) || x == INFINITY)
      throw Error(cat("sampler: logit ", i, " is ", x, ": the model's output is not finite (NaN or infinite weights?)"),
                  Errc::BadFile);
    any = any || x != -INFINITY;
  }
  if (!any) throw Error("sampler: every logit is -inf: no token can be sampled", Errc::InvalidArgument);
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
  }

  if (p_.temperature == 0.0f) {  // greedy: the first maximum
    int best = 0;
    for (int i = 1; i < vocab_; ++i)
      if (l[i] > l[best]) best = i;
    return best;
  }

  // Candidates, sorted by logit (only the top k when top-k is on).
  size_t n = size_t(vocab_);
  for (size_t i = 0; i < n; ++i) cand_[i] = {l[i], int(i)};
  auto by_logit = [](const std::pair<float, int>& a, const std::pair<float, int>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  if (p_.top_k > 0 && size_t(p_.top_k) < n) {
    std::partial_sort(cand_.begin(), cand_.begin() + p_.top_k, cand_.begin() + long(n), by_logit);
    n = size_t(p_.top_k);
  } else {
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
