// Computing importance matrices (compute_imatrix, qkv imatrix): the first
// layer's sums against the embeddings normed by hand, which matrices get an
// entry and with what counts and keys, the same bytes on any thread count,
// both formats read back, the refusals; and the matmul input callback under it.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/api/qkv.hpp"
#include "engine/error.h"
#include "engine/format/gguf.h"
#include "engine/format/imatrix.h"
#include "gguf_writer.h"
#include "test_util.h"

namespace qkv {
namespace {

std::string temp_name(const std::string& what) {
  return "/tmp/qkv-imatrix-compute-" + std::to_string(::getpid()) + "-" + what;
}

using test::error_of;

const std::string& story_text() {
  static const std::string text = test::read_file(test::reference_path("perplexity-text.txt"));
  return text;
}

ImatrixOptions small_options(int threads = 2) {
  ImatrixOptions o;
  o.n_ctx = 64, o.n_batch = 64, o.n_threads = threads, o.max_chunks = 5;
  o.dataset = "perplexity-text.txt";
  return o;
}

std::vector<float> f32_values(const GgufFile& g, const std::string& name) {
  const GgufTensorInfo* t = g.find_tensor(name);
  if (!t) {
    ADD_FAILURE() << "no tensor " << name;
    return {};
  }
  EXPECT_EQ(t->ggml_type, 0u) << name;
  std::vector<float> v(size_t(t->n_bytes / 4));
  std::memcpy(v.data(), g.tensor(*t).data, t->n_bytes);
  return v;
}

// Layer 0's attention input is the token's embedding, RMS-normed and scaled
// by attn_norm: its squares and values, summed over every evaluated token
// (each chunk's first one BOS), in double from the F32 file's own tensors,
// are what the file must hold for attn_q, attn_k and attn_v alike.
TEST(ComputeImatrix, FirstLayerSumsAreTheNormedEmbeddings) {
  const std::string path = test::model_path("stories260K.gguf");
  const auto model = Model::load(path);
  const ImatrixOptions o = small_options();
  const std::string out = temp_name("first.gguf");
  const ImatrixResult r = compute_imatrix(*model, story_text(), out, o);
  ASSERT_EQ(r.n_chunks, o.max_chunks);
  const int n_layers = model->info().n_layers;
  EXPECT_EQ(r.n_entries, 7 * n_layers);  // q, k, v, output, gate, up, down per layer

  const GgufFile src(path);
  const std::vector<float> emb = f32_values(src, "token_embd.weight"), norm = f32_values(src, "blk.0.attn_norm.weight");
  const size_t dim = size_t(model->info().dim);
  ASSERT_EQ(norm.size(), dim);
  std::vector<int> tokens = model->tokenize(story_text(), true);
  ASSERT_GE(tokens.size(), size_t(r.n_chunks * o.n_ctx));
  std::vector<double> sum2(dim, 0.0), sum(dim, 0.0);
  for (int c = 0; c < r.n_chunks; ++c)
    for (int i = 0; i < o.n_ctx; ++i) {
      const int t = i == 0 && model->adds_bos() ? model->bos_id() : tokens[size_t(c * o.n_ctx + i)];
      const float* e = emb.data() + size_t(t) * dim;
      double ms = 0;
      for (size_t j = 0; j < dim; ++j) ms += double(e[j]) * e[j];
      const double inv = 1.0 / std::sqrt(ms / double(dim) + double(model->info().rms_eps));
      for (size_t j = 0; j < dim; ++j) {
        const double x = double(e[j]) * inv * double(norm[j]);
        sum2[j] += x * x, sum[j] += x;
      }
    }

  const GgufFile im(out);
  EXPECT_EQ(im.get_string("general.type"), "imatrix");
  EXPECT_EQ(im.get_uint("imatrix.chunk_count").value_or(0), uint64_t(r.n_chunks));
  EXPECT_EQ(im.get_uint("imatrix.chunk_size").value_or(0), uint64_t(o.n_ctx));
  EXPECT_EQ(im.get_string_array("imatrix.datasets"), std::vector<std::string>{"perplexity-text.txt"});
  ASSERT_EQ(im.tensors().size(), size_t(3 * r.n_entries));
  const std::vector<float> q2 = f32_values(im, "blk.0.attn_q.weight.in_sum2"), q1 = f32_values(im, "blk.0.attn_q.weight.in_sum");
  ASSERT_EQ(q2.size(), dim);
  ASSERT_EQ(q1.size(), dim);
  for (size_t j = 0; j < dim; ++j) {
    EXPECT_NEAR(q2[j], sum2[j], 1e-4 * sum2[j]) << "column " << j;
    EXPECT_NEAR(q1[j], sum[j], 1e-4 * std::sqrt(sum2[j] * double(r.n_chunks * o.n_ctx))) << "column " << j;
  }
  // K and V took the same input; so did the gate and the up projection.
  EXPECT_EQ(f32_values(im, "blk.0.attn_k.weight.in_sum2"), q2);
  EXPECT_EQ(f32_values(im, "blk.0.attn_v.weight.in_sum2"), q2);
  EXPECT_EQ(f32_values(im, "blk.2.ffn_gate.weight.in_sum2"), f32_values(im, "blk.2.ffn_up.weight.in_sum2"));
  EXPECT_EQ(f32_values(im, "blk.1.ffn_down.weight.in_sum2").size(), size_t(model->info().hidden_dim));
  // Every entry saw every token once; nothing outside the layers by default.
  for (const GgufTensorInfo& t : im.tensors()) {
    EXPECT_EQ(t.name.compare(0, 4, "blk."), 0) << t.name;
    if (t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".counts") == 0) {
      EXPECT_EQ(f32_values(im, t.name), std::vector<float>{float(r.n_chunks * o.n_ctx)}) << t.name;
    }
  }
  // In name order, as llama-imatrix writes them.
  for (size_t i = 3; i < im.tensors().size(); i += 3) EXPECT_LT(im.tensors()[i - 3].name, im.tensors()[i].name);
  ::unlink(out.c_str());
}

// The perplexity it reports is perplexity()'s on the same chunks, and
// output.weight is collected only when asked.
TEST(ComputeImatrix, ReportsThePerplexityAndTakesTheOutputWhenAsked) {
  const auto model = Model::load(test::model_path("stories260K.gguf"));
  ImatrixOptions o = small_options();
  o.process_output = true;
  o.dataset.clear();  // no name: an empty imatrix.datasets, which reads back
  const std::string out = temp_name("output.gguf");
  const ImatrixResult r = compute_imatrix(*model, story_text(), out, o);
  PerplexityOptions po;
  po.n_ctx = o.n_ctx, po.n_batch = o.n_batch, po.n_threads = 2, po.max_chunks = o.max_chunks;
  const PerplexityResult p = perplexity(*model, story_text(), po);
  EXPECT_EQ(r.ppl, p.ppl);
  EXPECT_EQ(r.error, p.error);
  EXPECT_EQ(r.n_entries, 7 * model->info().n_layers + 1);
  const GgufFile im(out);
  ASSERT_NE(im.find_tensor("output.weight.in_sum2"), nullptr);
  EXPECT_EQ(im.find_tensor("output.weight.in_sum2")->ne[0], model->info().dim);
  EXPECT_EQ(im.find_tensor("token_embd.weight.in_sum2"), nullptr);
  EXPECT_TRUE(im.get_string_array("imatrix.datasets").empty());
  EXPECT_EQ(load_imatrix(out).entries.size(), size_t(r.n_entries));
  ::unlink(out.c_str());
}

std::string file_bytes(const std::string& path) { return test::read_file(path); }

// One thread or two, the same activations, so the same file.
TEST(ComputeImatrix, SameBytesOnOneAndTwoThreads) {
  const auto model = Model::load(test::model_path("tinyllama-v0-q8_0.gguf"));
  const std::string a = temp_name("t1.gguf"), b = temp_name("t2.gguf");
  compute_imatrix(*model, story_text(), a, small_options(1));
  compute_imatrix(*model, story_text(), b, small_options(2));
  const std::string ba = file_bytes(a), bb = file_bytes(b);
  EXPECT_GT(ba.size(), 1000u);
  EXPECT_TRUE(ba == bb) << "the thread count changed the sums";
  ::unlink(a.c_str());
  ::unlink(b.c_str());
}

// Both formats read back (load_imatrix, as qkv quantize --imatrix does) as
// the sums over the counts.
TEST(ComputeImatrix, BothFormatsReadBackAsMeanSquares) {
  const auto model = Model::load(test::model_path("tinyllama-v0-f32.gguf"));
  const std::string g = temp_name("rt.gguf"), d = temp_name("rt.dat");
  ImatrixOptions o = small_options();
  compute_imatrix(*model, story_text(), g, o);
  o.legacy_format = true;
  compute_imatrix(*model, story_text(), d, o);
  const ImportanceMatrix mg = load_imatrix(g), md = load_imatrix(d);
  EXPECT_EQ(mg.chunks, o.max_chunks);
  EXPECT_EQ(md.chunks, o.max_chunks);
  EXPECT_EQ(md.datasets, std::vector<std::string>{"perplexity-text.txt"});
  ASSERT_EQ(mg.entries.size(), size_t(7 * model->info().n_layers));
  ASSERT_EQ(md.entries.size(), mg.entries.size());
  const GgufFile raw(g);
  const float count = float(o.max_chunks * o.n_ctx);
  for (const auto& [name, values] : mg.entries) {
    const std::vector<float> sums = f32_values(raw, name + ".in_sum2");
    ASSERT_EQ(values.size(), sums.size()) << name;
    const std::vector<float>* legacy = md.find(name);
    ASSERT_NE(legacy, nullptr) << name;
    ASSERT_EQ(legacy->size(), values.size()) << name;
    for (size_t j = 0; j < values.size(); ++j) {
      EXPECT_FLOAT_EQ(values[j], sums[j] / count) << name << " " << j;
      EXPECT_NEAR((*legacy)[j], values[j], 1e-6f * values[j]) << name << " " << j;
    }
  }
  ::unlink(g.c_str());
  ::unlink(d.c_str());
}

// Too little text, chunks too small for llama-imatrix's rule, and outputs
// that would replace the model or the text: refused before anything is written.
TEST(ComputeImatrix, RefusesWhatLlamaImatrixWouldNotDo) {
  const std::string path = test::model_path("stories260K.gguf");
  const auto model = Model::load(path);
  const std::string out = temp_name("refused.gguf");
  ImatrixOptions o = small_options();
  std::string e = error_of([&] { compute_imatrix(*model, story_text().substr(0, 200), out, o); });
  EXPECT_NE(e.find("needs at least 128"), std::string::npos) << e;
  o.n_ctx = 8;
  e = error_of([&] { compute_imatrix(*model, story_text(), out, o); });
  EXPECT_NE(e.find("at least 16 tokens"), std::string::npos) << e;
  o = small_options();
  o.n_batch = 15;
  e = error_of([&] { compute_imatrix(*model, story_text(), out, o); });
  EXPECT_NE(e.find("-b 15"), std::string::npos) << e;
  EXPECT_NE(::access(out.c_str(), F_OK), 0) << "a refused run left a file";

  o = small_options();
  e = error_of([&] { compute_imatrix(*model, story_text(), "", o); });
  EXPECT_NE(e.find("no output file"), std::string::npos) << e;
  e = error_of([&] { compute_imatrix(*model, story_text(), path, o); });
  EXPECT_NE(e.find("must not overwrite the model"), std::string::npos) << e;
  const std::string text_copy = temp_name("text.txt");
  { std::ofstream(text_copy) << story_text(); }
  o.dataset = text_copy;
  e = error_of([&] { compute_imatrix(*model, story_text(), text_copy, o); });
  EXPECT_NE(e.find("must not overwrite the text"), std::string::npos) << e;
  EXPECT_EQ(file_bytes(text_copy), story_text());
  // A directory where the file should go: refused, the directory left alone.
  const std::string dir = temp_name("dir");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  o = small_options();
  e = error_of([&] { compute_imatrix(*model, story_text(), dir, o); });
  EXPECT_NE(e.find(dir), std::string::npos) << e;
  struct stat st;
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  // A folder that does not exist: said before the text is run.
  e = error_of([&] { compute_imatrix(*model, story_text().substr(0, 10), dir + "/no/such.gguf", o); });
  EXPECT_NE(e.find("cannot create"), std::string::npos) << e;
  ::rmdir(dir.c_str());
  ::unlink(text_copy.c_str());
}

// A model whose first layer's inputs are not finite (attn_norm's weights
// set to the largest float, so that normed values past 1 overflow; the
// loader refuses an infinite weight itself): the run stops at the first matrix that takes them,
// naming it, and leaves no file behind (an importance matrix of inf or NaN
// would quantize every row of that matrix to nonsense).
TEST(ComputeImatrix, NonFiniteInputsStopTheRunWithoutAFile) {
  const GgufFile src(test::model_path("stories260K.gguf"));
  test::GgufWriter w(3);
  w.copy_metadata(src);
  std::vector<float> inf_norm;
  for (const GgufTensorInfo& ti : src.tensors()) {
    const Tensor t = src.tensor(ti);
    const void* data = t.data;
    if (ti.name == "blk.0.attn_norm.weight") {
      ASSERT_EQ(ti.ggml_type, 0u);
      inf_norm.assign(size_t(t.n_elements()), FLT_MAX);
      data = inf_norm.data();
    }
    w.tensor(ti.name, ti.ggml_type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), data, t.n_bytes());
  }
  ASSERT_FALSE(inf_norm.empty());
  const std::string model_file = temp_name("inf-norm.gguf"), out = temp_name("inf-norm-imatrix.gguf");
  { std::ofstream(model_file, std::ios::binary) << w.bytes(); }
  const auto model = Model::load(model_file);
  const std::string e = error_of([&] { compute_imatrix(*model, story_text(), out, small_options()); });
  EXPECT_NE(e.find("inputs of blk.0.attn_"), std::string::npos) << e;
  EXPECT_NE(e.find("not finite"), std::string::npos) << e;
  EXPECT_NE(::access(out.c_str(), F_OK), 0) << "a failed run left a file";
  EXPECT_NE(::access((out + ".part").c_str(), F_OK), 0) << "a failed run left its partial file";
  ::unlink(model_file.c_str());
}

