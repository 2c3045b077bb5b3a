#include "engine/format/gguf_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <cstdio>
#include <cstring>

#include "engine/error.h"

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

namespace {

// Refuses an output path that exists as anything but a regular file (a
// device, FIFO, symlink or directory would be replaced by the rename), and
// an output that would not fit on its file system.
void check_output(const std::string& path, const std::string& tmp, uint64_t bytes) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw Error(cat(path, ": exists and is ", S_ISDIR(st.st_mode) ? "a directory" : S_ISLNK(st.st_mode) ? "a symbolic link"
                                                : S_ISCHR(st.st_mode) ? "a character device" : "not a regular file",
                    "; refusing to replace it"), Errc::InvalidArgument);
  if (::lstat(tmp.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw Error(cat(tmp, ": exists and is not a regular file; refusing to write through it"), Errc::InvalidArgument);
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  struct statvfs fs;
  if (::statvfs(dir.c_str(), &fs) == 0) {
    const uint64_t free_bytes = uint64_t(fs.f_bavail) * uint64_t(fs.f_frsize);
    if (bytes > free_bytes)
      throw Error(cat(path, ": needs ", bytes, " bytes (", double(bytes) / double(1ull << 30), " GiB), but its file system has ",
                      free_bytes, " bytes free"), Errc::Io);
  }
}

}  // namespace

uint64_t GgufWriter::file_bytes() const {
  uint64_t header = 24 + meta_.size(), data = 0;
  for (const TensorDecl& t : tensors_) {
    header += 8 + t.name.size() + 4 + 8 * t.ne.size() + 4 + 8;
    data = (data + t.n_bytes + alignment_ - 1) / alignment_ * alignment_;
  }
  return (header + alignment_ - 1) / alignment_ * alignment_ + data;
}

void GgufWriter::write(const std::string& path, const std::function<void(size_t, std::vector<uint8_t>&)>& data) const {
  const std::string tmp = path + ".part";
  check_output(path, tmp, file_bytes());
  ::unlink(tmp.c_str());  // a leftover of an interrupted run (a regular file: checked above)
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  std::FILE* f = fd >= 0 ? ::fdopen(fd, "wb") : nullptr;
  if (!f) {
    const int e = errno;
    if (fd >= 0) ::close(fd);
    throw Error(cat(path, ": cannot create ", tmp, ": ", std::strerror(e)), Errc::Io);
  }
  try {
    write_to(f, path, data);
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  const bool closed = std::fclose(f) == 0;
  const int e = errno;
  if (!closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e2 = closed ? errno : e;
    std::remove(tmp.c_str());
    throw Error(cat(path, ": write failed: ", std::strerror(e2)), Errc::Io);
  }
}

void GgufWriter::write_to(std::FILE* f, const std::string& path,
                          const std::function<void(size_t, std::vector<uint8_t>&)>& data) const {
  bool ok = true;
  auto out = [&](const void* p, size_t n) { ok = ok && std::fwrite(p, 1, n, f) == n; };
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
  for (size_t i = 0; i < tensors_.size() && ok; ++i) {
    buf.clear();
    data(i, buf);
    if (buf.size() != tensors_[i].n_bytes)
      throw Error(cat(path, ": tensor ", tensors_[i].name, " produced ", buf.size(), " bytes, declared ", tensors_[i].n_bytes));
    out(buf.data(), buf.size());
    pad(buf.size());
  }
  if (!ok || std::fflush(f) != 0) throw Error(cat(path, ": write failed: ", std::strerror(errno)), Errc::Io);
}

}  // namespace qkv
