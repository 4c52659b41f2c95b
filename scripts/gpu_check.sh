#!/bin/sh
# The GPU check of the CUDA backend (docs/cuda.md), in two steps:
#
#   scripts/gpu_check.sh bundle   here, no GPU needed: builds build-cuda
#                                 (-DMOEDIT_CUDA=ON -DMOEDIT_NATIVE=OFF) and packs the
#                                 programs and the shared libraries they need besides
#                                 CUDA's into build-cuda/gpu-bundle.tar.gz (the one
#                                 path to carry to the GPU machine).
#   scripts/gpu_check.sh          on the GPU machine (CUDA 13 runtime, python3 with
#                                 PyTorch): parity, then the benchmark (one H200: 153 s
#                                 for all three sizes, 82 s with SHAPES="S B"). Exit 0 only
#                                 when every parity check passes.
#
# Parity: every transformer fixture (tests/dit_cuda.c: float32 with TF32 off
# <= 1e-4 of the largest output, bf16 <= 2e-2; the shipped models against the
# CPU), the --device CLI checks, and a DiT-MoE-S/2 random model against
# PyTorch float32 on the same GPU (fp32 <= 1e-4; the bf16 error is printed
# for information, since random weights have arbitrarily small routing margins),
# and its bf16 forward with the attention scores in ten batches against one.
# Which expert GEMM ran (cuBLAS's grouped call or the per-expert fallback),
# from cuBLAS's own API log of one forward.
# Benchmark: DiT-MoE-S/2, B/2 and XL/2-8E2A (random weights) forwards of 2
# and 64 rows (CFG pairs) in bf16, moedit vs PyTorch (tools/bench_torch_cuda.py)
# in the same run, ms, TFLOP/s, the ratio and the share of the bf16 peak the
# same run measured (tools/cuda_peak.py); then a 50-step DDIM sample.
# Output also goes to $OUT/gpu_check.log (OUT defaults to /tmp/moedit_gpu_check), with
# the test programs' own logs; checkpoints and arrays go to $WORK (/tmp/moedit_gpu_work).
# SHAPES="S B" benchmarks fewer sizes (default "S B XL"; the sample uses the last one).
set -u
cd "$(dirname "$0")/.."
B=build-cuda
LIBS=$B/gpu-libs

if [ "${1:-run}" = bundle ]; then
  set -e
  nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  cmake -S . -B $B -DCMAKE_BUILD_TYPE=Release -DMOEDIT_CUDA=ON -DMOEDIT_NATIVE=OFF -DCMAKE_CUDA_COMPILER="$nvcc"
  cmake --build $B -j"$(nproc)" --target moedit_cli test_dit_cuda test_cli_device
  rm -rf $LIBS && mkdir -p $LIBS
  # Everything the three programs load except the C library and CUDA's own.
  for f in $B/moedit $B/test_dit_cuda $B/test_cli_device; do ldd "$f"; done | awk '$3 ~ /^\// {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so|libcuda|libcudart|libcublas' |
    while read -r lib; do cp -L "$lib" $LIBS/; done
  pwd > $LIBS/source_dir
  tar -C $B -czf $B/gpu-bundle.tar.gz moedit test_dit_cuda test_cli_device gpu-libs
  echo "carry: [\"$B/gpu-bundle.tar.gz\"] ($(du -h $B/gpu-bundle.tar.gz | cut -f1))"
  exit 0
fi

