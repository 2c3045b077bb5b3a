// generate(): the prompt as batches, then one token at a time, with stop
// strings, end-of-text handling, context shift and per-token information.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "engine/api/qkv.hpp"
#include "engine/error.h"

namespace qkv {

namespace {

// Text released as tokens come, holding back what may be the start of a stop string.
class StopMatcher {
 public:
  explicit StopMatcher(const std::vector<std::string>& stops) : stops_(stops) {}

  // Adds a token's text. Returns the text now safe to release; sets *matched
  // to the stop string found (the text before it is released, the rest dropped).
  std::string add(const std::string& piece, const std::string** matched) {
    held_ += piece;
    size_t best = std::string::npos;
    for (const std::string& s : stops_) {
      const size_t at = held_.find(s);
      if (at < best) {
        best = at;
        *matched = &s;
      }
    }
    if (best != std::string::npos) {
      std::string out = held_.substr(0, best);
      held_.clear();
      return out;
    }
    // Keep the longest end of the text that begins some stop string.
    size_t keep = 0;
    for (const std::string& s : stops_)
      for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n)
        if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
          keep = n;
          break;
        }
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
  }
  std::string flush() {
    std::string out;
    out.swap(held_);
    return out;
  }

 private:
  const std::vector<std::string>& stops_;
  std::string held_;
};

// log-softmax of the logits for `token` and the n most likely tokens.
void log_probs(const float* logits, int vocab, int token, int n, TokenInfo& info,
               std::vector<std::pair<float, int>>& work) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < vocab; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - mx);
  const float lse = mx + float(std::log(sum));
  info.logprob = logits[token] - lse;
  work.clear();
  for (int i = 0; i < vocab; ++i) work.emplace_back(logits[i], i);
  const int k = std::min(n, vocab);
  std::partial_sort(work.begin(), work.begin() + k, work.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  info.top_logprobs.clear();
  for (int i = 0; i < k; ++i) info.top_logprobs.emplace_back(work[size_t(i)].second, work[size_t(i)].first - lse);
}

}  // namespace

GenerateResult generate(Session& session, Sampler& sampler, const std::vector<int>& prompt, const GenerateOptions& o,
                        const TokenInfoCallback& on_token) {
  using clock = std::chrono::steady_clock;
  const Model& model = session.model();
  const int vocab = model.info().vocab_size;
  for (const std::string& s : o.stop)
    if (s.empty()) throw Error("generate: a stop string is empty", Errc::InvalidArgument);
  if (o.n_keep < 0) throw Error(cat("generate: n_keep ", o.n_keep, " must be >= 0"), Errc::InvalidArgument);
  if (o.n_probs < 0 || o.n_probs > vocab)
    throw Error(cat("generate: n_probs ", o.n_probs, " must be in 0..", vocab), Errc::InvalidArgument);
  GenerateResult r;
  const int pending = session.pending_token();
  if (prompt.empty() && pending < 0) throw Error("generate: the prompt has no tokens", Errc::InvalidArgument);
  const int free_positions = session.n_ctx() - session.n_past() - (pending >= 0 ? 1 : 0);
  if (int64_t(prompt.size()) > free_positions)
    throw Error(cat("the prompt has ", prompt.size(), " tokens but only ", free_positions, " positions of the context (",
                    session.n_ctx(), ") are free; use a larger -c or a shorter prompt"), Errc::ContextFull);
  r.n_prompt = int(prompt.size());
  // Never more than the context can hold, whatever n_predict asks.
  r.tokens.reserve(size_t(std::min(o.n_predict < 0 ? 256 : o.n_predict, std::max(free_positions - r.n_prompt + 1, 1))));
  for (int t : prompt) sampler.accept(t);

  // --ignore-eos: the end-of-text tokens can never be sampled.
  std::vector<int> ends;
  std::vector<float> masked;
  if (o.ignore_eos) {
    for (int t = 0; t < vocab; ++t)
      if (model.is_end_of_text(t)) ends.push_back(t);
    masked.resize(size_t(vocab));
  }
  std::vector<std::pair<float, int>> work;
  StopMatcher stops(o.stop);

  auto t0 = clock::now();
  if (!prompt.empty()) {
    session.eval(prompt);
  } else {  // a continuation with no new text: the pending token is the input
    session.truncate(session.n_past());  // drops the pending mark, keeps the cache
    session.eval(&pending, 1);
  }
  auto t1 = clock::now();
  r.prompt_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();

  int prev = prompt.empty() ? pending : prompt.back();
  auto last_time = t1;
  TokenInfo info;
  for (int i = 0; o.n_predict < 0 || i < o.n_predict; ++i) {
    int tok;
    if (o.ignore_eos) {
      std::copy(session.logits(), session.logits() + vocab, masked.begin());
      for (int t : ends) masked[size_t(t)] = -std::numeric_limits<float>::infinity();
      tok = sampler.sample(masked.data());
    } else {
      tok = session.sample(sampler);
    }
    sampler.accept(tok);
    r.tokens.push_back(tok);
    info.token = tok;
    info.piece = model.token_to_piece(tok, prev);
    info.end_of_text = !o.ignore_eos && model.is_end_of_text(tok);
    info.n_past = session.n_past();
    if (o.n_probs > 0) log_probs(session.logits(), vocab, tok, o.n_probs, info, work);
    const auto now = clock::now();
    info.ms = std::chrono::duration<double, std::milli>(now - last_time).count();
    last_time = now;
    prev = tok;

    const bool length_done = o.n_predict >= 0 && i + 1 >= o.n_predict;
    const bool full = session.n_past() >= session.n_ctx();
    const std::string* matched = nullptr;
    if (info.end_of_text) {
      info.text = stops.flush();
    } else {
      info.text = stops.add(info.piece, &matched);
      if (!matched && (length_done || (full && !o.context_shift))) info.text += stops.flush();
    }
    r.text += info.text;
    const bool keep_going = on_token ? on_token(info) : true;
    if (info.end_of_text) {
      r.stop = StopReason::EndOfText;
      break;
    }
    if (matched) {
      r.stop = StopReason::StopString;
      r.stop_string = *matched;
      session.append_pending(tok);
      break;
    }
    if (!keep_going) {
      r.stop = StopReason::Callback;
      session.append_pending(tok);
      break;
    }
    if (length_done) {
      session.append_pending(tok);
      break;
    }
    if (full) {
      if (!o.context_shift) {
        r.stop = StopReason::ContextFull;
        break;
      }
      session.append_pending(tok);
      if (session.shift_context(o.n_keep) == 0) {  // nothing left to drop
        r.stop = StopReason::ContextFull;
        break;
      }
      ++r.n_shifts;
      continue;  // the shift evaluated tok: its logits are there
    }
    session.eval(&tok, 1);
  }
  r.gen_ms = std::chrono::duration<double, std::milli>(clock::now() - t1).count();
  return r;
}

GenerateResult generate(Session& session, Sampler& sampler, const std::vector<int>& prompt, int n_predict,
                        const TokenCallback& on_token) {
  GenerateOptions o;
  o.n_predict = n_predict;
  TokenInfoCallback cb;
  if (on_token) cb = [&](const TokenInfo& t) { return on_token(t.token, t.piece); };
  return generate(session, sampler, prompt, o, cb);
}

}  // namespace qkv
