#!/usr/bin/env bash
# Benchmark suite (not a test), one run per host: every figure against the
# same run's measured peaks and, where PyTorch does the same work, against
# PyTorch on the same weights and inputs. Prints markdown for README.md and
# docs/performance.md; every table names the host it came from.
#
#   scripts/bench.sh [BUILD_DIR] [WORK_DIR]      (defaults: build, /tmp/moedit-bench)
#   ITERS=10 ITERS16=3 THREADS=2 SHAPES="S B" BATCHES="2 16" DENSE="S B" FID_NUM=200 INC_NUM=32 \
#     SHARED=1 VAE_LATENT=32 scripts/bench.sh   (the defaults; a quick check: SHAPES=S BATCHES=2 DENSE=S ITERS=2
#     FID_NUM=16 INC_NUM=2 VAE_LATENT=8 SHARED=0 scripts/bench.sh build /tmp/bench-quick)
#
# Sections (about 11 minutes on 2 Zen 3 vCPUs, 2026-11-30; 7–8 on 2 Zen 4 vCPUs, 2026-12-01; 12 on
# 2 Intel vCPUs with PyTorch's bf16 rows, 2026-12-03; 9 on 2 Zen 5 vCPUs with them, 2026-12-03):
#  0. host: the CPU (cpuid: vendor, family, model, caches), the kernel set
#     moedit picked, and the peaks `moedit bench --peak` measures on all
#     threads: a register-only FMA loop (fp32) and vdpbf16ps loop (bf16),
#     the best of three measurements (the FMA one is taken again at the end),
#     and one thread's FMA peak (threads that share one core's FMA units, as
#     a VM's vCPUs placed on SMT siblings do, are named as such), and how
#     far apart its first two CPUs are (build/cpu_pair: a cache line's round
#     trip, rows one writes read by the other, each one's memory reads —
#     a VM's two vCPUs can sit a fabric hop apart). Each row's
#     share is of the larger of the start's peak and the one measured just
#     before that row (`moedit bench` measures its own, also for Inception;
#     the decode row calls `bench --peak`), so a host that speeds up during
#     the run does not overstate the later rows.
#  1. transformer forward, DiT-MoE-S/2 and B/2 (8 experts, top-2), batch 2
#     (one CFG pair) and 16: tools/bench_torch.py (PyTorch, same weights)
#     against `moedit bench`, fp32 and bf16 (where the CPU has AVX512-BF16:
#     PyTorch's bf16 is bench_torch.py --bf16, bf16 weights under autocast),
#     GFLOP/s as % of the peak; then the dense DiT-S/2 and B/2 (DENSE: their
#     MLP's tanh-GELU in place of the experts' SwiGLU) at batch 2 the same way.
#  2. sd-vae-sized 256×256 decode: tools/bench_vae_torch.py against
#     `moedit decode --time --repeat 3` (decode alone, loading excluded; the
#     median of three decodes in one process, the same on both sides);
#     moedit's row gives its rate on the decode's own count (PyTorch's, as
#     issue #15's table counts it and as the Inception and transformer rows
#     count theirs) and on the products it does (gflop_winograd: the 3×3
#     layers by Winograd's F(4×4, 3×3) on the own kernels; for --vae-bf16
#     gflop_moedit, the ×2 upsamplings folded into their convolutions).
#  3. InceptionV3 pool3 features and logits of 256×256 images (what `moedit fid`
#     computes per image): tools/bench_inception_torch.py against `moedit bench
#     --inception` (images/s, the best of three passes after a warm-up, in one
#     process, on both sides); moedit's rate on PyTorch's count and on the
#     products it does (gflop_multiplied_per_image: fewer where layers run by
#     Winograd's minimal filtering on the own kernels).
#  4. end to end: `moedit fid-sample` of the shipped fmnist-moe (its defaults),
#     seconds per 1000 samples.
#  5. shared machine (SHARED=1): `fid-sample --num FID_NUM --sampler ddim --steps 50`
#     alone, beside one busy process and with one that starts 1 s after
#     moedit, with moedit's default (libgomp's waits, threads adapted to the
#     free cores before every forward: cli/omp_env.c, core/busy.c), short
#     spins (GOMP_SPINCOUNT=300), OMP_WAIT_POLICY=passive and --threads 1.
#  6. GEMM (GEMM=1): build/bench_gemm, moedit's float32 products of the
#     transformer and convolution shapes against OpenBLAS sgemm on the same
#     operands, GFLOP/s as % of the FMA peak it measures itself.
#  7. drift (DRIFT=1, DRIFT_ROUNDS=30, about 55 s on Zen 5): build/peak_drift
#     on the S/2 checkpoint of section 1, the peak loop and five float32 CFG-pair
#     forwards alternated in one process, so the run says how far its
#     minutes alone move a share, then the FMA loop kept running for 10 s
#     against a peak measured just before it: how much of that best-of-trials
#     peak the loop itself sustains (docs/performance.md "Measuring").
# PyTorch runs with OMP_WAIT_POLICY=passive (its spinning threads lose
# several-fold on a shared machine); moedit with its own default.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
WORK=${2:-/tmp/moedit-bench}
ITERS=${ITERS:-10}
ITERS16=${ITERS16:-3}
THREADS=${THREADS:-2}
SHAPES=${SHAPES:-"S B"}
DENSE=${DENSE:-"S B"}
BATCHES=${BATCHES:-"2 16"}
FID_NUM=${FID_NUM:-200}
INC_NUM=${INC_NUM:-32}
SHARED=${SHARED:-1}
VAE_LATENT=${VAE_LATENT:-32}
GEMM=${GEMM:-1}
DRIFT=${DRIFT:-1}
DRIFT_ROUNDS=${DRIFT_ROUNDS:-30}
PY=/usr/bin/python3
BIN="$BUILD/moedit"
mkdir -p "$WORK"
[ -x "$BIN" ] || { echo "bench.sh: $BIN not built" >&2; exit 1; }
$PY -c 'import torch' 2> /dev/null ||
    { echo "bench.sh: $PY has no torch (Debian's python3-torch: MOEDIT_FIXTURE_TOOLS=1 scripts/deps.sh)" >&2; exit 1; }
