#!/usr/bin/env bash
# End-to-end speed on the shapes of peers-bench.md: writes random-weight models
# of the stories15M/42M/110M shapes (qkv synth) and runs qkv bench on them, and
# on the real small models. Usage: bench/e2e.sh [TYPE=f32] [OUT_DIR=build/synth]
set -euo pipefail
cd "$(dirname "$0")/.."
type=${1:-f32}
out=${2:-build/synth}
models=${QKV_MODELS_DIR:-../shared/models}
mkdir -p "$out"
for shape in stories15M stories42M stories110M; do
  f="$out/rand-$shape-$type.gguf"
  [ -f "$f" ] || build/bin/qkv synth --shape "$shape" --type "$type" -o "$f"
  build/bin/qkv bench -m "$f" -p 128 -n 128 -t 1,2 -r 5
done
build/bin/qkv bench -m "$models/stories260K.gguf" -m "$models/tinyllama-v0-f32.gguf" -p 128 -n 128 -t 1,2 -r 5
