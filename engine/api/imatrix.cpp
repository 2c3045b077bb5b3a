// Importance matrices as llama-imatrix computes them (qkv.hpp's
// compute_imatrix): perplexity() runs the text in chunks while a matmul input
// callback sums every matrix's inputs and their squares; then the sums go to
// a GGUF (or legacy .dat) file that qkv quantize --imatrix and llama-quantize read.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "engine/api/qkv.hpp"
#include "engine/error.h"
#include "engine/format/gguf_writer.h"
#include "engine/format/output_file.h"

namespace qkv {
namespace {

constexpr int kMinRows = 16;         // llama-imatrix skips products of fewer tokens
constexpr uint32_t kGgmlF32 = 0;     // ggml_type of the file's tensors

// One matrix's inputs so far: per column, the sum of squares and the sum.
struct Entry {
  std::vector<double> sum2, sum;
  int64_t count = 0;  // inputs (tokens) summed
};

class Collector {
 public:
  explicit Collector(bool process_output) : process_output_(process_output) {}

  void add(const MatmulInput& in) {
    if (in.rows < kMinRows) return;
    const std::string name = in.weight;
    if (name.compare(0, 4, "blk.") != 0 && !(process_output_ && name == "output.weight")) return;
    Entry& e = entries_[name];
    const size_t n = size_t(in.cols);
    if (e.sum2.empty()) e.sum2.assign(n, 0.0), e.sum.assign(n, 0.0);
    if (e.sum2.size() != n)
      throw Error(cat("imatrix: ", name, " took inputs of ", e.sum2.size(), " and of ", n, " values"), Errc::Internal);
    for (int m = 0; m < in.rows; ++m) {
      const float* x = in.x + size_t(m) * n;
      for (size_t j = 0; j < n; ++j) e.sum2[j] += double(x[j]) * double(x[j]), e.sum[j] += double(x[j]);
    }
    e.count += in.rows;
    for (size_t j = 0; j < n; ++j)
      if (!std::isfinite(e.sum2[j]))
        throw Error(cat("imatrix: the inputs of ", name, " overflow (value ", j, " of a row is not finite)"));
  }

  const std::map<std::string, Entry>& entries() const { return entries_; }  // in name order

