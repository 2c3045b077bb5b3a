// Generation controls (stop strings, ignore-eos, context shift,
// log-probabilities), sessions that continue (saved and restored state,
// cancellation) and qkv::Chat, through the API.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "engine/api/qkv.hpp"
#include "test_util.h"

namespace qkv {
namespace {

using test::model_path;

std::shared_ptr<const Model> stories() {
  static auto m = Model::load(model_path("stories260K.bin"), LoadOptions{model_path("tok512.bin")});
  return m;
}

SessionOptions f32_session(int n_ctx) {
  SessionOptions o;
  o.n_ctx = n_ctx;
  o.kv_f16 = false;
  o.n_threads = 2;
  return o;
}

// Greedy text of n tokens after the prompt, and its tokens.
GenerateResult greedy(const std::shared_ptr<const Model>& m, const std::string& prompt, const GenerateOptions& go,
                      int n_ctx = 256) {
  Session s(m, f32_session(n_ctx));
  Sampler sampler(m->info().vocab_size, test::greedy_params());
  return generate(s, sampler, m->tokenize(prompt, true), go);
}

TEST(GenerationControls, StopStringEndsTheTextBeforeItAcrossTokens) {
  auto m = stories();
  GenerateOptions plain;
  plain.n_predict = 80;
  const GenerateResult full = greedy(m, "Once upon a time", plain);
  ASSERT_EQ(full.tokens.size(), 80u);
  EXPECT_EQ(full.text, m->detokenize(full.tokens).substr(0));  // no stop strings: every piece released
  // A stop string spanning tokens: " named Lily" is several tokens in tok512.
  const std::string stop = " named Lily";
  const size_t at = full.text.find(stop);
  ASSERT_NE(at, std::string::npos) << full.text;
  GenerateOptions go = plain;
  go.stop = {"no such text", stop};
  std::string streamed;
  Session s(m, f32_session(256));
  Sampler sampler(m->info().vocab_size, test::greedy_params());
  const GenerateResult r = generate(s, sampler, m->tokenize("Once upon a time", true), go, [&](const TokenInfo& t) {
    streamed += t.text;
    return true;
  });
  EXPECT_EQ(r.stop, StopReason::StopString);
  EXPECT_EQ(r.stop_string, stop);
  EXPECT_EQ(r.text, full.text.substr(0, at));
  EXPECT_EQ(streamed, r.text);  // the stop string was never released, nothing else was held
  EXPECT_LT(r.tokens.size(), full.tokens.size());
  // The stopping token stays in the history (pending), as after a length stop.
  EXPECT_EQ(s.pending_token(), r.tokens.back());

  // Text held back because it might start a stop string comes out when it does not.
  GenerateOptions held = plain;
  held.stop = {full.text.substr(full.text.size() - 3) + "@@"};  // the text's last 3 bytes begin it
  const GenerateResult h = greedy(m, "Once upon a time", held);
  EXPECT_EQ(h.stop, StopReason::Length);
  EXPECT_EQ(h.text, full.text);
}

TEST(GenerationControls, IgnoreEosNeverSamplesAnEndOfText) {
  auto m = stories();
  GenerateOptions go;
  go.n_predict = 400;
  const GenerateResult ends = greedy(m, "Once upon a time", go, 512);
  ASSERT_EQ(ends.stop, StopReason::EndOfText) << "the greedy story is expected to end within 400 tokens";
  go.ignore_eos = true;
  const GenerateResult r = greedy(m, "Once upon a time", go, 512);
  EXPECT_EQ(r.tokens.size(), 400u);
  for (int t : r.tokens) EXPECT_FALSE(m->is_end_of_text(t));
  // Up to the end the first run met, both are the same text.
  EXPECT_EQ(std::vector<int>(r.tokens.begin(), r.tokens.begin() + long(ends.tokens.size() - 1)),
            std::vector<int>(ends.tokens.begin(), ends.tokens.end() - 1));
}

TEST(GenerationControls, ContextShiftKeepsGoingAndStaysCoherent) {
  auto m = stories();
  const int n_ctx = 64;
  Session s(m, f32_session(n_ctx));
  Sampler sampler(m->info().vocab_size, test::greedy_params());
  GenerateOptions go;
  go.n_predict = 300;
  go.ignore_eos = true;
  go.context_shift = true;
  go.n_keep = 1;  // BOS
  go.n_probs = 1;
  std::vector<float> logprobs;
  std::vector<int> n_past;
  const std::vector<int> prompt = m->tokenize("Once upon a time", true);
  const GenerateResult r = generate(s, sampler, prompt, go, [&](const TokenInfo& t) {
    logprobs.push_back(t.logprob);
    n_past.push_back(t.n_past);
    return true;
  });
  ASSERT_EQ(r.tokens.size(), 300u);
  EXPECT_GE(r.n_shifts, 5);
  for (int p : n_past) EXPECT_LE(p, n_ctx);
  // Coherent: the model stays as sure of its greedy choices after the shifts
  // as before (random text would score far lower), and the cache is what a
  // fresh evaluation of the kept tokens gives.
  double before = 0, after = 0;
  for (size_t i = 0; i < 40; ++i) before += logprobs[i];
  for (size_t i = 200; i < 240; ++i) after += logprobs[i];
  EXPECT_GT(after / 40, -1.5) << "before " << before / 40;
  EXPECT_GT(after / 40, before / 40 - 1.0);
  const std::string text = r.text;
  EXPECT_NE(text.find(" the "), std::string::npos);
  std::vector<int> history = s.tokens();
  if (s.pending_token() >= 0) history.push_back(s.pending_token());
  ASSERT_LE(int(history.size()), n_ctx);
  EXPECT_EQ(history[0], m->bos_id());
  ASSERT_EQ(s.pending_token(), history.back());
  // The shifted cache holds what evaluating the kept tokens afresh gives.
  Session fresh(m, f32_session(n_ctx));
  fresh.eval(std::vector<int>(history.begin(), history.end() - 1));
  const int vocab = m->info().vocab_size;
  float worst = 0;
  for (int i = 0; i < vocab; ++i) worst = std::max(worst, std::fabs(fresh.logits()[i] - s.logits()[i]));
  EXPECT_LT(worst, 1e-3f);
}

TEST(GenerationControls, LogProbabilitiesAreTheModelsSoftmax) {
  auto m = stories();
  GenerateOptions go;
  go.n_predict = 10;
  go.n_probs = 5;
  Session s(m, f32_session(128));
  Sampler sampler(m->info().vocab_size, test::greedy_params());
  int checked = 0;
  generate(s, sampler, m->tokenize("Once upon a time", true), go, [&](const TokenInfo& t) {
    EXPECT_EQ(t.top_logprobs.size(), 5u);
    EXPECT_EQ(t.top_logprobs[0].first, t.token);  // greedy: the most likely
    EXPECT_FLOAT_EQ(t.top_logprobs[0].second, t.logprob);
    double mass = 0;
    for (size_t i = 0; i < t.top_logprobs.size(); ++i) {
      if (i) {
        EXPECT_LE(t.top_logprobs[i].second, t.top_logprobs[i - 1].second);
      }
      mass += std::exp(double(t.top_logprobs[i].second));
    }
    EXPECT_LE(t.logprob, 0.0f);
    EXPECT_LE(mass, 1.0 + 1e-5);
    EXPECT_GT(mass, 0.2);
    EXPECT_GE(t.ms, 0.0);
    ++checked;
    return true;
  });
  EXPECT_EQ(checked, 10);
}

TEST(Sessions, TokensFollowTheCache) {
  auto m = stories();
  Session s(m, f32_session(64));
  const std::vector<int> p = m->tokenize("Once upon a time", true);
  s.eval(p);
  EXPECT_EQ(s.tokens(), p);
  s.truncate(2);
  EXPECT_EQ(s.tokens(), std::vector<int>(p.begin(), p.begin() + 2));
  s.reset();
  EXPECT_TRUE(s.tokens().empty());
}

TEST(Sessions, ARestoredSessionContinuesAsTheUninterruptedOne) {
  auto m = stories();
  for (bool f16 : {false, true}) {
    SCOPED_TRACE(f16 ? "f16 cache" : "f32 cache");
    SessionOptions so = f32_session(200);
    so.kv_f16 = f16;
    Session a(m, so);
    Sampler sa(m->info().vocab_size, test::greedy_params());
    GenerateOptions go;
    go.n_predict = 30;
    generate(a, sa, m->tokenize("Once upon a time", true), go);  // 30 tokens, the last one pending
    const std::string state = a.save_state();
    test::TempFile file("", ".state");
    a.save_state_file(file.path());
    const GenerateResult uninterrupted = generate(a, sa, {}, go);

    for (int from_file = 0; from_file < 2; ++from_file) {
      SessionOptions other = so;
      other.n_ctx = 150;  // another context that holds it
      Session b(m, other);
      if (from_file) {
        b.load_state_file(file.path());
      } else {
        b.load_state(state);
      }
      EXPECT_EQ(b.n_past(), int(a.tokens().size()) - 30);
      Sampler sb(m->info().vocab_size, test::greedy_params());
      const GenerateResult restored = generate(b, sb, {}, go);
      EXPECT_EQ(restored.tokens, uninterrupted.tokens);
    }
  }
}

TEST(Sessions, AStateFromElsewhereIsRefusedClearly) {
  auto m = stories();
  Session a(m, f32_session(64));
  a.eval(m->tokenize("Once upon a time", true));
  const std::string state = a.save_state();
  const auto refused = [&](Session& s, const std::string& bytes, const std::string& needle) {
    try {
      s.load_state(bytes);
      ADD_FAILURE() << "loaded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  SessionOptions f16 = f32_session(64);
  f16.kv_f16 = true;
  Session other_type(m, f16);
  refused(other_type, state, "f32");
  Session small(m, f32_session(4));
  refused(small, state, "context");
  auto qwen = Model::load(model_path("arch/qwen3-like.gguf"));
  Session other_model(qwen, f32_session(64));
  refused(other_model, state, "another model");
  Session same(m, f32_session(64));
  refused(same, state.substr(0, state.size() - 10), "truncated");
  refused(same, "garbage", "truncated");
  refused(same, std::string(64, 'x'), "not a qkv session state");
  refused(same, state + "x", "after the end");
  EXPECT_EQ(same.n_past(), 0);  // a refused state changes nothing
}

TEST(Sessions, CancelStopsAnEvaluationAndKeepsWhatItDid) {
  auto m = stories();
  SessionOptions so = f32_session(512);
  so.n_batch = 8;
  Session s(m, so);
  std::vector<int> tokens(400, m->tokenize("a", false)[0]);
  s.cancel();
  try {
    s.eval(tokens);
    FAIL() << "not cancelled";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::Cancelled);
  }
  EXPECT_EQ(s.n_past(), 0);
  // From another thread, while it runs: it stops at a batch boundary.
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    s.cancel();
  });
  bool cancelled = false;
  try {
    for (int i = 0; i < 200; ++i) {  // evaluate until the request lands
      s.truncate(0);
      s.eval(tokens);
    }
  } catch (const Error& e) {
    cancelled = e.code() == Errc::Cancelled;
  }
  t.join();
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(s.n_past() % 8, 0);
  EXPECT_EQ(int(s.tokens().size()), s.n_past());
  // A withdrawn request stops nothing.
  s.cancel();
  s.cancel(false);
  s.truncate(0);
  EXPECT_NO_THROW(s.eval(tokens));
  EXPECT_EQ(s.n_past(), 400);
}

TEST(ChatApi, EachTurnEvaluatesOnlyNewTokensAndEqualsTheWholePrompt) {
  auto m = Model::load(model_path("arch/qwen3-like.gguf"));
  SessionOptions so = f32_session(1024);
  Session s(m, so);
  Sampler sampler(m->info().vocab_size, test::greedy_params());
  ChatOptions co;
  co.system = "You are terse.";
  co.generate.n_predict = 12;
  Chat chat(s, std::nullopt, co);
  EXPECT_EQ(chat.end_of_turn(), "<|im_end|>");
  const std::vector<std::string> turns = {"Hello there", "How are you?", "Bye"};
  for (const std::string& user : turns) {
    const std::string prompt = chat.render(user);
    const int cached_before = s.n_past();
    const std::string reply = chat.say(user, sampler);
    // The same reply as a fresh session on the whole rendered prompt.
    Session fresh(m, so);
    Sampler fs(m->info().vocab_size, test::greedy_params());
    GenerateOptions go;
    go.n_predict = 12;
    go.stop = {"<|im_end|>"};
    const GenerateResult want = generate(fresh, fs, m->tokenize(prompt, true, true), go);
    EXPECT_EQ(reply, want.text) << user;
    EXPECT_GE(chat.last_result().n_prompt, 1);
    if (cached_before > 0) {
      EXPECT_LT(chat.last_result().n_prompt, int(m->tokenize(prompt, true, true).size()));
    }
  }
  ASSERT_EQ(chat.messages().size(), 7u);
  EXPECT_EQ(chat.messages()[0].role, "system");
  EXPECT_EQ(chat.messages()[6].role, "assistant");
  chat.reset();
  EXPECT_EQ(chat.messages().size(), 1u);
}

TEST(ChatApi, AModelWithoutATemplateNeedsOne) {
  auto m = stories();
  Session s(m, f32_session(256));
  EXPECT_THROW(Chat{s}, Error);
  Chat chat(s, ChatTemplate::builtin("chatml"));
  EXPECT_EQ(chat.end_of_turn(), "<|im_end|>");
  Sampler sampler(m->info().vocab_size, test::greedy_params());
  const std::string reply = chat.say("Once upon a time", sampler);
  EXPECT_EQ(reply.find("<|im_end|>"), std::string::npos);  // a stop string, never in the reply
}

}  // namespace
}  // namespace qkv
