#!/usr/bin/env bash
# Installs the Debian packages qkv builds and tests with, when they are missing
# (clang-14 and its runtime: the fuzz targets; chromium: the attention report is
# checked in a real, headless browser; python3 and unicode-data: the test that
# regenerates engine/text/unicode_tables.cpp; tmux: qkv chat is tested on a terminal).
# Does nothing (and needs no network) when everything is already there.
set -euo pipefail

packages=(cmake g++ make pkg-config binutils libxsimd-dev libgtest-dev googletest libbenchmark-dev
          clang-14 libclang-rt-14-dev chromium python3 unicode-data tmux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
