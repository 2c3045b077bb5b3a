#include "engine/format/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "engine/error.h"

namespace qkv {
namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint64_t kMaxDims = 4;

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

std::string read_string(ByteReader& r, const char* what) {
  const uint64_t len = r.read<uint64_t>(what);
  if (len > r.remaining())
    throw Error(cat(r.file(), ": string length ", len, " at offset ", r.offset() - 8, " (", what,
                    ") exceeds the ", r.remaining(), " bytes left in the file"));
  std::string s(reinterpret_cast<const char*>(r.here()), size_t(len));
  r.skip(size_t(len), what);
  return s;
}

// Reads one scalar of type t into v.
void read_scalar(ByteReader& r, GgufType t, GgufValue& v, const char* what) {
  switch (t) {
    case GgufType::U8: v.u = r.read<uint8_t>(what); v.i = int64_t(v.u); break;
    case GgufType::I8: v.i = r.read<int8_t>(what); v.u = uint64_t(v.i); break;
    case GgufType::U16: v.u = r.read<uint16_t>(what); v.i = int64_t(v.u); break;
    case GgufType::I16: v.i = r.read<int16_t>(what); v.u = uint64_t(v.i); break;
    case GgufType::U32: v.u = r.read<uint32_t>(what); v.i = int64_t(v.u); break;
    case GgufType::I32: v.i = r.read<int32_t>(what); v.u = uint64_t(v.i); break;
    case GgufType::U64: v.u = r.read<uint64_t>(what); v.i = int64_t(v.u); break;
    case GgufType::I64: v.i = r.read<int64_t>(what); v.u = uint64_t(v.i); break;
    case GgufType::F32: v.f = r.read<float>(what); break;
    case GgufType::F64: v.f = r.read<double>(what); break;
    case GgufType::BOOL: {
      const uint8_t b = r.read<uint8_t>(what);
      if (b > 1) throw Error(cat(r.file(), ": bool value ", int(b), " at offset ", r.offset() - 1, " (", what, ") is not 0 or 1"));
      v.u = b; v.i = b;
      break;
    }
    default: break;
  }
}

void read_value(ByteReader& r, GgufType t, GgufValue& v, const std::string& key) {
  v.type = t;
  const char* what = key.c_str();
  if (t == GgufType::STRING) {
    v.str = read_string(r, what);
  } else if (t == GgufType::ARRAY) {
    const uint32_t et = r.read<uint32_t>(what);
    if (et > uint32_t(GgufType::F64))
      throw Error(cat(r.file(), ": key ", key, ": array element type ", et, " is not a GGUF type"));
    if (et == uint32_t(GgufType::ARRAY))
      throw Error(cat(r.file(), ": key ", key, ": nested arrays are not supported"));
    v.elem_type = GgufType(et);
    v.count = r.read<uint64_t>(what);
    v.elems = r.here();
    const size_t start = r.offset();
    if (v.elem_type == GgufType::STRING) {
      // Each string is at least its 8-byte length.
      if (v.count > r.remaining() / 8)
        throw Error(cat(r.file(), ": key ", key, ": array of ", v.count, " strings cannot fit in the ", r.remaining(), " bytes left"));
      for (uint64_t i = 0; i < v.count; ++i) {
        const uint64_t len = r.read<uint64_t>(what);
        if (len > r.remaining())
          throw Error(cat(r.file(), ": key ", key, ": string ", i, " has length ", len, ", more than the ", r.remaining(), " bytes left"));
        r.skip(size_t(len), what);
      }
    } else {
      uint64_t bytes;
      if (mul_overflows(v.count, scalar_size(v.elem_type), &bytes) || bytes > r.remaining())
        throw Error(cat(r.file(), ": key ", key, ": array of ", v.count, " ", gguf_type_name(v.elem_type),
                        " does not fit in the ", r.remaining(), " bytes left"));
      r.skip(size_t(bytes), what);
    }
    v.elems_bytes = r.offset() - start;
  } else if (uint32_t(t) <= uint32_t(GgufType::F64)) {
    read_scalar(r, t, v, what);
  } else {
    throw Error(cat(r.file(), ": key ", key, ": value type ", uint32_t(t), " is not a GGUF type"));
  }
}

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  const uint32_t i = uint32_t(t);
  return i < 13 ? names[i] : "invalid";
}

