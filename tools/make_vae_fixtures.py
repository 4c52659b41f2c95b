#!/usr/bin/python3
"""Writes tests/fixtures/vae/: PyTorch ground truth for the VAE decoder, the
convolution/GroupNorm ops and the uint8 image conversion.

  small/            diffusers folder (config.json + diffusion_pytorch_model.bin):
                    block_out_channels [16,32,32], layers_per_block 1, 8 groups,
                    1 output channel, scaling_factor 0.5, to_q/to_k/to_v/to_out.0,
                    plus a few encoder tensors the decoder must ignore
  small_latent.npy  [2,4,6,5] latents as a sampler writes them (not yet scaled)
  small_expected.npy decoder(latent / 0.5), [2,1,24,20]
  ldm_small.pt      another VAE ([32,32], 1 layer, 32 groups, RGB) in CompVis LDM
                    naming under first_stage_model., float16, no config
  ldm_latent.npy / ldm_expected.npy  decoder(latent / 0.18215)
  sdvae_manifest.txt  every tensor of the sd-vae-ft-mse decoder config
                    ([128,256,512,512], 2 layers, 32 groups, query/key/value/
                    proj_attn): "name d0 d1 ..."; the weights themselves come
                    from vae_reference.counter_tensor, mirrored in the C test
  sdvae_latent.npy / sdvae_expected.npy  [2,4,4,4] → [2,3,32,32], already scaled
  conv_*.f32, gn_*.f32, up_*.f32  raw float32 op outputs (inputs: counter values)

  /usr/bin/python3 tools/make_vae_fixtures.py
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vae_reference as ref  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "vae")


def save_npy(name, a):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(a))


def decode(model, z):
    with torch.no_grad():
        return model(torch.from_numpy(z)).numpy()


def small_diffusers():
    cfg = ref.diffusers_config([16, 32, 32], 1, latent_channels=4, out_channels=1, norm_num_groups=8,
                               scaling_factor=0.5)
    model = ref.AutoencoderKLDecoder(cfg, "new").eval()
    ref.fill_random_weights(model, 1)
    sd = dict(model.state_dict())
    g = torch.Generator().manual_seed(2)
    sd["encoder.conv_in.weight"] = torch.randn(16, 1, 3, 3, generator=g)
    sd["encoder.conv_in.bias"] = torch.randn(16, generator=g)
    sd["quant_conv.weight"] = torch.randn(8, 8, 1, 1, generator=g)
    sd["quant_conv.bias"] = torch.randn(8, generator=g)
    d = os.path.join(OUT, "small")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    torch.save(sd, os.path.join(d, "diffusion_pytorch_model.bin"))
    z = torch.randn(2, 4, 6, 5, generator=g).numpy()
    save_npy("small_latent.npy", z)
    save_npy("small_expected.npy", decode(model, z / np.float32(0.5)))


def small_ldm():
    cfg = ref.diffusers_config([32, 32], 1, latent_channels=4, out_channels=3, norm_num_groups=32)
    model = ref.AutoencoderKLDecoder(cfg, "old").eval()
    ref.fill_random_weights(model, 3)
    with torch.no_grad():   # the file holds float16: make the float32 truth the same numbers
        for p in model.state_dict().values():
            p.copy_(p.half().float())
    sd = ref.to_ldm(model.state_dict(), len(cfg["block_out_channels"]))
    sd = {k: v.half() for k, v in sd.items()}
    sd["model.diffusion_model.out.2.bias"] = torch.zeros(4)   # the rest of a full LDM checkpoint
    torch.save(sd, os.path.join(OUT, "ldm_small.pt"))
    z = torch.randn(1, 4, 5, 7, generator=torch.Generator().manual_seed(4)).numpy()
    save_npy("ldm_latent.npy", z)
    save_npy("ldm_expected.npy", decode(model, z / np.float32(0.18215)))


def sdvae_counter():
    cfg = ref.diffusers_config([128, 256, 512, 512], 2)
    model = ref.AutoencoderKLDecoder(cfg, "old").eval()
    ref.fill_counter_weights(model)
    with open(os.path.join(OUT, "sdvae_manifest.txt"), "w") as f:
        for name, p in model.state_dict().items():
            f.write(" ".join([name] + [str(s) for s in p.shape]) + "\n")
    z = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(5)).numpy()
    save_npy("sdvae_latent.npy", z)
    save_npy("sdvae_expected.npy", decode(model, z))


def raw(name, t):
    t.detach().numpy().astype("<f4").tofile(os.path.join(OUT, name))


def ops():
    """Cases mirrored in tests/ops_conv.c: inputs are counter values keyed "x"/"w"/"b"."""
    cu = lambda key, *shape: torch.from_numpy(ref.counter_uniform(key, int(np.prod(shape))).reshape(shape))
    convs = [  # name, n, cin, h, w, cout, kh, kw, stride, pad_h, pad_w, upsample, bias
        ("conv3x3", 2, 5, 9, 7, 6, 3, 3, 1, 1, 1, 0, 1),
        ("conv1x1", 2, 7, 5, 6, 3, 1, 1, 1, 0, 0, 0, 1),
        ("conv1x7", 1, 4, 6, 11, 5, 1, 7, 1, 0, 3, 0, 1),
        ("conv7x1", 1, 4, 11, 6, 5, 7, 1, 1, 3, 0, 0, 0),
        ("conv3x3s2", 2, 3, 13, 10, 4, 3, 3, 2, 0, 0, 0, 1),
        ("conv3x3s2p1", 1, 3, 9, 8, 4, 3, 3, 2, 1, 1, 0, 1),
        ("conv3x3up", 2, 6, 5, 4, 3, 3, 3, 1, 1, 1, 1, 1),
        ("conv5x5wide", 1, 64, 12, 300, 2, 5, 5, 1, 2, 2, 0, 1),   # several row bands
        ("conv3x3wino", 2, 7, 10, 70, 9, 3, 3, 1, 1, 1, 0, 1),   # Winograd: 2 lane groups a block row, h % 4 = 2
    ]
    for name, n, cin, h, w, cout, kh, kw, s, ph, pw, up, bias in convs:
        x = cu("x", n, cin, h, w)
        if up:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        wt = cu("w", cout, cin, kh, kw) * np.float32(0.3)
        b = cu("b", cout) if bias else None
        raw(name + ".f32", F.conv2d(x, wt, b, stride=s, padding=(ph, pw)))
    x = cu("x", 2, 12, 7, 5) * np.float32(3.0) + np.float32(2.0)
    gamma, beta = cu("g", 12) + np.float32(1.0), cu("b", 12)
    y = F.group_norm(x, 4, gamma, beta, eps=1e-6)
    raw("gn.f32", y)
    raw("gn_silu.f32", F.silu(y))
    raw("up.f32", F.interpolate(cu("x", 2, 3, 4, 5), scale_factor=2.0, mode="nearest"))


def u8():
    """DiT sample_ddp.py's conversion on boundary values."""
    x = torch.tensor([-2.0, -1.0, -1.0039216, -0.99607843, -0.5, 0.0, -0.003921569, 0.0039215689,
                      0.5, 0.99, 0.9960784, 0.99607843, 1.0, 1.5, 1e-8, -1e-8], dtype=torch.float32)
    x = torch.cat([x, torch.linspace(-1.1, 1.1, 241)])
    raw("u8_in.f32", x)
    torch.clamp(127.5 * x + 128.0, 0, 255).to(torch.uint8).numpy().tofile(os.path.join(OUT, "u8_expected.u8"))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    small_diffusers()
    small_ldm()
    sdvae_counter()
    ops()
    u8()


if __name__ == "__main__":
    main()
