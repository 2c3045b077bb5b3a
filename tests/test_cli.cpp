// The qkv executable, run as a user would: exact reference text on stdout
// with --temp 0, one clear error line and a non-zero exit on bad input.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <cstdio>
#include <fstream>
#include <algorithm>
#include <sstream>
#include <string>

#include "engine/api/qkv.hpp"
#include "engine/format/gguf.h"
#include "test_util.h"

namespace qkv {
namespace {

using test::model_path;

using Result = test::CliResult;
Result run(const std::string& args) { return test::run_cli(args); }

TEST(Cli, DefaultModelGreedyMatchesLlama2c) {
  const test::ReferenceCase c = test::load_case("stories260K-once.txt");
  const Result r = run("generate -p 'Once upon a time' --temp 0 -n 60");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string text = c.kv.at("text");
  const std::string want = test::unescape(text);
  ASSERT_GT(r.out.size(), 100u);
  // 60 tokens of the 196 llama2.c printed: our text is a prefix of its text.
  EXPECT_EQ(want.substr(0, r.out.size() - 1), r.out.substr(0, r.out.size() - 1));
  EXPECT_NE(r.err.find("generation:"), std::string::npos);
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos);
}

// llama-cli's printed text runs one token past its generated_ids list.
TEST(Cli, GgufGreedyMatchesLlamaCppTextExactly) {
  for (const char* name : {"stories260K-gguf-once.txt", "tinyllama-v0-f32-once.txt"}) {
    const test::ReferenceCase c = test::load_case(name);
    const Result r = run("generate -m '" + model_path(c.model) + "' -p '" + c.prompt + "' --temp 0 -n " +
                         std::to_string(c.generated_ids.size() + 1) + " -t 2");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, test::unescape(c.kv.at("text")) + "\n") << name;
  }
}

// With llama.cpp's cache type (f16), its Q4_0 story comes out word for word.
TEST(Cli, KvF16FollowsLlamaCppOnItsQuantizedFile) {
  const test::ReferenceCase c = test::load_case("tinyllama-v0-q4_0-once.txt");
  const Result r = run("generate -m '" + model_path(c.model) + "' -p '" + c.prompt + "' --temp 0 -n 40 --kv-f16");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string want = test::unescape(c.kv.at("text"));
  ASSERT_GT(r.out.size(), 100u);
  EXPECT_EQ(want.substr(0, r.out.size() - 1), r.out.substr(0, r.out.size() - 1));
}

TEST(Cli, Llama2cModelWithTokenizerFlag) {
  const Result r = run("generate -m '" + model_path("tinyllama-v0.bin") + "' -z '" +
                       model_path("tinyllama-v0-tok32000.bin") + "' -p 'Once upon a time' --temp 0 -n 20");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Once upon a time, there was a little girl named Lily.", 0), 0u) << r.out;
}

TEST(Cli, SeedMakesSamplingRepeatable) {
  const Result a = run("generate --seed 7 -n 40 -t 1");
  const Result b = run("generate --seed 7 -n 40 -t 2");
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
}

TEST(Cli, PromptFromFile) {
  const std::string path = "/tmp/qkv-cli-prompt-" + std::to_string(::getpid()) + ".txt";
  { std::FILE* f = std::fopen(path.c_str(), "w"); std::fputs("Once upon a time", f); std::fclose(f); }
  const Result r = run("generate -f '" + path + "' --temp 0 -n 5");
  std::remove(path.c_str());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Once upon a time, there was a little\n");
}

TEST(Cli, DefinedBehaviourAtTheEdges) {
  // -n 0: the prompt and nothing more.
  Result r = run("generate -p 'Once upon a time' -n 0 --temp 0");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Once upon a time\n");
  // An empty prompt starts from BOS.
  r = run("generate -p '' -n 6 --temp 0");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Once upon a time, there\n");
  // Invalid UTF-8 goes through byte fallback and comes back out as it went in.
  r = run("generate -p \"$(printf 'Bad \\377\\376 bytes')\" -n 3 --temp 0");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Bad \xff\xfe bytes", 0), 0u) << r.out;
  // -n -1: until end of text or the context is full.
  r = run("generate -p 'Once upon a time' -n -1 -c 24 --temp 0");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("context of 24 tokens is full"), std::string::npos) << r.err;
}

TEST(Cli, HelpAndUsage) {
  EXPECT_EQ(run("generate --help").code, 0);
  const Result help = run("--help");
  EXPECT_EQ(help.code, 0);
  // The quantize line lists the types qkv quantize really takes.
  EXPECT_NE(help.out.find("write a GGUF in another type: " + quantize_type_names() + " ("), std::string::npos) << help.out;
  EXPECT_EQ(run("").code, 2);
  EXPECT_EQ(run("frobnicate").code, 2);
}

// --print-ids: the prompt's and the generated ids, as llama.cpp's reference
// has them for an architecture test model (f16 cache, as it ran).
TEST(Cli, PrintIdsMatchesLlamaCppOnABpeModel) {
  const test::ReferenceCase c = test::load_case("arch/qwen3-like-1.txt");
  const Result r = run("generate -m '" + model_path("arch/" + c.model) + "' -p '" + c.prompt + "' --temp 0 --kv-f16 -n " +
                       std::to_string(c.generated_ids.size()) + " --print-ids");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string err = "\n" + r.err;
  auto line = [&](const std::string& key) {
    const size_t at = err.find("\n" + key + ":");
    if (at == std::string::npos) return std::string("(missing)");
    const size_t end = err.find('\n', at + 1);
    return err.substr(at + 1, end - at - 1);
  };
  EXPECT_EQ(line("prompt_ids"), "prompt_ids: " + c.kv.at("prompt_ids"));
  EXPECT_EQ(line("generated_ids"), "generated_ids: " + c.kv.at("generated_ids"));
}

