#include "engine/format/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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

namespace {
const char* kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}
}  // namespace

int open_regular_file(const std::string& path, size_t* size) {
  if (path.empty()) throw Error("cannot open a file with an empty name", Errc::InvalidArgument);
  // O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever;
  // on a regular file it changes nothing.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw Error(cat(path, ": cannot open: ", std::strerror(errno)), Errc::Io);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    throw Error(cat(path, ": cannot stat: ", std::strerror(e)), Errc::Io);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(cat(path, ": not a regular file (", kind_of(st.st_mode), ")"), Errc::Io);
  }
  *size = size_t(st.st_size);
  return fd;
}

std::string read_file_head(const std::string& path, size_t n) {
  size_t size = 0;
  const int fd = open_regular_file(path, &size);
  std::string head(std::min(n, size), '\0');
  size_t done = 0;
  while (done < head.size()) {
    const ssize_t r = ::read(fd, &head[done], head.size() - done);
    if (r <= 0) {
      const int e = errno;
      ::close(fd);
      throw Error(cat(path, ": read failed: ", r == 0 ? "unexpected end" : std::strerror(e)), Errc::Io);
    }
    done += size_t(r);
  }
  ::close(fd);
  return head;
}

MappedFile::MappedFile(const std::string& path, bool use_mmap) : path_(path) {
  const int fd = open_regular_file(path, &size_);
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
