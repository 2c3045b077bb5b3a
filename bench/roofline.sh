#!/usr/bin/env bash
# The roofline summary: every float, quantized and attention kernel of one
# instruction set, as a fraction of the machine limit it is bound by, all
# measured in the same run of qkv_ops_bench (so another machine gives its own):
#   prefill products (matmul, qmatmul, attention/prefill)  vs probe/fma, probe/bf16 (matmul/bf16)
#                                                          or probe/int8
#   generation from memory (matvec 32000 rows, qmatvec .../dram, attention/decode_dram)
#                                                          vs probe/read/1GiB
# (GEMVs over matrices that fit in cache are left out: they are bound by the
# load ports, which no probe here measures.)
# Usage: bench/roofline.sh [ISA (default: the fastest this CPU runs)] [BUILD_DIR=build]
set -euo pipefail
cd "$(dirname "$0")/.."
isa=${1:-}
bin=${2:-build}/bin/qkv_ops_bench
[ -x "$bin" ] || { echo "roofline: $bin not built (cmake --build build)" >&2; exit 1; }
if [ -z "$isa" ]; then
  isa=$("$bin" --benchmark_list_tests | sed -n 's|^probe/fma/||p' | grep -v / | tail -1)  # tables are listed slowest first
fi
json=$(mktemp)
trap 'rm -f "$json"' EXIT
"$bin" --benchmark_filter="^(probe/(fma|int8|bf16)/$isa\$|probe/read/1GiB|(matmul|matvec)/(f32|f16|bf16)/$isa/|q(matmul|matvec)/[^/]+/$isa/|attention/(prefill/f(32|16)/$isa/.*/depth(512|4096)\$|decode_dram/f(32|16)/$isa/))" \
  --benchmark_min_time=0.1 --benchmark_format=json --benchmark_out="$json" --benchmark_out_format=json >/dev/null
python3 - "$json" "$isa" <<'EOF'
import json, sys
runs = json.load(open(sys.argv[1]))["benchmarks"]
isa = sys.argv[2]
rate = {}
for r in runs:
    rate[r["name"].split("/iterations")[0]] = r
def counter(name, key):
    return rate[name][key] if name in rate and key in rate[name] else None
fma, int8 = counter(f"probe/fma/{isa}", "GFLOP/s"), counter(f"probe/int8/{isa}", "GOP/s")
bf16 = counter(f"probe/bf16/{isa}", "GFLOP/s")
dram = counter("probe/read/1GiB", "GB/s")
print(f"limits ({isa}, one core): fp32 FMA {fma:.1f} GFLOP/s, bf16 pairs {bf16:.1f} GFLOP/s ({rate[f'probe/bf16/{isa}'].get('label', '')}), "
      f"int8 multiply {int8:.1f} GOP/s, read {dram:.1f} GB/s from 1 GiB")
print(f"{'kernel':58} {'rate':>14}  {'limit':>16}  {'of limit':>8}")
for name, r in rate.items():
    if name.startswith("probe/"):
        continue
    if name.startswith("matmul/bf16/"):
        got, lim, unit, what = r["GFLOP/s"], bf16, "GFLOP/s", "bf16"
    elif name.startswith(("matmul/", "attention/prefill/")):
        got, lim, unit, what = r["GFLOP/s"], fma, "GFLOP/s", "fma"
    elif name.startswith("qmatmul/"):
        got, lim, unit, what = r["GOP/s"], int8, "GOP/s", "int8"
    elif name.endswith("/dram") or name.startswith("attention/decode_dram/") or "/32000x" in name and name.startswith("matvec/"):
        got, lim, unit, what = r["GB/s"], dram, "GB/s", "read 1GiB"
    else:
        continue  # in cache: see the header
    print(f"{name:58} {got:8.1f} {unit:7}  {what:>16}  {100 * got / lim:7.0f}%")
EOF
