"""Writes tests/fixtures/eval/: inputs and the answers of the independent
ADM-evaluator implementation (tools/adm_evaluator_reference.py) that
moedit eval's tests compare against, on the counter-based random Inception
weights (seed 0) of tools/inception_reference.py.

  samples.npz   arr_0 uint8 [10, 32, 32, 3]        the sample batch (3 solid colours)
  ref.npz       arr_0 uint8 [8, 28, 36, 3]         the reference batch (3 checkerboards)
  other.npz     arr_0 uint8 [6, 30, 30, 3]         images whose statistics the
                tests store into an ADM-layout copy of ref.npz (they differ
                from ref's images: FID/sFID must use them, P/R ref's images)
  expected.npy  float64 [6, 5]: rows of (IS, FID, sFID, Precision, Recall)
                 0 adm:         samples vs ref
                 1 pytorch-fid: samples vs ref
                 2 adm:         samples vs ref + other's mu, sigma, mu_s, sigma_s
                 3 adm:         samples vs ref + other's mu, sigma only (sFID from ref)
                 4 adm:         as 0 with Inception Score splits of 3
                 5 adm:         ref vs samples (the roles swapped)
  features_adm.npz  pool, spatial, logits of samples (adm), float32
  resize.npz    x float32 [2, 5, 7] and y = TF1 legacy bilinear to [2, 11, 4]
                and z to [2, 3, 16] (channel planes)

Run: /usr/bin/python3 tools/make_eval_fixtures.py  (minutes: 48 Inception forwards in PyTorch
and twelve 2048×2048 sqrtm)."""
import os
import numpy as np
from adm_evaluator_reference import (ADMFeatures, evaluate, statistics, tf1_resize_bilinear,
                                     frechet_distance)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "eval")


def smooth(rng, n, h, w, wiggle):
    yy, xx = np.mgrid[0:h, 0:w]
    a = [np.stack([128 + 90 * np.sin(xx / (2.5 + i * wiggle) + c + yy / (4 + i)) + rng.integers(-40, 40, (h, w))
                   for c in range(3)], -1) for i in range(n)]
    return np.clip(np.stack(a), 0, 255).astype(np.uint8)


def solid(rng, n, h, w):
    a = [np.full((h, w, 3), rng.integers(0, 256, 3)) + rng.integers(-5, 5, (h, w, 3)) for _ in range(n)]
    return np.clip(np.stack(a), 0, 255).astype(np.uint8)


def checker(n, h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([np.stack([((yy // (2 + i) + xx // (2 + i)) % 2) * 255 * (c != i % 3) for c in range(3)], -1)
                     for i in range(n)]).astype(np.uint8)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(13)
    # outliers on both sides (solid colours, checkerboards) so that
    # Precision and Recall are neither 0 nor 1
    samples = np.concatenate([smooth(rng, 7, 32, 32, 0.7), solid(rng, 3, 32, 32)])
    ref = np.concatenate([smooth(rng, 5, 28, 36, 0.9), checker(3, 28, 36)])
    other = smooth(rng, 6, 30, 30, 1.3)
    for name, arr in (("samples", samples), ("ref", ref), ("other", other)):
        np.savez(os.path.join(OUT, name + ".npz"), arr)

    x = rng.normal(size=(5, 7, 2)).astype(np.float32) * 50 + 100
    planes = lambda a: np.ascontiguousarray(a.transpose(2, 0, 1))
    np.savez(os.path.join(OUT, "resize.npz"), x=planes(x), y=planes(tf1_resize_bilinear(x[None], 11, 4)[0]),
             z=planes(tf1_resize_bilinear(x[None], 3, 16)[0]))

    net = ADMFeatures(seed=0)
    acts = {}
    for p in ("adm", "pytorch-fid"):
        for k, v in (("samples", samples), ("ref", ref), ("other", other)):
            acts[p, k] = net(v, p)
            print("features", p, k, flush=True)
    s, r, o = acts["adm", "samples"], acts["adm", "ref"], acts["adm", "other"]
    np.savez(os.path.join(OUT, "features_adm.npz"), pool=s[0], spatial=s[1], logits=s[2].astype(np.float32))
    cases = [lambda: evaluate(s, r),
             lambda: evaluate(acts["pytorch-fid", "samples"], acts["pytorch-fid", "ref"]),
             lambda: evaluate(s, r, statistics(o[0]), statistics(o[1])),
             lambda: evaluate(s, r, statistics(o[0]), None),
             lambda: evaluate(s, r, split_size=3),
             lambda: evaluate(r, s)]
    rows = []
    for i, case in enumerate(cases):
        rows.append(case())
        print("case", i, rows[-1], flush=True)
    keys = ("inception_score", "fid", "sfid", "precision", "recall")
    exp = np.array([[row[k] for k in keys] for row in rows])
    np.save(os.path.join(OUT, "expected.npy"), exp)
    # the sqrtm route against the eigenvalue route, for the record
    mu1, s1 = statistics(s[1])
    mu2, s2 = statistics(r[1])
    w = np.linalg.eigvals(s1 @ s2)
    eig = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.maximum(w.real, 0)).sum())
    print("expected (IS, FID, sFID, P, R):\n", exp)
    print("sFID case 0 by sqrtm %.9g, by eigenvalues %.9g" % (frechet_distance(mu1, s1, mu2, s2), eig))
    print("pool mean %.4g std %.4g; spatial mean %.4g std %.4g" % (s[0].mean(), s[0].std(), s[1].mean(), s[1].std()))


if __name__ == "__main__":
    main()
