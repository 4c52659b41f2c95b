"""A 1000-class DiT-MoE checkpoint for the class-name tests (ImageNet ids and
names on a tiny model): the moe_top2 fixture with its label embedding grown
to 1000 classes + the null class, as a plain state dict like upstream's.

usage: /usr/bin/python3 tools/make_classnames_fixture.py
writes tests/fixtures/classnames/moe_1000.pt (about 300 KB)
"""
import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    sd = torch.load(os.path.join(ROOT, "tests/fixtures/dit/moe_top2.pt"), map_location="cpu")
    key = "y_embedder.embedding_table.weight"
    hidden = sd[key].shape[1]
    g = torch.Generator().manual_seed(1000)
    sd[key] = torch.randn(1001, hidden, generator=g) * 0.02   # DiT's nn.init.normal_(std=0.02)
    out = os.path.join(ROOT, "tests/fixtures/classnames/moe_1000.pt")
    torch.save(sd, out)
    print("wrote", out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
