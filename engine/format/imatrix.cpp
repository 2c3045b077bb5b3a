#include "engine/format/imatrix.h"

#include <cmath>
#include <cstdint>

#include "engine/error.h"
#include "engine/format/gguf.h"
#include "engine/format/mapped_file.h"
#include "ops/types.h"

namespace qkv {
namespace {

// Every value an importance: finite and not negative.
void check_values(const std::string& path, const std::string& name, const std::vector<float>& v) {
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]) || v[i] < 0)
      throw Error(cat(path, ": importance matrix entry ", name, ": value ", i, " is ", v[i],
                      " (expected a finite, non-negative mean of squares)"));
}

bool remove_suffix(std::string& s, const std::string& suffix) {
  if (s.size() <= suffix.size() || s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  s.resize(s.size() - suffix.size());
  return true;
}

ImportanceMatrix load_gguf(const std::string& path) {
  const GgufFile f(path);
  ImportanceMatrix m;
  for (const char* key : {"imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size"})
    if (!f.has(key)) throw Error(cat(path, ": not an importance matrix: no key ", key));
  m.datasets = f.get_string_array("imatrix.datasets");
  const uint64_t chunks = f.get_uint("imatrix.chunk_count").value_or(0);
  if (chunks > uint64_t(INT32_MAX)) throw Error(cat(path, ": imatrix.chunk_count is ", chunks));
  m.chunks = int(chunks);
  const uint64_t chunk_size = f.get_uint("imatrix.chunk_size").value_or(0);
  m.chunk_size = chunk_size <= uint64_t(INT32_MAX) ? int(chunk_size) : 0;
  std::map<std::string, std::pair<const GgufTensorInfo*, const GgufTensorInfo*>> sums_counts;
  std::map<std::string, const GgufTensorInfo*> in_sums;
  for (const GgufTensorInfo& ti : f.tensors()) {
    std::string name = ti.name;
    if (remove_suffix(name, ".in_sum2")) sums_counts[name].first = &ti;
    else if (remove_suffix(name, ".counts")) sums_counts[name].second = &ti;
    else if (remove_suffix(name, ".in_sum")) in_sums[name] = &ti;
  }
  if (sums_counts.empty()) throw Error(cat(path, ": an importance matrix with no entries (no NAME.in_sum2 tensors)"));
  for (const auto& [name, sc] : sums_counts) {
    const GgufTensorInfo *sums = sc.first, *counts = sc.second;
    if (!sums || !counts)
      throw Error(cat(path, ": importance matrix entry ", name, " has ", sums ? "sums (.in_sum2) but no counts (.counts)" : "counts (.counts) but no sums (.in_sum2)"));
    for (const GgufTensorInfo* t : {sums, counts})
      if (t->ggml_type != uint32_t(ops::Type::F32))
        throw Error(cat(path, ": tensor ", t->name, " has type ", ops::type_name(t->ggml_type), " (expected F32)"));
    const int64_t ne0 = sums->ne[0], n_mat = sums->ne[1] * sums->ne[2] * sums->ne[3];
    const int64_t n_counts = counts->ne[0] * counts->ne[1] * counts->ne[2] * counts->ne[3];
    if (n_counts != n_mat)
      throw Error(cat(path, ": importance matrix entry ", name, ": ", n_mat, " matrices of sums but ", n_counts, " counts"));
    const float* s = static_cast<const float*>(f.tensor(*sums).data);
    const float* c = static_cast<const float*>(f.tensor(*counts).data);
    ImportanceMatrix::Sums& raw = m.sums[name];
    raw.sum2.assign(s, s + ne0 * n_mat);
    raw.counts.assign(c, c + n_mat);
    if (const auto in = in_sums.find(name); in != in_sums.end()) {
      const GgufTensorInfo* t = in->second;
      if (t->ggml_type != uint32_t(ops::Type::F32))
        throw Error(cat(path, ": tensor ", t->name, " has type ", ops::type_name(t->ggml_type), " (expected F32)"));
      if (t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3] != ne0 * n_mat)
        throw Error(cat(path, ": importance matrix entry ", name, ": ", t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3],
                        " sums of inputs (.in_sum) but ", ne0 * n_mat, " of squares (.in_sum2)"));
      const float* a = static_cast<const float*>(f.tensor(*t).data);
      raw.sum.assign(a, a + ne0 * n_mat);
    }
    std::vector<float>& e = m.entries[name];
    e.resize(size_t(ne0 * n_mat));
    for (int64_t j = 0; j < n_mat; ++j) {
      if (!std::isfinite(c[j]) || c[j] < 0)
        throw Error(cat(path, ": importance matrix entry ", name, ": count ", j, " is ", c[j]));
      for (int64_t i = 0; i < ne0; ++i) e[size_t(j * ne0 + i)] = c[j] > 0 ? s[j * ne0 + i] / c[j] : 1.0f;
    }
    check_values(path, name, e);
  }
  return m;
}

ImportanceMatrix load_legacy(const std::string& path) {
  const MappedFile file(path);
  ByteReader r(file.data(), file.size(), path);
  ImportanceMatrix m;
  const int32_t n_entries = r.read<int32_t>("entry count");
  if (n_entries < 1) throw Error(cat(path, ": not an importance matrix: ", n_entries, " entries"));
  for (int32_t k = 0; k < n_entries; ++k) {
    const int32_t len = r.read<int32_t>("entry name length");
    if (len < 1 || size_t(len) > r.remaining())
      throw Error(cat(path, ": importance matrix entry ", k + 1, ": a name of ", len, " bytes, ", r.remaining(), " left in the file"));
    const std::string name(reinterpret_cast<const char*>(r.here()), size_t(len));
    r.skip(size_t(len), "entry name");
    const int32_t ncall = r.read<int32_t>("entry call count");
    const int32_t nval = r.read<int32_t>("entry value count");
    if (nval < 1 || size_t(nval) > r.remaining() / 4)
      throw Error(cat(path, ": importance matrix entry ", name, ": ", nval, " values, ", r.remaining(), " bytes left in the file"));
    if (m.entries.count(name)) throw Error(cat(path, ": importance matrix entry ", name, " appears twice"));
    std::vector<float>& e = m.entries[name];
    e.resize(size_t(nval));
    __builtin_memcpy(e.data(), r.here(), size_t(nval) * 4);
    r.skip(size_t(nval) * 4, "entry values");
    ImportanceMatrix::Sums& raw = m.sums[name];
    raw.sum2 = e;
    raw.calls = ncall;
    if (ncall > 0)
      for (float& v : e) v /= float(ncall);
    check_values(path, name, e);
  }
  if (r.remaining() > 0) {  // newer legacy files: the chunk count and the dataset's name
    const int32_t chunks = r.read<int32_t>("chunk count");
    const int32_t len = r.read<int32_t>("dataset name length");
    if (len < 0 || size_t(len) > r.remaining())
      throw Error(cat(path, ": a dataset name of ", len, " bytes, ", r.remaining(), " left in the file"));
    m.datasets.emplace_back(reinterpret_cast<const char*>(r.here()), size_t(len));
    r.skip(size_t(len), "dataset name");
    m.chunks = chunks > 0 ? chunks : 0;
  }
  return m;
}

}  // namespace

ImportanceMatrix load_imatrix(const std::string& path) {
  return read_file_head(path, 4) == "GGUF" ? load_gguf(path) : load_legacy(path);
}

}  // namespace qkv
