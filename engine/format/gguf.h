// GGUF v2/v3 reader: header, metadata of every value type, tensor infos and
// the aligned data section, all validated against the file's size before use.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/format/mapped_file.h"
#include "engine/format/tensor.h"

namespace qkv {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);

struct GgufValue {
  GgufType type = GgufType::U8;
  // Scalars (integers and bools widen to i64/u64, floats to f64).
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  std::string str;
  // Arrays: element type, count, and where the elements start in the file.
  GgufType elem_type = GgufType::U8;
  uint64_t count = 0;
  const uint8_t* elems = nullptr;
  size_t elems_bytes = 0;
};

struct GgufTensorInfo {
  std::string name;
  uint32_t ggml_type = 0;
  uint32_t n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};
  uint64_t offset = 0;  // from the start of the data section
  uint64_t n_bytes = 0;
};

class GgufFile {
 public:
  explicit GgufFile(const std::string& path, bool use_mmap = true);  // throws qkv::Error

  const std::string& path() const { return file_.path(); }
  bool mapped() const { return file_.mapped(); }  // tensor bytes are views of a file mapping
  uint32_t version() const { return version_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  // The keys in the order the file stores them.
  const std::vector<std::string>& key_order() const { return key_order_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  const GgufValue* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // Typed getters: throw if the key is missing (unless a default is given)
  // or holds a value of another kind.
  std::string get_string(const std::string& key) const;
  std::optional<uint64_t> get_uint(const std::string& key) const;  // any integer type >= 0
  std::optional<double> get_float(const std::string& key) const;   // F32/F64 (or integer)
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<float> get_float_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;

  const GgufTensorInfo* find_tensor(const std::string& name) const;
  // A view of a tensor's bytes; throws if its type is not one we compute with.
  Tensor tensor(const GgufTensorInfo& info) const;

 private:
  MappedFile file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  size_t data_offset_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<std::string> key_order_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace qkv