// --parse-special: control tokens' text in the calibration text read as
// those tokens (one "</s>" each), else as text (several pieces).
TEST(ComputeImatrix, ParseSpecialReadsControlTokens) {
  const auto model = Model::load(test::model_path("stories260K.gguf"));
  std::string text;
  for (size_t at = 0, next; (next = story_text().find(". ", at)) != std::string::npos; at = next + 2)
    text += story_text().substr(at, next + 2 - at) + "</s>";
  const size_t plain = model->tokenize(text, true, false).size(), special = model->tokenize(text, true, true).size();
  ASSERT_LT(special, plain) << "the text's </s> did not become single tokens";
  const std::string out = temp_name("special.gguf");
  ImatrixOptions o = small_options();
  const ImatrixResult r_plain = compute_imatrix(*model, text, out, o);
  o.parse_special = true;
  const ImatrixResult r_special = compute_imatrix(*model, text, out, o);
  EXPECT_EQ(size_t(r_plain.n_tokens), plain);
  EXPECT_EQ(size_t(r_special.n_tokens), special);
  ::unlink(out.c_str());
}

// The callback under it: every matrix once per pass, with its name, layer
// and input shape; and observing changes no logit.
TEST(MatmulInputCallback, SeesEveryMatrixOncePerPassAndChangesNothing) {
  const auto model = Model::load(test::model_path("stories260K.gguf"));
  const std::vector<int> tokens = model->tokenize("Once upon a time, there was a little girl", true);
  ASSERT_GT(tokens.size(), 5u);
  SessionOptions so;
  so.n_threads = 2;
  Session plain(model, so), watched(model, so);
  std::map<std::string, int> calls;
  int rows_seen = -1;
  watched.set_matmul_input_callback([&](const MatmulInput& in) {
    ++calls[in.weight];
    const std::string name = in.weight;
    if (name == "blk.1.ffn_down.weight") {
      EXPECT_EQ(in.layer, 1);
      EXPECT_EQ(in.cols, model->info().hidden_dim);
      rows_seen = in.rows;
    }
    if (name == "output.weight") {
      EXPECT_EQ(in.layer, -1);
    }
    ASSERT_NE(in.x, nullptr);
    for (int j = 0; j < in.rows * in.cols; ++j) ASSERT_TRUE(std::isfinite(in.x[j])) << name;
  });
  plain.eval(tokens, true);
  watched.eval(tokens, true);
  EXPECT_EQ(rows_seen, int(tokens.size()));
  const int L = model->info().n_layers;
  EXPECT_EQ(calls.size(), size_t(7 * L + 1));
  for (const auto& [name, n] : calls) EXPECT_EQ(n, 1) << name;
  const int V = model->info().vocab_size;
  for (size_t i = 0; i < tokens.size(); ++i)
    ASSERT_EQ(std::memcmp(plain.logits_at(int(i)), watched.logits_at(int(i)), sizeof(float) * size_t(V)), 0) << i;
  // One more token: one more call each; then off.
  watched.eval(std::vector<int>{tokens[1]});
  for (const auto& [name, n] : calls) EXPECT_EQ(n, 2) << name;
  watched.set_matmul_input_callback(nullptr);
  watched.eval(std::vector<int>{tokens[2]});
  for (const auto& [name, n] : calls) EXPECT_EQ(n, 2) << name;
}

