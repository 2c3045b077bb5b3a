// The profiler's structure (never its timings): call counts per op, one row
// per layer, declared FLOPs from the shapes, a valid and properly nested
// Chrome trace, a CSV that parses, and outputs unchanged by profiling.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <sstream>

#include "engine/api/qkv.hpp"
#include "engine/runtime/profiler.h"
#include "test_util.h"

namespace qkv {
namespace {

// ---------------------------------------------------------------- a small JSON reader

struct Json {
  enum Type { Null, Bool, Number, String, Array, Object } type = Null;
  double num = 0;
  bool b = false;
  std::string str;
  std::vector<Json> arr;
  std::vector<std::pair<std::string, Json>> obj;
  const Json* get(const std::string& k) const {
    for (const auto& [key, v] : obj)
      if (key == k) return &v;
    return nullptr;
  }
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& s) : s_(s) {}
  Json parse() {
    Json v = value();
    ws();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& why) { throw std::runtime_error("JSON: " + why + " at " + std::to_string(i_)); }
  void ws() {
    while (i_ < s_.size() && std::strchr(" \t\r\n", s_[i_])) ++i_;
  }
  char peek() {
    ws();
    if (i_ >= s_.size()) fail("unexpected end");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected ") + c);
    ++i_;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\') {
        ++i_;
        if (i_ >= s_.size()) fail("bad escape");
        const char e = s_[i_];
        if (e == 'u') {
          if (i_ + 4 >= s_.size()) fail("bad \\u");
          out += char(std::stoi(s_.substr(i_ + 1, 4), nullptr, 16));
          i_ += 4;
        } else {
          out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
        }
      } else {
        if (static_cast<unsigned char>(s_[i_]) < 0x20) fail("control character in string");
        out += s_[i_];
      }
      ++i_;
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
  Json value() {
    Json v;
    const char c = peek();
    if (c == '{') {
      v.type = Json::Object;
      ++i_;
      if (peek() == '}') { ++i_; return v; }
      for (;;) {
        std::string k = string();
        expect(':');
        v.obj.emplace_back(std::move(k), value());
        if (peek() == ',') { ++i_; continue; }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.type = Json::Array;
      ++i_;
      if (peek() == ']') { ++i_; return v; }
      for (;;) {
        v.arr.push_back(value());
        if (peek() == ',') { ++i_; continue; }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.type = Json::String;
      v.str = string();
      return v;
    }
    if (s_.compare(i_, 4, "true") == 0) { i_ += 4; v.type = Json::Bool; v.b = true; return v; }
    if (s_.compare(i_, 5, "false") == 0) { i_ += 5; v.type = Json::Bool; return v; }
    if (s_.compare(i_, 4, "null") == 0) { i_ += 4; return v; }
    size_t used = 0;
    try {
      v.num = std::stod(s_.substr(i_, 40), &used);
    } catch (...) {
      fail("bad value");
    }
    i_ += used;
    v.type = Json::Number;
    return v;
  }

  const std::string& s_;
  size_t i_ = 0;
};

// ---------------------------------------------------------------- the profiled run

struct Profiled {
  std::shared_ptr<const Model> model;
  ProfileReport report;
  // The same profile against other machine limits: 1 GFLOP/s or 1e6 GFLOP/s
  // with 10 GB/s, and none.
  ProfileReport slow_fma, fast_fma, no_limits;
  std::string trace, csv;
  std::vector<float> logits;  // every logit the run computed
  int n_prompt = 0, n_gen = 0;
};

Profiled run(bool profile, int threads) {
  Profiled p;
  p.model = Model::load(test::model_path("stories260K.bin"), LoadOptions{test::model_path("tok512.bin")});
  SessionOptions so;
  so.n_threads = threads;
  Session s(p.model, so);
  Sampler greedy(p.model->info().vocab_size, test::greedy_params());
  if (profile) s.profile_start();
  const std::vector<int> prompt = p.model->tokenize("Once upon a time", true);
  p.n_prompt = int(prompt.size());
  const int V = p.model->info().vocab_size;
  const GenerateResult r = generate(s, greedy, prompt, 12, [&](int, const std::string&) {
    p.logits.insert(p.logits.end(), s.logits(), s.logits() + V);
    return true;
  });
  p.n_gen = int(r.tokens.size());
  if (profile) {
    s.profile_stop();
    p.report = s.profile_report(100.0, 10.0);
    p.slow_fma = s.profile_report(1.0, 10.0);
    p.fast_fma = s.profile_report(1e6, 10.0);
    p.no_limits = s.profile_report();
    p.trace = s.profile_trace_json();
    p.csv = s.profile_csv();
  }
  return p;
}

const ProfileOpStats* find_op(const ProfileReport& r, const std::string& phase, const std::string& op) {
  for (const ProfileOpStats& o : r.ops)
    if (o.phase == phase && o.op == op) return &o;
  return nullptr;
}

// A thread that takes two chunks of one parallel op waits only after its
// last: the wait is counted from there to the op's end, once per op.
TEST(Profiler, ThreadWaitIsCountedFromTheLastChunkOfEachOp) {
  Profiler p(2);
  p.start(16);
  auto event = [](uint64_t t0, uint64_t t1, uint32_t seq, Profiler::Kind kind) {
    return Profiler::Event{t0, t1, seq, kind, Op::kCount, Phase::Prompt, -1, 0, nullptr, 0, 0, {}};
  };
  // Op 1: the caller's chunks 0-10 and 20-30, the helper's 10-40; op 2: the
  // caller 100-150, the helper 100-120 and 120-130.
  p.record(0, event(0, 10, 1, Profiler::Kind::Slice));
  p.record(0, event(20, 30, 1, Profiler::Kind::Slice));
  p.record(1, event(10, 40, 1, Profiler::Kind::Slice));
  p.record(0, event(30, 40, 1, Profiler::Kind::Wait));
  p.record(0, event(100, 150, 2, Profiler::Kind::Slice));
  p.record(1, event(100, 120, 2, Profiler::Kind::Slice));
  p.record(1, event(120, 130, 2, Profiler::Kind::Slice));
  p.record(0, event(150, 150, 2, Profiler::Kind::Wait));
  p.stop();
  const ProfileReport r = p.report(0, 0);
  ASSERT_EQ(r.threads.size(), 2u);
  EXPECT_NEAR(r.threads[0].compute_ms, 70e-6, 1e-12);
  EXPECT_NEAR(r.threads[0].wait_ms, 10e-6, 1e-12);  // 30 -> 40 in op 1, none in op 2
  EXPECT_NEAR(r.threads[1].compute_ms, 60e-6, 1e-12);
  EXPECT_NEAR(r.threads[1].wait_ms, 20e-6, 1e-12);  // none in op 1, 130 -> 150 in op 2
}

TEST(Profiler, CallCountsPerOp) {
  const Profiled p = run(true, 2);
  ASSERT_EQ(p.n_gen, 12);
  const int L = 5;
  // Prompt: one pass. Generation: the 11 tokens fed back, and 12 samplings.
  const int64_t passes_gen = p.n_gen - 1;
  struct Want {
    const char* op;
    int64_t prompt, gen;
  };
  const Want wants[] = {
      {"matmul", L * 4 + 1, passes_gen * (L * 4 + 1)},  // Q/K/V and gate/up fused
      {"attention", L, passes_gen * L},
      {"rmsnorm", 2 * L + 1, passes_gen * (2 * L + 1)},
      {"rope", L, passes_gen * L},
      {"kv_store", L, passes_gen * L},
      {"add", 2 * L, passes_gen * 2 * L},
      {"embedding", 1, passes_gen},
      {"sampling", 0, p.n_gen},
  };
  // SwiGLU is fused into the up projection's matmul: no zone of its own.
  EXPECT_EQ(find_op(p.report, "generation", "swiglu"), nullptr);
  for (const Want& w : wants) {
    const ProfileOpStats* pr = find_op(p.report, "prompt", w.op);
    const ProfileOpStats* ge = find_op(p.report, "generation", w.op);
    EXPECT_EQ(pr ? pr->calls : 0, w.prompt) << w.op;
    ASSERT_NE(ge, nullptr) << w.op;
    EXPECT_EQ(ge->calls, w.gen) << w.op;
  }
  ASSERT_EQ(p.report.phases.size(), 2u);
  EXPECT_EQ(p.report.phases[0].phase, "prompt");
  EXPECT_EQ(p.report.phases[0].passes, 1);
  EXPECT_EQ(p.report.phases[0].tokens, p.n_prompt);
  EXPECT_EQ(p.report.phases[1].passes, passes_gen);
  EXPECT_EQ(p.report.dropped_events, 0u);
}

TEST(Profiler, OneRowPerLayerAndPhase) {
  const Profiled p = run(true, 1);
  for (const char* phase : {"prompt", "generation"}) {
    std::vector<int> layers;
    for (const ProfileLayerStats& l : p.report.layers)
      if (l.phase == phase) layers.push_back(l.layer);
    EXPECT_EQ(layers, (std::vector<int>{0, 1, 2, 3, 4})) << phase;
  }
  for (const ProfileLayerStats& l : p.report.layers) {
    double sum = 0;
    for (const auto& [op, t] : l.op_ms) sum += t;
    EXPECT_NEAR(sum, l.total_ms, 1e-9);
  }
}

TEST(Profiler, DeclaredFlopsMatchTheShapes) {
  const Profiled p = run(true, 1);
  // stories260K: dim 64, kv_dim 32, hidden 172, vocab 512, 5 layers. The
  // prompt pass multiplies M tokens by every layer's weights, and only the
  // last token by the classifier.
  const double M = p.n_prompt, d = 64, kv = 32, h = 172, V = 512;
  const double per_layer = 2 * M * (d * d + 2 * kv * d + d * d + 3 * h * d);
  const ProfileOpStats* mm = find_op(p.report, "prompt", "matmul");
  ASSERT_NE(mm, nullptr);
  EXPECT_DOUBLE_EQ(mm->flops, 5 * per_layer + 2 * 1 * V * d);
  // Generation: each pass is one token.
  const ProfileOpStats* gm = find_op(p.report, "generation", "matmul");
  const double per_token = 5 * 2 * (d * d + 2 * kv * d + d * d + 3 * h * d) + 2 * V * d;
  EXPECT_DOUBLE_EQ(gm->flops, (p.n_gen - 1) * per_token);
  EXPECT_GT(mm->bytes, 4.0 * 5 * (d * d + 2 * kv * d + d * d + 3 * h * d));  // every weight read once
  EXPECT_GE(mm->peak_percent, 0.0);
  // %peak names the limit it is measured against: the binding one.
  for (double gflops : {1.0, 1e6}) {
    const double gbps = 10.0;
    const ProfileReport& r = gflops == 1.0 ? p.slow_fma : p.fast_fma;
    for (const ProfileOpStats& o : r.ops) {
      const bool compute_bound = o.flops / gflops >= o.bytes / gbps;
      EXPECT_EQ(o.peak_bound, compute_bound ? "FMA" : "DRAM") << o.op;
    }
    const ProfileOpStats* m = find_op(r, "prompt", "matmul");
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->peak_bound, gflops == 1.0 ? "FMA" : "DRAM");
    EXPECT_NE(r.to_text().find(gflops == 1.0 ? " FMA\n" : " DRAM\n"), std::string::npos);
  }
  ASSERT_FALSE(p.no_limits.ops.empty());
  EXPECT_EQ(p.no_limits.ops[0].peak_bound, "");  // no limits given: none named
}

TEST(Profiler, TraceIsValidJsonWithNestedEventsPerThread) {
  const Profiled p = run(true, 2);
  const Json root = JsonParser(p.trace).parse();
  const Json* events = root.get("traceEvents");
  ASSERT_NE(events, nullptr);
  std::map<int, std::vector<std::pair<int64_t, int64_t>>> per_thread;  // ns intervals
  std::map<std::string, int> names;
  for (const Json& e : events->arr) {
    ASSERT_EQ(e.type, Json::Object);
    const std::string ph = e.get("ph")->str;
    if (ph == "M") continue;
    ASSERT_EQ(ph, "X");
    const int tid = int(e.get("tid")->num);
    const int64_t ts = std::llround(e.get("ts")->num * 1000), dur = std::llround(e.get("dur")->num * 1000);
    ASSERT_GE(dur, 0);
    per_thread[tid].push_back({ts, ts + dur});
    ++names[e.get("name")->str];
    ASSERT_NE(e.get("args"), nullptr);
    ASSERT_NE(e.get("args")->get("layer"), nullptr);
    if (e.get("name")->str == "matmul") {
      ASSERT_NE(e.get("args")->get("shape"), nullptr);
      EXPECT_EQ(e.get("args")->get("shape")->arr.size(), 3u);
      EXPECT_GT(e.get("args")->get("flops")->num, 0);
    }
  }
  // The caller, and the worker when it claimed chunks in time (on a model
  // this small the caller may run every chunk before the worker wakes).
  EXPECT_GE(per_thread.size(), 1u);
  EXPECT_LE(per_thread.size(), 2u);
  EXPECT_EQ(names["matmul"], (5 * 4 + 1) * (1 + p.n_gen - 1));
  EXPECT_EQ(names["sampling"], p.n_gen);
  EXPECT_GT(names["work"], 0);
  // Properly nested: sorted by start (longest first), every event ends within
  // the innermost open one that contains its start.
  for (auto& [tid, iv] : per_thread) {
    std::sort(iv.begin(), iv.end(), [](auto a, auto b) { return a.first != b.first ? a.first < b.first : a.second > b.second; });
    std::vector<int64_t> open_ends;
    for (const auto& [b, e] : iv) {
      while (!open_ends.empty() && open_ends.back() <= b) open_ends.pop_back();
      if (!open_ends.empty()) {
        ASSERT_LE(e, open_ends.back()) << "thread " << tid << " event [" << b << ", " << e << "]";
      }
      open_ends.push_back(e);
    }
  }
}

TEST(Profiler, CsvParses) {
  const Profiled p = run(true, 2);
  std::istringstream in(p.csv);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "phase,op,detail,layer,shape,start_us,dur_us,flops,bytes");
  int rows = 0, matmuls = 0;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) f.push_back(cell);
    ASSERT_EQ(f.size(), 9u) << line;
    EXPECT_TRUE(f[0] == "prompt" || f[0] == "generation") << line;
    std::stod(f[5]);
    std::stod(f[6]);
    std::stod(f[7]);
    if (f[1] == "matmul") {
      ++matmuls;
      EXPECT_NE(f[2].find(".weight"), std::string::npos) << line;  // the weight's name
      if (f[2] == "blk.0.attn_q+k+v.weight" && f[0] == "generation") {
        EXPECT_EQ(f[4], "1x128x64") << line;  // tokens x rows (64 + 32 + 32) x row length
      }
      if (f[2] == "blk.0.ffn_down.weight" && f[0] == "generation") {
        EXPECT_EQ(f[4], "1x64x172") << line;
      }
    }
    ++rows;
  }
  EXPECT_EQ(matmuls, (5 * 4 + 1) * p.n_gen);
  EXPECT_GT(rows, matmuls);
}