GgufFile::GgufFile(const std::string& path, bool use_mmap) : file_(path, use_mmap) {
  ByteReader r(file_.data(), file_.size(), path);
  const uint32_t magic = r.read<uint32_t>("magic");
  if (magic != kGgufMagic) throw Error(cat(path, ": not a GGUF file (bad magic)"));
  version_ = r.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3)
    throw Error(cat(path, ": GGUF version ", version_, " is not supported (expected 2 or 3)"));
  const uint64_t n_tensors = r.read<uint64_t>("tensor count");
  const uint64_t n_kv = r.read<uint64_t>("metadata count");
  // Every key-value pair takes at least 12 bytes, every tensor info at least 24.
  if (n_kv > r.remaining() / 12)
    throw Error(cat(path, ": metadata count ", n_kv, " is impossible for a file of ", file_.size(), " bytes"));
  if (n_tensors > r.remaining() / 24)
    throw Error(cat(path, ": tensor count ", n_tensors, " is impossible for a file of ", file_.size(), " bytes"));

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = read_string(r, "metadata key");
    const uint32_t t = r.read<uint32_t>("metadata value type");
    if (t > uint32_t(GgufType::F64))
      throw Error(cat(path, ": key ", key, ": value type ", t, " is not a GGUF type"));
    GgufValue v;
    read_value(r, GgufType(t), v, key);
    if (kv_.count(key)) throw Error(cat(path, ": duplicate metadata key ", key));
    key_order_.push_back(key);
    kv_.emplace(std::move(key), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (a->type != GgufType::U32 && a->type != GgufType::I32 && a->type != GgufType::U64)
      throw Error(cat(path, ": general.alignment has type ", gguf_type_name(a->type), ", expected u32"));
    alignment_ = a->u;
    if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) || alignment_ > (1u << 20))
      throw Error(cat(path, ": general.alignment ", alignment_, " is not a power of two up to 1 MiB"));
  }

  tensors_.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo ti;
    ti.name = read_string(r, "tensor name");
    ti.n_dims = r.read<uint32_t>("tensor n_dims");
    if (ti.n_dims < 1 || ti.n_dims > kMaxDims)
      throw Error(cat(path, ": tensor ", ti.name, ": n_dims ", ti.n_dims, " outside 1..4"));
    uint64_t n_el = 1;
    for (uint32_t d = 0; d < ti.n_dims; ++d) {
      const uint64_t ne = r.read<uint64_t>("tensor dimension");
      if (ne == 0 || ne > uint64_t(std::numeric_limits<int64_t>::max()) || mul_overflows(n_el, ne, &n_el))
        throw Error(cat(path, ": tensor ", ti.name, ": dimension ", d, " = ", ne, " is zero or overflows"));
      ti.ne[d] = int64_t(ne);
    }
    ti.ggml_type = r.read<uint32_t>("tensor type");
    ti.offset = r.read<uint64_t>("tensor offset");
    const ops::TypeInfo* lay = ops::find_type(ti.ggml_type);
    if (!lay)
      throw Error(cat(path, ": tensor ", ti.name, ": tensor type ", ops::type_name(ti.ggml_type), " (", ti.ggml_type,
                      ") is not supported"));
    if (uint64_t(ti.ne[0]) % uint64_t(lay->block) != 0)
      throw Error(cat(path, ": tensor ", ti.name, ": rows of ", ti.ne[0], " values are not a multiple of the ",
                      lay->name, " block size ", lay->block, " (blocks would straddle rows)"));
    if (mul_overflows(n_el / uint64_t(lay->block), lay->block_bytes, &ti.n_bytes))
      throw Error(cat(path, ": tensor ", ti.name, ": byte size overflows"));
    if (tensor_index_.count(ti.name)) throw Error(cat(path, ": duplicate tensor name ", ti.name));
    tensor_index_[ti.name] = tensors_.size();
    tensors_.push_back(std::move(ti));
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t pos = r.offset();
  data_offset_ = size_t((pos + alignment_ - 1) / alignment_ * alignment_);
  if (n_tensors > 0 && data_offset_ > file_.size())
    throw Error(cat(path, ": data section at offset ", data_offset_, " is past the end of the file (", file_.size(), " bytes)"));
  const uint64_t data_size = file_.size() > data_offset_ ? file_.size() - data_offset_ : 0;
  std::vector<std::pair<uint64_t, const GgufTensorInfo*>> by_offset;
  for (const GgufTensorInfo& ti : tensors_) {
    by_offset.emplace_back(ti.offset, &ti);
    if (ti.offset % alignment_ != 0)
      throw Error(cat(path, ": tensor ", ti.name, ": offset ", ti.offset, " is not aligned to ", alignment_));
    // Tensors are read in place (their floats and blocks' scales through
    // typed pointers): an alignment of 1 or 2 can put them off 4 bytes.
    if ((data_offset_ + ti.offset) % 4 != 0)
      throw Error(cat(path, ": tensor ", ti.name, ": data at byte ", data_offset_ + ti.offset,
                      " is not 4-byte aligned (general.alignment ", alignment_, "); qkv reads tensors in place"));
    if (ti.offset > data_size || ti.n_bytes > data_size - ti.offset)
      throw Error(cat(path, ": tensor ", ti.name, ": data [", ti.offset, ", +", ti.n_bytes,
                      ") lies outside the data section of ", data_size, " bytes (file truncated?)"));
  }
  // No two tensors may share bytes.
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto& a, const auto& b) { return a.first < b.first || (a.first == b.first && a.second < b.second); });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo& prev = *by_offset[i - 1].second;
    if (by_offset[i].first < prev.offset + prev.n_bytes)
      throw Error(cat(path, ": tensor ", by_offset[i].second->name, " at offset ", by_offset[i].first,
                      " overlaps tensor ", prev.name, " [", prev.offset, ", +", prev.n_bytes, ")"));
  }
  // Bytes past the last tensor (anything appended to the file) are no part
  // of the model: their pages go back rather than stay resident.
  if (file_.mapped()) {
    uint64_t end = data_offset_;
    for (const GgufTensorInfo& ti : tensors_) end = std::max<uint64_t>(end, data_offset_ + ti.offset + ti.n_bytes);
    if (end < file_.size()) release_mapped_pages(file_.data() + end, file_.size() - size_t(end));
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw Error(cat(path(), ": missing metadata key ", key));
  if (v->type != GgufType::STRING)
    throw Error(cat(path(), ": key ", key, " has type ", gguf_type_name(v->type), ", expected string"));
  return v->str;
}

