#!/bin/sh
# Measures the shipped models' sample quality with the project's Fashion-MNIST
# classifier: 1000 balanced samples (100 per class) from `moedit fid-sample`,
# scored by tools/eval_samples.py (accuracy of classifier label == conditioning
# label, per class, and a feature-space FID against the test set), plus the CPU
# seconds the sampling took on one thread (VAE decode included).
#
# Per model, at its default cfg: DDPM 250, DDIM 25/50/250, dpm++2m 10/15/20/25,
# dpm++3m 15/20, unipc 10/20 and dpm++2m-sde 20/50, each once with guidance on
# every step and once with guidance only inside the interval of Kynkäänniemi
# et al. 2024 (σ in [0.28, 5.42], as timesteps of the model's schedule:
# 82,579 linear, 167,882 cosine); then cfg 2 and 4 with the default sampler,
# and the ceiling the VAE sets (the classifier on the test set and on its VAE
# reconstructions).
#
# Every setting leaves OUT/NAME.txt; settings with a result are skipped, so the
# script can be stopped and rerun, or given a subset. The last step prints the
# markdown table of everything in OUT.
# usage: scripts/eval_quality.sh [BUILD_DIR] [NUM] [SETTING...]
#        SETTING = MODEL-NAME as listed by `LIST=1 scripts/eval_quality.sh`
#        THREADS=1 OUT=dir NICE=5 scripts/eval_quality.sh
# needs Debian python3-torch and dataset-fashion-mnist
set -e
cd "$(dirname "$0")/.."
moedit=${1:-build}/moedit
num=${2:-1000}
[ $# -ge 2 ] && shift 2 || shift $#
out=${OUT:-build/quality}
threads=${THREADS:-1}
mkdir -p "$out"

# name|flags. fmnist-switch's cosine schedule cannot start at t = 999 (see
# README): its DDPM 250 is the ddim250 respacing and its multistep solvers
# use the leading spacing (first timestep 20·(1000 // 21) = 940 at 20 steps).
settings() {
    iv=$1; sp=$2
    for g in "" "-iv"; do
        f=; [ "$g" ] && f="--cfg-interval $iv"
        echo "ddpm250$g|--sampler ddpm --steps DDPM250 $f"
        for s in 25 50 250; do echo "ddim$s$g|--sampler ddim --steps ddim$s $f"; done
        for s in 10 15 20 25; do echo "dpm2m-$s$g|--sampler dpm++2m --steps $s $sp $f"; done
        for s in 15 20; do echo "dpm3m-$s$g|--sampler dpm++3m --steps $s $sp $f"; done
        for s in 10 20; do echo "unipc-$s$g|--sampler unipc --steps $s $sp $f"; done
        for s in 20 50; do echo "dpm2msde-$s$g|--sampler dpm++2m-sde --steps $s $sp $f"; done
    done
    echo "ddpm250-cfg2|--sampler ddpm --steps DDPM250 --cfg 2"
    echo "ddpm250-cfg4|--sampler ddpm --steps DDPM250 --cfg 4"
}
all() {
    settings 82,579 "--spacing linspace" | sed 's/DDPM250/250/; s/^/fmnist-moe-/'
    settings 167,882 "--spacing leading" | sed 's/DDPM250/ddim250/; s/^/fmnist-switch-/'
}
if [ "$LIST" ]; then all | cut -d'|' -f1; exit 0; fi

run() {   # run NAME FLAGS
    name=$1; flags=$2
    model=$(echo "$name" | cut -d- -f1,2)
    res="$out/$name.txt"
    [ -s "$res" ] && return 0
    # shellcheck disable=SC2086
    /usr/bin/time -f "cpu_seconds: %U %S" -o "$out/$name.time" nice -n "${NICE:-5}" "$moedit" fid-sample \
        --model "$model" --num "$num" --batch 100 --seed 0 --threads "$threads" --npz "$out/$name.npz" \
        $flags 2>"$out/$name.log"
    {
        echo "command: moedit fid-sample --model $model --num $num --batch 100 --seed 0 --threads $threads $flags"
        awk '{printf "cpu_seconds: %.1f\n", $2 + $3}' "$out/$name.time"
        /usr/bin/python3 tools/eval_samples.py "$out/$name.npz"
    } >"$res.tmp"
    mv "$res.tmp" "$res"
    rm -f "$out/$name.npz" "$out/$name.time"
    echo "== $name"; cat "$res"
}

all | while IFS='|' read -r name flags; do
    if [ $# -gt 0 ]; then
        keep=; for s in "$@"; do [ "$s" = "$name" ] && keep=1; done
        [ "$keep" ] || continue
    fi
    run "$name" "$flags"
done
if [ $# -eq 0 ] && [ ! -s "$out/vae-ceiling.txt" ]; then
    /usr/bin/python3 tools/eval_samples.py --vae-ceiling models/fmnist-vae >"$out/vae-ceiling.txt"
fi

echo "| setting | class accuracy | feature FID | CPU s / 1000 samples |"
echo "|---|---|---|---|"
for f in "$out"/*.txt; do
    case $f in *vae-ceiling.txt) continue ;; esac
    awk -v n="$(basename "$f" .txt)" -v num="$num" '
        /^cpu_seconds:/ { cpu = $2 }
        /^accuracy:/ { acc = $2 }
        /^feature FID/ { fid = $NF }
        END { printf "| %s | %s | %s | %.0f |\n", n, acc, fid, cpu * 1000 / num }' "$f"
done