// qkv tokenize as llama-tokenize: --ids on a vocabulary-only file gives
// llama.cpp's ids; without it, one 'id -> 'piece'' line per token.
TEST(Cli, TokenizeLikeLlamaTokenize) {
  const std::string vocab = model_path("vocab/ggml-vocab-llama-bpe.gguf");
  Result r = run("tokenize -m '" + vocab + "' -p 'Hello world' --ids");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "[128000, 9906, 1917]\n");
  r = run("tokenize -m '" + vocab + "' -p 'Hello world' --ids --no-bos");
  EXPECT_EQ(r.out, "[9906, 1917]\n");
  r = run("tokenize -m '" + vocab + "' -p 'Hi<|eot_id|>'");
  EXPECT_EQ(r.out, "128000 -> '<|begin_of_text|>'\n 13347 -> 'Hi'\n128009 -> '<|eot_id|>'\n");
  r = run("tokenize -m '" + vocab + "' -p 'Hi<|eot_id|>' --ids --no-bos --no-parse-special");
  EXPECT_EQ(r.out, "[13347, 27, 91, 68, 354, 851, 91, 29]\n");
  // Escapes are processed unless --no-escape (llama-tokenize's default).
  EXPECT_EQ(run("tokenize -m '" + vocab + "' -p 'a\\nb' --ids --no-bos").out, "[64, 198, 65]\n");
  EXPECT_EQ(run("tokenize -m '" + vocab + "' -p 'a\\nb' --ids --no-bos --no-escape").out, "[64, 1734, 65]\n");
  // The 7th string of the standard vectors, from a file, as llama.cpp's .out has it.
  const std::string gpt2 = model_path("vocab/ggml-vocab-gpt-2.gguf");
  const test::TempFile f("   Hello", ".txt");
  r = run("tokenize -m '" + gpt2 + "' -f '" + f.path() + "' --ids --no-bos --no-parse-special --no-escape");
  EXPECT_EQ(r.out, "[220, 220, 18435]\n");
  // llama2.c: the tokenizer.bin is given with -z.
  r = run("tokenize -m '" + model_path("stories260K.bin") + "' -z '" + model_path("tok512.bin") + "' -p 'Once' --ids");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("[1, ", 0), 0u) << r.out;
  EXPECT_EQ(run("tokenize -m '" + model_path("stories260K.bin") + "' -p x").code, 1);
  EXPECT_EQ(run("tokenize -m '" + vocab + "'").code, 2);
  EXPECT_EQ(run("tokenize -p x").code, 2);
  EXPECT_EQ(run("tokenize -m '" + vocab + "' -p x -f y").code, 2);
  EXPECT_EQ(run("tokenize -m /nonexistent.gguf -p x").code, 1);
}

// Each bad invocation: the exit code, and a fragment of its one-line message.
TEST(Cli, BadInputGetsOneClearErrorLine) {
  struct Case {
    std::string args;
    int code;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {"generate -m /nonexistent.gguf", 1, "cannot open"},
      {"generate -m '" + model_path("stories260K.bin") + "'", 1, "no tokenizer"},
      {"generate -m '" + model_path("bad/stories260K-q8_0-rows-not-block-aligned.gguf") + "'", 1, "straddle"},
      {"generate --bogus", 2, "unknown option"},
      {"generate -n abc", 2, "not an integer"},
      {"generate -n -5", 2, "out of range"},
      {"generate -c 0", 2, "out of range"},
      {"generate -t 0", 2, "out of range"},
      {"generate -t 100000", 2, "out of range"},
      {"generate --temp -1", 2, "out of range"},
      {"generate --top-p 0", 2, "out of range"},
      {"generate --top-p 1.5", 2, "out of range"},
      {"generate --top-k -1", 2, "out of range"},
      {"generate -p", 2, "missing value"},
      {"generate -f /nonexistent/prompt.txt", 1, "cannot read"},
      {"generate -p x -f y", 2, "either -p or -f"},
      {"generate -c 3 -p 'Once upon a time'", 1, "context"},
      {"generate -c 16000000 --kv-f32", 1, "of memory; use a smaller -c"},  // a 48 GB cache
      {"generate -c 99999999", 2, "out of range"},
      {"generate --min-p 2", 2, "out of range"},
      {"generate --repeat-penalty 0", 2, "out of range"},
      {"generate -n 5 -m '" + model_path("tinyllama-v0.bin") + "' -z '" + model_path("tok512.bin") + "'", 1,
       "does not match the model"},
  };
  for (const Case& c : cases) {
    const Result r = run(c.args);
    EXPECT_EQ(r.code, c.code) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.fragment), std::string::npos) << c.args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.args << ": " << r.err;
  }
}

