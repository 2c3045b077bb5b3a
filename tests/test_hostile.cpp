// Hostile input, round 2: every way in is refused cleanly (one line, a
// non-zero exit or an error status), nothing hangs, nothing is overwritten.
// The CLI runs under `timeout`, so a hang fails the test instead of the suite.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "engine/api/qkv.h"
#include "engine/api/qkv.hpp"
#include "engine/format/gguf.h"
#include "gguf_writer.h"
#include "test_util.h"

namespace qkv {
namespace {

using test::model_path;

struct Result {
  int code = -1;  // 124: timed out
  std::string out, err;
};

std::string tmp_path(const std::string& name) { return "/tmp/qkv-hostile-" + std::to_string(::getpid()) + "-" + name; }

// The CLI under a timeout; `shell` goes before it (ulimit, redirections go in args).
Result cli(const std::string& args, const std::string& shell = "", int timeout_s = 20) {
  const std::string out_file = tmp_path("out"), err_file = tmp_path("err");
  const std::string cmd = "(" + shell + (shell.empty() ? "" : "; ") + "QKV_MODELS_DIR='" + test::models_dir() +
                          "' exec timeout " + std::to_string(timeout_s) + " '" + QKV_CLI_PATH + "' " + args + ") >" + out_file + " 2>" + err_file +
                          " </dev/null";
  Result r;
  const int status = std::system(("bash -c \"" + cmd + "\"").c_str());
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = test::read_file(out_file);
  r.err = test::read_file(err_file);
  std::remove(out_file.c_str());
  std::remove(err_file.c_str());
  return r;
}

// One error line naming what went wrong, and no crash.
void expect_refused(const Result& r, int code, const std::string& fragment, const std::string& what) {
  EXPECT_EQ(r.code, code) << what << ": " << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << what << ": " << r.err;
  EXPECT_EQ(r.err.find("terminate"), std::string::npos) << what << ": " << r.err;
  EXPECT_EQ(r.err.find("Sanitizer"), std::string::npos) << what << ": " << r.err;
}

// A tiny llama GGUF (dim 8, one layer) whose vocabulary is `pieces` with
// `kinds`; weights from a fixed stream, norms of 1.
std::string tiny_model(const std::vector<std::string>& pieces, const std::vector<int32_t>& kinds, int bos = 0) {
  const int64_t dim = 8, hidden = 16, vocab = int64_t(pieces.size());
  test::GgufWriter w;
  w.kv_string("general.architecture", "llama");
  w.kv("llama.context_length", GgufType::U32, uint32_t(64));
  w.kv("llama.embedding_length", GgufType::U32, uint32_t(dim));
  w.kv("llama.feed_forward_length", GgufType::U32, uint32_t(hidden));
  w.kv("llama.block_count", GgufType::U32, uint32_t(1));
  w.kv("llama.attention.head_count", GgufType::U32, uint32_t(2));
  w.kv_string("tokenizer.ggml.model", "llama");
  w.kv_string_array("tokenizer.ggml.tokens", pieces);
  w.kv_array("tokenizer.ggml.scores", GgufType::F32, std::vector<float>(pieces.size(), 0.0f));
  w.kv_array("tokenizer.ggml.token_type", GgufType::I32, kinds);
  for (const char* id : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"})
    w.kv(id, GgufType::U32, uint32_t(bos));
  static std::vector<std::vector<float>> keep;  // the writer copies at bytes(); keep the data alive until then
  keep.clear();
  auto t = [&](const std::string& name, std::vector<int64_t> ne, bool norm) {
    size_t n = 1;
    for (int64_t d : ne) n *= size_t(d);
    keep.push_back(norm ? std::vector<float>(n, 1.0f) : test::randn(n, uint32_t(keep.size() + 1), 0.3f));
    w.tensor(name, 0, ne, keep.back().data(), n * 4);
  };
  t("token_embd.weight", {dim, vocab}, false);
  t("blk.0.attn_norm.weight", {dim}, true);
  t("blk.0.attn_q.weight", {dim, dim}, false);
  t("blk.0.attn_k.weight", {dim, dim}, false);
  t("blk.0.attn_v.weight", {dim, dim}, false);
  t("blk.0.attn_output.weight", {dim, dim}, false);
  t("blk.0.ffn_norm.weight", {dim}, true);
  t("blk.0.ffn_gate.weight", {dim, hidden}, false);
  t("blk.0.ffn_up.weight", {dim, hidden}, false);
  t("blk.0.ffn_down.weight", {hidden, dim}, false);
  t("output_norm.weight", {dim}, true);
  return w.bytes();
}

// stories260K.gguf with every value of tensor `name` (F32) replaced by v.
std::string with_tensor_values(const std::string& name, float v) {
  const GgufFile src(model_path("stories260K.gguf"));
  test::GgufWriter w;
  w.copy_metadata(src);
  std::vector<float> values;
  for (const GgufTensorInfo& ti : src.tensors()) {
    const Tensor t = src.tensor(ti);
    const std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
    if (ti.name == name) {
      values.assign(size_t(t.n_elements()), v);
      w.tensor(ti.name, ti.ggml_type, ne, values.data(), values.size() * 4);
    } else {
      w.tensor(ti.name, ti.ggml_type, ne, t.data, t.n_bytes());
    }
  }
  return w.bytes();
}

// ---------------------------------------------------------------- crashes and hangs

// Item 1: a vocabulary of 3 (or 1) tokens: bench runs, no SIGFPE.
TEST(Hostile, BenchOnTinyVocabularies) {
  const test::TempFile three(tiny_model({"<unk>", "<s>", "a"}, {2, 3, 1}, 1), ".gguf");
  Result r = cli("bench -m '" + three.path() + "' -p 4 -n 4 -r 1 -t 1");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("tg4"), std::string::npos) << r.out;
  const test::TempFile one(tiny_model({"a"}, {1}), ".gguf");
  r = cli("bench -m '" + one.path() + "' -p 4 -n 4 -r 1 -t 1");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("pp4"), std::string::npos) << r.out;
}

// Item 2: a thread that cannot be created is an error status, not std::terminate.
TEST(Hostile, ThreadsThatCannotStartAreAnError) {
#ifdef QKV_UNDER_ASAN
  GTEST_SKIP() << "an address-space cap and ASan's shadow memory do not mix";
#else
  const pid_t pid = ::fork();
  if (pid == 0) {
    qkv_model* m = nullptr;
    if (qkv_model_load(model_path("stories260K.gguf").c_str(), nullptr, &m) != QKV_OK) ::_exit(10);
    const rlimit cap{size_t(1) << 30, size_t(1) << 30};  // 1 GiB: 200 thread stacks of 8 MiB do not fit
    ::setrlimit(RLIMIT_AS, &cap);
    qkv_session_params sp = qkv_session_default_params();
    sp.n_threads = 200;
    qkv_session* s = nullptr;
    const qkv_status st = qkv_session_new(m, &sp, &s);
    const bool named = s && std::strstr(qkv_session_last_error(s), "cannot start thread") != nullptr;
    ::_exit(st == QKV_ERR_OUT_OF_MEMORY && named ? 0 : 11);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "the child died of signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
#endif
}

// Items 3, 4, 9, 11: non-regular files, endless and unwritable streams.
TEST(Hostile, FifosDevicesAndDirectories) {
  const std::string fifo = tmp_path("fifo");
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string s260 = model_path("stories260K.gguf");
  expect_refused(cli("generate -m '" + fifo + "' -n 1"), 1, "FIFO", "generate -m FIFO");
  expect_refused(cli("generate -m '" + model_path("stories260K.bin") + "' -z '" + fifo + "' -n 1"), 1, "FIFO",
                 "generate -z FIFO");
  expect_refused(cli("bench -m '" + fifo + "' -p 1 -n 1 -r 1"), 1, "FIFO", "bench -m FIFO");
  expect_refused(cli("quantize -m '" + fifo + "' --type q8_0 -o " + tmp_path("q.gguf")), 1, "FIFO", "quantize -m FIFO");
  expect_refused(cli("generate -m /dev/zero -n 1"), 1, "character device", "generate -m /dev/zero");
  ::unlink(fifo.c_str());

  expect_refused(cli("generate -m '" + s260 + "' -f /dev/zero -n 1"), 1, "longer than", "generate -f /dev/zero");
  expect_refused(cli("generate -m '" + s260 + "' -f /tmp -n 1"), 1, "directory", "generate -f DIR");
  expect_refused(cli("perplexity -m '" + s260 + "' -f /tmp"), 1, "directory", "perplexity -f DIR");

  expect_refused(cli("generate -m '" + s260 + "' -p hi -n 4 --temp 0 >/dev/full"), 1, "stdout", "generate >/dev/full");
  expect_refused(cli("bench -m '" + s260 + "' -p 4 -n 4 -r 1 -t 1 >/dev/full"), 1, "stdout", "bench >/dev/full");
  expect_refused(cli("chat -m '" + model_path("arch/qwen3-like.gguf") + "' --temp 0 -n 4 >/dev/full <<< hi"), 1,
                 "writing to stdout failed", "chat >/dev/full");
}

// Item 5: no logits before an evaluation: an error, not a read before the buffer.
TEST(Hostile, LogitsBeforeAnyEvaluation) {
  auto model = Model::load(model_path("stories260K.gguf"));
  Session s(model, SessionOptions{});
  Sampler sampler(model->info().vocab_size, test::greedy_params());
  EXPECT_FALSE(s.has_logits());
  EXPECT_THROW(s.logits(), Error);
  EXPECT_THROW(s.sample(sampler), Error);
  const int one = 5;
  s.eval(&one, 1);
  EXPECT_TRUE(s.has_logits());
  EXPECT_NO_THROW(s.sample(sampler));
  s.reset();
  EXPECT_THROW(s.logits(), Error);

  qkv_model* m = nullptr;
  ASSERT_EQ(qkv_model_load(model_path("stories260K.gguf").c_str(), nullptr, &m), QKV_OK);
  qkv_session* cs = nullptr;
  ASSERT_EQ(qkv_session_new(m, nullptr, &cs), QKV_OK);
  EXPECT_EQ(qkv_logits(cs), nullptr);
  qkv_session_free(cs);
  qkv_model_free(m);
}

// ---------------------------------------------------------------- silently wrong or lost

// Item 6: an output that exists and is not a regular file is never replaced.
TEST(Hostile, OutputsThatAreNotRegularFiles) {
  const std::string in = model_path("stories260K.gguf");
  expect_refused(cli("quantize -m '" + in + "' --type q8_0 -o /dev/null"), 1, "character device", "quantize -o /dev/null");
  struct stat st;
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode)) << "/dev/null was replaced";
  expect_refused(cli("quantize -m '" + in + "' --type q8_0 -o /tmp"), 1, "directory", "quantize -o DIR");
  expect_refused(cli("synth --dim 16 --hidden 24 --layers 1 --heads 2 --vocab 259 -o /tmp"), 1, "directory",
                 "synth -o DIR");
  const std::string target = tmp_path("target"), link = tmp_path("link.gguf");
  std::ofstream(target) << "keep me";
  ::unlink(link.c_str());
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  expect_refused(cli("quantize -m '" + in + "' --type q8_0 -o '" + link + "'"), 1, "symbolic link", "quantize -o LINK");
  EXPECT_EQ(test::read_file(target), "keep me");
  // A symlink planted at OUTPUT.part is not written through either.
  const std::string out = tmp_path("out.gguf");
  ::unlink((out + ".part").c_str());
  ASSERT_EQ(::symlink(target.c_str(), (out + ".part").c_str()), 0);
  expect_refused(cli("quantize -m '" + in + "' --type q8_0 -o '" + out + "'"), 1, ".part", "quantize through a .part link");
  EXPECT_EQ(test::read_file(target), "keep me");
  for (const std::string& p : {target, link, out + ".part", out}) ::unlink(p.c_str());
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += n;
  }
  return true;
}

