#!/usr/bin/python3
"""Writes the fixtures behind tests/weights_safetensors.c, tests/weights_diffusers.c
and tests/cli_inspect.c into tests/fixtures/safetensors/, plus the seed corpus of
fuzz/fuzz_safetensors.c into fuzz/corpus/safetensors/.

The safetensors files are written by hand (Debian's torch 1.13 has no
`safetensors` package): u64 little-endian header length, JSON header padded with
spaces to a multiple of 8, then the tensors back to back, as the reference
implementation lays them out. Tensor bytes come from torch (its own f16/bf16
rounding), so the C side is checked against PyTorch, not against itself.

Tiny models use upstream's module structure and state-dict names
(facebookresearch/DiT and feizc/DiT-MoE models.py; diffusers AutoencoderKL);
only the shapes matter here, there is no forward pass.

Run with Debian's python (torch 1.13):  /usr/bin/python3 tools/make_safetensors_fixtures.py
"""
import json
import os
import struct

import torch
import torch.nn as nn

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "safetensors")
CORPUS = os.path.join(ROOT, "fuzz", "corpus", "safetensors")

DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:   # numpy has no bfloat16: go through the raw 16 bits
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def safetensors_bytes(tensors, metadata=None):
    """tensors: list of (name, tensor) in file order."""
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, t in tensors:
        b = tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# ---- tiny models with upstream state-dict names --------------------------

class PatchEmbed(nn.Module):
    def __init__(self, c, d, p):
        super().__init__()
        self.proj = nn.Conv2d(c, d, p, stride=p)


class TimestepEmbedder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))


class LabelEmbedder(nn.Module):
    def __init__(self, num_classes, d):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, d)


class Attention(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)


class Mlp(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)


class MoeMLP(nn.Module):
    def __init__(self, d, inter):
        super().__init__()
        self.gate_proj = nn.Linear(d, inter, bias=False)
        self.up_proj = nn.Linear(d, inter, bias=False)
        self.down_proj = nn.Linear(inter, d, bias=False)


class MoEGate(nn.Module):
    def __init__(self, d, e):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(e, d))


class SparseMoeBlock(nn.Module):
    def __init__(self, d, e):
        super().__init__()
        self.experts = nn.ModuleList([MoeMLP(d, 4 * d) for _ in range(e)])
        self.gate = MoEGate(d, e)
        self.shared_experts = MoeMLP(d, 2 * d)


class Block(nn.Module):
    def __init__(self, d, experts):
        super().__init__()
        self.attn = Attention(d)
        if experts:
            self.moe = SparseMoeBlock(d, experts)
        else:
            self.mlp = Mlp(d)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))


class FinalLayer(nn.Module):
    def __init__(self, d, p, out):
        super().__init__()
        self.linear = nn.Linear(d, p * p * out)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))


