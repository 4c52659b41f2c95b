"""Writes a random DiT-MoE checkpoint of any size as bfloat16 safetensors,
streaming one tensor at a time (a DiT-MoE-XL/2-8E2A is ~4.2B parameters,
~8.4 GB), for memory and speed checks of `moedit bench --bf16`.

Usage:
    /usr/bin/python3 scripts/make_random_dit.py OUT.safetensors \
        [--depth 28 --hidden 1152 --experts 8 --attention qknorm --input-size 32]

Tensor names and shapes come from tools/dit_reference.py (the upstream module
definitions) instantiated with depth 1; block 0 is repeated `depth` times.
Values are N(0, 1/fan_in) (biases 0.02·N(0,1)), which keeps the activations
finite through any depth. Not a test fixture: nothing is checked against it.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from dit_reference import build_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--depth", type=int, default=28)
    ap.add_argument("--hidden", type=int, default=1152)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--attention", default="qknorm", choices=["timm", "qknorm"])
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    one = build_model("moe", input_size=a.input_size, patch_size=2, in_channels=4, hidden_size=a.hidden,
                      depth=1, num_heads=a.heads, num_classes=1000, learn_sigma=True,
                      num_experts=a.experts, num_experts_per_tok=a.top_k, attention=a.attention,
                      pretraining_tp=1 if a.attention == "qknorm" else 2)
    shapes = []
    for name, v in one.state_dict().items():
        if name.startswith("blocks.0."):
            for l in range(a.depth):
                shapes.append(("blocks.%d.%s" % (l, name[len("blocks.0."):]), tuple(v.shape)))
        else:
            shapes.append((name, tuple(v.shape)))
    del one

    header, offset = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"top_k": str(a.top_k), "heads": str(a.heads)}
    hj = json.dumps(header).encode()
    hj += b" " * (-len(hj) % 8)
    rng = np.random.default_rng(a.seed)
    with open(a.out, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for name, shape in shapes:
            count = int(np.prod(shape))
            if name.endswith("norm.weight"):
                v = np.ones(count, np.float32)
            elif len(shape) == 1 or name == "pos_embed":
                v = rng.standard_normal(count, np.float32) * 0.02
            else:
                fan_in = count // shape[0]
                v = rng.standard_normal(count, np.float32) * np.float32(1.0 / np.sqrt(fan_in))
            f.write((v.view(np.uint32) >> 16).astype(np.uint16).tobytes())   # truncation to bf16
    print("wrote %s: %d tensors, %.2fB parameters, %.2f GB" % (a.out, len(shapes), offset / 2e9, offset / 1e9))


if __name__ == "__main__":
    main()
