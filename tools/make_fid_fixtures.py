"""Writes tests/fixtures/fid/: the inputs and PyTorch/NumPy answers the FID
tests compare moedit against (see tools/inception_reference.py).

  manifest.txt        every float tensor of pt_inception's state dict: name, shape
  images_a.npz        arr_0 uint8 [4, 32, 32, 3], arr_1 int64 labels
  images_b.npz        arr_0 uint8 [3, 20, 28, 1] (grayscale), arr_1
  features_{a,b}.npy  pool3 features [N, 2048] float32 (weights seed 0)
  logits_a.npy        fc logits [4, 1008] float32
  scores.npy          float64 [FID(a, b), IS(a), IS(a) in splits of 3] (float64 statistics)
  stats64_{a,b}.npz   mu [64], sigma [64, 64] float64 (ADM reference-batch layout)
  fid64.npy           float64 [FID(stats64_a, stats64_b)]
  pool_cases.f32      x [2, 3, 7, 9] then PyTorch's max/avg pools and bilinear
                      resizes of it (see pool_cases())
  conv1a_only.pth     torch.save of a state dict holding only Conv2d_1a_3x3 (the
                      key-loading path of a real .pth; the rest is missing on purpose)

Run: /usr/bin/python3 tools/make_fid_fixtures.py  (about a minute)."""
import os
import numpy as np
import torch
from inception_reference import (FIDInceptionV3, random_state_dict, images_u8_to_input,
                                 frechet_distance, stats, inception_score)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "fid")


def pool_cases():
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 7, 9, generator=g)
    # raw little-endian float32, concatenated in this order (tests/ops_pool.c
    # links only the ops module, so no npy reader)
    cases = [x, F.max_pool2d(x, 3, 2), F.max_pool2d(x, 3, 1, 1),
             F.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
             F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
             F.adaptive_avg_pool2d(x, (1, 1)).flatten(1),
             F.interpolate(x, size=(13, 5), mode="bilinear", align_corners=False),
             F.interpolate(x, size=(4, 20), mode="bilinear", align_corners=False),
             F.interpolate(x, size=(61, 47), mode="bilinear", align_corners=False)]
    np.concatenate([c.numpy().ravel() for c in cases]).astype("<f4").tofile(
        os.path.join(OUT, "pool_cases.f32"))


def main():
    os.makedirs(OUT, exist_ok=True)
    pool_cases()
    torch.manual_seed(0)
    rng = np.random.default_rng(7)
    model = FIDInceptionV3().eval()
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                f.write("%s %s\n" % (name, " ".join(str(d) for d in t.shape)))
    model.load_state_dict(random_state_dict(model, seed=0))

    # smooth-ish images so the resize matters, plus noise
    yy, xx = np.mgrid[0:32, 0:32]
    a = np.stack([np.stack([(128 + 100 * np.sin(xx / (3 + i) + c) + rng.integers(-20, 20, (32, 32)))
                            for c in range(3)], -1) for i in range(4)])
    a = np.clip(a, 0, 255).astype(np.uint8)
    b = np.clip(rng.normal(120, 60, (3, 20, 28, 1)), 0, 255).astype(np.uint8)
    np.savez(os.path.join(OUT, "images_a.npz"), a, np.array([0, 1, 2, 3], dtype=np.int64))
    np.savez(os.path.join(OUT, "images_b.npz"), b, np.array([5, 6, 7], dtype=np.int64))

    with torch.no_grad():
        fa, la = model(images_u8_to_input(a))
        fb, _ = model(images_u8_to_input(b))
    fa, la, fb = fa.numpy(), la.numpy(), fb.numpy()
    np.save(os.path.join(OUT, "features_a.npy"), fa)
    np.save(os.path.join(OUT, "features_b.npy"), fb)
    np.save(os.path.join(OUT, "logits_a.npy"), la)
    mu_a, s_a = stats(fa)
    mu_b, s_b = stats(fb)
    scores = np.array([frechet_distance(mu_a, s_a, mu_b, s_b), inception_score(la),
                       inception_score(la, split_size=3)])
    np.save(os.path.join(OUT, "scores.npy"), scores)

    d = 64
    for tag in ("a", "b"):
        A = rng.normal(size=(d, 2 * d))
        np.savez(os.path.join(OUT, "stats64_%s.npz" % tag), mu=rng.normal(size=d),
                 sigma=A @ A.T / (2 * d))
    za, zb = np.load(os.path.join(OUT, "stats64_a.npz")), np.load(os.path.join(OUT, "stats64_b.npz"))
    np.save(os.path.join(OUT, "fid64.npy"),
            np.array([frechet_distance(za["mu"], za["sigma"], zb["mu"], zb["sigma"])]))

    sd = model.state_dict()
    torch.save({k: v for k, v in sd.items() if k.startswith("Conv2d_1a_3x3.")},
               os.path.join(OUT, "conv1a_only.pth"))
    print("features a: mean %.4g std %.4g; logits std %.4g; scores %s" %
          (fa.mean(), fa.std(), la.std(), scores))


if __name__ == "__main__":
    main()
