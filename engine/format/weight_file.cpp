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

void WeightFile::pack_for_products(const std::vector<const Tensor*>& matmul, const std::vector<const Tensor*>& row_read,
                                   const ops::Kernels& kernels) {
  struct Copy {
    Tensor* t;
    ops::Packing how;
    size_t rows, at;  // rows packed (whole groups); offset in the buffer
  };
  std::vector<Copy> copies;
  size_t total = 0;
  for (const Tensor* m : matmul) {
    auto it = tensors_.find(m->name);
    if (it == tensors_.end() || &it->second != m) continue;  // not one of this file's
    Tensor& t = it->second;
    const TypeInfo& info = t.info();
    const ops::Packing how = ops::packing_for(info, kernels);
    if (!how.repack || t.n_dims < 2 || t.packed) continue;
    if (std::any_of(copies.begin(), copies.end(), [&](const Copy& c) { return c.t == &t; })) continue;  // listed twice
    const size_t group = info.group_rows();
    const size_t rows = size_t(t.n_rows()) / group * group;
    if (rows == 0) continue;
    // A group's block column may hold more than its blocks (Q4_K: its scales unpacked).
    const size_t bytes = rows / group * (size_t(t.row_len()) / size_t(info.block)) * how.group_bytes;
    copies.push_back({&t, how, rows, total});
    total += (bytes + 63) / 64 * 64;  // each copy cache-line aligned: no panel column straddles two lines
  }
  if (copies.empty()) return;
  // One buffer for every copy, on huge pages where the system gives them: the
  // products stream all of it for every token.
  packed_ = ZeroedMemory(total, true);
  for (const Copy& c : copies) {
    Tensor& t = *c.t;
    uint8_t* out = packed_.as<uint8_t>() + c.at;
    c.how.repack(t.data, out, c.rows, size_t(t.row_len()));
    t.packed = out;
    t.packed_rows = int64_t(c.rows);
    if (mapped_ && std::find(row_read.begin(), row_read.end(), &t) == row_read.end())
      release_mapped_pages(t.data, c.rows * t.row_bytes());
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