TEST(Cli, ForcedIsaThatDoesNotExistIsAnError) {
  const std::string cmd = "QKV_ISA=neon generate -n 3";
  const Result r = run("generate -n 3");  // sanity: works without
  EXPECT_EQ(r.code, 0);
  Result bad;
  {
    const std::string err_file = "/tmp/qkv-cli-isa-" + std::to_string(::getpid());
    const std::string full = "QKV_MODELS_DIR='" + test::models_dir() + "' QKV_ISA=neon '" + QKV_CLI_PATH +
                             "' generate -n 3 >/dev/null 2>" + err_file;
    const int status = std::system(full.c_str());
    bad.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    bad.err = test::read_file(err_file);
    std::remove(err_file.c_str());
  }
  EXPECT_EQ(bad.code, 1) << cmd;
  EXPECT_NE(bad.err.find("unknown instruction set"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace qkv

namespace qkv {
namespace {

TEST(CliProfile, PrintsTablesAndWritesTraceAndCsv) {
  const std::string trace = "/tmp/qkv-cli-trace-" + std::to_string(::getpid()) + ".json";
  const std::string csv = "/tmp/qkv-cli-trace-" + std::to_string(::getpid()) + ".csv";
  const Result r = run("profile -p 'Once upon a time' -n 8 --no-probe --trace " + trace + " --csv " + csv);
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* s : {"== prompt", "== generation", "matmul", "attention", "per layer", "threads"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  EXPECT_NE(r.err.find("Once upon a time, there was"), std::string::npos);  // the story goes to stderr
  EXPECT_NE(test::read_file(trace).find("\"traceEvents\""), std::string::npos);
  EXPECT_EQ(test::read_file(csv).rfind("phase,op,", 0), 0u);
  std::remove(trace.c_str());
  std::remove(csv.c_str());
  // On generate, the report goes to stderr and the text stays clean on stdout.
  const Result g = run("generate -p 'Once upon a time' -n 5 --temp 0 --profile --no-probe");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(g.out, "Once upon a time, there was a little\n");
  EXPECT_NE(g.err.find("== generation"), std::string::npos);
  EXPECT_EQ(run("generate --trace x.json").code, 2);  // needs --profile
}

}  // namespace
}  // namespace qkv

namespace qkv {
namespace {

// A tiny random model: 2 layers, GQA 4:2, hidden 96, a made-up 300-token vocabulary.
std::string tiny_synth(const std::string& type) {
  const std::string path = "/tmp/qkv-cli-synth-" + std::to_string(::getpid()) + "-" + type + ".gguf";
  const Result r = run("synth --dim 64 --hidden 96 --layers 2 --heads 4 --kv-heads 2 --vocab 300 --ctx 64 --type " +
                       type + " -o " + path);
  EXPECT_EQ(r.code, 0) << r.err;
  return path;
}

TEST(CliSynth, WritesAModelThatLoadsAndGenerates) {
  for (const char* type : {"f32", "f16"}) {
    const std::string path = tiny_synth(type);
    const auto model = Model::load(path);
    EXPECT_EQ(model->info().dim, 64);
    EXPECT_EQ(model->info().n_kv_heads, 2);
    EXPECT_EQ(model->info().vocab_size, 300);
    EXPECT_EQ(model->info().weight_type, std::string(type) == "f32" ? "F32" : "F16");
    const Result g = run("generate -m " + path + " -n 10 --temp 0 -p 'x'");
    EXPECT_EQ(g.code, 0) << g.err;
    std::remove(path.c_str());
  }
}

// Every architecture synth writes loads and generates, in f16 and q8_0; a
// real shape brings its architecture and head size (qwen3-0.6b's heads of
// 128 on a narrower model).
TEST(CliSynth, EveryArchitecture) {
  for (const char* arch : {"llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "gpt2"}) {
    for (const char* type : {"f16", "q8_0"}) {
      const std::string path = "/tmp/qkv-cli-synth-" + std::to_string(::getpid()) + "-" + arch + ".gguf";
      const Result r = run(std::string("synth --arch ") + arch +
                           " --dim 64 --hidden 96 --layers 2 --heads 4 --kv-heads 2 --vocab 300 --ctx 64 --type " + type +
                           " -o " + path);
      ASSERT_EQ(r.code, 0) << arch << ": " << r.err;
      const auto model = Model::load(path);
      EXPECT_EQ(model->info().arch, arch);
      EXPECT_EQ(model->info().n_layers, 2);
      const Result g = run("generate -m " + path + " -n 6 --temp 0 -p 'x' --print-ids");
      EXPECT_EQ(g.code, 0) << arch << ": " << g.err;
      EXPECT_NE(g.err.find("generated_ids: "), std::string::npos) << g.err;
      std::remove(path.c_str());
    }
  }
  const std::string path = "/tmp/qkv-cli-synth-" + std::to_string(::getpid()) + "-shape.gguf";
  const Result r = run("synth --shape qwen3-0.6b --dim 64 --hidden 96 --layers 1 --vocab 300 --ctx 64 --type f16 -o " + path);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto model = Model::load(path);
  EXPECT_EQ(model->info().arch, "qwen3");
  EXPECT_EQ(model->info().head_dim, 128);
  EXPECT_EQ(model->info().n_heads, 16);
  EXPECT_EQ(model->info().n_kv_heads, 8);
  EXPECT_TRUE(model->info().tied_output);
  std::remove(path.c_str());
  EXPECT_EQ(run("synth --arch mamba --dim 64 --hidden 96 --layers 1 --heads 4 -o /tmp/x.gguf").code, 2);
  SynthParams p;
  ASSERT_TRUE(synth_shape("gemma3-270m", p));
  EXPECT_EQ(p.arch, "gemma3");
  EXPECT_EQ(p.head_dim, 256);
  EXPECT_EQ(p.window, 512);
  // Llama 3.2's rope_freqs.weight, with the converter's formula: the
  // architecture test model (head size 16, base 500000) holds these factors.
  ASSERT_TRUE(synth_shape("llama3.2-1b", p));
  EXPECT_TRUE(p.llama3_rope);
  const std::string l32 = "/tmp/qkv-cli-synth-" + std::to_string(::getpid()) + "-l32.gguf";
  ASSERT_EQ(run("synth --shape llama3.2-1b --dim 32 --hidden 64 --layers 1 --heads 2 --kv-heads 1 --head-dim 16 "
                "--vocab 300 --ctx 64 --type f32 -o " + l32).code, 0);
  const GgufFile ours(l32), theirs(model_path("arch/llama32-like.gguf"));
  const Tensor a = ours.tensor(*ours.find_tensor("rope_freqs.weight"));
  const Tensor b = theirs.tensor(*theirs.find_tensor("rope_freqs.weight"));
  ASSERT_EQ(a.n_elements(), 8);
  ASSERT_EQ(b.n_elements(), 8);
  for (int i = 0; i < 8; ++i)
    EXPECT_NEAR(static_cast<const float*>(a.data)[i], static_cast<const float*>(b.data)[i], 1e-5) << i;
  std::remove(l32.c_str());
}

// -z FILE is the vocabulary written: its size when --vocab is not given, and
// a --vocab that differs from it is refused (not replaced by a made-up one).
TEST(CliSynth, UsesTheTokenizerFilesVocabulary) {
  const std::string path = "/tmp/qkv-cli-synth-" + std::to_string(::getpid()) + "-tok512.gguf";
  const std::string tok = model_path("tok512.bin");
  const std::string shape = "synth --dim 64 --hidden 96 --layers 1 --heads 4 --ctx 64 -o " + path + " -z " + tok;
  for (const char* vocab : {"", " --vocab 512"}) {
    const Result r = run(shape + vocab);
    ASSERT_EQ(r.code, 0) << r.err;
    const auto model = Model::load(path);
    EXPECT_EQ(model->info().vocab_size, 512);
    // The same pieces as the file: text tokenizes as with the file itself.
    const auto s260 = Model::load(model_path("stories260K.bin"), LoadOptions{tok});
    const std::string text = "Once upon a time, Lily met a dog.";
    EXPECT_EQ(model->tokenize(text, true), s260->tokenize(text, true));
    std::remove(path.c_str());
  }
  const Result bad = run(shape + " --vocab 1000");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("512 tokens"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("1000"), std::string::npos) << bad.err;
  std::remove(path.c_str());
}

TEST(CliSynth, RealShapeHeaderAndBadFlags) {
  EXPECT_EQ(run("synth --shape stories99M -o /tmp/x.gguf").code, 2);
  EXPECT_EQ(run("synth --shape stories15M").code, 2);  // no -o
  EXPECT_EQ(run("synth --dim 65 --hidden 8 --layers 1 --heads 2 -o /tmp/x.gguf").code, 2);
  EXPECT_EQ(run("synth --shape stories15M --type q3 -o /tmp/x.gguf").code, 2);
}

TEST(CliBench, PrintsWellFormedMarkdownCsvAndJson) {
  const std::string path = tiny_synth("f32");
  const Result md = run("bench -m " + path + " -p 8 -n 4 -t 1,2 -r 2");
  ASSERT_EQ(md.code, 0) << md.err;
  EXPECT_NE(md.out.find("| model | size | params | backend | threads | n_batch | test | t/s |"), std::string::npos);
  EXPECT_NE(md.out.find("| llama "), std::string::npos) << md.out;  // llama-bench's model column, not the path
  EXPECT_EQ(md.out.find(path), std::string::npos) << md.out;
  EXPECT_NE(md.out.find("\nbuild: "), std::string::npos) << md.out;
  // header, rule, (pp, tg) x 2 thread counts, a blank line and the build footer
  EXPECT_EQ(std::count(md.out.begin(), md.out.end(), '\n'), 2 + 4 + 2);

  const Result csv = run("bench -m " + path + " -p 8 -n 4 -t 1 -r 2 -o csv");
  ASSERT_EQ(csv.code, 0) << csv.err;
  std::istringstream lines(csv.out);
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(line.rfind("build_commit,build_number,cpu_info,", 0), 0u) << line;
  EXPECT_NE(line.find(",avg_ts,stddev_ts,"), std::string::npos) << line;
  int rows = 0;
  while (std::getline(lines, line)) {
    EXPECT_NE(line.find("\"CPU\""), std::string::npos) << line;
    ++rows;
  }
  EXPECT_EQ(rows, 2);

  const Result js = run("bench -m " + path + " -p 8 -n 4 -t 1 -r 2 --depth 3 -o json");
  ASSERT_EQ(js.code, 0) << js.err;
  for (const char* key : {"\"n_prompt\": 8", "\"n_gen\": 4", "\"n_threads\": 1", "\"avg_ts\"", "\"stddev_ts\"",
                          "\"n_depth\": 3", "\"backends\": \"CPU\"", "\"n_gpu_layers\": 0"})
    EXPECT_NE(js.out.find(key), std::string::npos) << key << "\n" << js.out;
  EXPECT_EQ(js.out.front(), '[');
  EXPECT_NE(js.out.find("\"build_commit\": \"" + build_commit() + "\""), std::string::npos) << js.out;
  EXPECT_EQ(run("bench").code, 2);
  EXPECT_EQ(run("bench -m " + path + " -o xml").code, 2);
  EXPECT_EQ(run("bench -m " + path + " -t 0").code, 2);
  std::remove(path.c_str());
}

// The revision bench reports is the one built: the build rewrites it when HEAD
// moves (it was fixed at configure time, so a rebuilt binary named an older
// commit). Outside a git checkout, "unknown" and 0.
TEST(Cli, BuildCommitIsTheCheckoutsHead) {
  const auto git = [](const std::string& args) {
    const std::string cmd = "git -C '" + std::string(QKV_SOURCE_DIR) + "' " + args + " 2>/dev/null";
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return out;
    char buf[256];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    if (::pclose(p) != 0) return std::string();
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  };
  const std::string head = git("rev-parse --short=7 HEAD"), count = git("rev-list --count HEAD");
  EXPECT_EQ(build_commit(), head.empty() ? "unknown" : head);
  EXPECT_EQ(std::to_string(build_number()), count.empty() ? "0" : count);
}

// -o json carries exactly llama-bench's 42 keys (August 2026) and qkv's isa;
// lists run every combination, -pg the combined test, -o jsonl a line each.
TEST(CliBench, JsonHasLlamaBenchKeysAndListsCombine) {
  const std::string path = tiny_synth("f32");
  const Result js = run("bench -m " + path + " -p 4,8 -n 2 -pg 4,2 -b 4,8 -d 0,3 -t 1 -r 1 -o jsonl");
  ASSERT_EQ(js.code, 0) << js.err;
  std::istringstream lines(js.out);
  std::string line;
  std::vector<std::string> objs;
  while (std::getline(lines, line)) objs.push_back(line);
  ASSERT_EQ(objs.size(), 2u * 2u * 4u);  // batches x depths x (pp4, pp8, tg2, pp4+tg2)
  std::vector<std::string> keys;
  for (size_t at = objs[0].find('"'); at != std::string::npos;) {
    const size_t end = objs[0].find('"', at + 1);
    const std::string k = objs[0].substr(at + 1, end - at - 1);
    const size_t after = objs[0].find_first_not_of(' ', end + 1);
    if (objs[0][after] == ':') keys.push_back(k);
    // skip the value
    size_t next = objs[0].find(", \"", end);
    at = next == std::string::npos ? next : next + 2;
  }
  std::sort(keys.begin(), keys.end());
  std::vector<std::string> want = {
      "avg_ns", "avg_ts", "backends", "build_commit", "build_number", "cpu_info", "cpu_mask", "cpu_strict", "devices",
      "embeddings", "fit_min_ctx", "fit_target", "flash_attn", "gpu_info", "load_mode", "main_gpu", "model_filename",
      "model_n_params", "model_size", "model_type", "n_batch", "n_cpu_moe", "n_depth", "n_gen", "n_gpu_layers",
      "n_prompt", "n_threads", "n_ubatch", "no_host", "no_kv_offload", "no_op_offload", "poll", "samples_ns",
      "samples_ts", "split_mode", "stddev_ns", "stddev_ts", "tensor_buft_overrides", "tensor_split", "test_time",
      "type_k", "type_v", "isa"};
  ASSERT_EQ(want.size(), 43u);
  std::sort(want.begin(), want.end());
  EXPECT_EQ(keys, want);
  int combined = 0;
  for (const std::string& o : objs) combined += o.find("\"n_prompt\": 4, \"n_gen\": 2") != std::string::npos;
  EXPECT_EQ(combined, 4);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace qkv

namespace qkv {
namespace {

TEST(CliAttention, WritesReportAndJsonAndRefusesBadFlags) {
  const std::string html = "/tmp/qkv-cli-att-" + std::to_string(::getpid()) + ".html";
  const std::string json = "/tmp/qkv-cli-att-" + std::to_string(::getpid()) + ".json";
  const Result r = run("attention -m '" + test::model_path("stories260K.gguf") + "' -p 'Once upon a time' -n 3 " +
                       "--layers 0,4 --heads 2 -o " + html + " --json " + json);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("7 tokens, 2 layers x 1 heads"), std::string::npos) << r.err;  // 5 + 3 - 1 fed
  EXPECT_NE(test::read_file(html).find("data-layer=\"4\" data-head=\"2\""), std::string::npos);
  EXPECT_NE(test::read_file(json).find("\"4,2\""), std::string::npos);
  std::remove(html.c_str());
  std::remove(json.c_str());
  const std::string m = "-m '" + test::model_path("stories260K.gguf") + "' ";
  EXPECT_EQ(run("attention " + m + "-p x --layers 5 -o /tmp/x.html").code, 2);  // layers 0..4
  EXPECT_EQ(run("attention " + m + "-p x --heads 8 -o /tmp/x.html").code, 2);
  EXPECT_EQ(run("attention " + m + "-o /tmp/x.html").code, 2);                  // no prompt
  EXPECT_EQ(run("attention " + m + "-p x").code, 2);                            // no output
  EXPECT_EQ(run("attention -m /nonexistent.gguf -p x -o /tmp/x.html").code, 1);
  // -f FILE: the prompt read from a file, the same report as -p.
  const std::string prompt = "/tmp/qkv-cli-att-" + std::to_string(::getpid()) + ".txt";
  std::ofstream(prompt) << "Once upon a time";
  const Result a = run("attention " + m + "-p 'Once upon a time' --json " + json);
  ASSERT_EQ(a.code, 0) << a.err;
  const std::string from_p = test::read_file(json);
  const Result b = run("attention " + m + "-f " + prompt + " --json " + json);
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(test::read_file(json), from_p);
  EXPECT_NE(from_p.find("\"tokens\": ["), std::string::npos);
  EXPECT_EQ(run("attention " + m + "-p x -f " + prompt + " -o /tmp/x.html").code, 2);  // both
  EXPECT_EQ(run("attention " + m + "-f /nonexistent.txt -o /tmp/x.html").code, 1);
  std::remove(prompt.c_str());
  std::remove(json.c_str());
}

}  // namespace
// Habits from llama.cpp: GPU flags warned about and ignored, --flag=value,
// -e, --no-display-prompt, --no-mmap, a context beyond the trained one, and
// the default model found from any working directory.
TEST(CliHabits, LlamaCppFlagsWork) {
  const std::string m = "-m '" + model_path("stories260K.gguf") + "'";
  const Result base = run("generate " + m + " -p 'Once upon a time' --temp 0 -n 12");
  ASSERT_EQ(base.code, 0) << base.err;
  Result r = run("generate " + m + " -p 'Once upon a time' --temp 0 -n 12 -ngl 99 -fa on --mlock -dev none -sm layer");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, base.out);
  EXPECT_NE(r.err.find("warning: ignoring -ngl 99, -fa on, --mlock, -dev none, -sm layer"), std::string::npos) << r.err;
  // llama.cpp's cache-type flags: f16 is --kv-f16; quantized or mixed caches are refused.
  const Result f16 = run("generate " + m + " -p 'Once upon a time' --temp 0 -n 12 --kv-f16");
  r = run("generate " + m + " -p 'Once upon a time' --temp 0 -n 12 -ctk f16 -ctv f16");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, f16.out);
  r = run("generate " + m + " -p x -n 2 -ctk q8_0");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("f32 or f16"), std::string::npos) << r.err;
  EXPECT_EQ(run("generate " + m + " -p x -n 2 -ctk f16 -ctv f32").code, 2);
  r = run("perplexity -m '" + model_path("tinyllama-v0-q8_0.gguf") + "' -f '" + test::reference_path("perplexity-text.txt") +
          "' --chunks 1 --cache-type-k f16 --cache-type-v=f16");
  EXPECT_EQ(r.code, 0) << r.err;
  r = run("generate " + m + " --prompt='Once upon a time' --temp=0 --n-predict=12 --no-mmap");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, base.out);
  EXPECT_EQ(run("generate " + m + " --kv-f16=yes -n 1").code, 2);  // a flag without a value takes no "=value"
  r = run("generate " + m + " -e -p 'Once upon\\na time' --temp 0 -n 1");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Once upon\na time", 0), 0u) << r.out;
  r = run("generate " + m + " -p 'Once upon a time' --temp 0 -n 12 --no-display-prompt");
  EXPECT_EQ(r.code, 0) << r.err;
  ASSERT_GT(base.out.size(), std::string("Once upon a time").size());
  EXPECT_EQ(r.out, base.out.substr(std::string("Once upon a time").size()));
  const int trained = Model::load(model_path("stories260K.gguf"))->info().context_length;
  r = run("generate " + m + " -p x -n 1 -c " + std::to_string(2 * trained));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: the context of " + std::to_string(2 * trained) + " tokens is larger than the " +
                       std::to_string(trained)), std::string::npos) << r.err;
  // From another directory, without QKV_MODELS_DIR.
  const std::string cmd = "cd / && env -u QKV_MODELS_DIR '" + std::string(QKV_CLI_PATH) + "' generate -p x -n 2 --temp 0 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[4096];
  std::string out;
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  EXPECT_EQ(WEXITSTATUS(::pclose(p)), 0) << out;
}

// qkv info describes any weights file, runnable or not, as text and JSON.
TEST(CliInfo, DescribesFilesLikeGgufDump) {
  Result r = run("info -m '" + model_path("tinyllama-v0-q4_0.gguf") + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("architecture llama"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("llama, 32000 tokens, bos 1, eos 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("llama.block_count"), std::string::npos);
  EXPECT_NE(r.out.find("blk.0.attn_q.weight"), std::string::npos);
  EXPECT_NE(r.out.find("Q4_0"), std::string::npos);
  EXPECT_NE(r.out.find("total: "), std::string::npos);
  EXPECT_NE(r.out.find("Q4_0       58 tensors"), std::string::npos) << r.out;  // the per-type summary
  EXPECT_NE(r.out.find("integer products on Q8_0 activations"), std::string::npos) << r.out;
  // An architecture qkv does not run yet is still described.
  r = run("info -m '" + model_path("arch/gemma2-like.gguf") + "' --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"arch\": \"gemma2\""), std::string::npos) << r.out.substr(0, 400);
  size_t tensors = 0;
  for (size_t at = r.out.find("{\"name\": "); at != std::string::npos; at = r.out.find("{\"name\": ", at + 1)) ++tensors;
  const size_t at = r.out.find("\"n_tensors\": ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(std::stoul(r.out.substr(at + 13)), tensors);
  // The llama2.c format too, and bad input is one line.
  r = run("info -m '" + model_path("stories260K.bin") + "'");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("llama2.c"), std::string::npos);
  EXPECT_EQ(run("info -m /tmp").code, 1);
  EXPECT_EQ(run("info").code, 2);
}

// llama-quantize's habits: the positional form, any case, a line per tensor,
// the type overrides, --pure, and requantizing refused unless allowed.
TEST(CliQuantize, LlamaQuantizeHabits) {
  const std::string in = model_path("tinyllama-v0-f32.gguf"), out = "/tmp/qkv-cli-q-" + std::to_string(::getpid()) + ".gguf";
  Result r = run("quantize '" + in + "' '" + out + "' Q4_K_M 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("] blk.0.ffn_down.weight"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("F32 -> Q6_K"), std::string::npos) << r.err;  // ffn_down of layer 0: more bits
  EXPECT_NE(r.err.find("model size: "), std::string::npos) << r.err;
  auto type_of = [&](const std::string& name) {
    const Result info = run("info -m '" + out + "'");
    const size_t at = info.out.find("  " + name + " ");
    return at == std::string::npos ? std::string("?") : info.out.substr(at, info.out.find('\n', at) - at);
  };
  EXPECT_NE(type_of("blk.0.ffn_down.weight").find("Q6_K"), std::string::npos);
  r = run("quantize --pure --output-tensor-type q8_0 --token-embedding-type=F16 '" + in + "' '" + out + "' q4_k_m");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(type_of("blk.0.ffn_down.weight").find("Q4_K"), std::string::npos);
  EXPECT_NE(type_of("output.weight").find("Q8_0"), std::string::npos);
  EXPECT_NE(type_of("token_embd.weight").find("F16"), std::string::npos);
  const std::string q8 = model_path("tinyllama-v0-q8_0.gguf");
  r = run("quantize '" + q8 + "' '" + out + "' q4_0");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--allow-requantize"), std::string::npos) << r.err;
  EXPECT_EQ(run("quantize --allow-requantize '" + q8 + "' '" + out + "' q4_0").code, 0);
  EXPECT_EQ(run("quantize '" + q8 + "' '" + out + "' f32").code, 0);  // dequantizing is not requantizing
  EXPECT_EQ(run("quantize '" + in + "' '" + out + "'").code, 2);  // no type
  EXPECT_EQ(run("quantize '" + in + "' '" + out + "' q4_0 0").code, 2);
  EXPECT_EQ(run("quantize --output-tensor-type q9 '" + in + "' '" + out + "' q4_0").code, 1);
  std::remove(out.c_str());
}

// --imatrix: a file it cannot read is one error line and exit 1, with no
// output left; a good one is used and said so.
TEST(CliQuantize, ImportanceMatrix) {
  const std::string in = model_path("tinyllama-v0-f32.gguf"), out = "/tmp/qkv-cli-qi-" + std::to_string(::getpid()) + ".gguf";
  std::remove(out.c_str());
  Result r = run("quantize --imatrix /nonexistent/imatrix.dat '" + in + "' '" + out + "' q4_k_m");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("/nonexistent/imatrix.dat"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(::access(out.c_str(), F_OK), 0);
  EXPECT_EQ(run("quantize '" + in + "' '" + out + "' q4_k_m --imatrix").code, 2);  // no value
  r = run("quantize --imatrix '" + out + "' '" + in + "' '" + out + "' q4_k_m");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("must not overwrite the importance matrix"), std::string::npos) << r.err;
  // One entry (legacy format): blk.0.attn_q.weight, 64 values of 1, one call.
  std::string dat;
  auto put_i32 = [&](int32_t v) { dat.append(reinterpret_cast<const char*>(&v), 4); };
  const std::string name = "blk.0.attn_q.weight";
  put_i32(1);
  put_i32(int32_t(name.size()));
  dat += name;
  put_i32(1);
  put_i32(64);
  for (int i = 0; i < 64; ++i) {
    const float one = 1.0f;
    dat.append(reinterpret_cast<const char*>(&one), 4);
  }
  const test::TempFile im(dat, ".dat");
  r = run("quantize --imatrix '" + im.path() + "' '" + in + "' '" + out + "' q4_k_m");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("importance matrix: 1 entries from " + im.path()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("no importance matrix entry for blk.0.attn_k.weight"), std::string::npos) << r.err;
  const Result info = run("info -m '" + out + "'");
  EXPECT_NE(info.out.find("quantize.imatrix.entries_count"), std::string::npos) << info.out;
  std::remove(out.c_str());
}


TEST(Cli, StopStringsIgnoreEosAndContextShift) {
  const Result plain = run("generate -p 'Once upon a time' --temp 0 -n 60");
  ASSERT_EQ(plain.code, 0) << plain.err;
  const size_t at = plain.out.find(" named Lily");
  ASSERT_NE(at, std::string::npos) << plain.out;
  const Result stopped = run("generate -p 'Once upon a time' --temp 0 -n 60 -r 'nothing like this' -r ' named Lily'");
  ASSERT_EQ(stopped.code, 0) << stopped.err;
  EXPECT_EQ(stopped.out, plain.out.substr(0, at) + "\n");  // cut before the stop string, which is not printed
  EXPECT_EQ(run("generate -p x -r ''").code, 2);
  // --ignore-eos: 400 tokens even though the greedy story ends before.
  const Result ended = run("generate -p 'Once upon a time' --temp 0 -n 400 --print-ids");
  const Result endless = run("generate -p 'Once upon a time' --temp 0 -n 400 --ignore-eos --print-ids");
  ASSERT_EQ(endless.code, 0) << endless.err;
  const auto count_ids = [](const std::string& err) {
    const size_t a = err.find("generated_ids:");
    const std::string line = err.substr(a, err.find('\n', a) - a);
    return std::count(line.begin(), line.end(), ' ');
  };
  EXPECT_LT(count_ids(ended.err), 400);
  EXPECT_EQ(count_ids(endless.err), 400);
  // A context of 64 shifts instead of ending; without --context-shift it ends full.
  const Result shifted = run("generate -p 'Once upon a time' --temp 0 -n 200 --ignore-eos -c 64 --context-shift --keep 2");
  ASSERT_EQ(shifted.code, 0) << shifted.err;
  EXPECT_NE(shifted.err.find("the context was shifted"), std::string::npos) << shifted.err;
  EXPECT_NE(shifted.err.find("generation: 200 tokens"), std::string::npos) << shifted.err;
  const Result full = run("generate -p 'Once upon a time' --temp 0 -n 200 --ignore-eos -c 64");
  EXPECT_NE(full.err.find("context of 64 tokens is full"), std::string::npos) << full.err;
}

TEST(Cli, PromptCacheReusesThePrefixAndRefusesAnotherCache) {
  const std::string cache = "/tmp/qkv-cli-pc-" + std::to_string(::getpid()) + ".bin";
  std::remove(cache.c_str());
  const std::string args = "generate -p 'Once upon a time, there was a little girl' --temp 0 -n 30 --prompt-cache " + cache;
  const Result first = run(args);
  ASSERT_EQ(first.code, 0) << first.err;
  const Result second = run(args);
  ASSERT_EQ(second.code, 0) << second.err;
  EXPECT_EQ(second.out, first.out);  // the same text from the saved cache
  EXPECT_NE(second.err.find("12 of the prompt's 13 tokens reused"), std::string::npos) << second.err;
  // A longer prompt with the same start reuses the prefix; -ro leaves the file alone.
  const std::string before = test::read_file(cache);
  const Result longer = run("generate -p 'Once upon a time, there was a little girl named Lily' --temp 0 -n 5 "
                            "--prompt-cache-ro --prompt-cache " + cache);
  ASSERT_EQ(longer.code, 0) << longer.err;
  EXPECT_NE(longer.err.find("12 of the prompt's"), std::string::npos) << longer.err;
  EXPECT_EQ(test::read_file(cache), before);
  // Another cache type or model: refused with a reason, nothing generated.
  const Result f32 = run(args + " --kv-f32");
  EXPECT_EQ(f32.code, 1);
  EXPECT_NE(f32.err.find("f16"), std::string::npos) << f32.err;
  const Result other = run("generate -m " + model_path("arch/qwen3-like.gguf") + " -p hi -n 2 --prompt-cache " + cache);
  EXPECT_EQ(other.code, 1);
  EXPECT_NE(other.err.find("another model"), std::string::npos) << other.err;
  EXPECT_EQ(run("generate -p x --prompt-cache-ro").code, 2);
  std::remove(cache.c_str());
}

TEST(Cli, ChatThroughAPipeAnswersAsTemplatePlusGenerate) {
  const std::string model = model_path("arch/qwen3-like.gguf");
  test::TempFile input("Hello there\n/reset\nHello there\n/exit\nignored\n", ".txt");
  const Result chat = run("chat -m " + model + " --temp 0 -n 12 < " + input.path());
  ASSERT_EQ(chat.code, 0) << chat.err;
  // Two replies, one a line; /reset made the second the same as the first.
  const size_t nl = chat.out.find('\n');
  ASSERT_NE(nl, std::string::npos);
  const std::string reply = chat.out.substr(0, nl);
  EXPECT_EQ(chat.out, reply + "\n" + reply + "\n");
  EXPECT_FALSE(reply.empty());
  // The reply is what generate writes after the rendered prompt.
  test::TempFile messages(R"([{"role": "user", "content": "Hello there"}])", ".json");
  const std::string prompt_file = "/tmp/qkv-cli-chat-" + std::to_string(::getpid()) + ".txt";
  ASSERT_EQ(run("template -m " + model + " --messages " + messages.path() + " > " + prompt_file).code, 0);
  const Result gen = run("generate -m " + model + " -f " + prompt_file + " --temp 0 -n 12 --no-display-prompt");
  std::remove(prompt_file.c_str());
  ASSERT_EQ(gen.code, 0) << gen.err;
  EXPECT_EQ(gen.out, reply + "\n");
  // No template, no chat; usage errors are status 2.
  const Result none = run("chat -m " + model_path("stories260K.bin") + " -z " + model_path("tok512.bin") + " < /dev/null");
  EXPECT_EQ(none.code, 1);
  EXPECT_NE(none.err.find("--chat-template"), std::string::npos) << none.err;
  EXPECT_EQ(run("chat < /dev/null").code, 2);
  EXPECT_EQ(run("chat -m " + model + " --bogus < /dev/null").code, 2);
  // A built-in format for a model without one.
  const Result builtin = run("chat -m " + model_path("stories260K.bin") + " -z " + model_path("tok512.bin") +
                             " --chat-template chatml --temp 0 -n 8 < " + input.path());
  EXPECT_EQ(builtin.code, 0) << builtin.err;
  EXPECT_EQ(std::count(builtin.out.begin(), builtin.out.end(), '\n'), 2);
}

// Ctrl-C while a reply is blocked on its output (a slow terminal, a full
// pipe): the write is interrupted, and the chat must go on writing where it
// stopped, end the reply, and take the next line; it once reported "writing to
// stdout failed: Interrupted system call" and exited 1 (seen under tmux in CI).
TEST(Cli, ChatCtrlCWhileItsOutputIsBlockedGoesOn) {
  int in[2], out[2];
  ASSERT_EQ(::pipe(in), 0);
  ASSERT_EQ(::pipe(out), 0);
  ::fcntl(out[1], F_SETPIPE_SZ, 4096);  // fills after a few hundred tokens
  test::TempFile err_file("", ".err");
  const std::string model = model_path("arch/qwen3-like.gguf");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    const int err = ::open(err_file.path().c_str(), O_WRONLY | O_TRUNC);
    ::dup2(err, STDERR_FILENO);
    for (int fd : {in[0], in[1], out[0], out[1], err}) ::close(fd);
    ::execl(QKV_CLI_PATH, "qkv", "chat", "-m", model.c_str(), "--temp", "0", "--ignore-eos", "-c", "128",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ASSERT_EQ(::write(in[1], "Tell me everything\n", 19), 19);
  // Wait until the pipe stays full (the chat is blocked in write), at most 60 s.
  int queued = -1, last = -2, still = 0;
  for (int i = 0; i < 6000 && still < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_EQ(::ioctl(out[0], FIONREAD, &queued), 0);
    still = (queued == last && queued > 2048) ? still + 1 : 0;
    last = queued;
  }
  ASSERT_EQ(still, 20) << "the reply never filled the pipe (" << queued << " bytes queued)";
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(::write(in[1], "/exit\n", 6), 6);
  ::close(in[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    ASSERT_GT(n, 0);
    text.append(buf, size_t(n));
  }
  ::close(out[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  const std::string err = test::read_file(err_file.path());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << err;
  EXPECT_EQ(err.find("error"), std::string::npos) << err;
  // Everything written before the pipe filled came through, and the reply ended with its line.
  EXPECT_GT(text.size(), size_t(last));
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
}

}  // namespace qkv
