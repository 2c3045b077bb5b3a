#include "engine/format/weight_file.h"

#include <cstdio>
#include <algorithm>
#include <cstring>

#include "engine/error.h"
#include "engine/format/mapped_file.h"

namespace qkv {

std::unique_ptr<WeightFile> WeightFile::open(const std::string& path, bool use_mmap) {
  // The magic alone tells the formats apart (the file is mapped once, by its loader).
  const std::string magic = read_file_head(path, 4);
  if (magic.empty()) throw Error(cat(path, ": file is empty"));
  if (magic.size() < 4) throw Error(cat(path, ": file too small (", magic.size(), " bytes) to be a model"));
  if (magic == "GGUF") return open_gguf(path, use_mmap);
  return open_llama2c_bin(path, use_mmap);
}

const Tensor* WeightFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

void WeightFile::pack_for_products(const std::vector<const Tensor*>& matmul, const std::vector<const Tensor*>& row_read) {
  for (const Tensor* m : matmul) {
    auto it = tensors_.find(m->name);
    if (it == tensors_.end() || &it->second != m) continue;  // not one of this file's
    Tensor& t = it->second;
    const TypeInfo& info = t.info();
    if (!info.repack_x8 || t.n_dims < 2 || t.packed) continue;
    const size_t rows = size_t(t.n_rows()) / 8 * 8, n = size_t(t.row_len());
    if (rows == 0) continue;
    const size_t bytes = rows * t.row_bytes();
    // A group's block column may hold more than its 8 blocks (Q4_K: its scales unpacked).
    const size_t packed_bytes = rows / 8 * (n / size_t(info.block)) * info.x8_block_bytes;
    packed_.push_back(std::make_unique<uint8_t[]>(packed_bytes));
    uint8_t* out = packed_.back().get();
    info.repack_x8(t.data, out, rows, n);
    t.packed = out;
    t.packed_rows = int64_t(rows);
    if (mapped_ && std::find(row_read.begin(), row_read.end(), m) == row_read.end())
      release_mapped_pages(t.data, bytes);
  }
}

std::vector<std::string> WeightFile::tensor_names() const {
  std::vector<std::string> names;
  for (const auto& [name, t] : tensors_) names.push_back(name);
  return names;
}

void WeightFile::check_finite() const {
  for (const auto& [name, t] : tensors_) {
    const TypeInfo& info = t.info();
    if (!info.find_nonfinite) continue;
    const int64_t at = info.find_nonfinite(t.data, size_t(t.n_elements()));
    if (at >= 0)
      throw Error(cat(path_, ": tensor ", name, " holds a value that is not finite (NaN or infinite) in its ",
                      info.block > 1 ? "block " : "element ", at, info.block > 1 ? "'s scale" : "",
                      ": the file is damaged"));
  }
}

const Tensor& WeightFile::require(const std::string& name, std::vector<int64_t> shape) const {
  const Tensor* t = find(name);
  if (!t) throw Error(cat(path_, ": missing tensor ", name));
  bool ok = int(shape.size()) >= 1;
  for (size_t d = 0; d < 4 && ok; ++d) {
    const int64_t want = d < shape.size() ? shape[d] : 1;
    ok = t->ne[d] == want;
  }
  if (!ok) {
    std::string want = "[";
    for (size_t d = 0; d < shape.size(); ++d) want += (d ? ", " : "") + std::to_string(shape[d]);
    throw Error(cat(path_, ": tensor ", name, " has shape ", t->shape_str(), ", expected ", want, "]"));
  }
  return *t;
}

}  // namespace qkv