TEST(Profiler, OutputsAreBitIdenticalWithProfilingOnOrOff) {
  for (int threads : {1, 2}) {
    const Profiled off = run(false, threads), on = run(true, threads);
    ASSERT_EQ(off.logits.size(), on.logits.size());
    EXPECT_EQ(std::memcmp(off.logits.data(), on.logits.data(), off.logits.size() * sizeof(float)), 0);
    EXPECT_TRUE(off.trace.empty());
  }
}

TEST(Profiler, ReportTextHasEveryTable) {
  const Profiled p = run(true, 2);
  const std::string text = p.report.to_text();
  for (const char* s : {"== prompt", "== generation", "per layer (prompt", "per layer (generation", "threads",
                        "matmul", "(no zone)", "%peak of"})
    EXPECT_NE(text.find(s), std::string::npos) << s;
}

TEST(Profiler, MachineProbeMeasuresSomething) {
  // Positive and finite, not fast: under ASan on a loaded 2-core machine the
  // FMA probe once measured 0.46 GFLOP/s (a timing, which tests never assert).
  const MachineLimits m = probe_machine(1, size_t(16) << 20);
  EXPECT_GT(m.fma_gflops, 0.0);
  EXPECT_GT(m.read_gbps, 0.0);
  EXPECT_TRUE(std::isfinite(m.fma_gflops) && std::isfinite(m.read_gbps));
}

}  // namespace
}  // namespace qkv

