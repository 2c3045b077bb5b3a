#!/usr/bin/env bash
# The AVX2 and AVX-512 kernels must really contain fused multiply-adds in their
# hot loops (xsimd 8.1's fma is not fused on avx512f or plain avx2), and the
# BF16 unit vdpbf16ps in its, the VBMI unit's Q3_K products vpmultishiftqb,
# the AVX-VNNI unit's integer products the VEX-encoded vpdpbusd.
# Arguments: the object files of the ops library.
set -euo pipefail
command -v objdump >/dev/null || { echo "objdump not found (binutils)"; exit 1; }
status=0
IFS=';' read -r -a objs <<< "$*"  # CMake passes the list as one ;-separated argument
for obj in "${objs[@]}"; do
  # Every dot-product and matrix kernel of the unit must hold a packed fused
  # multiply-add (one_token: the one-token panel products, panels_one_token).
  fns='::dot matvec one_token tile fma_peak attention rmsnorm'
  case "$obj" in
    *isa_avxvnni*) want='\{vex\} vpdpbusd .*%ymm'; what='VEX vpdpbusd'; fns='x8_matvec x8_matmul x8k_matvec x8k_matmul int8_peak' ;;
    *isa_avx2*) want='vfmadd[0-9]+ps .*%ymm'; what='packed FMA' ;;
    *isa_avx512bf16*) want='vdpbf16ps .*%zmm'; what='vdpbf16ps'; fns='one_token tile bf16_peak' ;;
    *isa_avx512vbmi*) want='vpmultishiftqb .*%zmm'; what='vpmultishiftqb'; fns='matvec matmul' ;;
    *isa_avx512*) want='vfmadd[0-9]+ps .*%zmm'; what='packed FMA' ;;
    *) continue ;;
  esac
  for fn in $fns; do
    n=$(objdump -d --no-show-raw-insn -C "$obj" | awk -v fn="$fn" '
      /^[0-9a-f]+ <.*>:$/ { inside = index($0, fn) > 0 }
      inside' | grep -cE "$want" || true)
    if [ "$n" -eq 0 ]; then
      echo "FAIL: no ${what} in ${fn}* of $(basename "$obj")"
      status=1
    else
      echo "ok: $n ${what} in ${fn}* of $(basename "$obj")"
    fi
  done
done
exit $status
