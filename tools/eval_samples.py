#!/usr/bin/python3
"""Scores generated Fashion-MNIST samples with the shipped classifier.

Reads an npz written by `moedit fid-sample` (arr_0 uint8 [N, H, W, 3] -- grayscale
replicated, 32x32 for the shipped models, centre-cropped or padded to 28x28 here;
arr_1 int64 [N] conditioning labels) and prints
  - overall and per-class accuracy of "classifier label == conditioning label"
  - a feature-space FID (the classifier's 128-d penultimate features) against the
    Fashion-MNIST test set (10k images).

  /usr/bin/python3 tools/eval_samples.py samples.npz [--classifier models/fmnist-classifier.pt]
  /usr/bin/python3 tools/eval_samples.py --vae-ceiling models/fmnist-vae
      the same scores for the test set itself and for its VAE reconstructions (decode of
      the posterior mean): the best any generator working through that VAE can reach.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist  # noqa: E402
from train_classifier import load_classifier  # noqa: E402


def to_input(images):
    """uint8 [N,H,W,3] or [N,H,W] -> float [N,1,28,28] in [-1,1] (centre crop / pad)."""
    a = np.asarray(images)
    if a.ndim == 4:
        a = a[..., 0]
    if a.ndim != 3:
        raise ValueError(f"expected images [N,H,W(,C)], got shape {a.shape}")
    x = a.astype(np.float32) / 127.5 - 1.0
    h, w = x.shape[1:]
    if h > 28:
        o = (h - 28) // 2
        x = x[:, o:o + 28]
    if w > 28:
        o = (w - 28) // 2
        x = x[:, :, o:o + 28]
    ph, pw = 28 - x.shape[1], 28 - x.shape[2]
    if ph > 0 or pw > 0:
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)), constant_values=-1.0)
    return torch.from_numpy(np.ascontiguousarray(x[:, None]))


@torch.no_grad()
def features_and_preds(model, x, bs=500):
    feats, preds = [], []
    for i in range(0, len(x), bs):
        f = model.features(x[i:i + bs])
        feats.append(f.double().numpy())
        preds.append(model.fc2(f).argmax(1).numpy())
    return np.concatenate(feats), np.concatenate(preds)


def _sqrtm_psd(a):
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def fid(f1, f2):
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    r1 = _sqrtm_psd(s1)
    m = r1 @ s2 @ r1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return max(0.0, float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean))


_REF = {}


def reference_features(model, key="test"):
    if key not in _REF:
        xt, _ = fmnist.load("test", pad_to=28)
        _REF[key] = features_and_preds(model, xt)[0]
    return _REF[key]


def score(model, images_uint8, labels, verbose=True):
    x = to_input(images_uint8)
    labels = np.asarray(labels).astype(np.int64)
    f, p = features_and_preds(model, x)
    acc = float((p == labels).mean())
    per = {}
    for c in range(10):
        sel = labels == c
        if sel.any():
            per[c] = float((p[sel] == c).mean())
    fd = fid(f, reference_features(model)) if len(f) > 1 else float("nan")
    if verbose:
        print(f"samples: {len(labels)}")
        print(f"accuracy: {acc * 100:.2f}%")
        for c, a in per.items():
            print(f"  class {c} ({fmnist.CLASSES[c]}): {a * 100:.1f}% of {(labels == c).sum()}")
        print(f"feature FID (classifier penultimate, vs test set): {fd:.3f}")
    return acc, per, fd


@torch.no_grad()
def vae_ceiling(model, vae_dir):
    from train_dit import load_vae, to_uint8
    vae, _ = load_vae(vae_dir)
    x, y = fmnist.load("test")
    rec = torch.cat([vae.decode(vae.encode(x[i:i + 500])[0]) for i in range(0, len(x), 500)])
    for name, imgs in (("test set", x), ("VAE reconstructions", rec)):
        print(f"== {name}")
        score(model, to_uint8(imgs), np.asarray(y))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("npz", nargs="?")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--classifier", default=os.path.join(here, "..", "models", "fmnist-classifier.pt"))
    ap.add_argument("--vae-ceiling", default="", metavar="VAE_DIR")
    args = ap.parse_args()
    model = load_classifier(args.classifier)
    if args.vae_ceiling:
        vae_ceiling(model, args.vae_ceiling)
        return
    if not args.npz:
        ap.error("an npz of samples, or --vae-ceiling")
    try:
        d = np.load(args.npz)
        imgs, labs = d["arr_0"], d["arr_1"]
    except (OSError, KeyError, ValueError) as e:
        print(f"{args.npz}: cannot read samples: {e}", file=sys.stderr)
        sys.exit(2)
    if len(imgs) != len(labs):
        print(f"{args.npz}: {len(imgs)} images but {len(labs)} labels", file=sys.stderr)
        sys.exit(2)
    score(model, imgs, labs)


if __name__ == "__main__":
    main()