#include "logits_run.h"

namespace qkv {
namespace {

std::vector<float> noprof_logits(const std::string& args) {
  FILE* p = ::popen((std::string("'") + QKV_NOPROF_LOGITS_PATH + "' " + args).c_str(), "r");
  std::vector<float> out;
  float buf[1024];
  size_t n;
  while ((n = std::fread(buf, sizeof(float), 1024, p)) > 0) out.insert(out.end(), buf, buf + n);
  EXPECT_EQ(::pclose(p), 0);
  return out;
}

TEST(Profiler, OffIsBitIdenticalToABuildWithoutIt) {
  const std::string bin = test::model_path("stories260K.bin"), tok = test::model_path("tok512.bin");
  const std::string gguf = test::model_path("tinyllama-v0-f32.gguf");
  for (int threads : {1, 2}) {
    const std::vector<float> here = test::greedy_logits(bin, tok, threads);
    const std::vector<float> there = noprof_logits("'" + bin + "' '" + tok + "' " + std::to_string(threads));
    ASSERT_EQ(here.size(), there.size());
    EXPECT_EQ(std::memcmp(here.data(), there.data(), here.size() * sizeof(float)), 0) << threads << " threads";
    const std::vector<float> here2 = test::greedy_logits(gguf, "", threads);
    const std::vector<float> there2 = noprof_logits("'" + gguf + "' " + std::to_string(threads));
    ASSERT_EQ(here2.size(), there2.size());
    EXPECT_EQ(std::memcmp(here2.data(), there2.data(), here2.size() * sizeof(float)), 0) << threads << " threads";
  }
}

}  // namespace
}  // namespace qkv
