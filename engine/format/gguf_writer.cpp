#include "engine/format/gguf_writer.h"

#include <cstring>

#include "engine/error.h"
#include "engine/format/output_file.h"

namespace qkv {

template <class T>
void GgufWriter::put(T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  meta_.insert(meta_.end(), b, b + sizeof(T));
}

void GgufWriter::put_string(const std::string& s) {
  put(uint64_t(s.size()));
  meta_.insert(meta_.end(), s.begin(), s.end());
}

void GgufWriter::key(const std::string& k, GgufType t) {
  put_string(k);
  put(uint32_t(t));
  ++n_kv_;
}

void GgufWriter::add_string(const std::string& k, const std::string& v) { key(k, GgufType::STRING); put_string(v); }
void GgufWriter::add_u32(const std::string& k, uint32_t v) { key(k, GgufType::U32); put(v); }
void GgufWriter::add_i32(const std::string& k, int32_t v) { key(k, GgufType::I32); put(v); }
void GgufWriter::add_f32(const std::string& k, float v) { key(k, GgufType::F32); put(v); }
void GgufWriter::add_bool(const std::string& k, bool v) { key(k, GgufType::BOOL); put(uint8_t(v)); }

void GgufWriter::add_string_array(const std::string& k, const std::vector<std::string>& v) {
  key(k, GgufType::ARRAY);
  put(uint32_t(GgufType::STRING));
  put(uint64_t(v.size()));
  for (const std::string& s : v) put_string(s);
}

void GgufWriter::add_f32_array(const std::string& k, const std::vector<float>& v) {
  key(k, GgufType::ARRAY);
  put(uint32_t(GgufType::F32));
  put(uint64_t(v.size()));
  for (float f : v) put(f);
}

void GgufWriter::add_i32_array(const std::string& k, const std::vector<int32_t>& v) {
  key(k, GgufType::ARRAY);
  put(uint32_t(GgufType::I32));
  put(uint64_t(v.size()));
  for (int32_t x : v) put(x);
}

void GgufWriter::add_value(const std::string& k, const GgufValue& v) {
  key(k, v.type);
  switch (v.type) {
    case GgufType::STRING: put_string(v.str); break;
    case GgufType::ARRAY:
      put(uint32_t(v.elem_type));
      put(v.count);
      meta_.insert(meta_.end(), v.elems, v.elems + v.elems_bytes);
      break;
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: put(uint8_t(v.u)); break;
    case GgufType::U16: case GgufType::I16: put(uint16_t(v.u)); break;
    case GgufType::U32: case GgufType::I32: put(uint32_t(v.u)); break;
    case GgufType::U64: case GgufType::I64: put(v.u); break;
    case GgufType::F32: put(float(v.f)); break;
    case GgufType::F64: put(v.f); break;
  }
}

void GgufWriter::add_tensor(const std::string& name, uint32_t ggml_type, const std::vector<int64_t>& ne, uint64_t n_bytes) {
  tensors_.push_back({name, ggml_type, ne, n_bytes});
}

uint64_t GgufWriter::file_bytes() const {
  uint64_t header = 24 + meta_.size(), data = 0;
  for (const TensorDecl& t : tensors_) {
    header += 8 + t.name.size() + 4 + 8 * t.ne.size() + 4 + 8;
    data = (data + t.n_bytes + alignment_ - 1) / alignment_ * alignment_;
  }
  return (header + alignment_ - 1) / alignment_ * alignment_ + data;
}

void GgufWriter::write(const std::string& path, const std::function<void(size_t, std::vector<uint8_t>&)>& data) const {
  OutputFile f(path, file_bytes());
  write_to(f, data);
  f.commit();
}

void GgufWriter::write_to(OutputFile& f, const std::function<void(size_t, std::vector<uint8_t>&)>& data) const {
  auto out = [&](const void* p, size_t n) { f.write(p, n); };
  auto u32 = [&](uint32_t v) { out(&v, 4); };
  auto u64 = [&](uint64_t v) { out(&v, 8); };
  const uint8_t zeros[64] = {};
  auto pad = [&](uint64_t pos) {
    for (uint64_t p = pos; p % alignment_; p += std::min<uint64_t>(64, alignment_ - p % alignment_))
      out(zeros, size_t(std::min<uint64_t>(64, alignment_ - p % alignment_)));
  };

  u32(0x46554747);
  u32(3);
  u64(tensors_.size());
  u64(n_kv_);
  out(meta_.data(), meta_.size());
  uint64_t header = 24 + meta_.size(), offset = 0;
  for (const TensorDecl& t : tensors_) {
    u64(t.name.size());
    out(t.name.data(), t.name.size());
    u32(uint32_t(t.ne.size()));
    for (int64_t d : t.ne) u64(uint64_t(d));
    u32(t.type);
    u64(offset);
    header += 8 + t.name.size() + 4 + 8 * t.ne.size() + 4 + 8;
    offset = (offset + t.n_bytes + alignment_ - 1) / alignment_ * alignment_;
  }
  pad(header);
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    buf.clear();
    data(i, buf);
    if (buf.size() != tensors_[i].n_bytes)
      throw Error(cat(f.path(), ": tensor ", tensors_[i].name, " produced ", buf.size(), " bytes, declared ", tensors_[i].n_bytes));
    out(buf.data(), buf.size());
    pad(buf.size());
  }
}

}  // namespace qkv