// Item 7: byte tokens that split a character still make valid JSON.
TEST(Hostile, AttentionJsonIsValidUtf8) {
  const std::string json = tmp_path("att.json");
  const Result r = cli("attention -m '" + model_path("stories260K.gguf") + "' -p 'a \xF0\x9F\x99\x82 caf\xC3\xA9' --json '" +
                       json + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string text = test::read_file(json);
  ASSERT_GT(text.size(), 100u);
  EXPECT_TRUE(valid_utf8(text));
  EXPECT_NE(text.find("\\ufffd"), std::string::npos) << "the emoji's byte tokens are pieces of one character";
  std::remove(json.c_str());
}

// Item 8: NaN and infinite weights end in an error, never in tokens.
TEST(Hostile, NonFiniteWeightsAreAnError) {
  for (const auto& [tensor, value] : {std::pair{"output_norm.weight", NAN}, std::pair{"token_embd.weight", INFINITY},
                                      std::pair{"blk.2.ffn_down.weight", NAN}}) {
    const test::TempFile f(with_tensor_values(tensor, value), ".gguf");
    const Result r = cli("generate -m '" + f.path() + "' -p 'Once upon' -n 8");
    expect_refused(r, 1, "not finite", std::string(tensor));
  }
  // A quantized file with a NaN block scale (f16 0x7e00) in its first matrix.
  const std::string q = tmp_path("q4.gguf");
  qkv::quantize_model(model_path("stories260K.gguf"), q, QuantizeParams{"q4_0", ""});
  std::string bytes = test::read_file(q);
  {
    const GgufFile g(q);
    const Tensor t = g.tensor(*g.find_tensor("blk.0.attn_q.weight"));
    ASSERT_EQ(t.type, Type::Q4_0);
    const std::string first_block(static_cast<const char*>(t.data), 18);
    const size_t at = bytes.find(first_block);
    ASSERT_NE(at, std::string::npos);
    ASSERT_EQ(bytes.find(first_block, at + 1), std::string::npos);
    bytes[at] = '\x00';
    bytes[at + 1] = '\x7e';
  }
  std::remove(q.c_str());
  const test::TempFile nan_scale(bytes, ".gguf");
  expect_refused(cli("generate -m '" + nan_scale.path() + "' -p 'Once upon' -n 8"), 1, "not finite", "Q4_0 NaN scale");

  // The C sampler says so too.
  qkv_model* m = nullptr;
  ASSERT_EQ(qkv_model_load(model_path("stories260K.gguf").c_str(), nullptr, &m), QKV_OK);
  qkv_sampler* s = nullptr;
  ASSERT_EQ(qkv_sampler_new(m, nullptr, &s), QKV_OK);
  std::vector<float> logits(size_t(qkv_model_n_vocab(m)), NAN);
  int32_t tok = -1;
  EXPECT_EQ(qkv_sampler_sample(s, logits.data(), &tok), QKV_ERR_BAD_FILE);
  EXPECT_NE(std::string(qkv_sampler_last_error(s)).find("not finite"), std::string::npos);
  std::fill(logits.begin(), logits.end(), 0.0f);
  logits[7] = INFINITY;
  EXPECT_EQ(qkv_sampler_sample(s, logits.data(), &tok), QKV_ERR_BAD_FILE);
  logits[7] = 1.0f;
  EXPECT_EQ(qkv_sampler_sample(s, logits.data(), &tok), QKV_OK);
  qkv_sampler_free(s);
  qkv_model_free(m);
}

// Item 10: NUL bytes, empty names, vocabularies that cannot write.
TEST(Hostile, NulBytesEmptyNamesSilentVocabularies) {
  const std::string prompt = tmp_path("prompt.txt");
  std::ofstream(prompt, std::ios::binary).write("Once\0upon a time", 16);
  Result r = cli("generate -m '" + model_path("stories260K.gguf") + "' -f '" + prompt + "' -n 2 --temp 0");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(std::string("\0upon a time", 12)), std::string::npos) << "the echo stopped at the NUL";
  std::remove(prompt.c_str());
  expect_refused(cli("generate -m '' -n 1"), 2, "empty file name", "-m ''");
  const test::TempFile silent(tiny_model({"<unk>", "<s>", "</s>", "<x>"}, {3, 3, 3, 3}, 1), ".gguf");
  expect_refused(cli("generate -m '" + silent.path() + "' -n 4"), 1, "could not write any text", "all-control vocabulary");
}

