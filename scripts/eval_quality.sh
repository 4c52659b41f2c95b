#!/bin/sh
# Measures the shipped models' sample quality with the project's Fashion-MNIST
# classifier: 1000 balanced samples (100 per class) from `moedit fid-sample`,
# scored by tools/eval_samples.py (accuracy of classifier label == conditioning
# label, per class, and a feature-space FID against the test set). Per model:
# its defaults (defaults.json), the same sampler at cfg 2 and 4, and DDIM 25 at
# the default cfg; then the ceiling the VAE sets (the classifier on the test set
# and on its VAE reconstructions).
# usage: scripts/eval_quality.sh [BUILD_DIR] [NUM]      (needs Debian python3-torch)
#        THREADS=1 OUT=dir scripts/eval_quality.sh
set -e
cd "$(dirname "$0")/.."
moedit=${1:-build}/moedit
num=${2:-1000}
out=${OUT:-build/quality}
threads=${THREADS:-0}
mkdir -p "$out"
run() {   # run NAME MODEL [sampling flags…]
    name=$1; model=$2; shift 2
    "$moedit" fid-sample --model "$model" --num "$num" --batch 100 --seed 0 --threads "$threads" \
        --npz "$out/$name.npz" "$@" 2>/dev/null
    echo "== $name: moedit fid-sample --model $model --num $num --seed 0 $*"
    /usr/bin/python3 tools/eval_samples.py "$out/$name.npz"
}
for m in fmnist-moe fmnist-switch; do
    run "$m-default" $m
    run "$m-cfg2" $m --cfg 2
    run "$m-cfg4" $m --cfg 4
    run "$m-ddim25" $m --sampler ddim --steps ddim25
done
echo "== VAE ceiling"
/usr/bin/python3 tools/eval_samples.py --vae-ceiling models/fmnist-vae
