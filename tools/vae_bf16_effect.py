#!/usr/bin/python3
"""The effect of `--vae-bf16` on generated samples: two npz files from
`moedit fid-sample` with the same model, seed and flags, one decoded in
float32 and one with --vae-bf16 (so the latents are identical and only the
VAE's precision differs). Prints the uint8 pixel differences, each set's
class accuracy and feature FID against the Fashion-MNIST test set (as
tools/eval_samples.py), and the feature FID between the two sets.

  build/moedit fid-sample --num 1000 --batch 100 --seed 0 --npz f32.npz
  build/moedit fid-sample --num 1000 --batch 100 --seed 0 --npz bf16.npz --vae-bf16
  /usr/bin/python3 tools/vae_bf16_effect.py f32.npz bf16.npz
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_samples as ev  # noqa: E402
from train_classifier import load_classifier  # noqa: E402


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("f32")
    ap.add_argument("bf16")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--classifier", default=os.path.join(here, "..", "models", "fmnist-classifier.pt"))
    a = ap.parse_args()
    s32, s16 = np.load(a.f32), np.load(a.bf16)
    if not np.array_equal(s32["arr_1"], s16["arr_1"]):
        sys.exit("vae_bf16_effect.py: the two files have different labels (not the same run settings)")
    x32, x16 = s32["arr_0"].astype(np.int32), s16["arr_0"].astype(np.int32)
    d = np.abs(x32 - x16)
    print(f"images: {len(x32)}; uint8 pixels: max |diff| {d.max()}, mean |diff| {d.mean():.4f}, "
          f"RMS {np.sqrt((d.astype(np.float64) ** 2).mean()):.4f}, differing {100 * (d > 0).mean():.2f} %")
    model = load_classifier(a.classifier)
    feats = {}
    for name, s in (("float32", s32), ("bf16", s16)):
        print(f"== {name}")
        ev.score(model, s["arr_0"], s["arr_1"])
        feats[name], _ = ev.features_and_preds(model, ev.to_input(s["arr_0"]))
    print(f"feature FID float32 vs bf16 sets: {ev.fid(feats['float32'], feats['bf16']):.4f}")


if __name__ == "__main__":
    main()
