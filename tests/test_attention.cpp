// Attention capture: real probability rows, causal, equal to a scalar
// recomputation from the captured Q and K, and no effect on the computation.
// The report: well-formed HTML with every token and head, and JSON.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "engine/api/qkv.hpp"
#include "test_util.h"
#include "tools/attention_report.h"

namespace qkv {
namespace {

using test::model_path;

struct Captured {
  std::vector<AttentionRow> rows;             // pointers not kept; copied below
  std::vector<std::vector<float>> probs, recomputed;
  std::vector<float> logits;
};

// Greedy run of 10 tokens after a prompt; with capture, every row is checked
// against a scalar recomputation while its pointers are valid.
Captured run(const std::string& file, bool capture, std::vector<int> layers = {}, std::vector<int> heads = {},
             int threads = 2) {
  const auto model = Model::load(model_path(file));
  SessionOptions so;
  so.n_threads = threads;
  Session s(model, so);
  Captured c;
  if (capture) {
    s.set_attention_capture(
        [&](const AttentionRow& r) {
          c.rows.push_back(r);
          c.probs.emplace_back(r.probs, r.probs + r.position + 1);
          // softmax(q . k_t * scale) in double, from the captured Q and K.
          std::vector<double> sc(size_t(r.position) + 1);
          double mx = -1e300;
          for (int t = 0; t <= r.position; ++t) {
            double d = 0;
            for (int i = 0; i < r.head_dim; ++i) d += double(r.q[i]) * double(r.k[size_t(t) * r.k_stride + size_t(i)]);
            sc[size_t(t)] = d * r.scale;
            mx = std::max(mx, sc[size_t(t)]);
          }
          double sum = 0;
          for (double& x : sc) sum += (x = std::exp(x - mx));
          std::vector<float> p;
          for (double x : sc) p.push_back(float(x / sum));
          c.recomputed.push_back(p);
        },
        layers, heads);
  }
  Sampler greedy(model->info().vocab_size, test::greedy_params());
  const int V = model->info().vocab_size;
  generate(s, greedy, model->tokenize("Once upon a time, there was a", true), 10, [&](int, const std::string&) {
    c.logits.insert(c.logits.end(), s.logits(), s.logits() + V);
    return true;
  });
  return c;
}

TEST(AttentionCapture, RowsAreCausalDistributionsEqualToARecomputation) {
  for (const char* file : {"stories260K.gguf", "tinyllama-v0-f32.gguf"}) {
    const Captured c = run(file, true);
    ASSERT_FALSE(c.rows.empty());
    const auto info = Model::load(model_path(file))->info();
    const int prompt = 9, fed = prompt + 9;  // 9 prompt tokens, 9 generated tokens fed back
    EXPECT_EQ(c.rows.size(), size_t(fed) * info.n_layers * info.n_heads) << file;
    for (size_t i = 0; i < c.rows.size(); ++i) {
      const AttentionRow& r = c.rows[i];
      // Exactly position + 1 entries: nothing above the diagonal is captured.
      ASSERT_EQ(c.probs[i].size(), size_t(r.position) + 1);
      double sum = 0;
      for (float p : c.probs[i]) {
        ASSERT_GE(p, 0.0f);
        sum += p;
      }
      ASSERT_NEAR(sum, 1.0, 1e-5) << file << " layer " << r.layer << " head " << r.head << " pos " << r.position;
      for (size_t t = 0; t < c.probs[i].size(); ++t)
        ASSERT_NEAR(c.probs[i][t], c.recomputed[i][t], 2e-6f) << file << " pos " << r.position << " t " << t;
      // GQA: query head h reads KV head h / (n_heads / n_kv_heads).
      ASSERT_EQ(r.kv_head, r.head / (info.n_heads / info.n_kv_heads));
      ASSERT_FLOAT_EQ(r.scale, 1.0f / std::sqrt(float(info.head_dim)));
    }
  }
}

TEST(AttentionCapture, CaptureOnOrOffGivesBitIdenticalLogits) {
  for (int threads : {1, 2}) {
    const Captured off = run("stories260K.gguf", false, {}, {}, threads);
    const Captured on = run("stories260K.gguf", true, {}, {}, threads);
    const Captured some = run("stories260K.gguf", true, {1, 3}, {0, 5}, threads);
    ASSERT_EQ(off.logits.size(), on.logits.size());
    EXPECT_EQ(std::memcmp(off.logits.data(), on.logits.data(), off.logits.size() * 4), 0);
    EXPECT_EQ(std::memcmp(off.logits.data(), some.logits.data(), off.logits.size() * 4), 0);
  }
}

TEST(AttentionCapture, OnlyTheRequestedLayersAndHeads) {
  const Captured c = run("stories260K.gguf", true, {1, 3}, {0, 5});
  std::set<std::pair<int, int>> seen;
  for (const AttentionRow& r : c.rows) seen.insert({r.layer, r.head});
  EXPECT_EQ(seen, (std::set<std::pair<int, int>>{{1, 0}, {1, 5}, {3, 0}, {3, 5}}));
  const auto model = Model::load(model_path("stories260K.gguf"));
  Session s(model, SessionOptions{});
  EXPECT_THROW(s.set_attention_capture([](const AttentionRow&) {}, {5}), Error);     // 5 layers: 0..4
  EXPECT_THROW(s.set_attention_capture([](const AttentionRow&) {}, {}, {-1}), Error);
}

// ---------------------------------------------------------------- the report

cli::AttentionRun report_run(const std::string& prompt, std::vector<int> layers, std::vector<int> heads) {
  const auto model = Model::load(model_path("stories260K.gguf"));
  cli::AttentionRun run;
  run.info = model->info();
  run.model_path = "stories260K.gguf";
  run.prompt = prompt;
  run.layers = layers;
  run.heads = heads;
  Session s(model, SessionOptions{});
  s.set_attention_capture([&](const AttentionRow& r) { run.rows[{r.layer, r.head}].emplace_back(r.probs, r.probs + r.position + 1); },
                          layers, heads);
  run.token_ids = model->tokenize(prompt, true);
  run.n_prompt = int(run.token_ids.size());
  s.eval(run.token_ids);
  int prev = -1;
  for (int t : run.token_ids) {
    run.pieces.push_back(model->token_to_piece(t, prev));
    prev = t;
  }
  return run;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else if (c == '\'') out += "&#39;";
    else out += c;
  }
  return out;
}

// Every non-void element closes, in order; scripts and styles are skipped whole.
void expect_well_formed(const std::string& html) {
  static const std::set<std::string> kVoid = {"meta", "br", "img", "input", "link", "hr", "col", "wbr"};
  std::vector<std::string> open;
  size_t i = html.find("<html");
  ASSERT_NE(i, std::string::npos);
  ASSERT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  while ((i = html.find('<', i)) != std::string::npos) {
    const size_t end = html.find('>', i);
    ASSERT_NE(end, std::string::npos) << "unterminated tag at " << i;
    std::string tag = html.substr(i + 1, end - i - 1);
    const bool closing = !tag.empty() && tag[0] == '/';
    if (closing) tag.erase(0, 1);
    const std::string name = tag.substr(0, tag.find_first_of(" \t\n/"));
    if (!closing && (name == "script" || name == "style")) {
      const size_t close = html.find("</" + name + ">", end);
      ASSERT_NE(close, std::string::npos) << "unclosed " << name;
      i = close + name.size() + 3;
      continue;
    }
    if (closing) {
      ASSERT_FALSE(open.empty()) << "stray </" << name << ">";
      ASSERT_EQ(open.back(), name) << "mismatched </" << name << "> at " << i;
      open.pop_back();
    } else if (!kVoid.count(name) && tag.back() != '/') {
      open.push_back(name);
    }
    i = end + 1;
  }
  EXPECT_TRUE(open.empty()) << open.size() << " unclosed, first " << (open.empty() ? "" : open[0]);
}

TEST(AttentionReport, HtmlIsWellFormedWithEveryTokenAndHead) {
  // Characters that need escaping, and a newline.
  const cli::AttentionRun run = report_run("Tom said: \"<b>hi</b> & bye\"\nLily's ball", {0, 2, 4}, {1, 3, 7});
  const std::string html = cli::attention_html(run);
  expect_well_formed(html);
  for (const std::string& piece : run.pieces)
    EXPECT_NE(html.find("title=\"" + html_escape(piece) + "\""), std::string::npos) << "piece '" << piece << "'";
  EXPECT_EQ(html.find("<b>hi</b>"), std::string::npos);  // the prompt's markup is escaped
  for (int l : run.layers)
    for (int h : run.heads)
      EXPECT_NE(html.find("<figure data-layer=\"" + std::to_string(l) + "\" data-head=\"" + std::to_string(h) + "\">"),
                std::string::npos)
          << l << "," << h;
  EXPECT_EQ(html.find("data-layer=\"1\""), std::string::npos);  // layer 1 was not asked for
  for (const char* s : {"Model card", "average over heads", "entropy", "to first token", "most attended",
                        "bytes per token", "<canvas id=\"heatmap\"", "Attention probabilities softmax(QK",
                        "query \\u2193  key \\u2192", "draw(main, M, cell, state.hover, true)"})
    EXPECT_NE(html.find(s), std::string::npos) << s;
  // Self-contained: no network, no external scripts or fonts.
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("<script src"), std::string::npos);
  EXPECT_EQ(html.find("</script", html.find("<script id=\"data\"") + 1), html.find("</script>", html.find("<script id=\"data\"")));
}

