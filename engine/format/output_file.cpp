#include "engine/format/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/error.h"

namespace qkv {

void check_output_space(const std::string& path, double bytes) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  struct statvfs fs;
  if (::statvfs(dir.c_str(), &fs) == 0) {
    const double free_bytes = double(fs.f_bavail) * double(fs.f_frsize);
    if (bytes > free_bytes)
      throw Error(cat(path, ": needs ", bytes, " bytes (", bytes / double(1ull << 30), " GiB), but its file system has ",
                      uint64_t(free_bytes), " bytes free"), Errc::Io);
  }
}

OutputFile::OutputFile(const std::string& path, uint64_t bytes) : path_(path), tmp_(path + ".part") {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw Error(cat(path, ": exists and is ", S_ISDIR(st.st_mode) ? "a directory" : S_ISLNK(st.st_mode) ? "a symbolic link"
                                                : S_ISCHR(st.st_mode) ? "a character device" : "not a regular file",
                    "; refusing to replace it"), Errc::InvalidArgument);
  if (::lstat(tmp_.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw Error(cat(tmp_, ": exists and is not a regular file; refusing to write through it"), Errc::InvalidArgument);
  check_output_space(path, double(bytes));
  ::unlink(tmp_.c_str());  // a leftover of an interrupted run (a regular file: checked above)
  const int fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  f_ = fd >= 0 ? ::fdopen(fd, "wb") : nullptr;
  if (!f_) {
    const int e = errno;
    if (fd >= 0) ::close(fd);
    throw Error(cat(path, ": cannot create ", tmp_, ": ", std::strerror(e)), Errc::Io);
  }
}

OutputFile::~OutputFile() {
  if (f_) {
    std::fclose(f_);
    std::remove(tmp_.c_str());
  }
}

void OutputFile::write(const void* p, size_t n) {
  if (!f_) throw Error(cat(path_, ": write after commit"), Errc::Internal);
  if (ok_ && n && std::fwrite(p, 1, n, f_) != n) {
    ok_ = false;
    throw Error(cat(path_, ": write failed: ", std::strerror(errno)), Errc::Io);
  }
}

void OutputFile::commit() {
  if (!f_) return;
  const bool flushed = std::fflush(f_) == 0;
  int e = errno;
  const bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  if (flushed && !closed) e = errno;
  if (!flushed || !closed || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    if (flushed && closed) e = errno;
    std::remove(tmp_.c_str());
    throw Error(cat(path_, ": write failed: ", std::strerror(e)), Errc::Io);
  }
}

}  // namespace qkv
