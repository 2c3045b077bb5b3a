#!/usr/bin/env bash
# The layer rule, checked on the sources: dependencies point one way,
#   ops <- engine/{format,text,runtime} <- models <- engine/api <- tools
# (the public headers engine/api/qkv.h and qkv.hpp may be included by any
# layer: they only declare), no intrinsics or cpuid outside ops/, no weight
# type ids spelled outside ops/types.*, and no forward pass over 250 lines.
# Argument: the source tree.
set -uo pipefail
root=${1:-.}
cd "$root" || exit 1
status=0
fail() { echo "FAIL: $*"; status=1; }

# includes(FILES...): the project headers they include, one "file: header" a line.
includes() { grep -HoE '#include [<"][^>"]+[>"]' "$@" 2>/dev/null | sed -E 's/#include [<"]([^>"]+)[>"]/\1/'; }

check() {  # check LAYER-GLOB ALLOWED-REGEX
  local files; files=$(git ls-files "$1" 2>/dev/null | grep -E '\.(h|hpp|cpp|c)$' || true)
  [ -z "$files" ] && return
  # shellcheck disable=SC2086
  includes $files | while IFS=: read -r file header; do
    case "$header" in
      */*) ;;            # a project header (dir/file) or <qkv/...>
      *) continue ;;     # a system header
    esac
    [[ "$header" =~ ^(xsimd|gtest|benchmark|sys|linux)/ ]] && continue
    if ! [[ "$header" =~ $2 ]]; then echo "FAIL: $file includes $header"; fi
  done
}

out=$(
  check 'ops/*' '^ops/'
  check 'engine/chat/*' '^engine/chat/'
  check 'engine/format/*' '^(ops/|engine/(error\.h|format/|text/vocab\.h|api/qkv\.hpp))'
  check 'engine/text/*' '^(ops/|engine/(error\.h|format/|text/|api/qkv\.hpp))'
  check 'engine/runtime/*' '^(ops/|engine/(error\.h|format/|text/|runtime/|api/qkv\.hpp))'
  check 'engine/error.h' '^(engine/api/qkv\.hpp)'
  check 'models/*' '^(ops/|engine/(error\.h|format/|text/|runtime/|api/qkv\.hpp)|models/)'
  check 'engine/api/*' '^(ops/|engine/|models/registry\.h)'
  check 'tools/*' '^(tools/|qkv/qkv\.hpp|qkv/qkv\.h)'
)
[ -n "$out" ] && { echo "$out"; status=1; }

# Intrinsics and cpuid live in ops/ only.
hits=$(git ls-files | grep -E '\.(h|hpp|cpp|c)$' | grep -vE '^(ops|tests|bench)/' | xargs grep -nE 'immintrin|_mm[0-9]*_[a-z]|cpuid\.h|__cpuid' 2>/dev/null || true)
[ -n "$hits" ] && fail "intrinsics outside ops/:"$'\n'"$hits"

# GGML type ids: only the type table names them.
hits=$(git ls-files 'engine/*' 'models/*' 'tools/*' | grep -E '\.(h|hpp|cpp)$' | xargs grep -nE 'ggml_type *== *[0-9]|case [0-9]+: *(return|t\.type)|Type\([0-9]+\)' 2>/dev/null || true)
[ -n "$hits" ] && fail "raw type ids outside ops/types:"$'\n'"$hits"

# A forward pass reads in one sitting.
for f in $(git ls-files 'models/*.cpp'); do
  n=$(wc -l < "$f")
  [ "$n" -gt 250 ] && fail "$f has $n lines (a model file stays under 250)"
done

[ $status -eq 0 ] && echo "layers: ok"
exit $status
