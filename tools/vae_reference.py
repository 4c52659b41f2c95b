"""Reference AutoencoderKL decoder in plain PyTorch, with diffusers' module
names, so its state_dict() is key-for-key what diffusers saves. Used to make
the test fixtures (make_vae_fixtures.py) and the PyTorch timing
(bench_vae_torch.py); moedit never runs it.

Written from diffusers' vae.py (Decoder), unet_2d_blocks.py (UNetMidBlock2D,
UpDecoderBlock2D), resnet.py (ResnetBlock2D), upsampling.py (Upsample2D) and
attention_processor.py (Attention + AttnProcessor), eval mode only.

Also here:
- attention naming: "new" (to_q/to_k/to_v/to_out.0) or "old"
  (query/key/value/proj_attn, as in the sd-vae-ft-mse release);
- to_ldm(): the same weights under the original latent-diffusion names;
- counter_weights(): deterministic weights from a name-keyed splitmix64
  counter, mirrored by tests/vae_sdvae.c.

Run with Debian's /usr/bin/python3 (torch 1.13, numpy)."""
import math

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, groups, eps=1e-6):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps, affine=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))   # dropout is identity in eval
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h   # output_scale_factor 1


class Attention(nn.Module):
    """One head over the H*W positions, GroupNorm first, residual."""

    def __init__(self, c, groups, naming="new", eps=1e-6):
        super().__init__()
        self.naming = naming
        self.group_norm = nn.GroupNorm(groups, c, eps=eps, affine=True)
        if naming == "new":
            self.to_q, self.to_k, self.to_v = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
            self.to_out = nn.ModuleList([nn.Linear(c, c), nn.Dropout(0.0)])
        else:
            self.query, self.key, self.value = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
            self.proj_attn = nn.Linear(c, c)

    def forward(self, x):
        b, c, h, w = x.shape
        residual = x
        t = self.group_norm(x).view(b, c, h * w).transpose(1, 2)
        if self.naming == "new":
            q, k, v, out = self.to_q(t), self.to_k(t), self.to_v(t), self.to_out[0]
        else:
            q, k, v, out = self.query(t), self.key(t), self.value(t), self.proj_attn
        scores = torch.baddbmm(torch.empty(b, h * w, h * w, dtype=q.dtype), q, k.transpose(1, 2),
                               beta=0, alpha=1.0 / math.sqrt(c))
        t = out(torch.bmm(scores.softmax(dim=-1), v))
        return t.transpose(1, 2).reshape(b, c, h, w) + residual


class Upsample2D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNetMidBlock2D(nn.Module):
    def __init__(self, c, groups, naming, add_attention=True):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, groups), ResnetBlock2D(c, c, groups)])
        self.attentions = nn.ModuleList([Attention(c, groups, naming)] if add_attention else [])

    def forward(self, x):
        x = self.resnets[0](x)
        for attn in self.attentions:
            x = attn(x)
        return self.resnets[1](x)


class UpDecoderBlock2D(nn.Module):
    def __init__(self, cin, cout, layers, groups, add_upsample):
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(cin if i == 0 else cout, cout, groups) for i in range(layers)])
        self.upsamplers = nn.ModuleList([Upsample2D(cout)] if add_upsample else [])

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        for u in self.upsamplers:
            x = u(x)
        return x


class Decoder(nn.Module):
    def __init__(self, cfg, naming):
        super().__init__()
        ch, groups = cfg["block_out_channels"], cfg["norm_num_groups"]
        self.conv_in = nn.Conv2d(cfg["latent_channels"], ch[-1], 3, padding=1)
        self.mid_block = UNetMidBlock2D(ch[-1], groups, naming, cfg.get("mid_block_add_attention", True))
        rev = list(reversed(ch))
        self.up_blocks = nn.ModuleList()
        prev = rev[0]
        for i, c in enumerate(rev):
            self.up_blocks.append(UpDecoderBlock2D(prev, c, cfg["layers_per_block"] + 1, groups,
                                                   i != len(ch) - 1))
            prev = c
        self.conv_norm_out = nn.GroupNorm(groups, ch[0], eps=1e-6)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(ch[0], cfg["out_channels"], 3, padding=1)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for up in self.up_blocks:
            x = up(x)
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))


