#!/usr/bin/python3
"""Times pytorch-fid's InceptionV3 (tools/inception_reference.py, the same
network) on CPU: pool3 features of N random 256x256 RGB images, the work
`moedit fid` does per sample image. Random weights (the real .pth is not
needed to time it).

--save DIR also writes what moedit needs to time the same images:
DIR/inception.pth (torch.save of the state dict, pytorch-fid key names),
DIR/images.npz (arr_0 uint8 [N,256,256,3]) and DIR/ref_stats.npz (mu 0,
sigma I: a reference that costs no features, for `moedit fid`), so
scripts/bench.sh runs

  /usr/bin/python3 tools/bench_inception_torch.py --num 32 --iters 3 --save /tmp/incbench
  build/moedit bench --inception /tmp/incbench/inception.pth \\
      --images /tmp/incbench/images.npz --iters 3

and sets the two images_per_s side by side (both the best of three passes
over the images, each side after its warm-up).

Prints `images_per_s: <rate>` (the best of --iters passes over the images,
after one warm-up batch), `gflop_per_image` (Conv2d and Linear multiply-adds
×2) and the batch and thread count.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from inception_reference import FIDInceptionV3, random_state_dict, images_u8_to_input  # noqa: E402


def count_gflop(model, *inputs):
    """Multiply-adds ×2 of every Conv2d and Linear in one forward (the
    attention products are not modules and are left out: under 1 %)."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, torch.nn.Conv2d):
            total[0] += 2 * out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        else:
            total[0] += 2 * out.numel() * m.in_features
    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(*inputs)
    for h in hs:
        h.remove()
    return total[0] / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--num", type=int, default=32, help="images per pass")
    ap.add_argument("--batch", type=int, default=16, help="images per forward")
    ap.add_argument("--size", type=int, default=256, help="image height = width")
    ap.add_argument("--iters", type=int, default=1, help="timed passes (the best counts)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save", metavar="DIR")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = FIDInceptionV3().eval()
    model.load_state_dict(random_state_dict(model, seed=0))
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (a.num, a.size, a.size, 3), dtype=np.uint8)
    if a.save:
        os.makedirs(a.save, exist_ok=True)
        torch.save(model.state_dict(), os.path.join(a.save, "inception.pth"))
        np.savez(os.path.join(a.save, "images.npz"), imgs, np.zeros(a.num, dtype=np.int64))
        np.savez(os.path.join(a.save, "ref_stats.npz"), mu=np.zeros(2048), sigma=np.eye(2048))
    best = 0.0
    with torch.no_grad():
        model(images_u8_to_input(imgs[: min(a.batch, a.num)]))
        for _ in range(a.iters):
            t0 = time.perf_counter()
            for i in range(0, a.num, a.batch):
                model(images_u8_to_input(imgs[i:i + a.batch]))
            best = max(best, a.num / (time.perf_counter() - t0))
    print("images_per_s: %.3f" % best)
    print("gflop_per_image: %.2f" % count_gflop(model, images_u8_to_input(imgs[:1])))
    print("num: %d batch: %d threads: %d size: %d" % (a.num, a.batch, a.threads, a.size))


if __name__ == "__main__":
    main()