unset OMP_WAIT_POLICY GOMP_SPINCOUNT
torch_py() { OMP_WAIT_POLICY=passive $PY "$@"; }
field() { { grep -o "\(^\| \)$1: [0-9][0-9.]*" || true; } | head -1 | awk '{ print $NF }'; }   # "" when absent or n/a
# median of three decodes in one process, the first one cold (`decode --repeat 3
# --time`), as PyTorch's decode is timed (tools/bench_vae_torch.py): the same
# statistic on both sides
decode_ms() {
    "$BIN" decode --threads "$THREADS" --time --repeat 3 "$@" 2>&1 >/dev/null |
        { grep -o "^decode_ms: [0-9.]*" || true; } | awk '{ print $2 }' | sort -n | sed -n 2p
}
# shares of the peak to a tenth of a per cent: the issue's goals are read off them
pct() { awk -v g="$1" -v p="$2" 'BEGIN { if (p > 0 && g != "") printf "%.1f%%", 100 * g / p; else printf "–" }'; }
ratio() { awk -v t="$1" -v m="$2" 'BEGIN { printf "%s", (t + 0 > 0 && m + 0 > 0) ? sprintf("%.1f×", t / m) : "–" }'; }   # speed-up t/m
# wall seconds of a command, or "failed (exit N)": a failed run is never a time
secs() {
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    "$@" > /dev/null 2> "$WORK/secs.err" || rc=$?
    t1=$(date +%s.%N)
    if [ $rc -ne 0 ]; then printf "failed (exit %d: %s)" $rc "$(head -c 120 "$WORK/secs.err")"; return; fi
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }'
}

