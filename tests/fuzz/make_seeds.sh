#!/usr/bin/env bash
# make_seeds.sh QKV MODELS_DIR OUT_DIR: seed corpora for the fuzz targets, made
# from the shared files (nothing binary is committed).
set -euo pipefail
qkv=$1 models=$2 out=$3
mkdir -p "$out/gguf" "$out/llama2c" "$out/tokenizer" "$out/template"
"$qkv" synth --dim 16 --hidden 24 --layers 1 --heads 2 --kv-heads 1 --vocab 259 --ctx 16 --type f32 \
  -o "$out/gguf/tiny-f32.gguf" 2>/dev/null
"$qkv" synth --dim 32 --hidden 48 --layers 2 --heads 4 --kv-heads 2 --vocab 300 --ctx 16 --type f16 \
  -o "$out/gguf/tiny-f16.gguf" 2>/dev/null
head -c 4096 "$models/stories260K.gguf" > "$out/gguf/stories260K-head.gguf"
# Non-finite weights: the last 64 bytes of the file are the end of
# output.weight (no padding after it): NaN in one seed, +Inf in another.
for kind in nan inf; do
  f="$out/gguf/tiny-f32-$kind.gguf"
  cp "$out/gguf/tiny-f32.gguf" "$f"
  size=$(stat -c %s "$f")
  if [ $kind = nan ]; then pattern='\xff\xff\xff\xff'; else pattern='\x00\x00\x80\x7f'; fi
  for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do printf "$pattern"; done |
    dd of="$f" bs=1 seek=$((size - 64)) conv=notrunc status=none
done
cp "$models/stories260K.bin" "$models/tok512.bin" "$out/llama2c/"
head -c 2048 "$models/aidreams260K-tok512.bin" > "$out/llama2c/tok-head.bin"
# A legacy importance matrix: one entry "w" of 2 values (1.0, 2.0) over 1 call, 3 chunks of "d".
printf '\x01\0\0\0\x01\0\0\0w\x01\0\0\0\x02\0\0\0\0\0\x80\x3f\0\0\0\x40\x03\0\0\0\x01\0\0\0d' \
  > "$out/llama2c/imatrix.dat"
awk -v dir="$out/tokenizer" 'BEGIN { RS = "\n__ggml_vocab_test__\n"; n = 0 }
  { f = dir "/case" n++; printf "%s", $0 > f; close(f) }' "$models/vocab/ggml-vocab-llama-spm.gguf.inp"
# The reference chat templates (real-world Jinja) and their conversations.
chat="$models/../reference/chat"
if [ -d "$chat" ]; then
  cp "$chat"/*.jinja "$out/template/"
  grep -h '^messages: ' "$chat"/*.cases.txt | awk -v dir="$out/template" 'NR <= 12 { f = dir "/messages" NR ".json"; sub(/^messages: /, ""); printf "%s", $0 > f; close(f) }'
fi
