#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run):
#   1. the build and its ctest suite (kernels, tokenizer, references, API, CLI, browser, install);
#   2. the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. the libFuzzer targets (clang), each for QKV_FUZZ_SECONDS (default 60) from a seed corpus.
# QKV_QUICK=1 runs step 1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${QKV_JOBS:-2}
models=${QKV_MODELS_DIR:-$(cd .. && pwd)/shared/models}

scripts/setup.sh

echo "== build and test"
cmake -S . -B build
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"
[ "${QKV_QUICK:-0}" = 1 ] && exit 0

echo "== ASan + UBSan build and test"
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQKV_BUILD_BENCH=OFF -DQKV_TSAN_TEST=OFF \
      "-DCMAKE_CXX_FLAGS=$san" "-DCMAKE_C_FLAGS=$san" "-DCMAKE_EXE_LINKER_FLAGS=$san" "-DCMAKE_SHARED_LINKER_FLAGS=$san"
cmake --build build-asan -j"$jobs"
# Left out here: install_and_consume (it builds apps without the sanitizer
# runtime against the sanitized library), python_module (likewise: python3
# would load the sanitized library without the ASan runtime first) and
# fma_instructions_emitted (a property of the optimised build: sanitizers
# change inlining).
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" -E 'install_and_consume|python_module|fma_instructions_emitted'

echo "== fuzz"
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQKV_FUZZ=ON -DQKV_BUILD_TESTS=OFF -DQKV_BUILD_BENCH=OFF \
      -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
      "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined" \
      "-DCMAKE_C_FLAGS=-fsanitize=address,undefined"
cmake --build build-fuzz -j"$jobs" --target fuzz_gguf fuzz_llama2c fuzz_tokenizer fuzz_template
rm -rf build-fuzz/seeds
tests/fuzz/make_seeds.sh build/bin/qkv "$models" build-fuzz/seeds
for t in gguf llama2c tokenizer template; do
  mkdir -p "build-fuzz/corpus-$t"
  (cd build-fuzz && ./bin/fuzz_$t -max_total_time="${QKV_FUZZ_SECONDS:-60}" -rss_limit_mb=4096 -malloc_limit_mb=2048 \
     -print_final_stats=1 "corpus-$t" "seeds/$t" 2>&1 | grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|Done')
done
echo "all tests passed"
