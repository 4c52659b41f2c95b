#!/usr/bin/python3
"""Would a bfloat16 Winograd decode be accurate enough? Emulates, in PyTorch,
the bench decode of tools/bench_vae_torch.py (sd-vae decoder, random weights
of seed 0, a 32² latent of seed 1 → 256²) four ways and prints each one's
error against the float32 decode, in 8-bit pixel levels (the output's [-1, 1]
range is 255 levels):

  direct bf16     every convolution's input and weights rounded to bf16 (to
                  nearest even), sums in float32 — what `--vae-bf16` does
                  (moedit measures max 0.031, RMS 0.0045 on this decode);
  F(4×4, 3×3) f32 the 3×3 layers of 64+ channels each way by Winograd's
                  F(4×4, 3×3) (points 0, ±1, ±2, ∞) as moedit's float32
                  decode runs them (ops/conv_winograd.c), in float32;
  F(4×4, 3×3) bf16 the same with the transformed input Bᵀ d B and weights
                  G g Gᵀ rounded to bf16 before their products — a bf16
                  Winograd decode on the `vdpbf16ps` tiles; the other layers
                  direct bf16;
  F(2×2, 3×3) bf16 the same with F(2×2, 3×3) (points 0, ±1, ∞), whose
                  transforms have coefficients of 1 only.

The transforms and products run in float64 here, so each row measures the
rounding the variant adds, not this emulation's.

  /usr/bin/python3 tools/winograd_bf16_error.py [--latent-size 32]
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vae_torch import bench_decoder  # noqa: E402

# Lavin & Gray's F(4×4, 3×3) and F(2×2, 3×3): y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A.
F4 = dict(
    BT=[[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
    G=[[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
       [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
    AT=[[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]])
F2 = dict(
    BT=[[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
    G=[[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
    AT=[[1, 1, 1, 0], [0, 1, -1, -1]])


def bf16(x):
    return x.to(torch.bfloat16).to(x.dtype)


def winograd_conv(x, w, b, mats, round_bf16):
    """A 3×3, stride-1, padding-1 convolution of x [n, c, h, w] (h, w multiples
    of the block) by the given minimal filtering, in float64."""
    BT, G, AT = (torch.tensor(mats[k], dtype=torch.float64) for k in ("BT", "G", "AT"))
    m, a = AT.shape                      # output block, input tile
    n, c, h, wd = x.shape
    o = w.shape[0]
    assert h % m == 0 and wd % m == 0, "plane not a whole number of blocks"
    d = F.pad(x.double(), (1, a - m - 1, 1, a - m - 1))
    tiles = d.unfold(2, a, m).unfold(3, a, m)                    # n, c, bh, bw, a, a
    V = torch.einsum("ij,ncxyjk,lk->ilcnxy", BT, tiles, BT).reshape(a * a, c, -1)
    U = torch.einsum("ij,ocjk,lk->iloc", G, w.double(), G).reshape(a * a, o, c)
    if round_bf16:
        V, U = bf16(V), bf16(U)
    M = torch.bmm(U, V).reshape(a, a, o, n, h // m, wd // m)     # per tile position
    Y = torch.einsum("ij,jkonxy,lk->onxiyl", AT, M, AT)          # o, n, bh, m, bw, m
    y = Y.reshape(o, n, h, wd).permute(1, 0, 2, 3)
    return (y + b.double().view(1, -1, 1, 1)).float()


def decode(model, z, variant):
    """model(z) with every Conv2d run as `variant` says."""
    originals = {}

    def run(conv, x):
        w, b = conv.weight, conv.bias
        winograd = (variant != "f32" and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
                    and conv.in_channels >= 64 and conv.out_channels >= 64)
        if variant == "f4_f32" and winograd:
            return winograd_conv(x, w, b, F4, round_bf16=False)
        if variant == "f4_f32" or variant == "f32":
            return originals[conv](x)
        if variant in ("f4_bf16", "f2_bf16") and winograd:
            return winograd_conv(x, w, b, F4 if variant == "f4_bf16" else F2, round_bf16=True)
        return F.conv2d(bf16(x), bf16(w), b, conv.stride, conv.padding)

    for mod in model.modules():
        if isinstance(mod, torch.nn.Conv2d):
            originals[mod] = mod.forward
            mod.forward = (lambda c: (lambda x: run(c, x)))(mod)
    try:
        with torch.no_grad():
            return model(z)
    finally:
        for mod, fwd in originals.items():
            mod.forward = fwd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latent-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    _, model, z = bench_decoder(args.latent_size)
    base = decode(model, z, "f32").double()
    level = 2.0 / 255
    print(f"float32 decode {tuple(base.shape)}, outputs {base.min():.3f} … {base.max():.3f}")
    for name, variant in (("direct bf16", "direct_bf16"), ("F(4×4, 3×3) f32", "f4_f32"),
                          ("F(4×4, 3×3) bf16", "f4_bf16"), ("F(2×2, 3×3) bf16", "f2_bf16")):
        e = decode(model, z, variant).double() - base
        mx, rms = e.abs().max().item(), e.pow(2).mean().sqrt().item()
        print(f"{name:17s} max {mx:.3g} RMS {rms:.3g}  ({mx / level:.2f} / {rms / level:.2f} levels); "
              f"pixels off by more than one level {100 * (e.abs() > level).double().mean().item():.2f} %")


if __name__ == "__main__":
    main()
