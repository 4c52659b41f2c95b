#!/usr/bin/env bash
# Benchmark suite (not a test): moedit against PyTorch on the same random
# weights, one CFG pair (batch 2) per forward, 256×256 images (32×32×4
# latents). Prints a markdown table for docs/performance.md.
#
#   scripts/bench.sh [BUILD_DIR] [WORK_DIR]      (defaults: build, /tmp/moedit-bench)
#   ITERS=10 THREADS=2 SHAPES="S B" XL=1 scripts/bench.sh build-perf
#
# Per shape (DiT-MoE-S/2-8E2A, DiT-MoE-B/2-8E2A): tools/bench_torch.py makes
# (once) and times the upstream-style PyTorch model and saves its weights;
# `moedit bench` then times the same weights in float32 and in bf16 mode.
# GFLOP/s count only the experts that run; the peak is ~350 GFLOP/s (2 Zen 5
# cores, AVX-512 FMA; a pure FMA loop measures 416). Peak RSS is the process maximum (getrusage), load
# included. Also, when present: the shipped models, a 256×256 VAE decode and
# a 50-step DDIM sample (sd-vae-sized random VAE from tools/bench_vae_torch.py),
# and XL=1 a DiT-MoE-XL/2-8E2A in bf16 (~8.4 GB file, scripts/make_random_dit.py).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
WORK=${2:-/tmp/moedit-bench}
ITERS=${ITERS:-10}
THREADS=${THREADS:-2}
SHAPES=${SHAPES:-"S B"}
PY=/usr/bin/python3
# OpenMP wait policy per program, each at its best on this machine by default:
# PyTorch with sleeping waits (its spinning OpenMP threads lose 4× here), moedit
# with libgomp's default (spin, then sleep). "default" leaves the variable unset;
# OMP_WAIT_POLICY, when set, applies to both. See docs/performance.md.
TORCH_WAIT=${OMP_WAIT_POLICY:-${TORCH_WAIT:-passive}}
MOEDIT_WAIT=${OMP_WAIT_POLICY:-${MOEDIT_WAIT:-default}}
unset OMP_WAIT_POLICY
with_wait() {   # with_wait POLICY COMMAND...
    local policy=$1; shift
    if [ "$policy" = default ]; then "$@"; else OMP_WAIT_POLICY=$policy "$@"; fi
}
BIN="$BUILD/moedit"
PEAK=350
mkdir -p "$WORK"
[ -x "$BIN" ] || { echo "bench.sh: $BIN not built" >&2; exit 1; }

field() { sed -n "s/^.*$1: \([0-9.]*\).*$/\1/p" | head -1; }

echo "# moedit benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/{print $2}') GB;" \
     "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); threads $THREADS; iters $ITERS; OpenMP waits: PyTorch $TORCH_WAIT, moedit $MOEDIT_WAIT"
echo
echo "| model | PyTorch ms | moedit ms | speed-up | moedit GFLOP/s (% of $PEAK) | bf16 ms | bf16 GFLOP/s | peak RSS f32 / bf16 MB |"
echo "|---|---|---|---|---|---|---|---|"
for s in $SHAPES; do
    pt="$WORK/moe_$s.pt"
    save=()
    [ -f "$pt" ] || save=(--save "$pt")
    torch_out=$(with_wait "$TORCH_WAIT" $PY tools/bench_torch.py --shape "$s" --iters "$ITERS" --threads "$THREADS" "${save[@]}" 2>/dev/null)
    torch_ms=$(echo "$torch_out" | field forward_ms)
    me=$(with_wait "$MOEDIT_WAIT" "$BIN" bench --model "$pt" --batch 2 --iters "$ITERS" --threads "$THREADS")
    bf=$(with_wait "$MOEDIT_WAIT" "$BIN" bench --model "$pt" --batch 2 --iters "$ITERS" --threads "$THREADS" --bf16)
    me_ms=$(echo "$me" | field forward_ms) me_gf=$(echo "$me" | field gflops)
    bf_ms=$(echo "$bf" | field forward_ms) bf_gf=$(echo "$bf" | field gflops)
    awk -v s="$s" -v t="$torch_ms" -v m="$me_ms" -v g="$me_gf" -v b="$bf_ms" -v bg="$bf_gf" -v p="$PEAK" \
        -v r1="$(echo "$me" | field peak_rss_mb)" -v r2="$(echo "$bf" | field peak_rss_mb)" \
        'BEGIN { printf "| DiT-MoE-%s/2-8E2A | %.1f | %.1f | %.1f× (bf16 %.1f×) | %.0f (%.0f%%) | %.1f | %.0f | %s / %s |\n",
                 s, t, m, t / m, t / b, g, 100 * g / p, b, bg, r1, r2 }'