# The peaks: the best of three measurements a second apart. On a shared host
# (a VM beside other tenants) one measurement can land in a busy second and
# read low, which would put later rows above 100 %; the end of the run
# measures again and says whether the host was as fast then.
all_of() { sed -n "s/^$1: \([0-9][0-9.]*\).*/\1/p"; }   # every value of a field, one per line
peaks=$(for i in 1 2 3; do "$BIN" bench --peak --threads "$THREADS"; [ $i = 3 ] || sleep 1; done)
peak=$(echo "$peaks" | sed -n '1,/^peak_fp32_gflops/p')   # the first measurement's lines
CPU=$(echo "$peak" | sed -n 's/^cpu: //p')
PEAK=$(echo "$peaks" | all_of peak_fp32_gflops | sort -g | tail -1)
PEAK_BF16=$(echo "$peaks" | all_of peak_bf16_gflops | sort -g | tail -1)
# Where the bf16 weight products run on AMX tiles, their limit is AMX's.
PEAK_AMX=$(echo "$peaks" | all_of peak_amx_gflops | sort -g | tail -1)
PEAK_BF16_LIMIT=${PEAK_AMX:-$PEAK_BF16}
PEAK_ALL=$(echo "$peaks" | all_of peak_fp32_gflops | paste -sd/)
# One thread's FMA peak beside all threads': threads on SMT siblings share a
# core's FMA units (a VM's two vCPUs placed on one core read as one thread),
# and every figure below is then a fraction of what as many whole cores give.
PEAK_ONE=$("$BIN" bench --peak --threads 1 | field peak_fp32_gflops)
# Each row's share is of the larger of the start's peak and one measured just
# before the row: a VM's host can move it between cores within a run (one
# 2026-12-04 run started on one core's two SMT siblings, 227 GFLOP/s, and was
# on two cores, 435, two minutes later), and a row measured against a start
# that read low would be overstated. ROWS_RAISED counts the rows whose own
# peak was over 5 % above the start's; PEAK_MAX is the largest peak used.
# ROW_PEAKS lists the fp32 peaks measured before the rows, in order.
ROWS_RAISED=0
PEAK_MAX=$PEAK
ROW_PEAKS=
row_peak() {   # row_peak fp32|bf16 MEASURED: sets ROW_PEAK
    local start=$PEAK
    [ "$1" = fp32 ] || start=$PEAK_BF16_LIMIT
    ROW_PEAK=$(awk -v s="$start" -v m="$2" 'BEGIN { print (m + 0 > s + 0) ? m : s }')
    if awk -v s="$start" -v m="$2" 'BEGIN { exit !(m + 0 > 1.05 * s) }'; then ROWS_RAISED=$((ROWS_RAISED + 1)); fi
    if [ "$1" = fp32 ]; then
        PEAK_MAX=$(awk -v a="$PEAK_MAX" -v b="$ROW_PEAK" 'BEGIN { print (b + 0 > a + 0) ? b : a }')
        ROW_PEAKS="$ROW_PEAKS${ROW_PEAKS:+, }${2:-?}"
    fi
}
bf16_field=peak_bf16_gflops
[ -z "$PEAK_AMX" ] || bf16_field=peak_amx_gflops
HOST="$CPU; $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GB"

echo "# moedit benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Host: $HOST. Threads $THREADS; load average at start $(cut -d' ' -f1-3 /proc/loadavg)."
echo "Measured peaks (same run, $THREADS threads, best of three: fp32 $PEAK_ALL): fp32 **$PEAK GFLOP/s** ($(echo "$peak" | sed -n 's/^peak_fp32_gflops: [0-9.]* (\([^ ]*\).*/\1/p') FMA loop)," \
     "bf16 **${PEAK_BF16:-n/a}${PEAK_BF16:+ GFLOP/s}** (vdpbf16ps loop)${PEAK_AMX:+, AMX bf16 **$PEAK_AMX GFLOP/s** (tdpbf16ps loop: the bf16 weight products of the transformer run on AMX tiles, as do the convolutions of \`--vae-bf16\`, and their bf16 shares below are of this peak)}." \
     "Each row's share is of the larger of these and the peak measured just before the row (see the end)."
