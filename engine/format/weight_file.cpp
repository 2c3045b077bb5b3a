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
                                   const ops::Kernels& kernels, const ParallelFor& parallel) {
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
  // Each copy in pieces of row groups, on every thread `parallel` has: a
  // group's copy depends on its own rows alone (one after another in the
  // copy, a block column's group_bytes each), and a large file's repacking
  // takes seconds on one core.
  struct Piece {
    const Copy* c;
    size_t g0, g1;  // row groups
  };
  constexpr size_t kPieceGroups = 32;
  std::vector<Piece> pieces;
  for (const Copy& c : copies) {
    const size_t groups = c.rows / c.t->info().group_rows();
    for (size_t g = 0; g < groups; g += kPieceGroups) pieces.push_back({&c, g, std::min(groups, g + kPieceGroups)});
  }
  const auto repack = [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      const Piece& p = pieces[i];
      const Tensor& t = *p.c->t;
      const size_t group = t.info().group_rows(), n = size_t(t.row_len());
      const size_t bytes_per_group = n / size_t(t.info().block) * p.c->how.group_bytes;  // in the copy
      p.c->how.repack(static_cast<const uint8_t*>(t.data) + p.g0 * group * t.row_bytes(),
                      packed_.as<uint8_t>() + p.c->at + p.g0 * bytes_per_group, (p.g1 - p.g0) * group, n);
    }
  };
  if (parallel) parallel(pieces.size(), repack);
  else repack(0, pieces.size());
  for (const Copy& c : copies) {
    Tensor& t = *c.t;
    t.packed = packed_.as<uint8_t>() + c.at;
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

void WeightFile::check_finite(const ParallelFor& parallel) const {
  std::vector<const Tensor*> checked;  // in the map's order: the first bad one is named, whatever the threads
  for (const auto& [name, t] : tensors_)
    if (t.info().find_nonfinite) checked.push_back(&t);
  std::vector<int64_t> first(checked.size(), -1);
  const auto check = [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      first[i] = checked[i]->info().find_nonfinite(checked[i]->data, size_t(checked[i]->n_elements()));
  };
  if (parallel) parallel(checked.size(), check);
  else check(0, checked.size());
  for (size_t i = 0; i < checked.size(); ++i) {
    if (first[i] < 0) continue;
    const TypeInfo& info = checked[i]->info();
    throw Error(cat(path_, ": tensor ", checked[i]->name, " holds a value that is not finite (NaN or infinite) in its ",
                    info.block > 1 ? "block " : "element ", first[i], info.block > 1 ? "'s scale" : "",
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
