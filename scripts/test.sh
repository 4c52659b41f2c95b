#!/bin/sh
# Builds moedit three times — optimised, with AddressSanitizer + UBSan, and
# with the AVX-512 kernels emulated — and runs the Criterion/ctest suite
# (fuzz corpora replayed) in each; in the optimised build also the Python
# module's pytest suite and the install test.
set -e
cd "$(dirname "$0")/.."
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")
# The Python module against the CLI (pytest exit status: 0 all passed, 1 some
# failed, 2-4 interrupted or misused, 5 no tests collected: all but 0 fail).
rc=0
MOEDIT_LIB="$(pwd)/build" MOEDIT_BIN="$(pwd)/build/moedit" \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider python/tests || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "scripts/test.sh: pytest python/tests failed (exit status $rc)" >&2
  exit 1
fi
# The installed tree: C example via pkg-config and CMake, pip-installed module.
scripts/test_install.sh build
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMOEDIT_SANITIZE=ON
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$jobs")
# The AVX-512 and AVX512-BF16 kernels through SIMDe (ops/simd512.h), so that
# they run, and meet the PyTorch fixtures, on CPUs without them too. Left to
# the builds above: the Slurm run and the full ADM evaluation (the same
# kernels as fid_eval and cli_fid, at ten times the emulated cost) and the
# *_avx2 / *_openblas tests, which rule AVX-512 out.
cmake -S . -B build-avx512emu -DCMAKE_BUILD_TYPE=Release -DMOEDIT_EMULATE_AVX512=ON
cmake --build build-avx512emu -j"$jobs"
(cd build-avx512emu && ctest --output-on-failure -j"$jobs" -E '^(cli_cluster|cli_eval)$|_(avx2|openblas)$')
# The CUDA backend (-DMOEDIT_CUDA=ON, off by default) must keep compiling:
# where nvcc is installed, the CLI and the CUDA tests are built with it and
# run (without a GPU they check the refusal and say "skipped: no CUDA device").
nvcc=$(command -v nvcc || true)
[ -n "$nvcc" ] || [ ! -x /usr/local/cuda/bin/nvcc ] || nvcc=/usr/local/cuda/bin/nvcc
if [ -n "$nvcc" ]; then
  cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DMOEDIT_CUDA=ON -DMOEDIT_NATIVE=OFF -DCMAKE_CUDA_COMPILER="$nvcc"
  cmake --build build-cuda -j"$jobs" --target moedit_cli test_dit_cuda test_cli_device
  (cd build-cuda && ctest --output-on-failure -R '^(dit_cuda|cli_device)$')
fi
