// Bad model files get a clear error (naming the file and the problem), never
// a crash. The broken files are made here from the shared models.
#include <gtest/gtest.h>

#include <tuple>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "engine/format/gguf.h"
#include "engine/api/qkv.hpp"
#include "engine/text/vocab.h"
#include "gguf_writer.h"
#include "test_util.h"

namespace qkv {
namespace {

using test::model_path;
using test::TempFile;

// Loads and expects an Error whose message contains every fragment.
void expect_load_error(const std::string& path, std::vector<std::string> fragments, const std::string& tok = "") {
  try {
    Model::load(path, LoadOptions{tok});
    ADD_FAILURE() << "loading " << path << " succeeded";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

template <class T>
void poke(std::string& bytes, size_t offset, T value) {
  std::memcpy(&bytes[offset], &value, sizeof(T));
}

TEST(LoaderErrors, MissingFile) {
  expect_load_error("/nonexistent/model.gguf", {"/nonexistent/model.gguf", "cannot open"});
}

TEST(LoaderErrors, EmptyFile) {
  TempFile f("");
  expect_load_error(f.path(), {f.path(), "empty"});
}

TEST(LoaderErrors, WrongMagicIsNotAModel) {
  TempFile f(std::string("this is a text file, not a model at all........"));
  expect_load_error(f.path(), {f.path()});
}

TEST(LoaderErrors, GgufWrongVersion) {
  std::string b = test::read_file(model_path("stories260K.gguf"));
  poke<uint32_t>(b, 4, 1);
  TempFile f(b, ".gguf");
  expect_load_error(f.path(), {"GGUF version 1"});
}

TEST(LoaderErrors, GgufTruncatedAnywhere) {
  const std::string b = test::read_file(model_path("stories260K.gguf"));
  // Cut in the header, in the metadata, in the tensor infos and in the data.
  for (size_t cut : {size_t(10), size_t(30), size_t(200), size_t(5000), size_t(20000), b.size() / 2, b.size() - 1}) {
    TempFile f(b.substr(0, cut), ".gguf");
    expect_load_error(f.path(), {f.path()});
  }
}

TEST(LoaderErrors, GgufHugeCounts) {
  std::string b = test::read_file(model_path("stories260K.gguf"));
  poke<uint64_t>(b, 8, uint64_t(1) << 60);  // tensor count
  TempFile f(b, ".gguf");
  expect_load_error(f.path(), {"tensor count"});
  std::string c = test::read_file(model_path("stories260K.gguf"));
  poke<uint64_t>(c, 16, uint64_t(1) << 60);  // metadata count
  TempFile g(c, ".gguf");
  expect_load_error(g.path(), {"metadata count"});
}

TEST(LoaderErrors, Llama2cTruncated) {
  const std::string b = test::read_file(model_path("stories260K.bin"));
  TempFile f(b.substr(0, b.size() - 4));
  expect_load_error(f.path(), {f.path(), "does not match its header"}, model_path("tok512.bin"));
  TempFile g(b.substr(0, 20));
  expect_load_error(g.path(), {g.path(), "truncated"}, model_path("tok512.bin"));
}

TEST(LoaderErrors, Llama2cBadHeader) {
  std::string b = test::read_file(model_path("stories260K.bin"));
  poke<int32_t>(b, 12, 7);  // n_heads 7 does not divide dim 64
  TempFile f(b);
  expect_load_error(f.path(), {"not divisible"}, model_path("tok512.bin"));
  poke<int32_t>(b, 12, 8);
  poke<int32_t>(b, 0, -64);  // negative dim
  TempFile g(b);
  expect_load_error(g.path(), {"dim"}, model_path("tok512.bin"));
}

TEST(LoaderErrors, TokenizerDoesNotMatchModel) {
  // tinyllama-v0's 32000-token vocabulary with the 512-token story model.
  expect_load_error(model_path("stories260K.bin"), {"does not match the model"},
                    model_path("tinyllama-v0-tok32000.bin"));
  // tok512 with a 32000-token model.
  expect_load_error(model_path("tinyllama-v0.bin"), {"512 tokens", "32000"}, model_path("tok512.bin"));
}

TEST(LoaderErrors, Llama2cModelWithoutTokenizer) {
  expect_load_error(model_path("stories260K.bin"), {"no tokenizer", "-z"});
}

TEST(LoaderErrors, BlocksStraddlingRowsAreRefused) {
  expect_load_error(model_path("bad/stories260K-q8_0-rows-not-block-aligned.gguf"),
                    {"ffn_down", "not a multiple", "Q8_0"});
}

TEST(LoaderErrors, UnsupportedTensorTypesAreRefusedByName) {
  // A Q8_1 matrix (32 values in 36 bytes a block: an activation type) of the right byte size.
  const GgufFile src(model_path("stories260K.gguf"));
  test::GgufWriter w(3);
  w.copy_metadata(src);
  for (const GgufTensorInfo& ti : src.tensors()) {
    const Tensor t = src.tensor(ti);
    if (ti.name == "output.weight") {
      const std::vector<uint8_t> blocks(36 * 2 * 512, 0);  // 2 blocks a row, 512 rows
      w.tensor(ti.name, 9, {64, 512}, blocks.data(), blocks.size());
    } else {
      w.tensor(ti.name, ti.ggml_type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.data, t.n_bytes());
    }
  }
  TempFile f(w.bytes(), ".gguf");
  expect_load_error(f.path(), {"output.weight", "Q8_1", "cannot compute with"});
}

// A tokenizer model or pre-tokenizer qkv does not have is named, with the
// ones it has.
TEST(LoaderErrors, UnsupportedTokenizerModelIsNamed) {
  const GgufFile src(model_path("vocab/ggml-vocab-gpt-2.gguf"));
  for (const auto& [key, value, fragments] : std::vector<std::tuple<std::string, std::string, std::vector<std::string>>>{
           {"tokenizer.ggml.model", "rwkv", {"'rwkv' is not supported", "gpt2 = byte-level BPE", "llama = SentencePiece"}},
           {"tokenizer.ggml.pre", "chameleon", {"'chameleon'", "tokenizer.ggml.pre", "llama-bpe", "qwen2", "falcon"}}}) {
    test::GgufWriter w(3);
    for (const auto& [k, v] : src.metadata())
      if (k != key) w.kv_copy(k, v);
    w.kv_string(key, value);
    TempFile f(w.bytes(), ".gguf");
    try {
      load_gguf_vocab(f.path());
      ADD_FAILURE() << value << " loaded";
    } catch (const Error& e) {
      for (const std::string& frag : fragments)
        EXPECT_NE(std::string(e.what()).find(frag), std::string::npos) << frag << " not in: " << e.what();
    }
  }
}

TEST(LoaderErrors, TensorShapeMismatchNamesTheTensor) {
  // Rewrite one dimension of blk.0.attn_q.weight in the tensor infos.
  std::string b = test::read_file(model_path("stories260K.gguf"));
  const std::string name = "blk.0.attn_q.weight";
  const size_t at = b.find(name);
  ASSERT_NE(at, std::string::npos);
  const size_t dims = at + name.size() + 4;  // after the name: n_dims (u32), then ne[0]
  poke<uint64_t>(b, dims + 8, 32);           // ne[1]: 64 -> 32
  TempFile f(b, ".gguf");
  expect_load_error(f.path(), {"blk.0.attn_q.weight", "[64, 32]", "expected [64, 64]"});
}

TEST(LoaderErrors, GgufParserReadsEveryTensor) {
  const GgufFile g(model_path("stories260K.gguf"));
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.get_string("general.architecture"), "llama");
  EXPECT_EQ(*g.get_uint("llama.embedding_length"), 64u);
  EXPECT_EQ(g.tensors().size(), 2u + 5u * 9u + 1u);
  ASSERT_NE(g.find_tensor("output.weight"), nullptr);
  EXPECT_EQ(g.find_tensor("output.weight")->ne[1], 512);
}

}  // namespace
}  // namespace qkv