class DiT(nn.Module):
    def __init__(self, input_size, patch, c, d, depth, num_classes, learn_sigma, experts=0):
        super().__init__()
        self.x_embedder = PatchEmbed(c, d, patch)
        self.t_embedder = TimestepEmbedder(d)
        self.y_embedder = LabelEmbedder(num_classes, d)
        self.pos_embed = nn.Parameter(torch.randn(1, (input_size // patch) ** 2, d))
        self.blocks = nn.ModuleList([Block(d, experts) for _ in range(depth)])
        self.final_layer = FinalLayer(d, patch, 2 * c if learn_sigma else c)


def main():
    torch.manual_seed(0)

    # mixed.safetensors: every dtype, a scalar, an empty tensor, unicode and
    # multi-line metadata. "u8" first puts every later tensor at an odd
    # offset, so the reader must not assume alignment.
    sin = torch.sin(torch.arange(100, dtype=torch.float32) * 0.37) * 3.0
    mixed = [
        ("u8", torch.tensor([0, 128, 255], dtype=torch.uint8)),
        ("a", (torch.arange(6, dtype=torch.float32) * 0.5 - 1).reshape(2, 3)),
        ("h", torch.tensor([1, -2.5, 65504, 2 ** -24, 0.1], dtype=torch.float16)),
        ("b", torch.tensor([[1, -2.5], [3.140625, 0.1]], dtype=torch.bfloat16)),
        ("d", torch.tensor([1e-3, 2.5, -7], dtype=torch.float64)),
        ("l", torch.tensor([-1, 0, 2 ** 40, 7], dtype=torch.int64)),
        ("i", torch.tensor([-5, 6], dtype=torch.int32)),
        ("s16", torch.tensor([-300, 300], dtype=torch.int16)),
        ("s8", torch.tensor([-128, 127], dtype=torch.int8)),
        ("flag", torch.tensor([True, False])),
        ("scalar", torch.tensor(3.5)),
        ("empty", torch.zeros(0, 3)),
        ("sin", sin),
        ("sin_f16", sin.half()),        # torch's rounding, for the writer's conversion
        ("sin_bf16", sin.bfloat16()),
    ]
    meta = {"format": "pt", "note": "ünïcode ✓", "multi": "line1\nline2"}
    data = safetensors_bytes(mixed, meta)
    write(os.path.join(OUT, "mixed.safetensors"), data)
    write(os.path.join(CORPUS, "mixed.safetensors"), data)

    # tiny_dit: DiT with hidden 32, depth 2, patch 2, 8x8x4 latents,
    # learn_sigma, 10 classes; the same state_dict as safetensors and torch zip.
    dit = DiT(8, 2, 4, 32, 2, 10, True)
    sd = dit.state_dict()
    write(os.path.join(OUT, "tiny_dit.safetensors"), safetensors_bytes(list(sd.items()), {"format": "pt"}))
    torch.save(sd, os.path.join(OUT, "tiny_dit.pt"))
    print("tiny_dit: %d tensors, %d params" % (len(sd), sum(t.numel() for t in sd.values())))

    # tiny_moe: DiT-MoE with 4 experts, hidden 32, depth 1, stored as F16.
    moe = DiT(8, 2, 4, 32, 1, 10, True, experts=4)
    sd = {k: v.half() for k, v in moe.state_dict().items()}
    write(os.path.join(OUT, "tiny_moe.safetensors"), safetensors_bytes(list(sd.items())))
    print("tiny_moe: %d tensors, %d params" % (len(sd), sum(t.numel() for t in sd.values())))

    # diffusers AutoencoderKL folder: config.json and a few decoder tensors
    # (latent 4 → block_out_channels [8, 16], 3 output channels).
    vae_cfg = {"_class_name": "AutoencoderKL", "_diffusers_version": "0.21.0", "in_channels": 3,
               "out_channels": 3, "latent_channels": 4, "block_out_channels": [8, 16],
               "layers_per_block": 1, "norm_num_groups": 4, "scaling_factor": 0.18215}
    vae = [
        ("post_quant_conv.weight", torch.randn(4, 4, 1, 1)), ("post_quant_conv.bias", torch.randn(4)),
        ("decoder.conv_in.weight", torch.randn(16, 4, 3, 3)), ("decoder.conv_in.bias", torch.randn(16)),
        ("decoder.up_blocks.0.resnets.0.conv1.weight", torch.randn(16, 16, 3, 3)),
        ("decoder.up_blocks.0.resnets.1.conv1.weight", torch.randn(16, 16, 3, 3)),
        ("decoder.up_blocks.1.resnets.0.conv1.weight", torch.randn(8, 16, 3, 3)),
        ("decoder.up_blocks.1.resnets.1.conv1.weight", torch.randn(8, 8, 3, 3)),
        ("decoder.conv_out.weight", torch.randn(3, 8, 3, 3)), ("decoder.conv_out.bias", torch.randn(3)),
    ]
    d = os.path.join(OUT, "diffusers_vae")
    write(os.path.join(d, "config.json"), json.dumps(vae_cfg, indent=2).encode())
    write(os.path.join(d, "diffusion_pytorch_model.safetensors"), safetensors_bytes(vae))

    # diffusers folder with a torch zip .bin instead of safetensors.
    d = os.path.join(OUT, "diffusers_bin")
    write(os.path.join(d, "config.json"), json.dumps({"_class_name": "Tiny", "sample_size": 4}).encode())
    torch.save({"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor([0.5, -0.5])},
               os.path.join(d, "diffusion_pytorch_model.bin"))

    # sharded folder: index.json weight_map over two safetensors shards.
    d = os.path.join(OUT, "diffusers_sharded")
    write(os.path.join(d, "config.json"), b'{"_class_name": "Tiny"}\n')
    shards = {"diffusion_pytorch_model-00001-of-00002.safetensors": [("x", torch.arange(4, dtype=torch.float32))],
              "diffusion_pytorch_model-00002-of-00002.safetensors": [("y", torch.tensor([7.0, 8.0]))]}
    weight_map = {}
    for fname, ts in shards.items():
        write(os.path.join(d, fname), safetensors_bytes(ts))
        weight_map.update({n: fname for n, _ in ts})
    index = {"metadata": {"total_size": 24}, "weight_map": weight_map}
    write(os.path.join(d, "diffusion_pytorch_model.safetensors.index.json"), json.dumps(index).encode())

    # small seeds for the fuzzer
    write(os.path.join(CORPUS, "empty_header.safetensors"), safetensors_bytes([]))
    write(os.path.join(CORPUS, "meta_only.safetensors"), safetensors_bytes([], {"k": "v"}))
    write(os.path.join(CORPUS, "one_f16.safetensors"), safetensors_bytes([("w", torch.ones(2, 2).half())]))
    write(os.path.join(CORPUS, "vae_subset.safetensors"), safetensors_bytes(vae[:2] + vae[-2:]))
    raw = {   # headers no well-behaved writer makes
        "overlap.safetensors": (b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                                b'"b":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}}', b"\0" * 8),
        "scalar_empty.safetensors": (b'{"s":{"dtype":"BF16","shape":[],"data_offsets":[0,2]},'
                                     b'"e":{"dtype":"I64","shape":[0,5],"data_offsets":[2,2]}}', b"\0\0"),
        "bad_utf8.safetensors": (b'{"\xc3(":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0"),
        "escaped_name.safetensors": (b'{"a\\u00e9\\ud83d\\ude00":{"dtype":"I8","shape":[3,1],"data_offsets":[0,3]},'
                                     b'"__metadata__":{"k":"v\\n"}}', b"abc"),
    }
    for name, (header, body) in raw.items():
        write(os.path.join(CORPUS, name), struct.pack("<Q", len(header)) + header + body)


if __name__ == "__main__":
    main()
