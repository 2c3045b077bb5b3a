// Shared by the libFuzzer targets: fuzz input as a file the loaders can open
// (an anonymous in-memory file), and the place the real vocabularies live.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace qkv::fuzz {

class MemFile {
 public:
  MemFile(const uint8_t* data, size_t size) {
    fd_ = ::memfd_create("qkv-fuzz", MFD_CLOEXEC);
    if (fd_ < 0) std::abort();  // the fuzzer's own setup, not the library
    for (size_t done = 0; done < size;) {
      const ssize_t n = ::write(fd_, data + done, size - done);
      if (n <= 0) std::abort();
      done += size_t(n);
    }
  }
  ~MemFile() { ::close(fd_); }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_ = -1;
};

inline std::string models_dir() {
  const char* env = std::getenv("QKV_MODELS_DIR");
  return env && *env ? env : QKV_DEFAULT_MODELS_DIR;
}

}  // namespace qkv::fuzz
