"""Evaluation metrics computed by libmoedit (double precision; docs/fid.md).

New library metrics are added here as one function each over the C call,
and listed in METRICS, so moedit.metrics stays the one place to look.
"""
import ctypes
import os

import numpy as np

from ._lib import INT_MAX, Error, Native, as_int, as_ints, check, lib

_D = ctypes.POINTER(ctypes.c_double)
_F = ctypes.POINTER(ctypes.c_float)


def feature_stats(features):
    """Mean [d] and unbiased covariance [d, d] (as np.cov) of features [n, d], n >= 2."""
    f = np.ascontiguousarray(features, dtype=np.float32)
    if f.ndim != 2 or f.shape[1] > INT_MAX:
        raise Error(2, "features: expected [n, d], got %s" % (f.shape,))
    n, d = f.shape
    mu, sigma = np.empty(d), np.empty((d, d))
    check(lib.moedit_feature_stats(n, d, f.ctypes.data_as(_F), mu.ctypes.data_as(_D), sigma.ctypes.data_as(_D)))
    return mu, sigma


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Fréchet distance between two Gaussians given by their means and covariances."""
    mu1, mu2 = (np.ascontiguousarray(m, dtype=np.float64) for m in (mu1, mu2))
    s1, s2 = (np.ascontiguousarray(s, dtype=np.float64) for s in (sigma1, sigma2))
    if any(m.ndim != 1 or s.shape != m.shape * 2 for m, s in ((mu1, s1), (mu2, s2))):
        raise Error(2, "frechet distance: mu [d] and sigma [d, d] of the same d expected")
    d = mu1.shape[0]
    if mu2.shape[0] != d:   # two feature extractors, or features against another network's statistics
        raise Error(2, "frechet distance: statistics of dimension %d and %d" % (d, mu2.shape[0]))
    out = ctypes.c_double()
    check(lib.moedit_frechet_distance(d, mu1.ctypes.data_as(_D), s1.ctypes.data_as(_D), mu2.ctypes.data_as(_D),
                                      s2.ctypes.data_as(_D), ctypes.byref(out)))
    return out.value


def _npz(path, keys, optional=()):
    """The arrays keys (and those of optional present) of an .npz file, the file closed again."""
    try:
        z = np.load(path)
    except (OSError, ValueError) as e:
        raise Error(2, "%s: %s" % (path, e)) from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise Error(2, "%s: not an .npz file" % path)
    with z:
        missing = [k for k in keys if k not in z.files]
        if missing:
            raise Error(2, "%s: no %s in the file" % (path, " or ".join(missing)))
        try:
            return {k: z[k] for k in list(keys) + [k for k in optional if k in z.files]}
        except (OSError, ValueError) as e:
            raise Error(2, "%s: %s" % (path, e)) from None


def _stats(x):
    if isinstance(x, tuple):
        return x
    if isinstance(x, (str, os.PathLike)):   # an .npz with mu and sigma (ADM reference batches)
        z = _npz(x, ("mu", "sigma"))
        return z["mu"], z["sigma"]
    return feature_stats(x)


def fid(a, b):
    """FID between two sets, each given as features [n, d], as (mu, sigma), or
    as an .npz file holding mu and sigma."""
    return frechet_distance(*_stats(a), *_stats(b))


def inception_score(logits, split_size=0):
    """Inception Score of logits [n, classes] (guided-diffusion's evaluator):
    averaged over chunks of split_size rows (<= 0: one chunk)."""
    lg = np.ascontiguousarray(logits, dtype=np.float32)
    if lg.ndim != 2:
        raise Error(2, "logits: expected [n, classes], got %s" % (lg.shape,))
    out = ctypes.c_double()
    if lg.shape[1] > INT_MAX:
        raise Error(2, "logits: %d classes, at most %d" % (lg.shape[1], INT_MAX))
    check(lib.moedit_inception_score(lg.shape[0], lg.shape[1], lg.ctypes.data_as(_F), as_int(split_size, "split_size"),
                                     ctypes.byref(out)))
    return out.value


def _rows(x, what):
    a = np.ascontiguousarray(x, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] > INT_MAX:
        raise Error(2, "%s: expected [n, d], got %s" % (what, a.shape))
    return a


def precision_recall(ref, samples, k=3):
    """guided-diffusion evaluator's Precision and Recall of samples [n, d]
    against ref [m, d] (pool3 features; its ManifoldEstimator uses k = 3)."""
    r, s = _rows(ref, "ref"), _rows(samples, "samples")
    if r.shape[1] != s.shape[1]:
        raise Error(2, "precision/recall: features of dimension %d and %d" % (r.shape[1], s.shape[1]))
    p, rc = ctypes.c_double(), ctypes.c_double()
    check(lib.moedit_precision_recall(r.shape[0], r.ctypes.data_as(_F), s.shape[0], s.ctypes.data_as(_F),
                                      r.shape[1], as_int(k, "k", 1, INT_MAX), ctypes.byref(p), ctypes.byref(rc)))
    return p.value, rc.value


def evaluate(samples, ref, ref_stats=None, split_size=5000):
    """guided-diffusion's evaluator's five numbers (as `moedit eval`).
    samples: (pool, spatial, logits) of Inception.adm_features; ref: (pool,
    spatial) of the reference images (spatial may be None with ref_stats);
    ref_stats: an ADM reference batch .npz whose mu, sigma (and mu_s,
    sigma_s) replace the reference features' statistics for FID (sFID)."""
    if len(samples) != 3 or len(ref) != 2:
        raise Error(2, "evaluate: samples (pool, spatial, logits) and ref (pool, spatial) expected")
    pool, spatial, logits = samples
    ref_pool, ref_spatial = ref
    stored = _npz(ref_stats, (), ("mu", "sigma", "mu_s", "sigma_s")) if ref_stats is not None else {}
    for a, b in (("mu", "sigma"), ("mu_s", "sigma_s")):
        if (a in stored) != (b in stored):
            raise Error(2, "%s: %s without %s" % (ref_stats, *((a, b) if a in stored else (b, a))))
    fid_ref = (stored["mu"], stored["sigma"]) if "mu" in stored else ref_pool
    sfid_ref = (stored["mu_s"], stored["sigma_s"]) if "mu_s" in stored else ref_spatial
    if sfid_ref is None:
        raise Error(2, "evaluate: sFID needs the reference's spatial features or mu_s, sigma_s in ref_stats")
    precision, recall = precision_recall(ref_pool, pool)
    return {"inception_score": inception_score(logits, split_size), "fid": fid(pool, fid_ref),
            "sfid": fid(spatial, sfid_ref), "precision": precision, "recall": recall}


def _images(images):
    """uint8 images (or integers in 0..255: a float array, say in [0, 1], is
    refused rather than truncated, 300 rather than wrapped to 44)."""
    im = np.asarray(images)
    if im.ndim != 4 or im.shape[3] not in (1, 3) or max(im.shape) > INT_MAX:
        raise Error(2, "images: expected uint8 [n, h, w, 1 or 3], got %s" % (im.shape,))
    return as_ints(im, np.uint8, "images: pixels")


class Inception(Native):
    """pytorch-fid's Inception network (pt_inception-2015-12-05-6726825d.pth)."""
    _what = "Inception"

    def __init__(self, path):
        self._native_init()
        net = ctypes.c_void_p()
        check(lib.moedit_inception_load(os.fsencode(path), ctypes.byref(net)))
        self._handle = net

    def _free(self, handle):
        lib.moedit_inception_free(handle)

    def digest(self):
        """Model.digest() of the network's weights: the `inception` member
        of `moedit eval`'s feature files (as an int there)."""
        crc = ctypes.c_uint32()
        with self._lock:
            check(lib.moedit_inception_digest(self._use(), ctypes.byref(crc)))
        return "%08x" % crc.value

    def features(self, images, logits=False):
        """uint8 images [n, h, w, c] (c = 1 or 3) → pool3 features [n, 2048]
        (and logits [n, 1008] with logits=True)."""
        im = _images(images)
        n, h, w, c = im.shape
        f = np.empty((n, 2048), np.float32)
        lg = np.empty((n, 1008), np.float32) if logits else None
        with self._lock:
            check(lib.moedit_inception_features(self._use(), n, h, w, c,
                                                im.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)),
                                                f.ctypes.data_as(_F), lg.ctypes.data_as(_F) if logits else None))
        return (f, lg) if logits else f

    def adm_features(self, images, preprocess="adm"):
        """uint8 images [n, h, w, c] → the evaluator's (pool [n, 2048], spatial
        [n, 2023], logits [n, 1008]), for evaluate(). preprocess: "adm" (the
        evaluator's TF resize) or "pytorch-fid"."""
        if not isinstance(preprocess, str):
            raise Error(2, "preprocess: %r is not adm or pytorch-fid" % (preprocess,))
        im = _images(images)
        n, h, w, c = im.shape
        pool, spatial, lg = (np.empty((n, d), np.float32) for d in (2048, 2023, 1008))
        with self._lock:
            check(lib.moedit_inception_adm_features(self._use(), preprocess.encode(), n, h, w, c,
                                                    im.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)),
                                                    *(a.ctypes.data_as(_F) for a in (pool, spatial, lg))))
        return pool, spatial, lg


METRICS = {"fid": fid, "frechet_distance": frechet_distance, "feature_stats": feature_stats,
           "inception_score": inception_score, "precision_recall": precision_recall, "evaluate": evaluate}