std::optional<uint64_t> GgufFile::get_uint(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  switch (v->type) {
    case GgufType::U8: case GgufType::U16: case GgufType::U32: case GgufType::U64: return v->u;
    case GgufType::I8: case GgufType::I16: case GgufType::I32: case GgufType::I64:
      if (v->i < 0) throw Error(cat(path(), ": key ", key, " is negative (", v->i, ")"));
      return uint64_t(v->i);
    default:
      throw Error(cat(path(), ": key ", key, " has type ", gguf_type_name(v->type), ", expected an integer"));
  }
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type == GgufType::F32 || v->type == GgufType::F64) return v->f;
  if (v->type == GgufType::BOOL || v->type == GgufType::STRING || v->type == GgufType::ARRAY)
    throw Error(cat(path(), ": key ", key, " has type ", gguf_type_name(v->type), ", expected a number"));
  return double(v->i);
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw Error(cat(path(), ": missing metadata key ", key));
  if (v->type != GgufType::ARRAY || v->elem_type != GgufType::STRING)
    throw Error(cat(path(), ": key ", key, " is not an array of strings"));
  ByteReader r(v->elems, v->elems_bytes, path());
  std::vector<std::string> out;
  out.reserve(size_t(v->count));
  for (uint64_t i = 0; i < v->count; ++i) out.push_back(read_string(r, key.c_str()));
  return out;
}

std::vector<float> GgufFile::get_float_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw Error(cat(path(), ": missing metadata key ", key));
  if (v->type != GgufType::ARRAY || v->elem_type != GgufType::F32)
    throw Error(cat(path(), ": key ", key, " is not an array of f32"));
  std::vector<float> out(size_t(v->count));
  if (v->count) std::memcpy(out.data(), v->elems, size_t(v->count) * 4);
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw Error(cat(path(), ": missing metadata key ", key));
  if (v->type != GgufType::ARRAY) throw Error(cat(path(), ": key ", key, " is not an array"));
  ByteReader r(v->elems, v->elems_bytes, path());
  std::vector<int64_t> out;
  out.reserve(size_t(v->count));
  for (uint64_t i = 0; i < v->count; ++i) {
    GgufValue e;
    switch (v->elem_type) {
      case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
      case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64:
        read_scalar(r, v->elem_type, e, key.c_str());
        out.push_back(e.i);
        break;
      default:
        throw Error(cat(path(), ": key ", key, " is an array of ", gguf_type_name(v->elem_type), ", expected integers"));
    }
  }
  return out;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Tensor GgufFile::tensor(const GgufTensorInfo& info) const {
  Tensor t;
  t.name = info.name;
  const ops::TypeInfo* type = ops::find_type(info.ggml_type);
  if (!type || !type->computable())
    throw Error(cat(path(), ": tensor ", info.name, " has type ", ops::type_name(info.ggml_type),
                    ", which qkv cannot compute with yet (supported: ", ops::computable_type_names(), ")"));
  t.type = type->type;
  t.n_dims = int(info.n_dims);
  for (int d = 0; d < 4; ++d) t.ne[d] = info.ne[d];
  t.data = file_.data() + data_offset_ + info.offset;
  return t;
}

}  // namespace qkv