done
for name in fmnist-moe fmnist-switch; do
    pt="models/$name/model.pt"
    [ -f "$pt" ] || continue
    me=$(with_wait "$MOEDIT_WAIT" "$BIN" bench --model "$pt" --batch 2 --iters "$ITERS" --threads "$THREADS")
    echo "| $name (shipped) | – | $(echo "$me" | field forward_ms) | – | $(echo "$me" | field gflops) | – | – | $(echo "$me" | field peak_rss_mb) |"
done

if [ "${XL:-0}" = 1 ]; then
    xl="$WORK/xl_bf16.safetensors"
    [ -f "$xl" ] || $PY scripts/make_random_dit.py "$xl" >&2
    me=$(with_wait "$MOEDIT_WAIT" "$BIN" bench --model "$xl" --batch 2 --iters 3 --threads "$THREADS" --bf16 --heads 16)
    echo "| DiT-MoE-XL/2-8E2A qk-norm (bf16 file, $(du -h "$xl" | cut -f1)) | – | – | – | – | $(echo "$me" | field forward_ms) | $(echo "$me" | field gflops) | – / $(echo "$me" | field peak_rss_mb) (load $(echo "$me" | field load_ms) ms) |"
fi

# Sampling and decoding, when those commands and a VAE exist.
echo
if "$BIN" decode --help > /dev/null 2>&1 && "$BIN" sample --help > /dev/null 2>&1; then
    vae="$WORK/vae"
    [ -d "$vae/vae" ] || with_wait "$TORCH_WAIT" $PY tools/bench_vae_torch.py --save "$vae" > "$WORK/vae_torch.txt" 2>&1 || true
    if [ -d "$vae/vae" ]; then
        with_wait "$MOEDIT_WAIT" /usr/bin/time -v "$BIN" decode --vae "$vae/vae" --latent "$vae/latent.npy" --out "$WORK/dec.npy" \
            --threads "$THREADS" > /dev/null 2> "$WORK/dec_time.txt" || true
        echo "VAE 256×256 decode (sd-vae-ft-mse shape, random weights): moedit" \
             "$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$WORK/dec_time.txt") wall (process, load included)," \
             "peak RSS $(awk '/Maximum resident/{printf "%.0f MB", $NF/1024}' "$WORK/dec_time.txt");" \
             "PyTorch (same weights): $(grep -m1 -o 'median [0-9.]* s' "$WORK/vae_torch.txt" || echo n/a)"
        with_wait "$MOEDIT_WAIT" /usr/bin/time -v "$BIN" sample --model "$WORK/moe_S.pt" --vae "$vae/vae" --sampler ddim --steps 50 \
            --class 207 --cfg 1.5 --out "$WORK/sample.png" --threads "$THREADS" > /dev/null 2> "$WORK/sample_time.txt" || true
        echo
        echo "DiT-MoE-S/2-8E2A 50-step DDIM sample, cfg 1.5 (50 forwards of a batch-2 CFG pair + decode): " \
             "$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$WORK/sample_time.txt") wall," \
             "peak RSS $(awk '/Maximum resident/{printf "%.0f MB", $NF/1024}' "$WORK/sample_time.txt")"
    fi
fi
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
