// A model's weights file, whatever its format (llama2.c .bin or GGUF): its
// metadata under GGUF key names, its tensors under GGUF names
// ("blk.3.attn_q.weight") and, for GGUF, its vocabulary. The file stays
// mapped for the WeightFile's lifetime; tensors are views into it. It knows
// formats, not models: the architecture named by general.architecture reads
// its own hyper-parameters and tensors from here (runtime/architecture.h).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/format/tensor.h"
#include "engine/format/zeroed_memory.h"
#include "engine/text/vocab.h"

namespace qkv {

// Runs fn(begin, end) on chunks covering [0, n), each once, on any threads
// (the caller's thread pool: this layer has none); empty: all on the caller.
using ParallelFor = std::function<void(size_t n, const std::function<void(size_t begin, size_t end)>& fn)>;

class WeightFile {
 public:
  // Opens a .bin or .gguf file (told apart by the magic); throws qkv::Error.
  static std::unique_ptr<WeightFile> open(const std::string& path, bool use_mmap = true);
  virtual ~WeightFile() = default;

  const std::string& path() const { return path_; }
  const std::string& format() const { return format_; }
  // general.architecture ("llama" for a llama2.c checkpoint).
  const std::string& architecture() const { return arch_; }
  const std::optional<Vocab>& vocab() const { return vocab_; }

  // Metadata by GGUF key ("llama.block_count"); a llama2.c header is offered
  // under the keys llama.cpp's converter writes for it. Missing: nullopt; a
  // value of another kind (or a negative one for get_uint) throws, naming the
  // file and the key.
  virtual std::optional<uint64_t> get_uint(const std::string& key) const = 0;
  virtual std::optional<double> get_float(const std::string& key) const = 0;

  const Tensor* find(const std::string& name) const;
  // Every tensor's name, in name order.
  std::vector<std::string> tensor_names() const;

  // Gives each matrix of `matmul` whose type has a packed form (TypeInfo::repack)
  // and at least one group of rows its packed copy (Tensor::packed), in the
  // layout the products of `kernels` read (ops::packing_for), owned by this file. Where the
  // file is mapped, the pages of the originals that only the copy will be
  // read from (not in `row_read`) go back to the system. Once, before the
  // tensors are shared; in pieces over `parallel`'s threads.
  void pack_for_products(const std::vector<const Tensor*>& matmul, const std::vector<const Tensor*>& row_read,
                         const ops::Kernels& kernels, const ParallelFor& parallel = {});
  // Throws qkv::Error naming the first tensor that holds a NaN or infinite
  // value (plain types) or block scale (quantized types): such a file is
  // damaged, and what it computes is garbage (quantized activations would
  // even hide the NaN). One pass over the mapped data, the tensors spread
  // over `parallel`'s threads.
  void check_finite(const ParallelFor& parallel = {}) const;
  // The tensor, checked to have exactly these dimensions (ne[0] first).
  const Tensor& require(const std::string& name, std::vector<int64_t> shape) const;

 protected:
  WeightFile() = default;
  void add(Tensor t) { tensors_[t.name] = std::move(t); }

  std::string path_, format_, arch_;
  std::optional<Vocab> vocab_;
  std::map<std::string, Tensor> tensors_;
  bool mapped_ = false;  // tensor data lies in a read-only file mapping
  ZeroedMemory packed_;  // the buffer behind every Tensor::packed
};

std::unique_ptr<WeightFile> open_llama2c_bin(const std::string& path, bool use_mmap = true);
std::unique_ptr<WeightFile> open_gguf(const std::string& path, bool use_mmap = true);

}  // namespace qkv
