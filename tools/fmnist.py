#!/usr/bin/python3
"""Fashion-MNIST loader for the training scripts (Debian package dataset-fashion-mnist).

Reads the gzipped IDX files, validates the headers, and returns
  images: float32 tensor [N, 1, 32, 32] in [-1, 1] (28x28 padded by 2 pixels of -1 = black)
  labels: int64 tensor [N]

Run with Debian's python: /usr/bin/python3 tools/fmnist.py  (prints a summary)
"""
import gzip
import os
import struct

import numpy as np

DATA_DIR = os.environ.get("FMNIST_DIR", "/usr/share/datasets/fashion-mnist")

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

_IDX_UBYTE = 0x08


def _read_idx(path, ndim):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    zero, dtype, nd = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != _IDX_UBYTE or nd != ndim:
        raise ValueError(f"{path}: bad IDX magic (zero={zero} dtype={dtype:#x} ndim={nd}), "
                         f"expected unsigned-byte data with {ndim} dims")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    count = int(np.prod(dims))
    body = raw[4 + 4 * ndim:]
    if len(body) != count:
        raise ValueError(f"{path}: expected {count} data bytes for shape {dims}, found {len(body)}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def load_uint8(split="train", data_dir=DATA_DIR):
    """Raw arrays: images uint8 [N, 28, 28], labels uint8 [N]."""
    prefix = {"train": "train", "test": "t10k", "t10k": "t10k"}[split]
    imgs = _read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"), 3)
    labs = _read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"), 1)
    if imgs.shape[0] != labs.shape[0]:
        raise ValueError(f"{split}: {imgs.shape[0]} images but {labs.shape[0]} labels")
    if imgs.shape[1:] != (28, 28):
        raise ValueError(f"{split}: unexpected image size {imgs.shape[1:]}")
    if labs.max() > 9:
        raise ValueError(f"{split}: label out of range ({labs.max()})")
    return imgs, labs


def load(split="train", pad_to=32, data_dir=DATA_DIR):
    """images float32 torch tensor [N,1,pad_to,pad_to] in [-1,1], labels int64 [N]."""
    import torch
    imgs, labs = load_uint8(split, data_dir)
    x = imgs.astype(np.float32) / 127.5 - 1.0
    p = (pad_to - 28) // 2
    if pad_to != 28:
        x = np.pad(x, ((0, 0), (p, pad_to - 28 - p), (p, pad_to - 28 - p)), constant_values=-1.0)
    return torch.from_numpy(np.ascontiguousarray(x[:, None])), torch.from_numpy(labs.astype(np.int64))


if __name__ == "__main__":
    for s in ("train", "test"):
        x, y = load(s)
        print(s, tuple(x.shape), x.dtype, float(x.min()), float(x.max()),
              "class counts", np.bincount(y.numpy(), minlength=10).tolist())