awk -v one="$PEAK_ONE" -v all="$PEAK" -v n="$THREADS" 'BEGIN {
    if (n < 2 || one + 0 <= 0) exit
    r = all / one
    printf "One thread'"'"'s FMA peak %.1f GFLOP/s: %d threads reach %.2f× of it%s\n", one, n, r,
           r < 0.65 * n ? " — the threads share FMA units (SMT siblings of fewer cores; on a VM, vCPUs the host placed so), so every rate below is that of fewer cores than threads." : "."
}'
# How far apart the first two CPUs are (tools/cpu_pair.c): every parallel region
# hands rows from one thread to the other, and each thread streams weights
# from memory at its own CPU's rate.
if [ "$THREADS" -ge 2 ] && [ "$(nproc)" -ge 2 ] && [ -x "$BUILD/cpu_pair" ]; then
    pair=$("$BUILD/cpu_pair" 2>&1) || pair=""
    if [ -n "$pair" ]; then
        pf() { echo "$pair" | field "$1"; }
        echo "CPUs $(pf cpu_a) and $(pf cpu_b) (\`cpu_pair\`): a cache line's round trip $(pf round_trip_ns) ns; 768 KB one" \
             "of them wrote, read by the other at $(pf handoff_a_gbps) and $(pf handoff_b_gbps) GB/s (by the writer" \
             "itself $(pf own_a_gbps) and $(pf own_b_gbps)); memory read at $(pf memory_a_gbps) GB/s on CPU $(pf cpu_a)" \
             "and $(pf memory_b_gbps) on CPU $(pf cpu_b)."
    fi
fi
echo

echo "## Transformer forward (host: $CPU)"
echo
echo "| model | batch | PyTorch ms | moedit ms | speed-up | moedit GFLOP/s (% of fp32 peak) | PyTorch bf16 ms | moedit bf16 ms | bf16 speed-up | bf16 GFLOP/s (% of bf16 peak) | peak RSS f32 / bf16 MB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
# One row: family (moe: DiT-MoE with 8 experts, top-2; dit: dense DiT),
# shape, batch; the random checkpoint is written on first use.
transformer_row() {
    local fam=$1 s=$2 b=$3 it=$ITERS label pt save=() torch_ms me me_ms me_gf me_peak bf bf_ms bf_gf bf_pct r2 torch_bf
    [ "$b" -gt 2 ] && it=$ITERS16
    if [ "$fam" = moe ]; then label="DiT-MoE-$s/2-8E2A"; else label="DiT-$s/2 (dense)"; fi
    pt="$WORK/${fam}_$s.pt"
    [ -f "$pt" ] || save=(--save "$pt")
    torch_ms=$(torch_py tools/bench_torch.py --family "$fam" --shape "$s" --batch "$b" --iters "$it" --threads "$THREADS" "${save[@]}" 2>/dev/null | field forward_ms)
    me=$("$BIN" bench --model "$pt" --batch "$b" --iters "$it" --threads "$THREADS")
    me_ms=$(echo "$me" | field forward_ms) me_gf=$(echo "$me" | field gflops)
    row_peak fp32 "$(echo "$me" | field peak_fp32_gflops)"
    me_peak=$ROW_PEAK
    bf_ms=– bf_gf=– bf_pct=– r2=– torch_bf=–
    if [ -n "$PEAK_BF16" ]; then
        # PyTorch's own bf16 inference (autocast, oneDNN) beside moedit's bf16 mode
        torch_bf=$(torch_py tools/bench_torch.py --family "$fam" --shape "$s" --batch "$b" --iters "$it" --threads "$THREADS" --bf16 2>/dev/null | field forward_ms)
        [ -n "$torch_bf" ] || torch_bf=–
        bf=$("$BIN" bench --model "$pt" --batch "$b" --iters "$it" --threads "$THREADS" --bf16)
        bf_ms=$(echo "$bf" | field forward_ms) bf_gf=$(echo "$bf" | field gflops)
        row_peak bf16 "$(echo "$bf" | field $bf16_field)"
        bf_pct=$(pct "$bf_gf" "$ROW_PEAK") r2=$(echo "$bf" | field peak_rss_mb)
    fi
    echo "| $label | $b | $torch_ms | $me_ms | $(ratio "$torch_ms" "$me_ms") | $me_gf ($(pct "$me_gf" "$me_peak")) | $torch_bf | $bf_ms | $(ratio "$torch_bf" "$bf_ms") | $bf_gf ($bf_pct) | $(echo "$me" | field peak_rss_mb) / $r2 |"
}
for s in $SHAPES; do
    for b in $BATCHES; do transformer_row moe "$s" "$b"; done
