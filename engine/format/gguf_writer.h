// Writes GGUF v3 files: metadata first, then tensors whose bytes are produced
// one at a time (so a multi-gigabyte file never has to sit in memory).
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "engine/format/gguf.h"

namespace qkv {

class OutputFile;

class GgufWriter {
 public:
  explicit GgufWriter(uint32_t alignment = 32) : alignment_(alignment) {}

  void add_string(const std::string& key, const std::string& v);
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string_array(const std::string& key, const std::vector<std::string>& v);
  void add_f32_array(const std::string& key, const std::vector<float>& v);
  void add_i32_array(const std::string& key, const std::vector<int32_t>& v);
  // A key copied as it is from another file.
  void add_value(const std::string& key, const GgufValue& v);

  // Declares a tensor; its bytes come later from write()'s callback.
  void add_tensor(const std::string& name, uint32_t ggml_type, const std::vector<int64_t>& ne, uint64_t n_bytes);

  // Writes the file (through PATH.part, renamed at the end; nothing is left
  // behind on failure). data(i, out) must fill `out` with exactly the
  // declared bytes of tensor i. Refuses up front an existing PATH that is not
  // a regular file, and a file larger than its file system's free space.
  void write(const std::string& path, const std::function<void(size_t, std::vector<uint8_t>&)>& data) const;
  // The size of the file write() makes.
  uint64_t file_bytes() const;

 private:
  struct TensorDecl {
    std::string name;
    uint32_t type;
    std::vector<int64_t> ne;
    uint64_t n_bytes;
  };
  void write_to(OutputFile& f, const std::function<void(size_t, std::vector<uint8_t>&)>& data) const;
  void key(const std::string& k, GgufType t);
  template <class T>
  void put(T v);
  void put_string(const std::string& s);

  uint32_t alignment_;
  uint64_t n_kv_ = 0;
  std::vector<uint8_t> meta_;
  std::vector<TensorDecl> tensors_;
};

}  // namespace qkv