// ---------------------------------------------------------------- memory

// Item 12: appended bytes are not kept resident.
TEST(Hostile, AppendedBytesStayOutOfMemory) {
  std::string bytes = test::read_file(model_path("stories260K.gguf"));
  bytes.append(size_t(256) << 20, '\x5a');
  const test::TempFile f(bytes, ".gguf");
  bytes.clear();
  bytes.shrink_to_fit();
  auto rss_mib = [] {
    std::ifstream s("/proc/self/status");
    std::string line;
    while (std::getline(s, line))
      if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6) / 1024;
    return 0L;
  };
  const long before = rss_mib();
  auto model = Model::load(f.path());
  const long grew = rss_mib() - before;
  EXPECT_LT(grew, 100) << "loading a 1 MiB model with 256 MiB appended grew the RSS by " << grew << " MiB";
}

// Items 13, 14: absurd sizes are refused before allocating, naming the size.
TEST(Hostile, AbsurdSizesAreRefusedUpFront) {
  const std::string s260 = model_path("stories260K.gguf");
  const std::string big = tmp_path("big.gguf");
  Result r = cli("synth --dim 1048576 --hidden 1048576 --layers 1000 --heads 1 --vocab 32000 -o '" + big + "'");
  expect_refused(r, 1, "bytes free", "synth, absurd dims");
  EXPECT_NE(::access((big + ".part").c_str(), F_OK), 0) << "a .part file was left";
  EXPECT_NE(::access(big.c_str(), F_OK), 0);
#ifndef QKV_UNDER_ASAN
  const std::string cap = "ulimit -v 3000000";  // 3 GB of address space
  r = cli("generate -m '" + s260 + "' -n 1073741824 -c 16 --temp 0", cap);
  EXPECT_EQ(r.code, 0) << "-n 1073741824 -c 16: " << r.err;
  EXPECT_NE(r.err.find("context of 16 tokens is full"), std::string::npos) << r.err;
  r = cli("generate -m '" + s260 + "' -c 8000000 --kv-f16 -n 1", "ulimit -v 2000000");
  expect_refused(r, 1, "cannot allocate the KV cache", "-c 8000000 under a 2 GB cap");
#endif
  std::string prompt;
  for (int i = 0; i < 120; ++i) prompt += "Once upon a time there was a little girl. ";
  r = cli("attention -m '" + s260 + "' -p '" + prompt + "' -o " + tmp_path("big.html"));
  expect_refused(r, 1, "limit", "a huge attention report");
  EXPECT_NE(r.err.find("--layers"), std::string::npos) << r.err;

  // The sampler's penalty window and the C API's text length.
  SamplerParams sp;
  sp.repeat_last_n = INT32_MAX;
  EXPECT_THROW(Sampler(512, sp), Error);
  qkv_model* m = nullptr;
  ASSERT_EQ(qkv_model_load(s260.c_str(), nullptr, &m), QKV_OK);
  qkv_sampler_params cp = qkv_sampler_default_params();
  cp.repeat_last_n = INT32_MAX;
  qkv_sampler* s = nullptr;
  EXPECT_EQ(qkv_sampler_new(m, &cp, &s), QKV_ERR_INVALID_ARGUMENT);
  qkv_sampler_free(s);
  int32_t ids[4];
  size_t n = 0;
  EXPECT_EQ(qkv_tokenize(m, "abc", SIZE_MAX, 1, ids, 4, &n), QKV_ERR_INVALID_ARGUMENT);
  qkv_model_free(m);
}