done
for s in $DENSE; do transformer_row dit "$s" 2; done
for name in fmnist-moe fmnist-switch; do
    pt="models/$name/model.pt"
    [ -f "$pt" ] || continue
    me=$("$BIN" bench --model "$pt" --batch 16 --iters "$ITERS" --threads "$THREADS")
    me_gf=$(echo "$me" | field gflops)
    row_peak fp32 "$(echo "$me" | field peak_fp32_gflops)"
    echo "| $name (shipped) | 16 | – | $(echo "$me" | field forward_ms) | – | $me_gf ($(pct "$me_gf" "$ROW_PEAK")) | – | – | – | – | $(echo "$me" | field peak_rss_mb) / – |"
done
echo

echo "## Convolution networks (host: $CPU)"
echo
echo "| work | PyTorch | moedit | speed-up | moedit GFLOP/s (% of fp32 peak) |"
echo "|---|---|---|---|---|"
vae="$WORK/vae"
# PyTorch's decode is timed in every run (its seeded weights and latents are
# rewritten, the same each time): a time kept from an earlier run would not
# be a same-run ratio.
torch_py tools/bench_vae_torch.py --threads "$THREADS" --latent-size "$VAE_LATENT" --save "$vae" > "$WORK/vae_torch.txt" 2>&1 || true
if [ -d "$vae/vae" ]; then
    t_s=$(sed -n 's/.*median \([0-9.]*\) s.*/\1/p' "$WORK/vae_torch.txt" | head -1)
    gflop=$(field gflop < "$WORK/vae_torch.txt")
    # moedit's own arithmetic: on its own kernels (AVX-512, AVX2) the
    # float32 3×3 layers by Winograd's F(4×4, 3×3), a quarter of PyTorch's
    # products; the bf16 decode keeps direct convolutions, the ×2
    # upsamplings folded into their 3×3 convolutions (4 of 9 taps)
    gfold=$(field gflop_moedit < "$WORK/vae_torch.txt")
    gwino=$(field gflop_winograd < "$WORK/vae_torch.txt")
    how="Winograd"
    case "$CPU" in *"kernels openblas"*) gfold=$gflop gwino=$gflop how="op_conv2d" ;; esac   # no own kernels
    [ -n "$gfold" ] || gfold=$gflop
    [ -n "$gwino" ] || gwino=$gfold
    now=$("$BIN" bench --peak --threads "$THREADS")
    row_peak fp32 "$(echo "$now" | field peak_fp32_gflops)"
    dec_peak=$ROW_PEAK
    dec_ms=$(decode_ms --vae "$vae/vae" --latent "$vae/latent.npy" --out "$WORK/dec.npy")
    # the share on the decode's 620 GFLOP (PyTorch's direct count, the
    # issue's) is its speed against the peak; the share on what it
    # multiplies, how busy the kernels keep the FMA units
    awk -v t="$t_s" -v m="$dec_ms" -v g="$gflop" -v gm="$gwino" -v p="$dec_peak" -v l="$VAE_LATENT" -v how="$how" 'BEGIN {
        printf "| sd-vae decode, %d² latent → %d² (%.0f GFLOP) | %.2f s (%.0f GFLOP/s, %.1f%%) | %.2f s | %.2f× | %.0f (%.1f%%) on the decode'"'"'s %.0f GFLOP; %.0f (%.1f%%) on the %.0f it multiplies (%s) |\n",
               l, 8 * l, g, t, g / t, 100 * g / t / p, m / 1e3, t * 1e3 / m, g / (m / 1e3), 100 * g / (m / 1e3) / p, g,
               gm / (m / 1e3), 100 * gm / (m / 1e3) / p, gm, how }'
    # --vae-bf16 only where it is faster: elsewhere it is an emulation (same numerics, no gain)
    if [ -n "$PEAK_BF16" ]; then
        row_peak bf16 "$(echo "$now" | field $bf16_field)"
        bf_ms=$(decode_ms --vae "$vae/vae" --latent "$vae/latent.npy" --out "$WORK/dec_bf16.npy" --vae-bf16)
        # on AMX the convolutions' bf16 products run on AMX tiles: their share is of the AMX peak
        awk -v t="$t_s" -v m="$bf_ms" -v g="$gfold" -v gt="$gflop" -v p="$ROW_PEAK" -v which="${PEAK_AMX:+AMX }bf16" 'BEGIN {
            printf "| same, `--vae-bf16` | – | %.2f s | %.2f× | %.0f (%.1f%% of the %s peak) on the decode'"'"'s %.0f GFLOP; %.0f (%.1f%%) on the %.0f it multiplies (folded) |\n",
                   m / 1e3, t * 1e3 / m, gt / (m / 1e3), 100 * gt / (m / 1e3) / p, which, gt, g / (m / 1e3), 100 * g / (m / 1e3) / p, g }'
    else
        echo "| same, \`--vae-bf16\` | – | n/a (no AVX512-BF16) | – | – |"
    fi
