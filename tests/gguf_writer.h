// A minimal GGUF writer for the tests: builds files with any metadata value
// type, any version and tensors of any type, so the loader can be tested on
// files no converter made for us.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "engine/format/gguf.h"

namespace qkv::test {

class GgufWriter {
 public:
  explicit GgufWriter(uint32_t version = 3, uint32_t alignment = 32) : version_(version), alignment_(alignment) {}

  template <class T>
  void kv(const std::string& key, GgufType type, T value) {
    begin_kv(key, type);
    put(meta_, value);
  }
  void kv_string(const std::string& key, const std::string& value) {
    begin_kv(key, GgufType::STRING);
    put_string(meta_, value);
  }
  template <class T>
  void kv_array(const std::string& key, GgufType elem, const std::vector<T>& values) {
    begin_kv(key, GgufType::ARRAY);
    put(meta_, uint32_t(elem));
    put(meta_, uint64_t(values.size()));
    for (const T& v : values) put(meta_, v);
  }
  void kv_string_array(const std::string& key, const std::vector<std::string>& values) {
    begin_kv(key, GgufType::ARRAY);
    put(meta_, uint32_t(GgufType::STRING));
    put(meta_, uint64_t(values.size()));
    for (const std::string& v : values) put_string(meta_, v);
  }
  // A key with the value another file holds.
  void kv_copy(const std::string& key, const GgufValue& v) {
    begin_kv(key, v.type);
    switch (v.type) {
      case GgufType::STRING: put_string(meta_, v.str); break;
      case GgufType::ARRAY:
        put(meta_, uint32_t(v.elem_type));
        put(meta_, v.count);
        meta_.insert(meta_.end(), v.elems, v.elems + v.elems_bytes);
        break;
      case GgufType::U8: case GgufType::I8: case GgufType::BOOL: put(meta_, uint8_t(v.u)); break;
      case GgufType::U16: case GgufType::I16: put(meta_, uint16_t(v.u)); break;
      case GgufType::U32: case GgufType::I32: put(meta_, uint32_t(v.u)); break;
      case GgufType::U64: case GgufType::I64: put(meta_, v.u); break;
      case GgufType::F32: put(meta_, float(v.f)); break;
      case GgufType::F64: put(meta_, v.f); break;
    }
  }
  // Every key of an existing file, as it is.
  void copy_metadata(const GgufFile& g) {
    for (const auto& [key, v] : g.metadata()) kv_copy(key, v);
  }

  void tensor(const std::string& name, uint32_t ggml_type, std::vector<int64_t> ne, const void* data, size_t bytes) {
    while (data_.size() % alignment_) data_.push_back(0);
    put_string(infos_, name);
    put(infos_, uint32_t(ne.size()));
    for (int64_t d : ne) put(infos_, uint64_t(d));
    put(infos_, ggml_type);
    put(infos_, uint64_t(data_.size()));
    const uint8_t* p = static_cast<const uint8_t*>(data);
    data_.insert(data_.end(), p, p + bytes);
    ++n_tensors_;
  }

  std::string bytes() const {
    std::vector<uint8_t> out;
    put(out, uint32_t(0x46554747));
    put(out, version_);
    put(out, n_tensors_);
    put(out, n_kv_);
    out.insert(out.end(), meta_.begin(), meta_.end());
    out.insert(out.end(), infos_.begin(), infos_.end());
    while (out.size() % alignment_) out.push_back(0);
    out.insert(out.end(), data_.begin(), data_.end());
    return std::string(out.begin(), out.end());
  }

 private:
  template <class T>
  static void put(std::vector<uint8_t>& out, T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
  }
  static void put_string(std::vector<uint8_t>& out, const std::string& s) {
    put(out, uint64_t(s.size()));
    out.insert(out.end(), s.begin(), s.end());
  }
  void begin_kv(const std::string& key, GgufType type) {
    put_string(meta_, key);
    put(meta_, uint32_t(type));
    ++n_kv_;
  }

  uint32_t version_, alignment_;
  uint64_t n_tensors_ = 0, n_kv_ = 0;
  std::vector<uint8_t> meta_, infos_, data_;
};

}  // namespace qkv::test