 private:
  bool process_output_;
  std::map<std::string, Entry> entries_;
};

std::vector<uint8_t> floats(const std::vector<float>& v) {
  std::vector<uint8_t> b(4 * v.size());
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// llama-imatrix's GGUF: per entry NAME.in_sum2 (ne0), NAME.counts (1) and
// NAME.in_sum (ne0), all F32.
void write_gguf(const std::string& path, const Collector& c, uint32_t chunks, uint32_t chunk_size,
                const std::vector<std::string>& datasets) {
  GgufWriter w;
  w.add_string("general.type", "imatrix");
  w.add_string_array("imatrix.datasets", datasets);
  w.add_u32("imatrix.chunk_count", chunks);
  w.add_u32("imatrix.chunk_size", chunk_size);
  std::vector<std::vector<float>> data;  // each tensor's values, in the order declared
  for (const auto& [name, e] : c.entries()) {
    const int64_t n = int64_t(e.sum2.size());
    w.add_tensor(name + ".in_sum2", kGgmlF32, {n}, 4 * uint64_t(n));
    w.add_tensor(name + ".counts", kGgmlF32, {1}, 4);
    w.add_tensor(name + ".in_sum", kGgmlF32, {n}, 4 * uint64_t(n));
    data.emplace_back(e.sum2.begin(), e.sum2.end());
    data.push_back({float(e.count)});
    data.emplace_back(e.sum.begin(), e.sum.end());
  }
  w.write(path, [&](size_t i, std::vector<uint8_t>& out) { out = floats(data[i]); });
}

// The legacy .dat: int32 entry count; per entry int32 name length, the name,
// int32 calls (the chunks its count makes, rounded up), int32 value count and
// the mean squares times the calls; then int32 chunk count, int32 length and
// the dataset's name.
void write_dat(const std::string& path, const Collector& c, int32_t chunks, int32_t chunk_size, const std::string& dataset) {
  std::vector<uint8_t> b;
  auto put = [&](const void* p, size_t n) { b.insert(b.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n); };
  auto put_i32 = [&](int64_t v) {
    const int32_t i = int32_t(v);
    put(&i, 4);
  };
  put_i32(int64_t(c.entries().size()));
  for (const auto& [name, e] : c.entries()) {
    put_i32(int64_t(name.size()));
    put(name.data(), name.size());
    const int64_t calls = (e.count + chunk_size - 1) / chunk_size;
    put_i32(calls);
    put_i32(int64_t(e.sum2.size()));
    std::vector<float> v(e.sum2.size());
    for (size_t j = 0; j < v.size(); ++j) v[j] = float(e.sum2[j]) / float(e.count) * float(calls);
    put(v.data(), 4 * v.size());
  }
  put_i32(chunks);
  put_i32(int64_t(dataset.size()));
  put(dataset.data(), dataset.size());
  OutputFile f(path, b.size());
  f.write(b.data(), b.size());
  f.commit();
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  return a == b || std::filesystem::equivalent(a, b, ec);
}

}  // namespace

ImatrixResult compute_imatrix(const Model& model, const std::string& text, const std::string& output,
                              const ImatrixOptions& o) {
  if (output.empty()) throw Error("imatrix: no output file", Errc::InvalidArgument);
  if (same_file(output, model.info().path)) throw Error("imatrix: the output must not overwrite the model", Errc::InvalidArgument);
  if (!o.dataset.empty() && same_file(output, o.dataset))
    throw Error("imatrix: the output must not overwrite the text", Errc::InvalidArgument);
  if (o.n_ctx < kMinRows || o.n_batch < kMinRows)
    throw Error(cat("imatrix: chunks and batches need at least ", kMinRows, " tokens (-c ", o.n_ctx, ", -b ", o.n_batch,
                    "): as llama-imatrix, smaller products are not collected"),
                Errc::InvalidArgument);
  { const OutputFile can_write(output, 0); }  // a directory, a device, no such folder: said now, not after the run
  Collector collector(o.process_output);
  PerplexityOptions po;
  po.n_ctx = o.n_ctx;
  po.n_batch = o.n_batch;
  po.n_threads = o.n_threads;
  po.max_chunks = o.max_chunks;
  po.kv_f16 = o.kv_f16;
  po.on_chunk = o.on_chunk;
  po.on_start = [&](int n_chunks, int n_tokens) {
    if (n_tokens < 2 * o.n_ctx)
      throw Error(cat("imatrix: the text has ", n_tokens, " tokens; a context of ", o.n_ctx, " needs at least ", 2 * o.n_ctx,
                      " (as llama-imatrix)"),
                  Errc::InvalidArgument);
    if (o.on_start) o.on_start(n_chunks, n_tokens);
  };
  po.on_matmul_input = [&](const MatmulInput& in) { collector.add(in); };
  const PerplexityResult p = perplexity(model, text, po);
  if (collector.entries().empty())
    throw Error(cat("imatrix: ", model.info().path, " has no matrices named blk.* (nothing to collect)"));
  int64_t most = 0;
  for (const auto& kv : collector.entries()) most = std::max(most, kv.second.count);
  const int32_t chunks = int32_t(most / o.n_ctx);
  if (o.legacy_format)
    write_dat(output, collector, chunks, o.n_ctx, o.dataset);
  else
    write_gguf(output, collector, uint32_t(chunks), uint32_t(o.n_ctx),
               o.dataset.empty() ? std::vector<std::string>{} : std::vector<std::string>{o.dataset});
  ImatrixResult r;
  r.n_chunks = p.n_chunks;
  r.n_tokens = p.n_tokens;
  r.n_entries = int(collector.entries().size());
  r.ppl = p.ppl;
  r.error = p.error;
  return r;
}

}  // namespace qkv
