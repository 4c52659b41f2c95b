#!/bin/sh
# Measures the shipped models' sample quality with the project's Fashion-MNIST
# classifier: 1000 balanced samples (100 per class) from `moedit fid-sample`,
# scored by tools/eval_samples.py (accuracy of classifier label == conditioning
# label, per class, and a feature-space FID against the test set).
# usage: scripts/eval_quality.sh [BUILD_DIR] [NUM]      (needs Debian python3-torch)
set -e
cd "$(dirname "$0")/.."
moedit=${1:-build}/moedit
num=${2:-1000}
out=${OUT:-build/quality}
mkdir -p "$out"
run() {   # run NAME MODEL [sampling flags…]
    name=$1; model=$2; shift 2
    "$moedit" fid-sample --model "$model" --num "$num" --batch 100 --seed 0 --npz "$out/$name.npz" "$@" 2>/dev/null
    printf '%s\t%s\t' "$name" "$*"
    /usr/bin/python3 tools/eval_samples.py "$out/$name.npz" | grep -E 'accuracy|FID' | tr '\n' ' '
    echo
}
for m in fmnist-moe fmnist-switch; do
    run "$m-default" $m
    for cfg in 2 4 6; do
        run "$m-ddim25-cfg$cfg" $m --sampler ddim --steps ddim25 --cfg $cfg
    done
done
