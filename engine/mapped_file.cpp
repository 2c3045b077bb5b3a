#include "engine/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/error.h"

namespace qkv {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(cat(path, ": cannot open: ", std::strerror(errno)));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    throw Error(cat(path, ": cannot stat: ", std::strerror(e)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(cat(path, ": not a regular file"));
  }
  size_ = size_t(st.st_size);
  if (size_ == 0) {
    ::close(fd);
    throw Error(cat(path, ": file is empty"));
  }
  // MAP_POPULATE reads the file in now, so the first token does not pay for page faults.
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  const int e = errno;
  ::close(fd);
  if (p == MAP_FAILED) throw Error(cat(path, ": cannot map: ", std::strerror(e)));
  data_ = static_cast<const uint8_t*>(p);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void ByteReader::need(size_t n, const char* what) const {
  if (n > size_ - pos_)
    throw Error(cat(file_, ": truncated at offset ", pos_, " reading ", what, " (need ", n,
                    " bytes, ", size_ - pos_, " left)"));
}

void ByteReader::seek(size_t pos, const char* what) {
  if (pos > size_) throw Error(cat(file_, ": offset ", pos, " of ", what, " is past the end (", size_, " bytes)"));
  pos_ = pos;
}

}  // namespace qkv
