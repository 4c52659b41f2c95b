#!/bin/sh
# Builds every libFuzzer harness fuzz/fuzz_<name>.c with clang (library code
# instrumented for coverage, ASan + UBSan everywhere) in build-fuzz/, then runs
# each for SECONDS seconds (default 60) over its corpus fuzz/corpus/<name>/.
# New inputs go to build-fuzz/corpus/<name>/ (the checked-in seeds stay small);
# crashes are written to build-fuzz/crashes/<name>/ and stop the script.
#
#   scripts/fuzz.sh [SECONDS] [NAME…]
set -e
cd "$(dirname "$0")/.."
secs=${1:-60}
[ $# -gt 0 ] && shift
jobs=$(nproc)
[ "$jobs" -gt 2 ] && jobs=2

CC=${CC:-clang} cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DMOEDIT_FUZZ=ON \
    -DMOEDIT_SANITIZE=ON -DMOEDIT_TESTS=OFF -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null

names="$*"
if [ -z "$names" ]; then
    for f in fuzz/fuzz_*.c; do
        n=$(basename "$f" .c)
        names="$names ${n#fuzz_}"
    done
fi

for n in $names; do
    cmake --build build-fuzz -j"$jobs" --target "fuzz_$n"
    mkdir -p "build-fuzz/corpus/$n" "build-fuzz/crashes/$n"
    echo "== fuzz_$n for ${secs}s"
    # leaks are reported by the sanitizer builds of the test suite instead:
    # libFuzzer's leak check on every input is slow and OpenMP's pools trip it.
    ASAN_OPTIONS=detect_leaks=0 "build-fuzz/fuzz_$n" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="build-fuzz/crashes/$n/" \
        "build-fuzz/corpus/$n" "fuzz/corpus/$n"
done
