// No allocation on the per-token path: operator new is counted while a
// session decodes and samples token after token.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "engine/api/qkv.hpp"
#include "test_util.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocs{0};
}  // namespace

void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
// The nothrow forms too (std::stable_sort's buffer uses them): under ASan the
// defaults are the sanitizer's own, which would not pair with the frees here.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  if (g_counting.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace qkv {
namespace {

void decode_without_allocating(const std::string& model_file, const std::string& tok, int threads) {
  const auto model = Model::load(test::model_path(model_file), LoadOptions{tok.empty() ? "" : test::model_path(tok)});
  SessionOptions so;
  so.n_threads = threads;
  Session s(model, so);
  SamplerParams sp;  // temperature sampling with top-k, top-p and min-p
  sp.seed = 5;
  sp.repeat_penalty = 1.1f;
  Sampler sampler(model->info().vocab_size, sp);
  s.eval(model->tokenize("Once upon a time", true));
  int tok_id = sampler.sample(s.logits());
  g_allocs = 0;
  g_counting = true;
  for (int i = 0; i < 64; ++i) {
    s.eval(&tok_id, 1);
    tok_id = sampler.sample(s.logits());
    sampler.accept(tok_id);
  }
  g_counting = false;
  EXPECT_EQ(g_allocs.load(), 0) << model_file << " with " << threads << " threads";
}

TEST(NoAlloc, CounterSeesAllocations) {
  g_allocs = 0;
  g_counting = true;
  auto* v = new std::vector<int>(100);
  g_counting = false;
  delete v;
  EXPECT_GE(g_allocs.load(), 2);
}

TEST(NoAlloc, PerTokenPathAllocatesNothing) {
  decode_without_allocating("stories260K.bin", "tok512.bin", 1);
  decode_without_allocating("stories260K.bin", "tok512.bin", 2);
  decode_without_allocating("tinyllama-v0-f16.gguf", "", 2);
}

}  // namespace
}  // namespace qkv
