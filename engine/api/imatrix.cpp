// Importance matrices as llama-imatrix computes them (qkv.hpp's
// compute_imatrix): perplexity() runs the text in chunks while a matmul input
// callback sums every matrix's inputs and their squares; then the sums go to
// a GGUF (or legacy .dat) file that qkv quantize --imatrix and llama-quantize read.
// Earlier files (--in-file) are added in first, as llama-imatrix adds them.
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
#include "engine/format/imatrix.h"
#include "engine/format/output_file.h"

namespace qkv {
namespace {

constexpr int kMinRows = 16;         // llama-imatrix skips products of fewer tokens
constexpr uint32_t kGgmlF32 = 0;     // ggml_type of the file's tensors

// One matrix's inputs so far: per column, the sum of squares and the sum.
struct Entry {
  std::vector<double> sum2, sum;
  int64_t count = 0;     // inputs (tokens) summed
  bool has_sum = true;   // false once a file without sums of inputs (.dat, older GGUF) is added in
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
      throw Error(cat("imatrix: ", name, " has ", e.sum2.size(), " values from --in-file, but this model's inputs to it have ",
                      n, " (a matrix of another model?)"),
                  Errc::InvalidArgument);
    for (int m = 0; m < in.rows; ++m) {
      const float* x = in.x + size_t(m) * n;
      for (size_t j = 0; j < n; ++j) e.sum2[j] += double(x[j]) * double(x[j]), e.sum[j] += double(x[j]);
    }
    e.count += in.rows;
    for (size_t j = 0; j < n; ++j)
      if (!std::isfinite(e.sum2[j]))
        throw Error(cat("imatrix: the inputs of ", name, " overflow (value ", j, " of a row is not finite)"));
  }

  // A file's sums, squares and counts added to ours (llama-imatrix's
  // load_imatrix): a .dat's values are means times calls, each call a chunk
  // of chunk_size tokens.
  void merge(const std::string& path, const ImportanceMatrix& m, int chunk_size) {
    for (const auto& [name, raw] : m.sums) {
      const bool legacy = raw.counts.empty();  // a .dat entry: calls instead of counts
      if (!legacy && raw.counts.size() != 1)
        throw Error(cat(path, ": importance matrix entry ", name, " holds ", raw.counts.size(),
                        " matrices (experts); qkv collects one per weight"));
      if (legacy && raw.calls < 0)
        throw Error(cat(path, ": importance matrix entry ", name, ": ", raw.calls, " calls"));
      Entry& e = entries_[name];
      const size_t n = raw.sum2.size();
      if (e.sum2.empty()) e.sum2.assign(n, 0.0), e.sum.assign(n, 0.0);
      if (e.sum2.size() != n)
        throw Error(cat(path, ": importance matrix entry ", name, " has ", n, " values, an earlier one ", e.sum2.size()));
      for (size_t j = 0; j < n; ++j) e.sum2[j] += legacy ? double(raw.sum2[j]) * chunk_size : double(raw.sum2[j]);
      if (raw.sum.empty()) e.has_sum = false;
      else
        for (size_t j = 0; j < n; ++j) e.sum[j] += double(raw.sum[j]);
      e.count += legacy ? int64_t(raw.calls) * chunk_size : std::llround(double(raw.counts[0]));
    }
    datasets_.insert(datasets_.end(), m.datasets.begin(), m.datasets.end());
  }
  // chunk_size 0: the first file's own (imatrix.chunk_size), else 512; the size taken is returned.
  int merge_files(const std::vector<std::string>& paths, int chunk_size) {
    for (const std::string& path : paths) {
      const ImportanceMatrix m = load_imatrix(path);
      if (chunk_size == 0) chunk_size = m.chunk_size > 0 ? m.chunk_size : 512;
      merge(path, m, chunk_size);
    }
    return chunk_size;
  }

  // llama-imatrix's chunk count: the most inputs any matrix took, in chunks.
  int32_t chunks(int chunk_size) const {
    int64_t most = 0;
    for (const auto& kv : entries_) most = std::max(most, kv.second.count);
    return int32_t(most / chunk_size);
  }
  const std::vector<std::string>& datasets() const { return datasets_; }  // of the files added in
  const std::map<std::string, Entry>& entries() const { return entries_; }  // in name order

