"""Seeds for fuzz/fuzz_shard.c (fuzz/corpus/shard/): fid-sample shard files
as `moedit fid-sample --shard k/n --npz` writes them (arr_0 images, arr_1
labels, the moedit_shard record and moedit_settings), an empty shard, a
plain sample batch without the record, and records that are broken the ways
a reader must refuse. Tiny images (the record is what is read).
Run with Debian's python: /usr/bin/python3 tools/make_shard_fuzz_seeds.py"""
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus", "shard")
SETTINGS = (b"model=m.pt vae=v num=6 batch=2 labels=balanced seed=0 sampler=6 steps=3 cfg=0x1.8p+1 "
            b"cfg_channels=3 eta=0x0p+0 cosine=0 heads=2 top_k=2 bf16=0 --spacing linspace "
            b"weights=df098a00 vae_weights=b105024f")


def save(name, compressed=False, **arrays):
    (np.savez_compressed if compressed else np.savez)(os.path.join(OUT, name), **arrays)


def shard(record, settings=SETTINGS, count=None):
    n = record[3] if count is None else count
    return dict(arr_0=np.zeros((n, 2, 2, 3), np.uint8), arr_1=np.arange(n, dtype=np.int64),
                moedit_shard=np.array(record, np.int64), moedit_settings=np.frombuffer(settings, np.uint8))


os.makedirs(OUT, exist_ok=True)
save("shard_1_of_3.npz", **shard([1, 3, 2, 2, 6]))
save("shard_0_of_1.npz", compressed=True, **shard([0, 1, 0, 6, 6]))
save("empty_shard.npz", **shard([0, 3, 0, 0, 6]))
save("no_record.npz", arr_0=np.zeros((2, 2, 2, 3), np.uint8), arr_1=np.zeros(2, np.int64))
save("settings_only.npz", **{k: v for k, v in shard([0, 1, 0, 2, 2]).items() if k != "moedit_shard"})
save("record_float.npz", **dict(shard([0, 1, 0, 2, 2]), moedit_shard=np.array([0, 1, 0, 2, 2], np.float64)))
save("record_table.npz", **dict(shard([0, 1, 0, 2, 2]), moedit_shard=np.zeros((5, 1), np.int64)))
save("settings_full.npz", **shard([0, 1, 0, 2, 2], settings=b"x" * 8191))
save("past_the_end.npz", **shard([2, 3, 9223372036854775807, 2, 6], count=2))
save("k_of_n.npz", **shard([3, 3, 0, 2, 6]))