// Every subcommand at the edges of its ranges, under an address-space cap: a
// clean result or one error line, never a crash, a hang or an uncaught
// std::bad_alloc.
TEST(Hostile, EverySubcommandAtAbsurdSizes) {
  const std::string s260 = model_path("stories260K.gguf"), out = tmp_path("absurd.gguf");
  const std::string text = test::reference_path("perplexity-text.txt");
  const char* cases[] = {
      "generate -m S -c 16777216 -n 1",
      "generate -m Q -c 16777216 --kv-f16 -b 65536 -n 1",
      "generate -m S -n -1 -c 1 --temp 0",
      "generate -m S -t 512 -tb 512 -n 2",
      "generate -m S --repeat-last-n 1048576 -n 2",
      "generate -m S --top-k 1073741824 -n 2",
      "bench -m S -p 1 -n 1 -r 1000 -t 1 -o json",
      "bench -m S -p 1 -n 1 -r 1 -t 512",
      "perplexity -m S -f T -c 65536 -b 65536",
      "perplexity -m S -f T -c 4 -b 1",
      "attention -m S -p x -n 1073741824 -o O",
      "synth --dim 1048576 --hidden 1048576 --layers 1048576 --heads 1 --vocab 1048576 --ctx 1048576 -o O",
      "synth --dim 2 --hidden 1 --layers 1 --heads 1 --vocab 259 -o O",
      "quantize -m S --type q4_k_m -o O",
  };
  for (std::string c : cases) {
    for (auto [from, to] : {std::pair<std::string, std::string>{"S", "'" + s260 + "'"}, {"T", "'" + text + "'"},
                            {"O", "'" + out + "'"}, {"Q", "'" + model_path("tinyllama-v0-q8_0.gguf") + "'"}})
      for (size_t at = c.find(" " + from); at != std::string::npos; at = c.find(" " + from, at + 1))
        if (at + 2 == c.size() || c[at + 2] == ' ') c.replace(at + 1, 1, to);
#ifdef QKV_UNDER_ASAN
    const Result r = cli(c, "", 60);
#else
    const Result r = cli(c, "ulimit -v 4000000", 60);  // 4 GB of address space
#endif
    EXPECT_NE(r.code, 124) << c << ": hung";
    EXPECT_TRUE(r.code == 0 || r.code == 1 || r.code == 2) << c << ": exit " << r.code << " " << r.err;
    for (const char* bad : {"terminate", "bad_alloc", "Sanitizer", "Segmentation"})
      EXPECT_EQ(r.err.find(bad), std::string::npos) << c << ": " << r.err;
    if (r.code != 0) {
      EXPECT_FALSE(r.err.empty()) << c << ": no message";
    }
    ::unlink(out.c_str());
    ::unlink((out + ".part").c_str());
  }
}