 private:
  bool process_output_;
  std::map<std::string, Entry> entries_;
  std::vector<std::string> datasets_;
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
    data.emplace_back(e.sum2.begin(), e.sum2.end());
    data.push_back({float(e.count)});
    if (e.has_sum) {
      w.add_tensor(name + ".in_sum", kGgmlF32, {n}, 4 * uint64_t(n));
      data.emplace_back(e.sum.begin(), e.sum.end());
    }
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
    // A matrix that met no input (from an --in-file): as llama-imatrix, its
    // mean taken as 1, times no calls.
    for (size_t j = 0; j < v.size(); ++j) v[j] = e.count > 0 ? float(e.sum2[j]) / float(e.count) * float(calls) : 0.0f;
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


// The file in the format asked: GGUF with every dataset, or the .dat with
// one (this run's text, else the last file's, as llama-imatrix).
void write(const std::string& path, const Collector& c, const ImatrixOptions& o, const std::string& text_dataset) {
  std::vector<std::string> datasets = c.datasets();
  if (!text_dataset.empty()) datasets.push_back(text_dataset);
  const int32_t chunks = c.chunks(o.n_ctx);
  if (o.legacy_format)
    write_dat(path, c, chunks, o.n_ctx, datasets.empty() ? std::string() : datasets.back());
  else
    write_gguf(path, c, uint32_t(chunks), uint32_t(o.n_ctx), datasets);
}

void check_common(const std::string& output, const ImatrixOptions& o, bool combining = false) {
  if (output.empty()) throw Error("imatrix: no output file", Errc::InvalidArgument);
  if ((o.n_ctx < kMinRows && !(combining && o.n_ctx == 0)) || o.n_batch < kMinRows)
    throw Error(cat("imatrix: chunks and batches need at least ", kMinRows, " tokens (-c ", o.n_ctx, ", -b ", o.n_batch,
                    "): as llama-imatrix, smaller products are not collected"),
                Errc::InvalidArgument);
  if (o.output_frequency < 1 || o.save_frequency < 0 || o.skip_chunks < 0)
    throw Error(cat("imatrix: --output-frequency ", o.output_frequency, ", --save-frequency ", o.save_frequency,
                    ", --chunk ", o.skip_chunks, " (expected at least 1, 0 and 0)"),
                Errc::InvalidArgument);
  { const OutputFile can_write(output, 0); }  // a directory, a device, no such folder: said now, not after the run
}

}  // namespace

ImatrixResult compute_imatrix(const Model& model, const std::string& text, const std::string& output,
                              const ImatrixOptions& o) {
  if (!output.empty() && same_file(output, model.info().path))
    throw Error("imatrix: the output must not overwrite the model", Errc::InvalidArgument);
  if (!output.empty() && !o.dataset.empty() && same_file(output, o.dataset))
    throw Error("imatrix: the output must not overwrite the text", Errc::InvalidArgument);
  check_common(output, o);
  Collector collector(o.process_output);
  collector.merge_files(o.in_files, o.n_ctx);
  PerplexityOptions po;
  po.n_ctx = o.n_ctx;
  po.n_batch = o.n_batch;
  po.n_threads = o.n_threads;
  po.max_chunks = o.max_chunks;
  po.kv_f16 = o.kv_f16;
  po.skip_chunks = o.skip_chunks;
  po.parse_special = o.parse_special;
  int n_chunks = 0;
  po.on_start = [&](int chunks, int n_tokens) {
    if (o.skip_chunks > 0 && n_tokens <= 2 * o.n_ctx)
      throw Error(cat("imatrix: skipping ", o.skip_chunks, " chunks (--chunk) leaves ", n_tokens, " tokens; a context of ",
                      o.n_ctx, " needs more than ", 2 * o.n_ctx, " (as llama-imatrix)"),
                  Errc::InvalidArgument);
    if (n_tokens < 2 * o.n_ctx)
      throw Error(cat("imatrix: the text has ", n_tokens, " tokens; a context of ", o.n_ctx, " needs at least ", 2 * o.n_ctx,
                      " (as llama-imatrix)"),
                  Errc::InvalidArgument);
    n_chunks = chunks;
    if (o.on_start) o.on_start(chunks, n_tokens);
  };
  // llama-imatrix's periodic saves, each at the end of a chunk (the last
  // chunk's whole file is written below).
  po.on_chunk = [&](int i, double est) {
    const int32_t done = collector.chunks(o.n_ctx);
    if (i + 1 < n_chunks && done % o.output_frequency == 0) write(output, collector, o, o.dataset);
    if (o.save_frequency > 0 && done % o.save_frequency == 0)
      write(output + ".at_" + std::to_string(done), collector, o, o.dataset);
    if (o.on_chunk) o.on_chunk(i, est);
  };
  po.on_matmul_input = [&](const MatmulInput& in) { collector.add(in); };
  const PerplexityResult p = perplexity(model, text, po);
  if (collector.entries().empty())
    throw Error(cat("imatrix: ", model.info().path, " has no matrices named blk.* (nothing to collect)"));
  write(output, collector, o, o.dataset);
  ImatrixResult r;
  r.n_ctx = o.n_ctx;
  r.n_chunks = p.n_chunks;
  r.n_tokens = p.n_tokens;
  r.n_entries = int(collector.entries().size());
  r.ppl = p.ppl;
  r.error = p.error;
  return r;
}

ImatrixResult combine_imatrix(const std::string& output, const ImatrixOptions& o) {
  if (o.in_files.empty())
    throw Error("imatrix: no text and no --in-file: nothing to compute or combine", Errc::InvalidArgument);
  check_common(output, o, true);
  Collector collector(o.process_output);
  ImatrixOptions taken = o;
  taken.n_ctx = collector.merge_files(o.in_files, o.n_ctx);
  write(output, collector, taken, "");
  ImatrixResult r;
  r.n_ctx = taken.n_ctx;
  r.n_chunks = collector.chunks(taken.n_ctx);
  r.n_entries = int(collector.entries().size());
  return r;
}

}  // namespace qkv