class AutoencoderKLDecoder(nn.Module):
    """The decoding half of diffusers' AutoencoderKL: decode(z) = decoder(post_quant_conv(z)),
    z already divided by the scaling factor."""

    def __init__(self, cfg, naming="new"):
        super().__init__()
        lat = cfg["latent_channels"]
        self.post_quant_conv = nn.Conv2d(lat, lat, 1)
        self.decoder = Decoder(cfg, naming)

    def forward(self, z):
        return self.decoder(self.post_quant_conv(z))


def diffusers_config(block_out_channels, layers_per_block, latent_channels=4, out_channels=3,
                     norm_num_groups=32, scaling_factor=0.18215):
    n = len(block_out_channels)
    return {
        "_class_name": "AutoencoderKL",
        "_diffusers_version": "0.4.2",
        "act_fn": "silu",
        "block_out_channels": list(block_out_channels),
        "down_block_types": ["DownEncoderBlock2D"] * n,
        "in_channels": out_channels,
        "latent_channels": latent_channels,
        "layers_per_block": layers_per_block,
        "norm_num_groups": norm_num_groups,
        "out_channels": out_channels,
        "sample_size": 256,
        "scaling_factor": scaling_factor,
        "up_block_types": ["UpDecoderBlock2D"] * n,
    }


def to_ldm(state, n_blocks, prefix="first_stage_model."):
    """diffusers decoder names → CompVis latent-diffusion names. LDM counts its
    up blocks by resolution (up.0 is the last one run), and its attention
    projections are 1×1 convolutions."""
    out = {}
    for name, t in state.items():
        parts = name.split(".")
        new = name
        if name.startswith("decoder.mid_block.resnets."):
            new = "decoder.mid.block_%d.%s" % (int(parts[3]) + 1, ".".join(parts[4:]))
        elif name.startswith("decoder.mid_block.attentions.0."):
            rest = ".".join(parts[4:])
            for a, b in (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"),
                         ("to_out.0", "proj_out"), ("query", "q"), ("key", "k"), ("value", "v"),
                         ("proj_attn", "proj_out")):
                if rest.startswith(a + "."):
                    rest = b + rest[len(a):]
                    break
            new = "decoder.mid.attn_1." + rest
            if t.dim() == 2:
                t = t[:, :, None, None]
        elif name.startswith("decoder.up_blocks."):
            level = n_blocks - 1 - int(parts[2])
            if parts[3] == "resnets":
                rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
                new = "decoder.up.%d.block.%s.%s" % (level, parts[4], rest)
            else:   # upsamplers.0.conv.*
                new = "decoder.up.%d.upsample.%s" % (level, ".".join(parts[5:]))
        elif name.startswith("decoder.conv_norm_out."):
            new = "decoder.norm_out." + parts[-1]
        out[prefix + new] = t
    return out


MASK64 = (1 << 64) - 1


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for c in s.encode():
        h = ((h ^ c) * 0x100000001B3) & MASK64
    return h


def splitmix64(x):
    """Vectorised splitmix64 over a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def counter_uniform(name, count):
    """count float32 values in [-1, 1) keyed by the tensor name: element i is
    splitmix64(fnv1a64(name) + i), top 24 bits scaled. Exact in float32."""
    idx = np.arange(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = splitmix64(idx + np.uint64(fnv1a64(name)))
    u = (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    return u * np.float32(2.0) - np.float32(1.0)


def counter_tensor(name, shape):
    """Norm weights 1 + 0.1·r, biases 0.1·r, other weights r/sqrt(fan_in)."""
    r = counter_uniform(name, int(np.prod(shape)))
    if len(shape) == 1 and name.endswith("weight"):
        v = np.float32(0.1) * r + np.float32(1.0)
    elif len(shape) == 1:
        v = np.float32(0.1) * r
    else:
        v = r * np.float32(1.0 / math.sqrt(int(np.prod(shape[1:]))))
    return torch.from_numpy(v.reshape(shape))


def fill_counter_weights(model):
    with torch.no_grad():
        for name, p in model.state_dict().items():
            p.copy_(counter_tensor(name, tuple(p.shape)))


def fill_random_weights(model, seed):
    """Non-zero weights of a sensible scale (torch's default init leaves
    GroupNorm at 1/0, which would hide affine bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.state_dict().items():
            r = torch.rand(p.shape, generator=g) * 2 - 1
            if p.dim() == 1 and name.endswith("weight"):
                p.copy_(1 + 0.2 * r)
            elif p.dim() == 1:
                p.copy_(0.2 * r)
            else:
                p.copy_(r / math.sqrt(p[0].numel()))
