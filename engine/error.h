// qkv::Error (declared in the public header) and cat(), which builds the
// messages: which file, which tensor or key, what was expected, what was found.
#pragma once

#include <sstream>
#include <string>

#include "engine/api/qkv.hpp"

namespace qkv {

template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace qkv
