#!/bin/sh
# Regenerates the images the README shows (samples/) from the shipped models:
# a 10-class grid from each model, expert heatmaps of a traced run, and the
# DiT-MoE paper's views (expert share by step, class and token position;
# Switch-DiT's gate probabilities) as one multi-panel figure, PNG and PDF.
# usage: scripts/make_samples.sh [BUILD_DIR]   (default build)
set -e
cd "$(dirname "$0")/.."
moedit=${1:-build}/moedit
classes=0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p samples
# DDPM (250 steps of routing decisions for the heatmaps), not the solvers the
# models' defaults.json now name
"$moedit" sample --model fmnist-moe --sampler ddpm --steps 250 --class $classes --seed 1 \
    --out samples/fmnist-moe.png --trace "$tmp/moe.trace"
"$moedit" sample --model fmnist-switch --sampler ddpm --steps ddim250 --class $classes --seed 1 \
    --out samples/fmnist-switch.png --trace "$tmp/switch.trace"
"$moedit" heatmap "$tmp/moe.trace" --out "$tmp/moe-heatmaps" --model fmnist-moe --paper --format png,pdf \
    > samples/fmnist-moe-routing.txt
"$moedit" heatmap "$tmp/switch.trace" --out "$tmp/switch-heatmaps" --model fmnist-switch --paper --format png,pdf \
    > samples/fmnist-switch-routing.txt
cp "$tmp/moe-heatmaps/overview.png" samples/fmnist-moe-heatmap-overview.png
cp "$tmp/moe-heatmaps/layer_00.png" samples/fmnist-moe-heatmap-layer0.png
cp "$tmp/switch-heatmaps/overview.png" samples/fmnist-switch-heatmap-overview.png
for m in moe switch; do
    cp "$tmp/$m-heatmaps/paper/paper_all.png" samples/fmnist-$m-paper.png
    cp "$tmp/$m-heatmaps/paper/paper_all.pdf" samples/fmnist-$m-paper.pdf
done
ls -l samples
