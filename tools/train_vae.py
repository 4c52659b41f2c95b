#!/usr/bin/python3
"""Trains the small Fashion-MNIST AutoencoderKL shipped as models/fmnist-vae/.

The module tree reproduces the state-dict names and structure of diffusers'
AutoencoderKL (Encoder / Decoder with DownEncoderBlock2D / UpDecoderBlock2D,
UNetMidBlock2D with one single-head Attention, ResnetBlock2D, Downsample2D with the
asymmetric (0,1,0,1) padding and a stride-2 3x3 conv, nearest x2 Upsample2D), written
from scratch here so no diffusers install is needed. Output is a diffusers folder:
config.json + diffusion_pytorch_model.bin (torch.save of the state dict).

Grayscale 1x32x32 -> 4x8x8 latents. Loss: L1 + MSE reconstruction (per pixel) +
beta * KL (per pixel). After training, scaling_factor = 1/std(posterior means) over
the training set, and the scaled posterior means of the whole training set are cached
(build-train/latents.pt) for the transformer trainers.

  nice -n 10 /usr/bin/python3 tools/train_vae.py --out models/fmnist-vae \
      --latents build-train/latents.pt --steps 3000
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist  # noqa: E402

EPS = 1e-6


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=EPS)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, cout, eps=EPS)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class Attention(nn.Module):
    """Single-head spatial self-attention (diffusers Attention as used by the VAE mid block)."""

    def __init__(self, ch, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, ch, eps=EPS)
        self.to_q = nn.Linear(ch, ch)
        self.to_k = nn.Linear(ch, ch)
        self.to_v = nn.Linear(ch, ch)
        self.to_out = nn.ModuleList([nn.Linear(ch, ch), nn.Dropout(0.0)])

    def forward(self, x):
        n, c, h, w = x.shape
        s = self.group_norm(x).view(n, c, h * w).transpose(1, 2)
        q, k, v = self.to_q(s), self.to_k(s), self.to_v(s)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1)
        o = self.to_out[0](a @ v)
        return x + o.transpose(1, 2).reshape(n, c, h, w)


class Downsample2D(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample2D(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownEncoderBlock2D(nn.Module):
    def __init__(self, cin, cout, layers, groups, down):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if j == 0 else cout, cout, groups)
                                      for j in range(layers)])
        self.downsamplers = nn.ModuleList([Downsample2D(cout)]) if down else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
        return x


class UpDecoderBlock2D(nn.Module):
    def __init__(self, cin, cout, layers, groups, up):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if j == 0 else cout, cout, groups)
                                      for j in range(layers)])
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if up else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class UNetMidBlock2D(nn.Module):
    def __init__(self, ch, groups):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(ch, ch, groups), ResnetBlock2D(ch, ch, groups)])
        self.attentions = nn.ModuleList([Attention(ch, groups)])

    def forward(self, x):
        x = self.resnets[0](x)
        x = self.attentions[0](x)
        return self.resnets[1](x)


class Encoder(nn.Module):
    def __init__(self, cin, latent, chans, layers, groups):
        super().__init__()
        self.conv_in = nn.Conv2d(cin, chans[0], 3, padding=1)
        blocks = []
        prev = chans[0]
        for i, c in enumerate(chans):
            blocks.append(DownEncoderBlock2D(prev, c, layers, groups, i != len(chans) - 1))
            prev = c
        self.down_blocks = nn.ModuleList(blocks)
        self.mid_block = UNetMidBlock2D(chans[-1], groups)
        self.conv_norm_out = nn.GroupNorm(groups, chans[-1], eps=EPS)
        self.conv_out = nn.Conv2d(chans[-1], 2 * latent, 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for b in self.down_blocks:
            x = b(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, latent, cout, chans, layers, groups):
        super().__init__()
        rev = list(reversed(chans))
        self.conv_in = nn.Conv2d(latent, rev[0], 3, padding=1)
        self.mid_block = UNetMidBlock2D(rev[0], groups)
        blocks = []
        prev = rev[0]
        for i, c in enumerate(rev):
            blocks.append(UpDecoderBlock2D(prev, c, layers + 1, groups, i != len(rev) - 1))
            prev = c
        self.up_blocks = nn.ModuleList(blocks)
        self.conv_norm_out = nn.GroupNorm(groups, rev[-1], eps=EPS)
        self.conv_out = nn.Conv2d(rev[-1], cout, 3, padding=1)

    def forward(self, z):
        x = self.conv_in(z)
        x = self.mid_block(x)
        for b in self.up_blocks:
            x = b(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class AutoencoderKL(nn.Module):
    def __init__(self, in_channels=1, out_channels=1, latent_channels=4,
                 block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=16):
        super().__init__()
        chans = list(block_out_channels)
        for c in chans:
            if c % norm_num_groups:
                raise ValueError(f"channels {c} not divisible by norm_num_groups {norm_num_groups}")
        self.encoder = Encoder(in_channels, latent_channels, chans, layers_per_block, norm_num_groups)
        self.decoder = Decoder(latent_channels, out_channels, chans, layers_per_block, norm_num_groups)
        self.quant_conv = nn.Conv2d(2 * latent_channels, 2 * latent_channels, 1)
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1)

    def encode(self, x):
        """posterior mean and log variance (logvar clamped as diffusers does)."""
        m = self.quant_conv(self.encoder(x))
        mean, logvar = m.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


def diffusers_config(args, scaling_factor):
    n = len(args.channels)
    return {
        "_class_name": "AutoencoderKL",
        "_diffusers_version": "0.21.0",
        "act_fn": "silu",
        "block_out_channels": list(args.channels),
        "down_block_types": ["DownEncoderBlock2D"] * n,
        "up_block_types": ["UpDecoderBlock2D"] * n,
        "in_channels": 1,
        "out_channels": 1,
        "latent_channels": args.latent,
        "layers_per_block": args.layers,
        "norm_num_groups": args.groups,
        "sample_size": 32,
        "scaling_factor": scaling_factor,
        "force_upcast": False,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/fmnist-vae")
    ap.add_argument("--latents", default="build-train/latents.pt")
    ap.add_argument("--channels", type=int, nargs="+", default=[16, 32, 32])
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--latent", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--beta", type=float, default=1e-4, help="KL weight (per-pixel normalised)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=0, help="stop early after this wall time")
    ap.add_argument("--bench", type=int, default=0, help="only time this many steps")
    ap.add_argument("--finetune-decoder", default="",
                    help="continue training the decoder of this VAE folder with its encoder frozen: "
                         "the latents, and the transformers trained on them, stay valid")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    x_train, y_train = fmnist.load("train")
    x_test, _ = fmnist.load("test")
    frozen_sf = None
    if args.finetune_decoder:
        cfg = json.load(open(os.path.join(args.finetune_decoder, "config.json")))
        args.channels, args.layers = cfg["block_out_channels"], cfg["layers_per_block"]
        args.groups, args.latent, frozen_sf = cfg["norm_num_groups"], cfg["latent_channels"], cfg["scaling_factor"]
    vae = AutoencoderKL(1, 1, args.latent, args.channels, args.layers, args.groups)
    trained = vae.parameters()
    if args.finetune_decoder:
        vae.load_state_dict(torch.load(os.path.join(args.finetune_decoder, "diffusion_pytorch_model.bin")))
        for p in list(vae.encoder.parameters()) + list(vae.quant_conv.parameters()):
            p.requires_grad_(False)
        trained = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    nparams = sum(p.numel() for p in vae.parameters())
    print(f"params {nparams} ({nparams * 4 / 1e6:.2f} MB fp32)", flush=True)
    opt = torch.optim.AdamW(trained, lr=args.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(len(x_train), generator=g)
    pos = 0
    t0 = time.time()
    steps = args.bench or args.steps
    for step in range(1, steps + 1):
        if pos + args.batch > len(perm):
            perm = torch.randperm(len(x_train), generator=g)
            pos = 0
        idx = perm[pos:pos + args.batch]
        pos += args.batch
        x = x_train[idx]
        # time-aware schedule: linear warmup, then cosine decay over the larger of the
        # step fraction and the wall-time fraction (the machine is shared)
        frac = step / steps
        if args.minutes:
            frac = max(frac, (time.time() - t0) / (args.minutes * 60))
        frac = min(frac, 1.0)
        lr = args.lr * min(1.0, step / 50) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
        for grp in opt.param_groups:
            grp["lr"] = lr
        if args.finetune_decoder:
            with torch.no_grad():
                mean, logvar = vae.encode(x)
        else:
            mean, logvar = vae.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        rec = vae.decode(z)
        l1 = (rec - x).abs().mean()
        mse = ((rec - x) ** 2).mean()
        kl = 0.5 * (mean ** 2 + logvar.exp() - 1.0 - logvar).sum(dim=(1, 2, 3)).mean() / x[0].numel()
        loss = l1 + mse + args.beta * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == 1 or args.bench:
            el = time.time() - t0
            print(f"step {step} loss {loss.item():.5f} l1 {l1.item():.5f} mse {mse.item():.5f} "
                  f"kl {kl.item():.4f} lr {lr:.2e} time {el:.1f}s ({el / step:.3f}s/step)", flush=True)
        if frac >= 1.0:
            print(f"stopping at step {step}: time limit", flush=True)
            break
    if args.bench:
        return

    vae.eval()
    with torch.no_grad():
        rl1, rmse = 0.0, 0.0
        x_test = x_test[:2000]
        for i in range(0, len(x_test), 500):
            xb = x_test[i:i + 500]
            r = vae.decode(vae.encode(xb)[0])
            rl1 += (r - xb).abs().mean().item() * len(xb)
            rmse += ((r - xb) ** 2).mean().item() * len(xb)
        rl1 /= len(x_test)
        rmse /= len(x_test)
        psnr = 10 * math.log10(4.0 / rmse)
        print(f"test reconstruction (posterior mean): l1 {rl1:.5f} mse {rmse:.5f} psnr {psnr:.2f} dB",
              flush=True)
        if frozen_sf is None:
            means = torch.cat([vae.encode(x_train[i:i + 1000])[0] for i in range(0, len(x_train), 1000)])
            std = means.std().item()
            sf = 1.0 / std
            print(f"latent mean {means.mean().item():.4f} std {std:.4f} -> scaling_factor {sf:.5f}",
                  flush=True)
        else:
            sf = frozen_sf

    os.makedirs(args.out, exist_ok=True)
    sd = {k: v.detach().clone().contiguous() for k, v in vae.state_dict().items()}
    torch.save(sd, os.path.join(args.out, "diffusion_pytorch_model.bin"))
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(diffusers_config(args, round(sf, 6)), f, indent=2)
        f.write("\n")
    if args.latents and frozen_sf is None:
        os.makedirs(os.path.dirname(os.path.abspath(args.latents)), exist_ok=True)
        torch.save({"latents": (means * sf).contiguous(), "labels": y_train.clone(),
                    "scaling_factor": sf}, args.latents)
    print("saved", args.out, args.latents if frozen_sf is None else "", flush=True)


if __name__ == "__main__":
    main()
