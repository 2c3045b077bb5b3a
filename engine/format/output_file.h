// A file written whole or not at all: the bytes go to PATH.part (created
// fresh, never through a link) and commit() renames it onto PATH. Nothing is
// left behind when writing fails or commit() is never reached.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace qkv {

// Throws Error when `bytes` would not fit on the file system `path` is to be
// written on (and names both figures); checked before any work that size
// calls for.
void check_output_space(const std::string& path, double bytes);

class OutputFile {
 public:
  // Refuses up front an existing PATH that is not a regular file (a device,
  // FIFO, symlink or directory would be replaced by the rename), and `bytes`
  // more than the file system has free.
  OutputFile(const std::string& path, uint64_t bytes);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Both throw Error naming the path (a full disk, an I/O error).
  void write(const void* p, size_t n);
  void commit();
  const std::string& path() const { return path_; }

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  bool ok_ = true;
};

}  // namespace qkv
