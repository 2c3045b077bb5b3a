// The C API end to end on the shared references, and every error path.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "engine/api/qkv.h"
#include "engine/api/qkv.hpp"
#include "test_util.h"

namespace {

using qkv::test::model_path;
using qkv::test::reference_path;

struct Handles {
  qkv_model* model = nullptr;
  qkv_session* session = nullptr;
  qkv_sampler* sampler = nullptr;
  ~Handles() {
    qkv_sampler_free(sampler);
    qkv_session_free(session);
    qkv_model_free(model);
  }
};

void open_greedy(Handles& h, const std::string& path, const char* tokenizer, int32_t n_ctx = 0) {
  qkv_model_params mp = qkv_model_default_params();
  mp.tokenizer_path = tokenizer;
  ASSERT_EQ(qkv_model_load(path.c_str(), &mp, &h.model), QKV_OK) << qkv_model_last_error(h.model);
  qkv_session_params sp = qkv_session_default_params();
  sp.n_ctx = n_ctx;
  ASSERT_EQ(qkv_session_new(h.model, &sp, &h.session), QKV_OK) << qkv_session_last_error(h.session);
  qkv_sampler_params gp = qkv_sampler_default_params();
  gp.temperature = 0.0f;
  ASSERT_EQ(qkv_sampler_new(h.model, &gp, &h.sampler), QKV_OK);
}

std::vector<int32_t> tokenize(const qkv_model* m, const std::string& text) {
  size_t n = 0;
  EXPECT_EQ(qkv_tokenize(m, text.data(), text.size(), 1, nullptr, 0, &n), QKV_ERR_BUFFER_TOO_SMALL);
  std::vector<int32_t> ids(n);
  EXPECT_EQ(qkv_tokenize(m, text.data(), text.size(), 1, ids.data(), ids.size(), &n), QKV_OK);
  return ids;
}

struct Collected {
  std::vector<int32_t> ids;
  std::string text;
  int stop_after = -1;
};

int collect(void* user, int32_t token, const char* piece, size_t len) {
  Collected* c = static_cast<Collected*>(user);
  c->ids.push_back(token);
  c->text.append(piece, len);
  return c->stop_after < 0 || int(c->ids.size()) < c->stop_after;
}

TEST(CApi, VersionAndStatusStrings) {
  EXPECT_STREQ(qkv_version(), "0.1.0");
  EXPECT_EQ(qkv_abi_version(), QKV_ABI_VERSION);
  EXPECT_STREQ(qkv_status_string(QKV_ERR_CONTEXT_FULL), "context full");
}

TEST(CApi, GreedyIdsMatchTheReferences) {
  for (const char* name : {"stories260K-gguf-once.txt", "tinyllama-v0-f32-once.txt", "stories260K-once.txt"}) {
    const qkv::test::ReferenceCase c = qkv::test::load_case(name);
    const bool bin = c.tokenizer.find("(in the model file)") == std::string::npos;
    const std::string tok = bin ? model_path(c.tokenizer) : "";
    Handles h;
    open_greedy(h, model_path(c.model), bin ? tok.c_str() : nullptr);
    const std::vector<int32_t> prompt = tokenize(h.model, c.prompt);
    EXPECT_EQ(std::vector<int>(prompt.begin(), prompt.end()), c.prompt_ids) << name;
    Collected got;
    qkv_generate_result r;
    const int n = 60;
    ASSERT_EQ(qkv_generate(h.session, h.sampler, prompt.data(), prompt.size(), n, collect, &got, &r), QKV_OK)
        << qkv_session_last_error(h.session);
    EXPECT_EQ(r.n_prompt, int(prompt.size()));
    EXPECT_EQ(r.n_generated, n);
    EXPECT_EQ(r.stop, QKV_STOP_LENGTH);
    EXPECT_EQ(std::vector<int>(got.ids.begin(), got.ids.end()),
              std::vector<int>(c.generated_ids.begin(), c.generated_ids.begin() + n))
        << name;
    // The streamed pieces are the reference's text after the prompt.
    EXPECT_EQ(c.prompt + got.text, qkv::test::unescape(c.kv.at("text")).substr(0, c.prompt.size() + got.text.size()));
  }
}

TEST(CApi, EvalLogitsTruncateAndReuseAPrefix) {
  Handles h;
  open_greedy(h, model_path("stories260K.gguf"), nullptr);
  EXPECT_EQ(qkv_logits(h.session), nullptr);  // nothing evaluated yet
  const std::vector<int32_t> ids = tokenize(h.model, "Once upon a time, there was");
  ASSERT_EQ(qkv_eval(h.session, ids.data(), ids.size()), QKV_OK);
  const int32_t V = qkv_model_n_vocab(h.model);
  EXPECT_EQ(V, 512);
  const std::vector<float> full(qkv_logits(h.session), qkv_logits(h.session) + V);
  // Keep the shared prefix "Once upon a time", then feed the rest again.
  ASSERT_EQ(qkv_session_truncate(h.session, 5), QKV_OK);
  EXPECT_EQ(qkv_session_n_past(h.session), 5);
  ASSERT_EQ(qkv_eval(h.session, ids.data() + 5, ids.size() - 5), QKV_OK);
  const float* again = qkv_logits(h.session);
  for (int32_t i = 0; i < V; ++i) ASSERT_NEAR(again[i], full[size_t(i)], 1e-4f) << i;
  qkv_session_reset(h.session);
  EXPECT_EQ(qkv_session_n_past(h.session), 0);
  // Pieces and text.
  char buf[64];
  size_t len = 0;
  ASSERT_EQ(qkv_token_to_piece(h.model, 403, 1, buf, sizeof buf, &len), QKV_OK);
  EXPECT_EQ(std::string(buf, len), "Once");
  ASSERT_EQ(qkv_detokenize(h.model, ids.data(), ids.size(), buf, sizeof buf, &len), QKV_OK);
  EXPECT_EQ(std::string(buf, len), "Once upon a time, there was");
  EXPECT_EQ(qkv_detokenize(h.model, ids.data(), ids.size(), buf, 3, &len), QKV_ERR_BUFFER_TOO_SMALL);
  EXPECT_EQ(len, std::strlen("Once upon a time, there was"));
}

TEST(CApi, SavedStateContinuesTheSameAndCancelStopsAnEval) {
  Handles h;
  open_greedy(h, model_path("stories260K.gguf"), nullptr);
  const std::vector<int32_t> ids = tokenize(h.model, "Once upon a time, there was");
  ASSERT_EQ(qkv_eval(h.session, ids.data(), ids.size()), QKV_OK);
  const int32_t V = qkv_model_n_vocab(h.model);
  const std::vector<float> want(qkv_logits(h.session), qkv_logits(h.session) + V);
  const std::string path = "/tmp/qkv-c-state-" + std::to_string(::getpid()) + ".bin";
  ASSERT_EQ(qkv_session_save_file(h.session, path.c_str()), QKV_OK) << qkv_session_last_error(h.session);
  qkv_session_reset(h.session);
  ASSERT_EQ(qkv_session_load_file(h.session, path.c_str()), QKV_OK) << qkv_session_last_error(h.session);
  EXPECT_EQ(qkv_session_n_past(h.session), int32_t(ids.size()));
  ASSERT_NE(qkv_logits(h.session), nullptr);
  for (int32_t i = 0; i < V; ++i) ASSERT_EQ(qkv_logits(h.session)[i], want[size_t(i)]) << i;
  // The next token's logits: as if nothing had happened.
  Handles g;
  open_greedy(g, model_path("stories260K.gguf"), nullptr);
  std::vector<int32_t> longer = ids;
  longer.push_back(403);
  ASSERT_EQ(qkv_eval(g.session, longer.data(), longer.size()), QKV_OK);
  ASSERT_EQ(qkv_eval(h.session, longer.data() + ids.size(), 1), QKV_OK);
  for (int32_t i = 0; i < V; ++i) ASSERT_NEAR(qkv_logits(h.session)[i], qkv_logits(g.session)[i], 1e-4f) << i;
  EXPECT_EQ(qkv_session_load_file(h.session, "/nonexistent/state"), QKV_ERR_IO);
  EXPECT_NE(std::string(qkv_session_last_error(h.session)).find("/nonexistent/state"), std::string::npos);
  std::remove(path.c_str());
  // Cancelled before it starts: QKV_ERR_CANCELLED, nothing evaluated; a withdrawn request stops nothing.
  qkv_session_reset(h.session);
  qkv_session_cancel(h.session, 1);
  EXPECT_EQ(qkv_eval(h.session, ids.data(), ids.size()), QKV_ERR_CANCELLED);
  EXPECT_EQ(qkv_session_n_past(h.session), 0);
  qkv_session_cancel(h.session, 1);
  qkv_session_cancel(h.session, 0);
  EXPECT_EQ(qkv_eval(h.session, ids.data(), ids.size()), QKV_OK);
  EXPECT_STREQ(qkv_status_string(QKV_ERR_CANCELLED), "cancelled");
}

TEST(CApi, ChatRepliesAsTheCppChatAndTemplatesRender) {
  Handles h;
  open_greedy(h, model_path("arch/qwen3-like.gguf"), nullptr, 512);
  const char* messages = R"([{"role": "user", "content": "Hi"}])";
  char buf[256];
  size_t len = 0;
  ASSERT_EQ(qkv_chat_apply_template(h.model, nullptr, messages, 1, buf, sizeof buf, &len), QKV_OK)
      << qkv_model_last_error(h.model);
  EXPECT_EQ(std::string(buf, len), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(qkv_chat_apply_template(h.model, "chatml", messages, 0, buf, 4, &len), QKV_ERR_BUFFER_TOO_SMALL);
  EXPECT_EQ(len, std::strlen("<|im_start|>user\nHi<|im_end|>\n"));
  EXPECT_EQ(qkv_chat_apply_template(h.model, "{{ raise_exception('nope') }}", messages, 1, buf, sizeof buf, &len),
            QKV_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(qkv_model_last_error(h.model)).find("nope"), std::string::npos);

  qkv_chat* chat = nullptr;
  ASSERT_EQ(qkv_chat_new(h.session, nullptr, "Be brief.", 10, &chat), QKV_OK) << qkv_chat_last_error(chat);
  Collected streamed;
  ASSERT_EQ(qkv_chat_say(chat, h.sampler, "Hello", 5, collect, &streamed), QKV_OK) << qkv_chat_last_error(chat);
  size_t n = 0;
  const std::string reply(qkv_chat_reply(chat, &n));
  EXPECT_EQ(reply.size(), n);
  EXPECT_EQ(streamed.text, reply);
  EXPECT_FALSE(reply.empty());
  // The C++ Chat on a fresh session gives the same reply.
  auto model = qkv::Model::load(model_path("arch/qwen3-like.gguf"));
  qkv::SessionOptions so;
  so.n_ctx = 512;
  qkv::Session s(model, so);
  qkv::Sampler sampler(model->info().vocab_size, qkv::test::greedy_params());
  qkv::ChatOptions co;
  co.system = "Be brief.";
  co.generate.n_predict = 10;
  qkv::Chat cpp(s, std::nullopt, co);
  EXPECT_EQ(cpp.say("Hello", sampler), reply);
  qkv_chat_reset(chat);
  EXPECT_EQ(qkv_chat_say(nullptr, h.sampler, "x", 1, nullptr, nullptr), QKV_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(qkv_chat_say(chat, nullptr, "x", 1, nullptr, nullptr), QKV_ERR_INVALID_ARGUMENT);
  qkv_chat_free(chat);
  // A model without a template needs one named.
  Handles st;
  open_greedy(st, model_path("stories260K.gguf"), nullptr);
  qkv_chat* none = nullptr;
  EXPECT_EQ(qkv_chat_new(st.session, nullptr, nullptr, 5, &none), QKV_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(qkv_chat_last_error(none)).find("no chat template"), std::string::npos);
  qkv_chat_free(none);
}

TEST(CApi, ErrorPathsReturnTheirCodeAndMessage) {
  qkv_model* m = nullptr;
  EXPECT_EQ(qkv_model_load("/nonexistent/model.gguf", nullptr, &m), QKV_ERR_IO);
  EXPECT_NE(std::string(qkv_model_last_error(m)).find("cannot open"), std::string::npos);
  qkv_model_free(m);

  const std::string tmp = "/tmp/qkv-capi-bad-" + std::to_string(::getpid()) + ".gguf";
  { std::FILE* f = std::fopen(tmp.c_str(), "wb"); std::fputs("GGUF\x03garbage", f); std::fclose(f); }
  m = nullptr;
  EXPECT_EQ(qkv_model_load(tmp.c_str(), nullptr, &m), QKV_ERR_BAD_FILE);
  EXPECT_NE(std::string(qkv_model_last_error(m)).find(tmp), std::string::npos);
  qkv_model_free(m);
  std::remove(tmp.c_str());

  EXPECT_EQ(qkv_model_load(nullptr, nullptr, &m), QKV_ERR_INVALID_ARGUMENT);
  qkv_model_free(m);
  EXPECT_EQ(qkv_model_load("x", nullptr, nullptr), QKV_ERR_INVALID_ARGUMENT);

  Handles h;
  open_greedy(h, model_path("stories260K.gguf"), nullptr, 8);
  // Bad arguments.
  qkv_session* s = nullptr;
  qkv_session_params sp = qkv_session_default_params();
  sp.n_threads = -3;
  EXPECT_EQ(qkv_session_new(h.model, &sp, &s), QKV_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(qkv_session_last_error(s)).find("thread count"), std::string::npos);
  qkv_session_free(s);
  qkv_sampler* bad = nullptr;
  qkv_sampler_params gp = qkv_sampler_default_params();
  gp.top_p = 2.0f;
  EXPECT_EQ(qkv_sampler_new(h.model, &gp, &bad), QKV_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(qkv_sampler_last_error(bad)).find("top-p"), std::string::npos);
  qkv_sampler_free(bad);
  const int32_t oob = 9999;
  EXPECT_EQ(qkv_eval(h.session, &oob, 1), QKV_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(qkv_session_last_error(h.session)).find("outside the vocabulary"), std::string::npos);
  EXPECT_EQ(qkv_eval(h.session, nullptr, 0), QKV_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(qkv_session_truncate(h.session, 3), QKV_ERR_INVALID_ARGUMENT);  // nothing cached
  EXPECT_EQ(qkv_token_to_piece(h.model, -1, -1, nullptr, 0, nullptr), QKV_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(qkv_eval(nullptr, &oob, 1), QKV_ERR_INVALID_ARGUMENT);
  // Context full (n_ctx 8).
  const std::vector<int32_t> ids = tokenize(h.model, "Once upon a time, there was a little girl named Lily");
  ASSERT_GT(ids.size(), 8u);
  EXPECT_EQ(qkv_eval(h.session, ids.data(), ids.size()), QKV_ERR_CONTEXT_FULL);
  EXPECT_NE(std::string(qkv_session_last_error(h.session)).find("context full"), std::string::npos);
  EXPECT_EQ(qkv_generate(h.session, h.sampler, ids.data(), ids.size(), 4, nullptr, nullptr, nullptr),
            QKV_ERR_CONTEXT_FULL);
  // A generation that fills the context stops cleanly.
  qkv_generate_result r;
  ASSERT_EQ(qkv_generate(h.session, h.sampler, ids.data(), 5, 100, nullptr, nullptr, &r), QKV_OK);
  EXPECT_EQ(r.stop, QKV_STOP_CONTEXT_FULL);
  // The last error clears on success.
  qkv_session_reset(h.session);
  ASSERT_EQ(qkv_eval(h.session, ids.data(), 2), QKV_OK);
  EXPECT_STREQ(qkv_session_last_error(h.session), "");
}

TEST(CApi, CallbackStopsGenerationAndMmapOffGivesTheSameIds) {
  std::vector<int32_t> first;
  for (int mmap : {1, 0}) {
    Handles h;
    qkv_model_params mp = qkv_model_default_params();
    mp.use_mmap = mmap;
    ASSERT_EQ(qkv_model_load(model_path("stories260K.gguf").c_str(), &mp, &h.model), QKV_OK);
    ASSERT_EQ(qkv_session_new(h.model, nullptr, &h.session), QKV_OK);
    qkv_sampler_params gp = qkv_sampler_default_params();
    gp.seed = 99;  // sampled, not greedy
    ASSERT_EQ(qkv_sampler_new(h.model, &gp, &h.sampler), QKV_OK);
    const std::vector<int32_t> prompt = tokenize(h.model, "Once upon a time");
    Collected got;
    got.stop_after = 7;
    qkv_generate_result r;
    ASSERT_EQ(qkv_generate(h.session, h.sampler, prompt.data(), prompt.size(), 50, collect, &got, &r), QKV_OK);
    EXPECT_EQ(r.stop, QKV_STOP_CALLBACK);
    EXPECT_EQ(got.ids.size(), 7u);
    if (first.empty()) first = got.ids;
    EXPECT_EQ(got.ids, first);
  }
}

TEST(CApi, ProfilerStartStopRead) {
  Handles h;
  open_greedy(h, model_path("stories260K.gguf"), nullptr);
  ASSERT_EQ(qkv_profile_start(h.session), QKV_OK);
  const std::vector<int32_t> prompt = tokenize(h.model, "Once upon a time");
  ASSERT_EQ(qkv_generate(h.session, h.sampler, prompt.data(), prompt.size(), 5, nullptr, nullptr, nullptr), QKV_OK);
  ASSERT_EQ(qkv_profile_stop(h.session), QKV_OK);
  size_t n = 0;
  EXPECT_EQ(qkv_profile_read(h.session, nullptr, 0, &n), QKV_ERR_BUFFER_TOO_SMALL);
  std::vector<qkv_profile_op> ops(n);
  ASSERT_EQ(qkv_profile_read(h.session, ops.data(), ops.size(), &n), QKV_OK);
  bool found = false;
  for (const qkv_profile_op& o : ops) {
    if (std::string(o.phase) == "generation" && std::string(o.op) == "matmul") {
      EXPECT_EQ(o.calls, 4 * (5 * 4 + 1));  // 4 tokens fed back, 5 layers of 4 products (Q/K/V and gate/up fused)
      found = true;
    }
  }
  EXPECT_TRUE(found);
  size_t len = 0;
  EXPECT_EQ(qkv_profile_text(h.session, nullptr, 0, &len), QKV_ERR_BUFFER_TOO_SMALL);
  std::string text(len, '\0');
  ASSERT_EQ(qkv_profile_text(h.session, &text[0], text.size(), &len), QKV_OK);
  EXPECT_NE(text.find("== generation"), std::string::npos);
  EXPECT_EQ(qkv_profile_trace_json(h.session, nullptr, 0, &len), QKV_ERR_BUFFER_TOO_SMALL);
  EXPECT_GT(len, 100u);
}

// The library's file services through C: the same bytes and figures as the C++ API.
TEST(CApi, QuantizeAndPerplexity) {
  const std::string out_c = "/tmp/qkv-capi-q8-" + std::to_string(::getpid()) + ".gguf";
  const std::string out_cpp = out_c + ".cpp.gguf";
  char err[256] = "untouched";
  ASSERT_EQ(qkv_quantize_model(model_path("tinyllama-v0-f32.gguf").c_str(), out_c.c_str(), "Q8_0", nullptr, err, sizeof err),
            QKV_OK) << err;
  EXPECT_STREQ(err, "");
  qkv::quantize_model(model_path("tinyllama-v0-f32.gguf"), out_cpp, qkv::QuantizeParams{"q8_0", ""});
  auto slurp = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  const std::string a = slurp(out_c), b = slurp(out_cpp);
  ASSERT_GT(a.size(), 1000u);
  EXPECT_TRUE(a == b);
  EXPECT_EQ(qkv_quantize_model(model_path("tinyllama-v0-f32.gguf").c_str(), out_c.c_str(), "q3_z", nullptr, err, 20),
            QKV_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(std::strlen(err), 19u);  // cut to the buffer, with its NUL
  EXPECT_EQ(qkv_quantize_model(nullptr, out_c.c_str(), "q8_0", nullptr, nullptr, 0), QKV_ERR_INVALID_ARGUMENT);

  qkv_model* m = nullptr;
  ASSERT_EQ(qkv_model_load(out_c.c_str(), nullptr, &m), QKV_OK);
  std::ifstream tf(reference_path("perplexity-text.txt"), std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(tf)), {});
  double ppl = 0, e = 0;
  ASSERT_EQ(qkv_perplexity(m, text.data(), text.size(), 128, 2, &ppl, &e, err, sizeof err), QKV_OK) << err;
  const qkv::PerplexityResult want = qkv::perplexity(*qkv::Model::load(out_c), text, 128, 128, 2);
  EXPECT_EQ(ppl, want.ppl);
  EXPECT_EQ(e, want.error);
  EXPECT_GT(ppl, 30.0);
  EXPECT_LT(ppl, 50.0);
  EXPECT_EQ(qkv_perplexity(m, "Once", 4, 128, 2, &ppl, nullptr, err, sizeof err), QKV_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err).find("fewer than one chunk"), std::string::npos) << err;
  qkv_model_free(m);
  std::remove(out_c.c_str());
  std::remove(out_cpp.c_str());
}

}  // namespace
