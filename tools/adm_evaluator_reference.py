"""An independent NumPy/PyTorch implementation of guided-diffusion's ADM
evaluator (evaluations/evaluator.py), on the FID Inception of
inception_reference.py, for moedit eval's tests.

What it reproduces from the evaluator:
  features   pool_3 (2048) and mixed_6/conv = the ReLU output of
             Mixed_6d.branch1x1, first 7 channels, flattened NHWC (h, w, c)
             -> 2023 values (a forward hook on that BasicConv2d);
  preprocess "adm": the TF graph's ResizeBilinear with TF1's legacy rule
             (source = dst * in/out, no half-pixel centres, float32), then
             (x - 128) / 128 of the raw 0..255 values; "pytorch-fid":
             pytorch-fid's F.interpolate(align_corners=False) of x/255, 2x-1;
  IS         softmax(pool3 @ fc.weight.T) -- no bias, all 1008 outputs --
             splits of split_size consecutive samples, mean of exp(KL);
  FID/sFID   np.mean / np.cov(rowvar=False) and FIDStatistics.frechet_distance
             (scipy.linalg.sqrtm of sigma1 @ sigma2, eps retry, real part);
  P/R        ManifoldEstimator(k=3): squared distances
             max(|u|^2 - 2 u.v + |v|^2, 0) in row/column batches, radius =
             np.partition(row, k)[k] (self included at 0), evaluate_pr with
             <=. Distances here are float64; the evaluator first tries
             float16 in TensorFlow (and float32 if that overflows).
"""
import numpy as np
import torch
from scipy import linalg

from inception_reference import FIDInceptionV3, random_state_dict, images_u8_to_input


def tf1_resize_bilinear(x, oh, ow):
    """x float32 [N, H, W, C] -> [N, oh, ow, C], TF1 legacy bilinear."""
    x = np.asarray(x, dtype=np.float32)
    n, h, w, c = x.shape

    def axis(in_size, out_size):
        scale = np.float32(in_size) / np.float32(out_size)
        src = np.arange(out_size, dtype=np.float32) * scale
        lo = np.floor(src)
        hi = np.minimum(np.ceil(src), in_size - 1).astype(np.int64)
        return lo.astype(np.int64), hi, (src - lo).astype(np.float32)

    ylo, yhi, yl = axis(h, oh)
    xlo, xhi, xl = axis(w, ow)
    tl, tr = x[:, ylo][:, :, xlo], x[:, ylo][:, :, xhi]
    bl, br = x[:, yhi][:, :, xlo], x[:, yhi][:, :, xhi]
    xl = xl[None, None, :, None]
    top = tl + (tr - tl) * xl
    bot = bl + (br - bl) * xl
    return top + (bot - top) * yl[None, :, None, None]


class ADMFeatures:
    """pool3, the sFID tap and the bias-free logits of uint8 images."""

    def __init__(self, seed=0):
        self.model = FIDInceptionV3().eval()
        self.model.load_state_dict(random_state_dict(self.model, seed))
        self._tap = None
        self.model.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, o: setattr(self, "_tap", o))

    def forward_299(self, x):
        """x: [N, 3, 299, 299] network input -> pool3 [N, 2048]."""
        m = self.model
        x = m.Conv2d_2b_3x3(m.Conv2d_2a_3x3(m.Conv2d_1a_3x3(x)))
        x = torch.nn.functional.max_pool2d(x, kernel_size=3, stride=2)
        x = m.Conv2d_4a_3x3(m.Conv2d_3b_1x1(x))
        x = torch.nn.functional.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(m, "Mixed_" + name)(x)
        return torch.nn.functional.adaptive_avg_pool2d(x, (1, 1)).flatten(1)

    def __call__(self, imgs, preprocess):
        imgs = np.asarray(imgs)
        if imgs.ndim == 3:
            imgs = imgs[..., None]
        if imgs.shape[-1] == 1:
            imgs = np.repeat(imgs, 3, axis=-1)
        with torch.no_grad():
            if preprocess == "adm":
                x = tf1_resize_bilinear(imgs.astype(np.float32), 299, 299)
                x = (x - np.float32(128)) / np.float32(128)
                x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
            else:
                x = images_u8_to_input(imgs)
                x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
                x = 2 * x - 1
            pool = self.forward_299(x).numpy()
            spatial = self._tap.permute(0, 2, 3, 1)[..., :7].reshape(len(imgs), -1).numpy()
        logits = pool.astype(np.float64) @ self.model.fc.weight.detach().numpy().astype(np.float64).T
        return pool, spatial, logits


def statistics(acts):
    acts = np.asarray(acts, dtype=np.float64)
    return np.mean(acts, axis=0), np.cov(acts, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def inception_score(logits, split_size=5000):
    l = np.asarray(logits, dtype=np.float64)
    e = np.exp(l - l.max(axis=1, keepdims=True))
    preds = e / e.sum(axis=1, keepdims=True)
    scores = []
    for i in range(0, len(preds), split_size):
        part = preds[i:i + split_size]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores))


def pairwise(u, v):
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    nu = (u * u).sum(1)[:, None]
    nv = (v * v).sum(1)[None, :]
    return np.maximum(nu - 2 * u @ v.T + nv, 0.0)


def manifold_radii(feats, k=3, batch=7):
    """Row/column batches of `batch` rows, as ManifoldEstimator (10000 there)."""
    n = len(feats)
    radii = np.zeros(n)
    for b1 in range(0, n, batch):
        rows = feats[b1:b1 + batch]
        d = np.concatenate([pairwise(rows, feats[b2:b2 + batch]) for b2 in range(0, n, batch)], axis=1)
        radii[b1:b1 + batch] = np.partition(d, k, axis=1)[:, k]
    return radii


def precision_recall(ref, samples, k=3, batch=7):
    r_ref, r_s = manifold_radii(ref, k, batch), manifold_radii(samples, k, batch)
    ref_in = np.zeros(len(ref), bool)
    s_in = np.zeros(len(samples), bool)
    for b1 in range(0, len(ref), batch):
        for b2 in range(0, len(samples), batch):
            d = pairwise(ref[b1:b1 + batch], samples[b2:b2 + batch])
            ref_in[b1:b1 + batch] |= (d <= r_s[None, b2:b2 + batch]).any(axis=1)
            s_in[b2:b2 + batch] |= (d <= r_ref[b1:b1 + batch, None]).any(axis=0)
    return float(s_in.mean()), float(ref_in.mean())


def evaluate(sample_acts, ref_acts, ref_stats=None, ref_stats_s=None, split_size=5000):
    """sample_acts / ref_acts: (pool, spatial, logits); ref_stats*: (mu, sigma)
    stored in the reference batch, or None (then from ref_acts)."""
    s_pool, s_spatial, s_logits = sample_acts
    r_pool, r_spatial = ref_acts[0], ref_acts[1]
    rs = ref_stats or statistics(r_pool)
    rss = ref_stats_s or statistics(r_spatial)
    prec, rec = precision_recall(r_pool, s_pool)
    return {"inception_score": inception_score(s_logits, split_size),
            "fid": frechet_distance(*statistics(s_pool), *rs),
            "sfid": frechet_distance(*statistics(s_spatial), *rss),
            "precision": prec, "recall": rec}