TEST(AttentionReport, StatsOfKnownRows) {
  // A head that looks only at the first token, and one that looks only at the previous token.
  const std::vector<std::vector<float>> sink = {{1}, {1, 0}, {1, 0, 0}};
  const std::vector<std::vector<float>> prev = {{1}, {1, 0}, {0, 1, 0}};
  const cli::HeadStats a = cli::head_stats(sink), b = cli::head_stats(prev);
  EXPECT_DOUBLE_EQ(a.sink, 1.0);
  EXPECT_DOUBLE_EQ(a.entropy, 0.0);
  EXPECT_EQ(a.top[0], 0);
  EXPECT_DOUBLE_EQ(b.previous, 1.0);
  EXPECT_NEAR(b.sink, 2.0 / 3.0, 1e-12);
  const cli::HeadStats u = cli::head_stats({{1}, {0.5f, 0.5f}});
  EXPECT_NEAR(u.entropy, std::log(2.0) / 2, 1e-6);
}

TEST(AttentionReport, JsonHasTokensAndRows) {
  const cli::AttentionRun run = report_run("Once upon a time", {0}, {0, 1});
  const std::string json = cli::attention_json(run);
  EXPECT_NE(json.find("\"tokens\": [\"\", \"Once\", \" upon\", \" a\", \" time\"]"), std::string::npos) << json.substr(0, 800);
  EXPECT_NE(json.find("\"0,1\": [[1.00000],["), std::string::npos);
  EXPECT_NE(json.find("\"kv_bytes_per_token\": 1280"), std::string::npos);
}

}  // namespace
}  // namespace qkv