fi
inc="$WORK/inception"
[ -f "$inc/images.npz" ] && [ "$(cat "$inc/num" 2>/dev/null)" = "$INC_NUM" ] || rm -rf "$inc"
save=()
[ -d "$inc" ] || save=(--save "$inc")
inc_torch=$(torch_py tools/bench_inception_torch.py --num "$INC_NUM" --threads "$THREADS" --iters 3 "${save[@]}" 2>/dev/null || true)
[ -f "$inc/images.npz" ] && echo "$INC_NUM" > "$inc/num"
t_ips=$(echo "$inc_torch" | field images_per_s) gpi=$(echo "$inc_torch" | field gflop_per_image)
# the best of three passes over the same images on both sides, each after a
# warm-up (PyTorch: one batch; moedit: one whole pass), in one process each
inc_me=$("$BIN" bench --inception "$inc/inception.pth" --images "$inc/images.npz" --iters 3 --threads "$THREADS")
me_ips=$(echo "$inc_me" | field images_per_s) me_gpi=$(echo "$inc_me" | field gflop_multiplied_per_image)
row_peak fp32 "$(echo "$inc_me" | field peak_fp32_gflops)"
inc_peak=$ROW_PEAK
awk -v t="$t_ips" -v m="$me_ips" -v g="$gpi" -v gm="$me_gpi" -v p="$inc_peak" -v n="$INC_NUM" 'BEGIN {
    printf "| InceptionV3 pool3, %d images 256² (%.1f GFLOP each) | %.2f img/s (%.0f GFLOP/s, %.1f%%) | %.2f img/s | %.2f× | %.0f (%.1f%%) on PyTorch'"'"'s %.1f GFLOP; %.0f (%.1f%%) on the %.2f it multiplies |\n",
           n, g, t, t * g, 100 * t * g / p, m, m / t, m * g, 100 * m * g / p, g, m * gm, 100 * m * gm / p, gm }'
echo
echo "moedit's Inception pass in the same process: median $(echo "$inc_me" | field median_images_per_s) img/s, first (warm-up) $(echo "$inc_me" | field first_pass_images_per_s) img/s; \`moedit bench --inception\` counts $(echo "$inc_me" | field gflop_per_image) GFLOP an image."
echo

echo "## End to end (host: $CPU)"
echo
fs=$(secs "$BIN" fid-sample --npz "$WORK/fid.npz" --num "$FID_NUM" --threads "$THREADS")
case $fs in
    failed*) echo "fmnist-moe FID samples at the model defaults (\`moedit fid-sample\`, $FID_NUM samples): $fs" ;;
    *) awk -v s="$fs" -v n="$FID_NUM" 'BEGIN { printf "fmnist-moe FID samples at the model defaults (`moedit fid-sample`, %d samples, PNG-free .npz): %.1f s, **%.0f s per 1000 samples**.\n", n, s, s * 1000 / n }' ;;
esac
echo

