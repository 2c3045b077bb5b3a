#include "engine/format/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "engine/error.h"

namespace qkv {

void release_mapped_pages(const void* p, size_t bytes) {
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (uintptr_t(p) + page - 1) / page * page, end = (uintptr_t(p) + bytes) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);  // advice: failure is harmless
}

MappedFile::MappedFile(const std::string& path, bool use_mmap) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(cat(path, ": cannot open: ", std::strerror(errno)), Errc::Io);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    throw Error(cat(path, ": cannot stat: ", std::strerror(e)), Errc::Io);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(cat(path, ": not a regular file"), Errc::Io);
  }
  size_ = size_t(st.st_size);
  if (size_ == 0) {
    ::close(fd);
    throw Error(cat(path, ": file is empty"));
  }
  if (!use_mmap) {
    uint8_t* buf = static_cast<uint8_t*>(std::aligned_alloc(64, (size_ + 63) / 64 * 64));
    if (!buf) {
      ::close(fd);
      throw Error(cat(path, ": cannot allocate ", size_, " bytes to read it"), Errc::OutOfMemory);
    }
    size_t done = 0;
    while (done < size_) {
      const ssize_t n = ::read(fd, buf + done, size_ - done);
      if (n <= 0) {
        const int e = errno;
        ::close(fd);
        std::free(buf);
        throw Error(cat(path, ": read failed at byte ", done, ": ", n == 0 ? "unexpected end" : std::strerror(e)), Errc::Io);
      }
      done += size_t(n);
    }
    ::close(fd);
    data_ = buf;
    return;
  }
  // MAP_POPULATE reads the file in now, so the first token does not pay for page faults.
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  const int e = errno;
  ::close(fd);
  if (p == MAP_FAILED) throw Error(cat(path, ": cannot map: ", std::strerror(e)), Errc::Io);
  data_ = static_cast<const uint8_t*>(p);
  mapped_ = true;
}

MappedFile::~MappedFile() {
  if (data_ && mapped_) ::munmap(const_cast<uint8_t*>(data_), size_);
  if (data_ && !mapped_) std::free(const_cast<uint8_t*>(data_));
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
