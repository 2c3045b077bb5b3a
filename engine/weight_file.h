// A model's weights file, whatever its format (llama2.c .bin or GGUF): its
// configuration, its tensors under GGUF names ("blk.3.attn_q.weight") and, for
// GGUF, its vocabulary. The file stays mapped for the WeightFile's lifetime;
// tensors are views into it.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/model_config.h"
#include "engine/tensor.h"
#include "engine/vocab.h"

namespace qkv {

class WeightFile {
 public:
  // Opens a .bin or .gguf file (told apart by the magic); throws qkv::Error.
  static std::unique_ptr<WeightFile> open(const std::string& path, bool use_mmap = true);
  virtual ~WeightFile() = default;

  const std::string& path() const { return path_; }
  const std::string& format() const { return format_; }
  const ModelConfig& config() const { return config_; }
  const std::optional<Vocab>& vocab() const { return vocab_; }

  const Tensor* find(const std::string& name) const;

  // Gives each Q8_0 / Q4_0 / Q4_K matrix of `matmul` with at least 8 rows its
  // row-interleaved copy (Tensor::packed), owned by this file. Where the
  // file is mapped, the pages of the originals that only the copy will be
  // read from (not in `row_read`) go back to the system. Once, before the
  // tensors are shared.
  void pack_for_products(const std::vector<const Tensor*>& matmul, const std::vector<const Tensor*>& row_read);
  // The tensor, checked to have exactly these dimensions (ne[0] first).
  const Tensor& require(const std::string& name, std::vector<int64_t> shape) const;

 protected:
  WeightFile() = default;
  void add(Tensor t) { tensors_[t.name] = std::move(t); }

  std::string path_, format_;
  ModelConfig config_;
  std::optional<Vocab> vocab_;
  std::map<std::string, Tensor> tensors_;
  bool mapped_ = false;  // tensor data lies in a read-only file mapping
  std::vector<std::unique_ptr<uint8_t[]>> packed_;  // the buffers behind Tensor::packed
};

std::unique_ptr<WeightFile> open_llama2c_bin(const std::string& path, bool use_mmap = true);
std::unique_ptr<WeightFile> open_gguf(const std::string& path, bool use_mmap = true);

}  // namespace qkv