if [ "$SHARED" = 1 ]; then
    echo "## Shared machine (host: $CPU)"
    echo
    echo "\`moedit fid-sample --num $FID_NUM --sampler ddim --steps 50\` (fmnist-moe), wall seconds; the competitor is one busy shell loop, started before moedit or 1 s after it."
    echo
    echo "| waits | alone | beside 1 busy process | busy process starts 1 s later |"
    echo "|---|---|---|---|"
    run_fs() {   # run_fs VAR=VALUE THREADS
        secs env "$1" "$BIN" fid-sample --npz "$WORK/shared.npz" --num "$FID_NUM" --sampler ddim --steps 50 --threads "$2"
    }
    variant() {   # NAME -> "VAR=VALUE THREADS|label"
        case $1 in
            default) echo "X=1 $THREADS|moedit default (this small model: batch workers, one thread each)" ;;
            spin300) echo "GOMP_SPINCOUNT=300 $THREADS|short spins (GOMP_SPINCOUNT=300)" ;;
            passive) echo "OMP_WAIT_POLICY=passive $THREADS|OMP_WAIT_POLICY=passive" ;;
            threads1) echo "X=1 1|--threads 1" ;;
        esac
    }
    run_v() { local spec; spec=$(variant "$1"); run_fs ${spec%%|*}; }
    variants="default spin300 passive threads1"
    declare -A later alone
    # a run stopped here (Ctrl-C, kill) must not leave its busy loop behind
    hog=
    trap '[ -z "$hog" ] || kill "$hog" 2>/dev/null' EXIT
    trap 'exit 130' INT TERM
    for v in $variants; do
        ( sleep 1; exec sh -c 'while :; do :; done' ) &
        hog=$!
        later[$v]=$(run_v $v)
        kill "$hog"
        wait "$hog" 2>/dev/null || true
        hog=
    done
    for v in $variants; do alone[$v]=$(run_v $v); done
    ( while :; do :; done ) &
    hog=$!
    for v in $variants; do
        t=$(run_v $v)
        spec=$(variant $v)
        echo "| ${spec#*|} | ${alone[$v]} | $t | ${later[$v]} |"
    done
    kill "$hog"
    wait "$hog" 2>/dev/null || true
    hog=
    echo
fi
if [ "$GEMM" = 1 ]; then
    echo "## GEMM (host: $CPU)"
    echo
    if [ -x "$BUILD/bench_gemm" ]; then
        g=$("$BUILD/bench_gemm" --threads "$THREADS" 2>&1) || g="bench_gemm failed: $g"
        echo "Float32 products, \`bench_gemm\` (moedit's me_gemm, weights packed once, against OpenBLAS sgemm on the same" \
             "operands; best of 10 samples per side in alternating rounds; peak: $(echo "$g" | sed -n 's/^peak_fp32_gflops: //p'))."
        echo "$g" | grep '^|' || echo "$g"
    else
        echo "$BUILD/bench_gemm not built."
    fi
    echo
fi
if [ "$DRIFT" = 1 ]; then
    echo "## Drift (host: $CPU)"
    echo
    if [ -x "$BUILD/peak_drift" ] && [ -e "$WORK/moe_S.pt" ]; then
        d=$("$BUILD/peak_drift" "$WORK/moe_S.pt" --threads "$THREADS" --rounds "$DRIFT_ROUNDS" --sustain 10 2>&1) ||
            d="peak_drift failed: $(echo "$d" | tail -1)"
        echo "\`peak_drift\`: the FMA peak measurement and five float32 DiT-MoE-S/2 CFG-pair forwards, alternated" \
             "$DRIFT_ROUNDS times in one process — what the minute alone does to a share:"
        echo
        echo "$d" | sed -n 's/^\(rounds kept\|peak:\|forward against\|sustained\)/- &/p'
    else
        echo "$BUILD/peak_drift or $WORK/moe_S.pt missing (the S/2 checkpoint comes from SHAPES with S)."
    fi
    echo
fi
end_peak=$("$BIN" bench --peak --threads "$THREADS" | field peak_fp32_gflops)
awk -v e="$end_peak" -v p="$PEAK" -v top="$PEAK_MAX" -v raised="$ROWS_RAISED" 'BEGIN {
    note = "."
    if (e < 0.95 * p) note = " — the host was busier by then: rows near the end may read low."
    if (e > 1.05 * top) note = " — every measurement before it read low (a busy host): every % above is overstated; do not publish this run."
    else if (e > 1.05 * p) note = " — the start'"'"'s three read low; the rows used the peaks measured just before them."
    printf "FMA peak measured again at the end: %s GFLOP/s (%.0f%% of the start'"'"'s)%s\n", e, 100 * e / p, note
    if (raised == 1) printf "One row was measured against a peak of its own over 5 %% above the start'"'"'s (the host sped up during the run); its share is of that peak.\n"
    if (raised > 1) printf "%d rows were measured against peaks of their own over 5 %% above the start'"'"'s (the host sped up during the run); their shares are of those peaks.\n", raised }'
echo "FMA peaks measured just before the float32 rows, in order: $ROW_PEAKS."
echo "Load average at end: $(cut -d' ' -f1-3 /proc/loadavg)."