// What it is for: an importance matrix computed on one half of a text, and
// the model quantized with it is closer to the f32 model on the other half
// (mean KL divergence of the next-token distributions) than quantized
// without one. Measured: Q2_K 0.045 -> 0.033, Q3_K_M 0.0051 -> 0.0021.
TEST(ComputeImatrix, QuantizingWithItKeepsTheModelCloserOnHeldOutText) {
  const std::string src = test::model_path("tinyllama-v0-f32.gguf");
  const auto f32 = Model::load(src);
  const std::string calibration = story_text().substr(0, story_text().size() / 2);
  const std::string held_out = story_text().substr(story_text().size() / 2);
  const std::string im = temp_name("heldout.gguf"), base = temp_name("heldout.kld");
  ImatrixOptions io = small_options();
  io.max_chunks = 0;
  const ImatrixResult ir = compute_imatrix(*f32, calibration, im, io);
  ASSERT_GE(ir.n_chunks, 8);
  PerplexityOptions po;
  po.n_ctx = 64, po.n_batch = 64, po.n_threads = 2;
  po.kl = PerplexityOptions::Kl::SaveBase, po.kl_base = base;
  perplexity(*f32, held_out, po);
  po.kl = PerplexityOptions::Kl::Compare;
  for (const char* type : {"q2_k", "q3_k_m"}) {
    double kld[2] = {0, 0};
    for (int weighted = 0; weighted < 2; ++weighted) {
      QuantizeParams qp(type);
      if (weighted) qp.imatrix_path = im;
      const std::string q = temp_name(std::string(type) + ".gguf");
      quantize_model(src, q, qp);
      const PerplexityResult r = perplexity(*Model::load(q), "", po);
      ASSERT_TRUE(r.has_kl);
      ASSERT_GT(r.kl.n_positions, 200);
      kld[weighted] = r.kl.kld;
      ::unlink(q.c_str());
    }
    std::printf("%s: mean KLD on held-out text %.6f plain, %.6f with the importance matrix\n", type, kld[0], kld[1]);
    EXPECT_GT(kld[1], 0.0) << type;
    EXPECT_LT(kld[1], 0.85 * kld[0]) << type;
  }
  ::unlink(im.c_str());
  ::unlink(base.c_str());
}

