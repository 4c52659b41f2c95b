"""Seeds for fuzz/fuzz_features.c (fuzz/corpus/features/): feature files as
`moedit eval --features-out` and `--stats-out` write them, a shard's part,
one from before the 'inception' member, and some with members of the wrong
type. Small row counts and random values (the reader's work is the same).
Run with Debian's python: /usr/bin/python3 tools/make_feature_fuzz_seeds.py"""
import io
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus", "features")
DIM, SPATIAL, CLASSES = 2048, 17 * 17 * 7, 1008
rng = np.random.default_rng(7)


def rows(n):
    return dict(pool=rng.standard_normal((n, DIM), dtype=np.float32),
                spatial=rng.standard_normal((n, SPATIAL), dtype=np.float32),
                logits=rng.standard_normal((n, CLASSES), dtype=np.float32))


def save(name, compressed=True, **arrays):
    bio = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(bio, **arrays)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bio.getvalue())


def stamp(first, n, total, inception=0x94d1e6c1):
    s = dict(range=np.array([first, n, total], np.int64), source=np.array([0x3a5f00d1b2c3e4f5], np.int64),
             preprocess=np.frombuffer(b"adm", np.uint8))
    if inception is not None:
        s["inception"] = np.array([inception], np.int64)
    return s


save("whole.npz", compressed=False, **rows(2), **stamp(0, 2, 2))
save("part.npz", **rows(2), **stamp(2, 2, 5))
save("before_inception.npz", **rows(1), **stamp(0, 1, 1, inception=None))
save("legacy.npz", **rows(1))
a = rng.standard_normal((6, 4))
save("stats_out.npz", pool=rows(3)["pool"], mu=a.mean(0), sigma=np.cov(a.T), mu_s=a.mean(0), sigma_s=np.cov(a.T),
     **{k: v for k, v in stamp(0, 3, 3).items() if k != "source"})
save("inception_float.npz", **rows(1), **dict(stamp(0, 1, 1), inception=np.array([1.5], np.float32)))
save("inception_zero.npz", **rows(1), **stamp(0, 1, 1, inception=0))
save("range_table.npz", **rows(1), **{"range": np.zeros((3, 1), np.int64)})
