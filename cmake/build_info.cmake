# cmake -DSOURCE_DIR=... -DOUTPUT=... -P build_info.cmake
#
# Writes OUTPUT, the C++ source of qkv::build_commit() and build_number()
# (qkv bench's build_commit / build_number, llama-bench's keys), from the
# source tree's git revision. Run on every build, not once at configure time,
# so that a binary never names an older commit than the one it was built from;
# the file is rewritten only when the revision moved, so an unchanged tree
# recompiles nothing. Outside a git checkout: "unknown" and 0.
execute_process(COMMAND git rev-parse --short=7 HEAD WORKING_DIRECTORY ${SOURCE_DIR}
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE commit_rc)
execute_process(COMMAND git rev-list --count HEAD WORKING_DIRECTORY ${SOURCE_DIR}
                OUTPUT_VARIABLE count OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE count_rc)
if(NOT commit_rc EQUAL 0 OR NOT commit MATCHES "^[0-9a-f]+$")
  set(commit unknown)
endif()
if(NOT count_rc EQUAL 0 OR NOT count MATCHES "^[0-9]+$")
  set(count 0)
endif()

set(text "// Written by cmake/build_info.cmake at build time: the revision built.
#include \"engine/api/qkv.hpp\"

namespace qkv {
std::string build_commit() { return \"${commit}\"; }
int build_number() { return ${count}; }
}  // namespace qkv
")
if(EXISTS ${OUTPUT})
  file(READ ${OUTPUT} old)
endif()
if(NOT old STREQUAL text)
  file(WRITE ${OUTPUT} "${text}")
endif()
