// A whole file's bytes, read-only: memory-mapped, or read into memory (RAII).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace qkv {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path, bool use_mmap = true);  // throws qkv::Error
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  bool mapped() const { return mapped_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
};

// Opens `path` for reading, refusing anything but a regular file (a FIFO,
// device or directory) before it could block or mislead: returns the
// descriptor and fills *size. Throws qkv::Error naming the file and what it is.
int open_regular_file(const std::string& path, size_t* size);

// The first n bytes of a regular file (fewer if it is shorter).
std::string read_file_head(const std::string& path, size_t n);

// Gives the whole pages inside [p, p + bytes) of a read-only private file
// mapping back to the system; reading them again reads the file again.
void release_mapped_pages(const void* p, size_t bytes);

// Bounds-checked little-endian reader over a byte range; every read that would
// pass the end throws qkv::Error naming the file, the offset and the field.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size, std::string file)
      : data_(data), size_(size), file_(std::move(file)) {}

  size_t offset() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  const uint8_t* here() const { return data_ + pos_; }
  const std::string& file() const { return file_; }

  void need(size_t n, const char* what) const;
  void skip(size_t n, const char* what) { need(n, what); pos_ += n; }
  void seek(size_t pos, const char* what);

  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    __builtin_memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  std::string file_;
};

}  // namespace qkv