OUT=${OUT:-/tmp/moedit_gpu_check}
W=${WORK:-/tmp/moedit_gpu_work}
SHAPES=${SHAPES:-S B XL}
LAST=${SHAPES##* }
PY=${PYTHON:-python3}
if [ -z "${GPU_CHECK_LOGGED:-}" ]; then   # once more, through tee
  mkdir -p "$OUT" "$W" && rm -f "$OUT/status"
  GPU_CHECK_LOGGED=1 "$0" "$@" 2>&1 | tee "$OUT/gpu_check.log"
  exit "$(cat "$OUT/status" 2>/dev/null || echo 1)"
fi
[ -x $B/moedit ] || tar -C $B -xzf $B/gpu-bundle.tar.gz || { echo "no $B/moedit: run '$0 bundle' first"; exit 1; }
# The bundled libraries for moedit's programs only: python must keep its own
# (a bundled libstdc++ may be older than what PyTorch needs).
MLD="$PWD/$LIBS:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
moedit() { LD_LIBRARY_PATH="$MLD" $B/moedit "$@"; }
mtest() { t=$1; shift; LD_LIBRARY_PATH="$MLD" $B/$t "$@"; }
export NVIDIA_TF32_OVERRIDE=0
# The test programs name the source tree they were built in (fixtures,
# models, the moedit binary); point that path here when it differs.
src=$(cat $LIBS/source_dir 2>/dev/null || pwd)
if [ "$src" != "$PWD" ] && [ ! -e "$src" ]; then mkdir -p "$(dirname "$src")" && ln -s "$PWD" "$src"; fi

fail=0
t0=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - t0 )) s)"; }
rel_err() {  # rel_err GOT.npy WANT.npy: max|got - want| / max|want|
  $PY -c "import numpy as n,sys; g=n.load(sys.argv[1]).astype('f8'); w=n.load(sys.argv[2]).astype('f8'); print('%.3g' % (abs(g-w).max()/abs(w).max()))" "$1" "$2"
}
within() { $PY -c "import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)" "$1" "$2"; }

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || fail=1
moedit --version

step "parity: transformer fixtures on the GPU (tests/dit_cuda.c)"
for t in test_dit_cuda test_cli_device; do
  mtest $t --jobs 1 --verbose > "$OUT/$t.txt" 2>&1 || { echo "FAIL $t"; fail=1; }
  grep -E 'relative error|FAIL|SKIP|Synthesis|CRASH' "$OUT/$t.txt"
done

step "parity: DiT-MoE-S/2 random weights, PyTorch float32 vs moedit"
if $PY tools/bench_torch_cuda.py --shape S --batch 8 --dtype fp32 --iters 1 --warmup 0 \
     --save "$W/moe_S.pt" --save-io "$W/S" >/dev/null; then
  for prec in fp32 bf16; do
    flag=; lim=; [ $prec = fp32 ] && flag=--fp32 && lim=1e-4
    if moedit forward --model "$W/moe_S.pt" --device cuda $flag --x "$W/S_x.npy" --t "$W/S_t.npy" \
         --y "$W/S_y.npy" --out "$W/S_moedit_$prec.npy"; then
      e=$(rel_err "$W/S_moedit_$prec.npy" "$W/S_out.npy")
      if [ $prec = bf16 ]; then echo "S/2 bf16 vs torch fp32: relative error $e (information only: on random weights bf16 may flip expert choices)"
      elif within "$e" $lim; then echo "S/2 $prec: relative error $e (limit $lim) ok"
      else echo "FAIL S/2 $prec: relative error $e > $lim"; fail=1; fi
    else echo "FAIL S/2 $prec: moedit forward"; fail=1; fi
  done
  # 8 rows × 6 heads = 48 (row, head) pairs of 256×256 scores; a 1.25 MB
  # bound makes ten batches (the last one 3 pairs) instead of one.
  if MOEDIT_CUDA_SCORE_BYTES=1310720 moedit forward --model "$W/moe_S.pt" --device cuda --x "$W/S_x.npy" \
       --t "$W/S_t.npy" --y "$W/S_y.npy" --out "$W/S_moedit_batches.npy"; then
    echo "S/2 bf16, attention scores in 10 batches vs 1: relative difference $(rel_err "$W/S_moedit_batches.npy" \
      "$W/S_moedit_bf16.npy") (information: the batch count may change cuBLAS's kernel)"
  else echo "FAIL S/2 bf16 in score batches: moedit forward"; fail=1; fi
else echo "FAIL: tools/bench_torch_cuda.py"; fail=1; fi

