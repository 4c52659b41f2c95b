"""Seeds for the fuzz harnesses added for issue 16 (fuzz/corpus/{torch,vae,defaults,fid_stats}/).
Run with Debian's python: /usr/bin/python3 tools/make_fuzz_seeds.py"""
import io, json, os, shutil, struct, zipfile
import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
C = os.path.join(ROOT, "fuzz", "corpus")
FIX = os.path.join(ROOT, "tests", "fixtures")


def out(sub, name, data):
    os.makedirs(os.path.join(C, sub), exist_ok=True)
    with open(os.path.join(C, sub, name), "wb") as f:
        f.write(data)


def safetensors(tensors):
    header, blobs, off = {}, [], 0
    for k, v in tensors.items():
        b = v.astype(np.float32).tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


# torch: the tiny test checkpoints of each family (the whole loader path)
os.makedirs(os.path.join(C, "torch"), exist_ok=True)
for name in ["moe_top1.pt", "moe_qknorm_f16.pt", "dit_bf16.pt", "switch_dmoe.pt"]:
    shutil.copy(os.path.join(FIX, "dit", name), os.path.join(C, "torch", name))

# vae: config.json, NUL, safetensors; the small diffusers VAE with every
# channel count shrunk (32→4, 16→2, latent 4→1), so seeds stay a few kB
sd = torch.load(os.path.join(FIX, "vae", "small", "diffusion_pytorch_model.bin"), map_location="cpu")
shrink = {32: 4, 16: 2, 4: 1}
tiny = {}
for k, v in sd.items():
    if not (k.startswith("decoder.") or k.startswith("post_quant_conv.")):
        continue
    shape = list(v.shape)
    lim = len(shape) - 2 if len(shape) == 4 else len(shape)
    shape = [shrink.get(d, d) if i < lim else d for i, d in enumerate(shape)]
    tiny[k] = np.random.default_rng(len(tiny)).standard_normal(shape).astype(np.float32) * 0.1
cfg = json.load(open(os.path.join(FIX, "vae", "small", "config.json")))
cfg.update(block_out_channels=[2, 4, 4], latent_channels=1, norm_num_groups=2)
out("vae", "tiny_diffusers", json.dumps(cfg).encode() + b"\0" + safetensors(tiny))
cfg2 = dict(cfg, mid_block_add_attention=False)
out("vae", "no_mid_attention", json.dumps(cfg2).encode() + b"\0" + safetensors(
    {k: v for k, v in tiny.items() if ".attentions." not in k}))
out("vae", "config_only.json", json.dumps(cfg).encode())
# regression input for the first finding: finite weights whose sums overflow
# to +inf and -inf make NaN activations, and me_expf(NaN) (SiLU) converted NaN
# to int, undefined behaviour that UBSan reported (fixed in ops/fastmath.h)
boom = dict(tiny)
boom["post_quant_conv.bias"] = np.full_like(tiny["post_quant_conv.bias"], 3e38)
w = np.full_like(tiny["decoder.conv_in.weight"], 3e38)
w[:, :, 1, 1] = -3e38
boom["decoder.conv_in.weight"] = w
out("vae", "nan_activations", json.dumps(cfg).encode() + b"\0" + safetensors(boom))

# defaults.json as train_dit.py writes it, and variants
out("defaults", "fmnist_moe.json", open(os.path.join(ROOT, "models", "fmnist-moe", "defaults.json"), "rb").read())
out("defaults", "flow.json", json.dumps({"sampler": "flow", "steps": 50, "cfg": 1.5, "cfg_channels": "all"}).encode())
out("defaults", "ddim.json", json.dumps({"sampler": "ddim", "steps": "ddim25", "schedule": "cosine",
                                         "heads": 2, "top_k": 1, "vae": "/abs/vae"}).encode())
out("defaults", "respaced.json", json.dumps({"steps": "10,10,10", "cfg": 4}).encode())

# ADM-style reference batches: arr_0 uint8 NHWC images plus mu/sigma and the spatial mu_s/sigma_s
rng = np.random.default_rng(16)
for d, name, comp in [(4, "adm_ref_stored.npz", False), (3, "adm_ref_deflated.npz", True)]:
    a = rng.standard_normal((6, d))
    b = rng.standard_normal((5, d + 1))
    arrs = dict(arr_0=rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8), mu=a.mean(0), sigma=np.cov(a.T),
                mu_s=b.mean(0).astype(np.float32), sigma_s=np.cov(b.T).astype(np.float32))
    bio = io.BytesIO()
    (np.savez_compressed if comp else np.savez)(bio, **arrs)
    out("fid_stats", name, bio.getvalue())
shutil.copy(os.path.join(FIX, "weights", "stats.npz"), os.path.join(C, "fid_stats", "stats.npz"))
