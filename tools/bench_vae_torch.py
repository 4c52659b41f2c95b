#!/usr/bin/python3
"""Times the sd-vae-ft-mse decoder (block_out_channels [128,256,512,512],
2 layers per block, 32 groups) in PyTorch on CPU, random weights; by default
a 256×256 decode (32×32 latents) with 2 threads, the configuration moedit's
`decode` is compared on. Prints the median decode time and `gflop:` (the
decoder's Conv2d/Linear multiply-adds ×2, for shares of the peak).

--save DIR also writes that model as a diffusers folder (DIR/vae: config.json
+ diffusion_pytorch_model.bin), the latents (DIR/latent.npy, already
multiplied by the scaling factor so `moedit decode` divides them back) and
PyTorch's output (DIR/torch_out.npy), so moedit can be timed on the same
decode and checked against it. `gflop_moedit:` is the same count for the
products moedit's direct convolutions do: it folds each nearest ×2
upsampling into the 3×3 convolution after it (four 2×2 convolutions of the
source, ops/conv_gemm.c), 4 multiply-adds per input channel and output pixel
there instead of 9. `gflop_winograd:` is the count where its float32 3×3
layers of 64+ channels, upsampled or not, run by Winograd's F(4×4, 3×3)
(ops/conv_winograd.c, on AVX-512 and AVX2 CPUs): 36 multiply-adds per channel pair
and 4×4 output block instead of 144 (the transforms' additions not counted):

  /usr/bin/python3 tools/bench_vae_torch.py --save /tmp/vaebench
  /usr/bin/time -v build/moedit decode --vae /tmp/vaebench/vae \\
      --latent /tmp/vaebench/latent.npy --out /tmp/vaebench/moedit_out.npy --threads 2
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vae_reference as ref  # noqa: E402


def count_gflop(model, *inputs, folded=False, winograd=False):
    """Multiply-adds ×2 of every Conv2d and Linear in one forward (the
    attention products are not modules and are left out: under 1 %);
    folded: the 3×3 convolutions after a ×2 upsampling at 2×2 taps;
    winograd: the 3×3, stride-1, padding-1 ones of 64+ input and output
    channels at 36 per 4×4 output block (op_winograd_pays), before the
    fold."""
    total = [0]
    after_upsampling = {id(m.conv) for m in model.modules() if isinstance(m, ref.Upsample2D)}

    def hook(m, inp, out):
        if isinstance(m, torch.nn.Conv2d):
            taps = m.kernel_size[0] * m.kernel_size[1]
            if (winograd and tuple(m.kernel_size) == (3, 3) and tuple(m.stride) == (1, 1)
                    and tuple(m.padding) == (1, 1) and m.groups == 1 and m.in_channels >= 64 and m.out_channels >= 64):
                n, c, h, w = out.shape
                total[0] += 2 * n * c * m.in_channels * 36 * ((h + 3) // 4) * ((w + 3) // 4)
                return
            if folded and id(m) in after_upsampling and tuple(m.kernel_size) == (3, 3):
                taps = 4
            total[0] += 2 * out.numel() * m.in_channels // m.groups * taps
        else:
            total[0] += 2 * out.numel() * m.in_features
    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(*inputs)
    for h in hs:
        h.remove()
    return total[0] / 1e9


def bench_decoder(latent_size, batch=1):
    """The benchmark's decoder (sd-vae's shape, random weights of seed 0), its
    config and a batch of latents (seed 1), already divided by the scaling factor."""
    cfg = ref.diffusers_config([128, 256, 512, 512], 2)
    model = ref.AutoencoderKLDecoder(cfg, "old").eval()
    ref.fill_random_weights(model, 0)
    z = torch.randn(batch, 4, latent_size, latent_size, generator=torch.Generator().manual_seed(1))
    return cfg, model, z


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latent-size", type=int, default=32, help="latent h = w (image is 8x)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--save", metavar="DIR", help="write the model, latents and output for moedit")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    cfg, model, z = bench_decoder(args.latent_size, args.batch)
    s = args.latent_size

    times = []
    with torch.no_grad():
        for _ in range(args.iters):
            t0 = time.perf_counter()
            out = model(z)
            times.append(time.perf_counter() - t0)
    print("torch %s, %d threads, %dx%d latents x%d -> %s: median %.3f s (all: %s)" % (
        torch.__version__, args.threads, s, s, args.batch, tuple(out.shape), float(np.median(times)),
        " ".join("%.3f" % t for t in times)))
    print("gflop: %.1f" % count_gflop(model, z))
    print("gflop_moedit: %.1f" % count_gflop(model, z, folded=True))
    print("gflop_winograd: %.1f" % count_gflop(model, z, folded=True, winograd=True))

    if args.save:
        vae_dir = os.path.join(args.save, "vae")
        os.makedirs(vae_dir, exist_ok=True)
        with open(os.path.join(vae_dir, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        torch.save(model.state_dict(), os.path.join(vae_dir, "diffusion_pytorch_model.bin"))
        np.save(os.path.join(args.save, "latent.npy"), (z * cfg["scaling_factor"]).numpy())
        np.save(os.path.join(args.save, "torch_out.npy"), out.numpy())
        print("wrote", args.save)


if __name__ == "__main__":
    main()