step "expert GEMM path: cuBLAS's API log of one S/2 bf16 forward"
# cuBLAS logs every call it receives: grouped calls that succeed mean the
# grouped path ran; per-expert cublasGemmEx calls mean the fallback did.
if [ -e "$W/moe_S.pt" ] && CUBLAS_LOGINFO_DBG=1 CUBLAS_LOGDEST_DBG="$W/cublas_api.log" \
     moedit forward --model "$W/moe_S.pt" --device cuda --x "$W/S_x.npy" --t "$W/S_t.npy" --y "$W/S_y.npy" \
       --out "$W/S_api.npy" >/dev/null; then
  grouped=$(grep -c 'cublasGemmGroupedBatchedEx' "$W/cublas_api.log"); single=$(grep -c 'cublasGemmEx(' "$W/cublas_api.log")
  # After one refusal the forward never asks for the grouped GEMM again.
  path="grouped"; [ "$grouped" -le 1 ] && path="per-expert fallback"
  echo "expert GEMMs: $path (cublasGemmGroupedBatchedEx calls: $grouped, cublasGemmEx calls: $single)"
  grep -m3 -i -E 'not.supported|error' "$W/cublas_api.log"
else echo "no cuBLAS API log (S/2 checkpoint missing or forward failed)"; fi

step "benchmark: bf16 forwards, moedit vs PyTorch on this GPU"
peak=$($PY tools/cuda_peak.py) && echo "$peak" || { echo "FAIL: tools/cuda_peak.py"; fail=1; }
peak_tf=$(echo "$peak" | sed -n 's/^bf16 peak: \([0-9.]*\).*/\1/p')
share() { [ -n "$peak_tf" ] && $PY -c "import sys; print('%.0f%%' % (100 * float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$peak_tf" || echo -; }
printf '%-6s %5s %12s %12s %10s %10s %8s %8s\n' model rows torch_ms moedit_ms torch_TF moedit_TF speedup of_peak
for shape in $SHAPES; do
  ck="$W/moe_$shape.pt"
  $PY tools/bench_torch_cuda.py --shape $shape --batch 2 64 --dtype bf16 --save "$ck" > "$W/torch_$shape.txt" ||
    { echo "FAIL: torch $shape"; fail=1; continue; }
  for rows in 2 64; do
    tl=$(grep "batch $rows:" "$W/torch_$shape.txt")
    tms=$(echo "$tl" | sed 's/.*forward_ms \([0-9.]*\).*/\1/'); ttf=$(echo "$tl" | sed 's/.*tflops \([0-9.]*\).*/\1/')
    moedit bench --model "$ck" --device cuda --batch $rows --iters 20 > "$W/moedit_${shape}_$rows.txt" ||
      { echo "FAIL: moedit bench $shape $rows"; fail=1; continue; }
    mms=$(sed -n 's/^forward_ms: //p' "$W/moedit_${shape}_$rows.txt")
    mtf=$($PY -c "import sys; print('%.2f' % (float(sys.argv[1]) / 1000))" "$(sed -n 's/^gflops: //p' "$W/moedit_${shape}_$rows.txt")")
    printf '%-6s %5s %12s %12s %10s %10s %8s %8s\n' "$shape/2" $rows "$tms" "$mms" "$ttf" "$mtf" \
      "$($PY -c "import sys; print('%.2fx' % (float(sys.argv[1]) / float(sys.argv[2])))" "$tms" "$mms")" "$(share "$mtf")"
  done
  [ $shape = "$LAST" ] || rm -f "$ck"
done

step "benchmark: 50-step DDIM sample, 8 classes with guidance (16 rows), $LAST/2 bf16"
s0=$(date +%s.%N)
if moedit sample --model "$W/moe_$LAST.pt" --device cuda --sampler ddim --steps 50 --class 0,1,2,3,4,5,6,7 \
     --no-vae --latents-out "$W/latents.npy" >/dev/null; then
  $PY -c "import sys; print('sample: %.2f s' % (float(sys.argv[2]) - float(sys.argv[1])))" "$s0" "$(date +%s.%N)"
else echo "FAIL: moedit sample"; fail=1; fi
rm -f "$W/moe_$LAST.pt"

step "done: $([ $fail = 0 ] && echo PASS || echo FAIL)"
echo $fail > "$OUT/status"
exit $fail