// The command: an importance matrix, then a quantization with it.
TEST(CliImatrix, ComputesOneThatQuantizeTakes) {
  const std::string im = temp_name("cli.gguf"), q = temp_name("cli-q4_k_m.gguf");
  const std::string text = test::reference_path("perplexity-text.txt");
  const test::CliResult r = test::run_cli("imatrix -m '" + test::model_path("tinyllama-v0-f32.gguf") + "' -f '" + text +
                                          "' -o " + im + " -c 128 --chunks 3 -t 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("[3]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Final estimate: PPL = "), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("saved 56 entries from 3 chunks of 128 tokens"), std::string::npos) << r.err;
  const test::CliResult qr = test::run_cli("quantize -m '" + test::model_path("tinyllama-v0-f32.gguf") + "' -o " + q +
                                           " --type q4_k_m --imatrix " + im);
  ASSERT_EQ(qr.code, 0) << qr.err;
  EXPECT_NE(qr.err.find("importance matrix: 56 entries"), std::string::npos) << qr.err;
  const GgufFile g(q);
  EXPECT_EQ(g.get_uint("quantize.imatrix.entries_count").value_or(0), 56u);
  EXPECT_EQ(g.get_uint("quantize.imatrix.chunks_count").value_or(0), 3u);
  EXPECT_EQ(g.get_string("quantize.imatrix.dataset"), text);
  ::unlink(im.c_str());
  ::unlink(q.c_str());

  // Usage errors exit 2 with one line; a text that cannot be read, 1.
  for (const char* bad : {"imatrix -f x.txt", "imatrix -m m.gguf", "imatrix -m m.gguf -f x.txt -c 8",
                          "imatrix -m m.gguf -f x.txt --output-format csv", "imatrix -m m.gguf -f x.txt --bogus"}) {
    const test::CliResult b = test::run_cli(bad);
    EXPECT_EQ(b.code, 2) << bad << ": " << b.err;
    EXPECT_NE(b.err.find("qkv imatrix: "), std::string::npos) << bad << ": " << b.err;
  }
  const test::CliResult missing = test::run_cli("imatrix -m '" + test::model_path("stories260K.gguf") + "' -f /nonexistent.txt -o " + im);
  EXPECT_EQ(missing.code, 1) << missing.err;
  EXPECT_NE(missing.err.find("/nonexistent.txt"), std::string::npos) << missing.err;
  EXPECT_NE(::access(im.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace qkv
