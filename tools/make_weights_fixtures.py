#!/usr/bin/python3
"""Writes the tiny checkpoints and arrays behind tests/weights_*.c into
tests/fixtures/weights/, the way upstream code writes them (torch.save of a
state_dict, DiT train.py's {"model", "ema", "opt", "args"} dict, np.save,
np.savez). Values are simple closed forms so the C tests can assert numbers:

  arange-based tensors: value = base + index (row-major, in the logical shape)

Run with Debian's python (torch 1.13, numpy):  /usr/bin/python3 tools/make_weights_fixtures.py
"""
import argparse
import collections
import io
import os
import pickle
import zipfile

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "weights")


class Tiny(torch.nn.Module):
    """Two layers with the state-dict names a DiT block uses."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 2)
        self.norm = torch.nn.LayerNorm(2)

    def forward(self, x):
        return self.norm(self.proj(x))

    def fill(self, base):
        with torch.no_grad():
            for i, p in enumerate(self.parameters()):
                p.copy_(base + 100 * i + torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape))
        return self


def save(obj, name):
    torch.save(obj, os.path.join(OUT, name))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)

    # plain.pt: model.state_dict(), an OrderedDict with _metadata (BUILD on a dict)
    save(Tiny().fill(0.0).state_dict(), "plain.pt")

    # train.pt: DiT train.py checkpoint; ema differs from model by +1000
    model = Tiny().fill(0.0)
    ema = Tiny().fill(1000.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    model.fill(0.0)
    args = argparse.Namespace(model="DiT-S/2", image_size=256, num_classes=1000, lr=1e-4)
    save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "args": args},
         "train.pt")

    # model_only.pt: {"model", "args"} (no ema); ddp.pt: {"state_dict"} with DDP prefixes
    save({"model": Tiny().fill(0.0).state_dict(), "args": args, "epoch": 3}, "model_only.pt")
    sd = collections.OrderedDict(("module." + k, v) for k, v in Tiny().fill(0.0).state_dict().items())
    save({"state_dict": sd, "step": 7}, "ddp.pt")
    # deepspeed.pt: DeepSpeed's mp_rank_00_model_states.pt layout, torch.compile'd DDP names
    sd = collections.OrderedDict(("module._orig_mod." + k, v) for k, v in Tiny().fill(0.0).state_dict().items())
    save({"module": sd, "optimizer": None, "param_shapes": [{"proj.weight": torch.Size([2, 3])}],
          "ds_version": "0.14.0", "global_steps": 10}, "deepspeed.pt")

    # dtypes.pt: one tensor per storage type
    r = torch.tensor([1.0, -2.5, 0.5, 65504.0])
    save({
        "f16": r.half(),
        "bf16": torch.tensor([1.0, -2.5, 0.5, 3.0]).bfloat16(),
        "f64": r.double(),
        "i64": torch.tensor([-3, 0, 5, 1 << 40]),
        "i32": torch.tensor([-3, 0, 5, 70000], dtype=torch.int32),
        "i16": torch.tensor([-3, 0, 5, 300], dtype=torch.int16),
        "i8": torch.tensor([-3, 0, 5, 100], dtype=torch.int8),
        "u8": torch.tensor([3, 0, 5, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True, True]),
    }, "dtypes.pt")

    # views.pt: every tensor a view of one 4x6 storage (base = arange(24))
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    save(collections.OrderedDict([
        ("base", base),
        ("t", base.t()),              # stride (1, 6)
        ("s", base[1:3, 2:5]),        # offset 8, stride (6, 1)
        ("row", base[2]),             # offset 12, contiguous
        ("e", base[0, :3].expand(2, 3)),   # stride (0, 1)
        ("scalar", torch.tensor(3.5)),
        ("empty", torch.zeros(0, 3)),
        ("nested", {"inner": {"w": torch.tensor([7.0, 8.0])}, "note": "skip me"}),
    ]), "views.pt")

    # param.pt: nn.Parameter values (_rebuild_parameter), e.g. torch.save(dict(model.named_parameters()))
    save({k: v for k, v in Tiny().fill(0.0).named_parameters()}, "param.pt")

    # zip64.pt: plain.pt re-packed with ZIP64 records (as torch writes for tens of GB)
    with zipfile.ZipFile(os.path.join(OUT, "plain.pt")) as src, \
            zipfile.ZipFile(os.path.join(OUT, "zip64.pt"), "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            with dst.open(info.filename, "w", force_zip64=True) as f:
                f.write(src.read(info.filename))

    # deflated.pt: the same entries compressed (torch never does this; must be refused)
    with zipfile.ZipFile(os.path.join(OUT, "plain.pt")) as src, \
            zipfile.ZipFile(os.path.join(OUT, "deflated.pt"), "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():   # fixed timestamps keep the fixture byte-stable
            dst.writestr(zipfile.ZipInfo(info.filename, (1980, 1, 1, 0, 0, 0)), src.read(info.filename),
                         compress_type=zipfile.ZIP_DEFLATED)

    # bare pickles for the interpreter: protocol 2 (torch's) and 4 (FRAME, MEMOIZE, STACK_GLOBAL)
    mixed = {"a": 1, "b": -2, "big": 1 << 40, "neg": -(1 << 63), "f": 1.5, "s": "h\u00e9llo",
             "by": b"\x00\x01", "t": (1, 2, 3), "l": [None, True, False], "e": (),
             "ns": argparse.Namespace(x=1), "huge": 1 << 100, "od": collections.OrderedDict(k=5)}
    for proto in (2, 4):
        with open(os.path.join(OUT, "mixed_p%d.pkl" % proto), "wb") as f:
            pickle.dump(mixed, f, protocol=proto)

    # npy / npz written by numpy
    np.save(os.path.join(OUT, "f4.npy"), (np.arange(6, dtype=np.float32) * 0.5).reshape(2, 3))
    np.save(os.path.join(OUT, "f8.npy"), np.array([1.5, -2.25, 1e100]))
    np.save(os.path.join(OUT, "i8.npy"), np.array([-1, 207, 360, 1 << 40], dtype=np.int64))
    np.save(os.path.join(OUT, "i4.npy"), np.array([[1, -2], [3, 4]], dtype=np.int32))
    np.save(os.path.join(OUT, "u1.npy"), np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3))
    np.save(os.path.join(OUT, "f2.npy"), np.array([1.0, -2.5, 65504.0], dtype=np.float16))
    np.save(os.path.join(OUT, "scalar.npy"), np.array(2.5, dtype=np.float32))
    np.save(os.path.join(OUT, "fortran.npy"), np.asfortranarray(np.ones((2, 3), dtype=np.float32)))
    np.save(os.path.join(OUT, "bigendian.npy"), np.ones(3, dtype=">f4"))
    with open(os.path.join(OUT, "v2.npy"), "wb") as f:
        np.lib.format.write_array(f, np.arange(4, dtype=np.float32), version=(2, 0))
    imgs = (np.arange(2 * 4 * 4 * 3) % 256).astype(np.uint8).reshape(2, 4, 4, 3)
    np.savez(os.path.join(OUT, "samples.npz"), imgs, np.array([207, 360], dtype=np.int64))
    np.savez(os.path.join(OUT, "stats.npz"), mu=np.arange(3, dtype=np.float64),
             sigma=np.eye(3, dtype=np.float64) * 2)
    np.savez_compressed(os.path.join(OUT, "compressed.npz"), imgs)


if __name__ == "__main__":
    main()
