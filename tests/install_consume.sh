#!/usr/bin/env bash
# install_consume.sh BUILD_DIR SOURCE_DIR MODELS_DIR
# Installs qkv to a temporary prefix and builds tools/example_story.c against
# it with find_package(qkv) and with pkg-config; both must tell the story.
set -euo pipefail
build=$1 src=$2 models=${QKV_MODELS_DIR:-$3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null

check() {  # the greedy story of stories260K
  local out
  out=$("$@" "$models/stories260K.bin" "$models/tok512.bin" "Once upon a time" 20 2>/dev/null)
  case "$out" in
    "Once upon a time, there was a little girl named Lily."*) echo "ok: $1" ;;
    *) echo "FAIL: $1 printed: $out"; exit 1 ;;
  esac
}

# 1. A CMake project: find_package(qkv) -> qkv::qkv.
cmake -S "$src/tests/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
      -DQKV_EXAMPLE_SOURCE="$src/tools/example_story.c" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
check "$tmp/consumer/example_story"

# 2. pkg-config: its Libs carry an rpath, so the program runs without
# LD_LIBRARY_PATH; the examples compile without a warning.
libdir=$(ls -d "$prefix"/lib*/pkgconfig | head -1)
flags=$(PKG_CONFIG_PATH="$libdir" pkg-config --cflags --libs qkv)
cc -Wall -Wextra -Werror "$src/tools/example_story.c" $flags -o "$tmp/example_pc"
(unset LD_LIBRARY_PATH; check "$tmp/example_pc")

# 3. The README's section "Use qkv from your program", copied as written.
readme_block() {  # the first ```$1 block after that heading
  awk -v lang="$1" '/^## Use qkv from your program/ { on = 1 }
    on && $0 == "```" lang { grab = 1; next }
    grab && $0 == "```" { exit }
    grab' "$src/README.md"
}
mkdir -p "$tmp/readme"
readme_block c > "$tmp/readme/app.c"
readme_block cmake > "$tmp/readme/CMakeLists.txt"
cmake -S "$tmp/readme" -B "$tmp/readme/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/readme/build" >/dev/null
out=$(cd "$models" && "$tmp/readme/build/app")
[ "${#out}" -gt 100 ] || { echo "FAIL: the README example printed: $out"; exit 1; }
echo "ok: the README example builds with CMake and tells a story"
cc -Wall -Wextra -Werror "$tmp/readme/app.c" $flags -o "$tmp/readme/app_pc"
(unset LD_LIBRARY_PATH; cd "$models" && "$tmp/readme/app_pc" >/dev/null)
echo "ok: the README example builds with pkg-config"

# The shared library carries the ABI version in its SONAME and exports only the API.
so=$(ls "$(dirname "$libdir")"/libqkv.so.0)
# (grep reads all of objdump's output: with -q it may stop early, and objdump's
# SIGPIPE then fails the pipeline under pipefail, on a loaded machine.)
objdump -p "$so" | grep 'SONAME *libqkv.so.0' >/dev/null || { echo "FAIL: SONAME"; exit 1; }
# Every defined dynamic symbol (functions, data, weak template instances,
# typeinfo, vtables) is the API's; the standard library's stay inside.
outside() { nm -D --defined-only "$so" | c++filt | cut -c20- | grep -vE '^(qkv_|qkv::|(typeinfo|typeinfo name|vtable) for qkv::)'; }
if [ -n "$(outside)" ]; then
  echo "FAIL: symbols outside the API are exported:"; outside | head -5
  exit 1
fi
echo "ok: SONAME libqkv.so.0, only the API exported"