// --chunks N scores the first N chunks, with the figures of a full run; the
// chunk count and an ETA come up front, as llama-perplexity prints them.
TEST(Hostile, PerplexityChunksAndEta) {
  auto model = Model::load(model_path("tinyllama-v0-q8_0.gguf"));
  const std::string text = test::read_file(test::reference_path("perplexity-text.txt"));
  const PerplexityResult all = perplexity(*model, text, 128, 128, 2);
  const PerplexityResult three = perplexity(*model, text, 128, 128, 2, nullptr, 3);
  ASSERT_GT(all.n_chunks, 3);
  ASSERT_EQ(three.n_chunks, 3);
  ASSERT_EQ(three.running.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(three.running[size_t(i)], all.running[size_t(i)]);
  const Result r = cli("perplexity -m '" + model_path("tinyllama-v0-q8_0.gguf") + "' -f '" +
                       test::reference_path("perplexity-text.txt") + "' --chunks=2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("calculating perplexity over 2 chunks, n_ctx=128"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("seconds per pass - ETA"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("[2]"), std::string::npos);
  EXPECT_EQ(r.out.find("[3]"), std::string::npos);
}

// --kl-divergence-base FILE saves, adding --kl-divergence compares, as
// llama-perplexity does; the statistics come in its layout.
TEST(Hostile, PerplexityKlDivergenceFromTheCommandLine) {
  const std::string base = "/tmp/qkv-kl-" + std::to_string(::getpid()) + ".kld";
  ::unlink(base.c_str());
  const std::string text = test::reference_path("perplexity-text.txt");
  const Result saved = cli("perplexity -m '" + model_path("tinyllama-v0-f32.gguf") + "' -f '" + text +
                           "' -c 64 --chunks 2 --kl-divergence-base " + base);
  ASSERT_EQ(saved.code, 0) << saved.err;
  EXPECT_NE(saved.err.find("saved 2 chunks of 64 tokens"), std::string::npos) << saved.err;
  const Result r = cli("perplexity -m '" + model_path("tinyllama-v0-q4_0.gguf") + "' --kl-divergence-base " + base +
                       " --kl-divergence");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* line : {"Mean PPL(base)", "Mean    KLD:", "99.0%   KLD:", "RMS \xce\x94p", "Same top p:"})
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
  expect_refused(cli("perplexity -m '" + model_path("tinyllama-v0-q4_0.gguf") + "' --kl-divergence"), 2,
                 "--kl-divergence-base", "--kl-divergence without a base");
  expect_refused(cli("perplexity -m '" + model_path("stories260K.gguf") + "' --kl-divergence-base " + base +
                     " --kl-divergence"), 1, "vocabulary", "a base of another vocabulary");
  ::unlink(base.c_str());
}

// Perplexity holds one batch of logits at a time, with the same figures.
TEST(Hostile, PerplexityInBatchesGivesTheSameFigures) {
  auto model = Model::load(model_path("tinyllama-v0-q8_0.gguf"));
  const std::string text = test::read_file(test::reference_path("perplexity-text.txt"));
  const PerplexityResult whole = perplexity(*model, text.substr(0, 4000), 128, 128, 2);
  const PerplexityResult pieces = perplexity(*model, text.substr(0, 4000), 128, 24, 2);
  ASSERT_GT(whole.n_chunks, 1);
  EXPECT_EQ(whole.ppl, pieces.ppl);
  EXPECT_EQ(whole.running, pieces.running);
}

// ---------------------------------------------------------------- misleading

// Item 15.
TEST(Hostile, MessagesSayWhatIsWrong) {
  const std::string s260 = model_path("stories260K.gguf");
  // A depth over 65536 is taken (filling it takes longer than this test waits).
  Result r = cli("bench -m '" + s260 + "' --depth 70000 -p 1 -n 0 -r 1 -t 1", "", 2);
  EXPECT_EQ(r.code, 124) << r.err;
  EXPECT_EQ(r.err.find("batch size"), std::string::npos) << r.err;
  expect_refused(cli("profile --bogus"), 2, "qkv profile --help", "profile --bogus");
  std::string bytes = test::read_file(s260);
  const std::string key = "llama";  // general.architecture's value: "llama" -> "ll\0ma"
  const size_t at = bytes.find(std::string("general.architecture") + std::string("\x08\x00\x00\x00", 4));
  ASSERT_NE(at, std::string::npos);
  const size_t value = at + 20 + 4 + 8;  // key, type, length
  ASSERT_EQ(bytes.substr(value, 5), key);
  bytes[value + 2] = '\0';
  const test::TempFile f(bytes, ".gguf");
  expect_refused(cli("generate -m '" + f.path() + "' -n 1"), 1, "'ll\\0ma' is not supported", "architecture with a NUL");
}

// Item 16: two generate calls continue one another exactly.
TEST(Hostile, GenerateContinuesWithoutLosingAToken) {
  qkv_model* m = nullptr;
  ASSERT_EQ(qkv_model_load(model_path("stories260K.gguf").c_str(), nullptr, &m), QKV_OK);
  qkv_sampler_params gp = qkv_sampler_default_params();
  gp.temperature = 0.0f;
  auto tokens = [&](const char* text, int bos) {
    int32_t ids[64];
    size_t n = 0;
    EXPECT_EQ(qkv_tokenize(m, text, std::strlen(text), bos, ids, 64, &n), QKV_OK);
    return std::vector<int32_t>(ids, ids + n);
  };
  struct Collect {
    std::vector<int32_t> ids;
    static int cb(void* self, int32_t t, const char*, size_t) {
      static_cast<Collect*>(self)->ids.push_back(t);
      return 1;
    }
  };
  const std::vector<int32_t> p1 = tokens("Once upon a time", 1), p2 = tokens(" The dog", 0);
  // Two calls on one session.
  qkv_session* a = nullptr;
  qkv_sampler* sa = nullptr;
  ASSERT_EQ(qkv_session_new(m, nullptr, &a), QKV_OK);
  ASSERT_EQ(qkv_sampler_new(m, &gp, &sa), QKV_OK);
  Collect g1, g2, g3;
  ASSERT_EQ(qkv_generate(a, sa, p1.data(), p1.size(), 6, Collect::cb, &g1, nullptr), QKV_OK);
  ASSERT_EQ(qkv_generate(a, sa, p2.data(), p2.size(), 6, Collect::cb, &g2, nullptr), QKV_OK);
  ASSERT_EQ(g1.ids.size(), 6u);
  ASSERT_EQ(g2.ids.size(), 6u);
  // The whole history at once on a fresh session.
  std::vector<int32_t> history = p1;
  history.insert(history.end(), g1.ids.begin(), g1.ids.end());
  history.insert(history.end(), p2.begin(), p2.end());
  qkv_session* b = nullptr;
  qkv_sampler* sb = nullptr;
  ASSERT_EQ(qkv_session_new(m, nullptr, &b), QKV_OK);
  ASSERT_EQ(qkv_sampler_new(m, &gp, &sb), QKV_OK);
  ASSERT_EQ(qkv_generate(b, sb, history.data(), history.size(), 6, Collect::cb, &g3, nullptr), QKV_OK);
  EXPECT_EQ(g2.ids, g3.ids);
  EXPECT_EQ(qkv_session_n_past(a), qkv_session_n_past(b));
  // An empty prompt continues from the pending token.
  Collect g4;
  EXPECT_EQ(qkv_generate(a, sa, nullptr, 0, 3, Collect::cb, &g4, nullptr), QKV_OK);
  EXPECT_EQ(g4.ids.size(), 3u);
  qkv_session_reset(a);
  EXPECT_EQ(qkv_generate(a, sa, nullptr, 0, 3, Collect::cb, &g4, nullptr), QKV_ERR_INVALID_ARGUMENT);
  for (qkv_session* s : {a, b}) qkv_session_free(s);
  for (qkv_sampler* s : {sa, sb}) qkv_sampler_free(s);
  qkv_model_free(m);
}

}  // namespace
}  // namespace qkv
